"""The store from the command line: `pec-mcp migrate` on both stores, `serve` refusing a schema it does not fit or a
replica with another state key, an unreachable database in one line, and the password of store.url nowhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bulk.test_bulk_processes import free_port
from tests.postgres import PASSWORD, USER
from tests.replicas import ROOT, migrate, replica_env, replicas, start_replica, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STATE_KEY_A = "state-key-a-0123456789abcdef0123456789"
STATE_KEY_B = "state-key-b-0123456789abcdef0123456789"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pec_mcp", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def offline_env(store: str, tmp_path: Path) -> dict[str, str]:
    return replica_env(origin="http://127.0.0.1:9", store=store, config=write_config(tmp_path, ""))


def test_migrate_creates_the_schema_then_finds_it_up_to_date(store_location: str, tmp_path: Path) -> None:
    env = offline_env(store_location, tmp_path)
    first, second = migrate(env), migrate(env)
    assert first.returncode == second.returncode == 0, first.stderr
    assert "upgraded from schema 0 to" in first.stderr and "up to date" in second.stderr
    assert PASSWORD not in first.stderr + second.stderr


def test_serve_refuses_a_postgresql_store_that_was_not_migrated_and_says_how(pg_url: str, tmp_path: Path) -> None:
    done = run("serve", "--transport", "http", "--port", str(free_port()), env=offline_env(pg_url, tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pec-mcp migrate" in lines[0] and "schema version 0" in lines[0]
    assert PASSWORD not in done.stderr and f"{USER}:**********@" in done.stderr


def test_an_unreachable_database_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://pec:{PASSWORD}@127.0.0.1:{free_port()}/pec"
    for command in (["serve", "--transport", "http", "--port", str(free_port())], ["serve"], ["migrate"]):
        done = run(*command, env=offline_env(url, tmp_path))
        assert done.returncode == 2, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Cannot reach the PostgreSQL store" in lines[0], done.stderr
        assert PASSWORD not in done.stderr


def test_check_config_shows_store_url_with_the_password_masked(pg_url: str, tmp_path: Path) -> None:
    done = run("check-config", env=offline_env(pg_url, tmp_path))
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["store"]["url"]
    assert PASSWORD not in done.stdout and shown.startswith(f"postgresql://{USER}:**********@127.0.0.1:")


async def test_a_replica_with_another_state_key_is_refused_while_the_first_runs(
    store_location: str, tmp_path: Path
) -> None:
    # No provider is called: the replicas only start (the origin is a closed port, as in offline_env).
    def env(key: str) -> dict[str, str]:
        return replica_env(origin="http://127.0.0.1:9", store=store_location, config=write_config(tmp_path, ""),
                           extra={"PEC_MCP_HTTP__STATE_KEY": key})

    assert migrate(env(STATE_KEY_A)).returncode == 0
    async with replicas(2, env(STATE_KEY_A), tmp_path):  # started together: two replicas with one key
        other = start_replica(env(STATE_KEY_B), tmp_path)
        assert other.process.wait(timeout=120) == 2
    text = other.log.read_text()
    assert "different http.state_key" in text and len(text.strip().splitlines()) == 1
    assert STATE_KEY_A not in text and STATE_KEY_B not in text
