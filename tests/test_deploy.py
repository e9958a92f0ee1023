"""The deployment, run for real: ``deploy/local.sh`` starts PostgreSQL 15, ``pec-mcp migrate``, two replicas and
nginx on loopback; an MCP client and a browser go through nginx (round robin) and everything is stopped at the end.
``deploy/compose.yaml`` (which needs Docker) is checked against the command line and the settings it uses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp.types as t
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from pec_mcp.cli import _parser
from pec_mcp.config import environment_warnings, load_settings
from pec_mcp.errors import ConfigError
from pec_mcp.simulator import credentials as sim
from tests.bulk.test_bulk_processes import call, free_port, simulate, stats
from tests.postgres import Unavailable, bindir
from tests.replicas import ROOT, Browser, write_config

DEPLOY = ROOT / "deploy"
ANNA = "anna-deploy-token-3f9c1e7a5b"
HOOK = "deploy-webhook-token-81c2"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A folder for the deployment's data and logs that the postgres user can reach (pytest's own cannot)."""
    try:
        bindir()
    except Unavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        if os.environ.get("CI"):
            raise AssertionError("nginx is not installed (scripts/test.sh installs nginx-light)")
        pytest.skip("nginx is not installed (the Debian package nginx-light)")
    folder = Path(tempfile.mkdtemp(prefix="pec-mcp-deploy-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def local_sh(action: str, run: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(DEPLOY / "local.sh"), action, str(run)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def accept(context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
    return t.ElicitResult(action="accept", content={"confirm": True})


@asynccontextmanager
async def mcp_client(url: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {ANNA}"}, timeout=httpx2.Timeout(60, read=180))
    async with http, Client(streamable_http_client(url, http_client=http), elicitation_callback=accept) as client:
        yield client




@pytest.mark.slow
@pytest.mark.anyio
async def test_local_sh_runs_postgresql_two_replicas_and_nginx_and_stops_them_all(run_dir: Path) -> None:
    proxy, first, second, database = free_port(), free_port(), free_port(), free_port()
    with simulate(rate=1000) as origin:
        env_file = run_dir / "pec-mcp.env"
        env_file.write_text("\n".join([
            "PEC_MCP_ENVIRONMENT=sandbox",
            f"PEC_MCP_PECMASSIVA__BASE_URL={origin}/pecmassiva",
            f"PEC_MCP_PECMASSIVA__TOKEN={sim.PECMASSIVA_TOKEN}",
            f"PEC_MCP_PECMASSIVA__USERNAME={sim.PECMASSIVA_USERNAME}",
            f"PEC_MCP_PECMASSIVA__PASSWORD={sim.PECMASSIVA_PASSWORD}",
            "PEC_MCP_SENDING__REQUESTS_PER_SECOND=1000",
            'PEC_MCP_TOOLS__ENABLED=\'["pec", "bulk"]\'',
            f"PEC_MCP_HTTP__WEBHOOK_TOKEN={HOOK}",
            f"PEC_MCP_HTTP__USERS__ANNA__TOKEN={ANNA}",
            "",
        ]))
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "ENV_FILE": str(env_file),
               "PEC_MCP": f"{sys.executable} -m pec_mcp", "PEC_MCP_CONFIG": str(write_config(run_dir, "")),
               "PROXY_PORT": str(proxy), "REPLICA_PORTS": f"{first} {second}", "PG_PORT": str(database)}
        started = local_sh("start", run_dir, env)
        pids = [int((run_dir / "pids" / f"replica-{port}").read_text()) for port in (first, second)
                if (run_dir / "pids" / f"replica-{port}").exists()]
        try:
            assert started.returncode == 0, started.stderr + started.stdout
            await drive(f"http://127.0.0.1:{proxy}", origin)
        finally:
            stopped = local_sh("stop", run_dir, env)
        assert stopped.returncode == 0, stopped.stderr
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)
    assert not (run_dir / "nginx" / "nginx.pid").exists()
    assert not (run_dir / "postgres" / "data" / "postmaster.pid").exists()
    served = (run_dir / "nginx" / "logs" / "access.log").read_text()
    calls = [line.split()[-1] for line in served.splitlines() if " POST /mcp 200 " in line]
    # Round robin: each MCP request went to the other replica than the one before, so the send's call and the
    # call that carried the user's confirmation were answered by different replicas.
    assert set(calls) == {f"127.0.0.1:{first}", f"127.0.0.1:{second}"}
    assert all(one != two for one, two in pairwise(calls)), calls
    assert ANNA not in served and HOOK not in served
    logs = "".join(p.read_text() for p in (run_dir / "logs").glob("*.log"))
    assert ANNA not in logs and HOOK not in logs


async def drive(base: str, origin: str) -> None:
    """Through the proxy: a send confirmed through the other replica, a bulk job, and the dashboard."""
    async with mcp_client(base + "/mcp") as client:
        sent = await call(client, "send_pec", {"recipients": ["mario.rossi@pec.example.it"],
                                               "subject": "Diffida deploy", "body": "Testo",
                                               "idempotency_key": "deploy-1"})
        assert sent["status"] == "sent"
        people = [{"address": f"socio{i}@pec.example.it", "variables": {"n": str(i)}} for i in range(4)]
        job = await call(client, "start_bulk_pec", {"recipients": people, "subject": "Avviso {{n}}",
                                                    "body": "Gentile socio {{n}}", "idempotency_key": "deploy-job"})
        with anyio.fail_after(180):
            while (await call(client, "get_bulk_pec", {"job_id": job["job_id"]}))["status"] == "sending":  # noqa: ASYNC110
                await anyio.sleep(0.2)  # real processes on a real clock: their pace
    counted = (await stats(origin))["recipients"]
    assert set(counted.values()) == {1} and len(counted) == 5  # each recipient exactly once
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
        browser = Browser(http)
        assert (await browser.sign_in(base, ANNA)).status_code == 303
        for _ in range(4):  # round robin: every other page comes from the other replica
            page = await browser.get(base, "/dashboard/sendings")
            assert page.status_code == 200 and "Diffida deploy" in page.text
        hook = await http.post(base + "/webhooks/mensatek", params={"token": HOOK},
                               data={"Servicio": "EMAILCERTIFICADO", "Resultado": "1", "idMensaje": "777",
                                     "Fecha": "2026-03-10 10:00"})
        assert hook.status_code == 200


COMPOSE = DEPLOY / "compose.yaml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_runs_the_same_commands_as_local_sh_and_the_command_line_accepts_them() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "migrate", "replica-a", "replica-b", "proxy"}
    assert services["migrate"]["command"] == ["migrate"]
    script = (DEPLOY / "local.sh").read_text()
    assert "$PEC_MCP migrate" in script and "$PEC_MCP serve --transport http" in script
    for name in ("replica-a", "replica-b"):
        replica = services[name]
        args = _parser().parse_args(replica["command"])
        assert (args.command, args.transport) == ("serve", "http")
        assert replica["env_file"] == services["migrate"]["env_file"] == "pec-mcp.env"
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert _parser().parse_args(services["migrate"]["command"]).command == "migrate"
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "reverse_proxy replica-a:8000 replica-b:8000" in caddyfile and "round_robin" in caddyfile
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "proxy_buffering off" in nginx and "flush_interval -1" in caddyfile


def test_the_example_environment_file_sets_only_real_settings() -> None:
    lines = [line for line in (DEPLOY / "pec-mcp.env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    environ = dict(line.split("=", 1) for line in lines)
    assert environment_warnings(environ) == []
    with pytest.raises(ConfigError, match="placeholder"):  # left as it is, the file is refused, saying why
        load_settings(environ=environ)
    filled = {key: f"filled-in-secret-{key.lower()}" if "CHANGE-ME" in value and "URL" not in key else value
              for key, value in environ.items()}
    settings = load_settings(environ=filled)
    assert settings.store.url is not None and settings.http.users and settings.env == "production"
