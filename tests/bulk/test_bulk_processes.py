"""Real processes: a server killed mid-job resumes without sending anyone twice; two servers share the limit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from pec_mcp.simulator import credentials as sim
from tests.processes import simulate_process

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
JOB = {"subject": "Sollecito {{n}}", "body": "Gentile cliente {{n}}, le ricordiamo il pagamento."}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def simulate(rate: float) -> Iterator[str]:
    """``pec-mcp simulate`` on a loopback port of its choosing; yields its origin."""
    with simulate_process("--rate", str(rate), "--delivery-delay", "1") as simulated:
        yield simulated.origin


async def stats(origin: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        data: dict[str, Any] = (await http.get(origin + "/__simulator__/stats")).json()
        return data


def server_env(origin: str, store: Path, rate: float, config: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(ROOT),
        "PEC_MCP_CONFIG": str(config),
        "PEC_MCP_ENVIRONMENT": "sandbox",
        "PEC_MCP_PECMASSIVA__BASE_URL": origin + "/pecmassiva",
        "PEC_MCP_PECMASSIVA__TOKEN": sim.PECMASSIVA_TOKEN,
        "PEC_MCP_PECMASSIVA__USERNAME": sim.PECMASSIVA_USERNAME,
        "PEC_MCP_PECMASSIVA__PASSWORD": sim.PECMASSIVA_PASSWORD,
        "PEC_MCP_STORE__PATH": str(store),
        "PEC_MCP_SENDING__REQUESTS_PER_SECOND": str(rate),
        "PEC_MCP_SENDING__CONFIRM": "never",
        "PEC_MCP_TOOLS__ENABLED": '["pec", "bulk"]',
    }


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., Any]:
    config = tmp_path / "config.toml"
    config.write_text("# settings come from the environment\n")
    config.chmod(0o600)
    store = tmp_path / "shared.sqlite3"

    @asynccontextmanager
    async def open_server(origin: str, rate: float) -> AsyncIterator[Client]:
        params = StdioServerParameters(command=sys.executable, args=["-m", "pec_mcp", "serve"], cwd=str(ROOT),
                                       env=server_env(origin, store, rate, config))
        async with Client(params) as client:
            yield client

    open_server.store = store  # type: ignore[attr-defined]
    return open_server


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def until_sent(client: Client, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(120):  # seconds of work at most; generous for a loaded machine
        while True:
            job = await call(client, "get_bulk_pec", {"job_id": job_id})
            if job["status"] != "sending":
                return job
            await anyio.sleep(0.2)  # a real server on a real clock: this is its pace, not a test shortcut


def recipients(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"address": f"{tag}{i}@pec.example.it", "variables": {"n": f"{tag}{i}"}} for i in range(n)]


def runner_pids(store: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(store)) as db:
        return [row[0] for row in db.execute("SELECT pid FROM job_runners")]


async def test_a_server_killed_mid_job_resumes_after_restart_and_sends_every_recipient_exactly_once(
    serve: Callable[..., Any],
) -> None:
    with simulate(rate=20) as origin:
        async with serve(origin, 20) as client:
            started = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(60, "kill"),
                                                            "idempotency_key": "solleciti"})
            with anyio.fail_after(20):
                while sum((await stats(origin))["recipients"].values()) < 15:  # noqa: ASYNC110 (another process)
                    await anyio.sleep(0.05)
            [pid] = runner_pids(serve.store)  # type: ignore[attr-defined]
            os.kill(pid, signal.SIGKILL)
        sent_before_restart = sum((await stats(origin))["recipients"].values())
        assert sent_before_restart < 60

        async with serve(origin, 20) as client:
            job = await until_sent(client, started["job_id"])
            again = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(60, "kill"),
                                                          "idempotency_key": "solleciti"})
        final = await stats(origin)
    counted = final["recipients"]
    assert again["status"] == "duplicate"
    assert max(counted.values()) == 1, "somebody got the notice twice"
    counts = job["counts"]
    assert counts["queued"] == counts["sending"] == 0
    assert counts["sent"] + counts["unknown"] == 60, (counts, job["first_errors"], final["rate_limited"])
    assert counts["sent"] <= len(counted) <= 60
    assert set(job["unknown_recipients"]) <= set(counted) | {r["address"] for r in recipients(60, "kill")}


# The two servers are told 5 sends a second; the simulator refuses anything faster than 7.5 together. Two servers
# pacing each on its own would send 10 a second and be refused over and over; sharing the limit, they leave a third
# of an interval (~0.1 s) between arrivals for a busy machine's jitter, which an exact-limit gate (10 ms) does not.
SHARED_RATE, GATE_RATE = 5, 7.5


async def test_two_servers_on_one_store_stay_within_the_limit_together(serve: Callable[..., Any]) -> None:
    with simulate(rate=GATE_RATE) as origin:
        async with serve(origin, SHARED_RATE) as first, serve(origin, SHARED_RATE) as second:
            one = await call(first, "start_bulk_pec", {**JOB, "recipients": recipients(10, "uno")})
            two = await call(second, "start_bulk_pec", {**JOB, "recipients": recipients(10, "due")})
            jobs = [await until_sent(first, one["job_id"]), await until_sent(second, two["job_id"])]
        counted = await stats(origin)
    assert counted["rate_limited"] == 0
    assert sorted(counted["recipients"].values()) == [1] * 20
    assert all(job["counts"]["sent"] == 10 for job in jobs)
