"""``pec-mcp check-config`` through the real command line: what each environment needs, the store, the folders,
the HTTP settings, where each setting came from, the effective hosts, and ``--probe`` against ``pec-mcp simulate``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pec_mcp.simulator import credentials as sim
from tests.bulk.test_bulk_processes import simulate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CANARY = "CANARY-check-config-5e1b"


def run(tmp_path: Path, *args: str, config: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a clean environment: a private HOME, a store in the test folder, only the variables given."""
    (tmp_path / "files").mkdir(exist_ok=True)
    base = {
        "HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
        "PEC_MCP_STORE__PATH": str(tmp_path / "store.sqlite3"),
        "PEC_MCP_ATTACHMENTS__ALLOWED_DIRS": json.dumps([str(tmp_path / "files")]),
    }
    argv = list(args)
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(config)
        path.chmod(0o600)
        argv += ["--config", str(path)]
    return subprocess.run([sys.executable, "-m", "pec_mcp", *argv], cwd=tmp_path, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def test_production_with_only_a_token_names_the_missing_credentials_and_fails(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", PEC_MCP_ENVIRONMENT="production", PEC_MCP_PECMASSIVA__TOKEN=CANARY)
    assert done.returncode == 1
    assert "error: pecmassiva: PEC Massiva is partly configured for production: pecmassiva.username, " \
           "pecmassiva.password missing" in done.stderr
    assert CANARY not in done.stdout + done.stderr
    assert report(done)["hosts"]["pecmassiva"] == "https://ws.pecmassiva.com"


def test_sandbox_without_any_credential_fails_and_suggests_offline(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", PEC_MCP_ENVIRONMENT="sandbox")
    assert done.returncode == 1
    assert "no provider is fully configured" in done.stderr and 'environment = "offline"' in done.stderr


def test_a_mailbox_account_alone_is_enough_to_work_in_sandbox(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", config='environment = "sandbox"\n[accounts.studio]\n'
               'address = "studio@pec.it"\nprovider = "aruba"\npassword = "' + CANARY + '"\n')
    assert "no provider is fully configured" not in done.stderr  # the PEC tools work on the mailbox
    assert CANARY not in done.stdout + done.stderr


def test_mensatek_in_sandbox_needs_a_base_url(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", PEC_MCP_MENSATEK__API_USER="demo", PEC_MCP_MENSATEK__API_TOKEN=CANARY,
               PEC_MCP_MENSATEK__SENDER="avisos@example.es")
    assert done.returncode == 1
    assert "error: mensatek.base_url: Mensatek has no known sandbox host" in done.stderr
    assert report(done)["hosts"]["mensatek"].startswith("none:")


@pytest.mark.parametrize("store", ["folder", "not-a-store", "under-a-file"])
def test_an_unusable_store_is_a_finding(tmp_path: Path, store: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "not-a-store").write_text("hello")
    (tmp_path / "a-file").write_text("x")
    path = {"folder": tmp_path / "folder", "not-a-store": tmp_path / "not-a-store",
            "under-a-file": tmp_path / "a-file" / "store.sqlite3"}[store]
    done = run(tmp_path, "check-config", PEC_MCP_STORE__PATH=str(path))
    assert done.returncode == 1 and "error: store.path:" in done.stderr


def test_missing_allowed_folders_and_a_public_bind_without_token_are_reported(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", PEC_MCP_ATTACHMENTS__ALLOWED_DIRS=json.dumps([str(tmp_path / "nowhere")]),
               PEC_MCP_HTTP__HOST="0.0.0.0")
    assert done.returncode == 1
    assert f"warning: attachments.allowed_dirs: {tmp_path / 'nowhere'} does not exist" in done.stderr
    assert "error: http.auth_token: is needed to listen on 0.0.0.0" in done.stderr


def test_the_report_says_where_each_setting_came_from_and_the_effective_hosts(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", config='[sending]\nconfirm = "bulk"\n',
               PEC_MCP_SENDING__REQUESTS_PER_SECOND="2")
    assert done.returncode == 0, done.stderr
    shown = report(done)
    assert shown["sources"]["sending.confirm"] == "file"
    assert shown["sources"]["sending.requests_per_second"] == "environment (PEC_MCP_SENDING__REQUESTS_PER_SECOND)"
    assert shown["sources"]["sending.max_request_mb"] == "default"
    assert shown["sources"]["environment"] == "default: no provider credential is set"
    assert shown["hosts"]["pecmassiva"].startswith("the built-in simulator")
    assert done.stderr.strip().endswith("the configuration can work (offline)")


def test_check_config_never_sends_the_user_to_check_config(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", PEC_MCP_PECMASSIVA__TOKNE=CANARY)
    assert done.returncode == 2 and "did you mean 'token'?" in done.stderr
    assert "check-config" not in done.stderr and CANARY not in done.stderr


def test_a_wrong_variable_is_named_with_what_to_do_at_a_shell_not_a_server_restart(tmp_path: Path) -> None:
    checked = run(tmp_path, "check-config", PEC_MCP_ENVIRONMENT="prod")
    migrated = run(tmp_path, "migrate", PEC_MCP_ENVIRONMENT="prod")
    assert checked.returncode == 2 and migrated.returncode == 2
    assert "environment: must be 'offline', 'sandbox' or 'production' (set by PEC_MCP_ENVIRONMENT)" in checked.stderr
    assert "Correct or unset each variable named above, then run this check again." in checked.stderr
    assert "then run `pec-mcp migrate` again" in migrated.stderr
    assert all("restart" not in done.stderr for done in (checked, migrated))


def test_a_sender_that_is_not_the_mailbox_is_a_finding_worded_for_a_check_not_a_send(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", PEC_MCP_ENVIRONMENT="sandbox", PEC_MCP_PECMASSIVA__TOKEN="tok-1",
               PEC_MCP_PECMASSIVA__USERNAME="studio@pecmassiva.com", PEC_MCP_PECMASSIVA__PASSWORD="pw-1",
               PEC_MCP_PECMASSIVA__SENDER="altro@pecmassiva.com")
    assert done.returncode == 1  # a finding, not a setting that cannot be read
    assert ("pecmassiva.sender (altro@pecmassiva.com) is not the mailbox of the PEC Massiva account "
            "(studio@pecmassiva.com)") in done.stderr
    assert "every send_pec would be refused. Remove pecmassiva.sender" in done.stderr
    assert "restart" not in done.stderr and "nothing was sent" not in done.stderr


@pytest.mark.parametrize("value", ["…", "<your PEC Massiva token>", "YOUR-PECMASSIVA-TOKEN", "tökén", " padded "])
def test_an_unusable_secret_is_refused_at_start_and_by_check_config_naming_the_setting(
    tmp_path: Path, value: str
) -> None:
    checked = run(tmp_path, "check-config", PEC_MCP_PECMASSIVA__TOKEN=value)
    served = run(tmp_path, "serve", PEC_MCP_PECMASSIVA__TOKEN=value)
    for done in (checked, served):
        assert done.returncode == 2
        assert "pecmassiva.token:" in done.stderr and value.strip() not in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_empty_auth_token_is_an_error_not_unset(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", config='[http]\nauth_token = ""\n')
    assert done.returncode == 2 and "http.auth_token: is empty" in done.stderr


def test_config_wording_for_a_folder_string_a_top_level_token_and_a_misspelt_key(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", config=f'token = "{CANARY}"\n[attachments]\nallowed_dirs = "~/Documents"\n'
               '[sending]\nconfrim = "bulk"\n', PEC_MCP_ATTACHMENTS__ALLOWED_DIRS="")
    assert done.returncode == 2
    assert "attachments.allowed_dirs: must be a list of folders, even for one" in done.stderr
    assert "token: is not a top-level setting; it belongs in a section: [pecmassiva] or [openapi_pec]" in done.stderr
    assert "sending.confrim: is not a known setting; did you mean 'confirm'?" in done.stderr
    assert "valid tuple" not in done.stderr and CANARY not in done.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_flags_work_before_and_after_the_command(tmp_path: Path, where: str) -> None:
    flags = ["--log-level", "DEBUG", "--config", str(tmp_path / "c.toml")]
    (tmp_path / "c.toml").write_text('[sending]\nconfirm = "never"\n')
    (tmp_path / "c.toml").chmod(0o600)
    argv = [*flags, "check-config"] if where == "before" else ["check-config", *flags]
    done = run(tmp_path, *argv)
    assert done.returncode == 0, done.stderr
    assert report(done)["sending"]["confirm"] == "never"


def test_serve_accepts_the_log_level_after_the_command(tmp_path: Path) -> None:
    done = run(tmp_path, "serve", "--log-level", "DEBUG", "--transport", "http", "--host", "0.0.0.0")
    assert "unrecognized arguments" not in done.stderr
    assert "Refusing to listen on 0.0.0.0 without http.auth_token" in done.stderr


def test_check_config_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "PEC_MCP_STORE__PATH": str(tmp_path / "s.sqlite3"), "PEC_MCP_ENVIRONMENT": "offline"}
    done = subprocess.run(f"'{sys.executable}' -m pec_mcp check-config | head -1", shell=True, cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "{"
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.parametrize("transport", ["stdio", "http"])
@pytest.mark.parametrize("store", ["folder", "not-a-store", "under-a-file"])
def test_serve_with_a_bad_store_ends_with_one_line_and_code_2(tmp_path: Path, transport: str, store: str) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "not-a-store").write_bytes(b"not sqlite at all")
    (tmp_path / "a-file").write_text("x")
    path = {"folder": tmp_path / "folder", "not-a-store": tmp_path / "not-a-store",
            "under-a-file": tmp_path / "a-file" / "store.sqlite3"}[store]
    done = run(tmp_path, "serve", "--transport", transport, "--port", "0", PEC_MCP_STORE__PATH=str(path))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"pec-mcp: store.path ({path})")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_the_store_is_created_private_and_a_readable_one_draws_a_warning(tmp_path: Path) -> None:
    store = tmp_path / "data" / "pec" / "store.sqlite3"
    done = run(tmp_path, "check-config", "--probe", PEC_MCP_STORE__PATH=str(store))
    assert not store.exists()  # check-config never creates the store
    from pec_mcp.store import Store

    Store(store).close()
    assert store.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "data" / "pec").stat().st_mode & 0o777 == 0o700
    store.chmod(0o644)
    done = run(tmp_path, "check-config", PEC_MCP_STORE__PATH=str(store))
    assert done.returncode == 0
    assert f"warning: store.path: The store {store} is readable by other users" in done.stderr
    assert f"chmod 600 {store}" in done.stderr


def test_probe_offline_asks_every_provider_of_the_built_in_simulator(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", "--probe", PEC_MCP_ENVIRONMENT="offline")
    assert done.returncode == 0, done.stderr
    probe = report(done)["probe"]
    assert set(probe) == {"pecmassiva", "openapi_pec", "mensatek"}
    assert all(": ok: " in verdict for verdict in probe.values())


def test_probe_against_the_simulator_on_loopback_proves_good_credentials_and_names_bad_ones(tmp_path: Path) -> None:
    with simulate(rate=5) as origin:
        env = {
            "PEC_MCP_ENVIRONMENT": "sandbox",
            "PEC_MCP_PECMASSIVA__BASE_URL": origin + "/pecmassiva",
            "PEC_MCP_PECMASSIVA__TOKEN": sim.PECMASSIVA_TOKEN,
            "PEC_MCP_PECMASSIVA__USERNAME": sim.PECMASSIVA_USERNAME,
            "PEC_MCP_PECMASSIVA__PASSWORD": sim.PECMASSIVA_PASSWORD,
            "PEC_MCP_OPENAPI_PEC__BASE_URL": origin + "/openapi-pec",
            "PEC_MCP_OPENAPI_PEC__TOKEN": CANARY,
            "PEC_MCP_MENSATEK__BASE_URL": origin + "/mensatek/v7",
            "PEC_MCP_MENSATEK__API_USER": sim.MENSATEK_API_USER,
            "PEC_MCP_MENSATEK__API_TOKEN": sim.MENSATEK_API_TOKEN,
            "PEC_MCP_MENSATEK__SENDER": sim.MENSATEK_SENDER,
        }
        done = run(tmp_path, "check-config", "--probe", **env)
    probe = report(done)["probe"]
    assert done.returncode == 1
    assert probe["pecmassiva"].startswith("pecmassiva: ok: the credentials work")
    assert probe["mensatek"].startswith("mensatek: ok: the credentials work")
    assert probe["openapi_pec"].startswith("openapi_pec: FAILED:")
    assert "probe: openapi_pec: FAILED" in done.stderr and CANARY not in done.stdout + done.stderr


def test_an_empty_environment_variable_counts_as_unset_as_bundle_hosts_pass_them(tmp_path: Path) -> None:
    done = run(tmp_path, "check-config", PEC_MCP_PECMASSIVA__TOKEN="", PEC_MCP_HTTP__AUTH_TOKEN="")
    assert done.returncode == 0, done.stderr
    assert report(done)["pecmassiva"]["token"] is None and report(done)["effective_environment"] == "offline"
