"""What a server does before its first answers, and what it leaves for first use."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.jobs import JobStore, RecipientRow, account_of, plan_bulk
from pec_mcp.server import build_server, state
from pec_mcp.server.state import open_state
from pec_mcp.simulator import Simulator
from pec_mcp.store import Store

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: start a server whose catalogue is remembered, list its tools, say what was imported.
CHILD = """
import json, sys, anyio
from mcp import Client
from pec_mcp.config import load_settings
from pec_mcp.server import app, build_server

app.REGISTER_AFTER = 3600.0  # what start-up itself imports, not what the registration a moment later does

async def main():
    settings = load_settings(environ={}, environment="offline", store={"path": sys.argv[1]})
    server = build_server(settings, catalogue_dir=__import__("pathlib").Path(sys.argv[2]))
    async with Client(server) as client:
        listed = len((await client.list_tools()).tools)
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in {"httpx", "pec_mcp"})
    print(json.dumps({"listed": listed, "loaded": loaded}))

anyio.run(main)
"""


async def test_a_start_with_a_remembered_catalogue_imports_no_toolset_provider_http_stack_or_job_runner(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = make_settings()
    cache = tmp_path / "cache"
    async with Client(build_server(settings, catalogue_dir=cache)) as client:  # remembers the catalogue
        listed = len((await client.list_tools()).tools)
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-c", CHILD, str(tmp_path / "child.sqlite3"), str(cache)],
                                       cwd=ROOT, env={"PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}, check=False)
    assert done.returncode == 0, done.stderr.decode()
    child = json.loads(done.stdout)
    assert child["listed"] == listed
    loaded = set(child["loaded"])
    assert not {name for name in loaded if name == "httpx" or name.startswith("httpx.")}
    never = {"pec_mcp.jobs", "pec_mcp.providers", "pec_mcp.http", "pec_mcp.sending", "pec_mcp.simulator",
             "pec_mcp.server.pec.tools", "pec_mcp.server.bulk.tools", "pec_mcp.server.mailbox.tools",
             "pec_mcp.server.certified.tools", "pec_mcp.server.http.webhooks", "pec_mcp.server.resources"}
    assert not loaded & never, sorted(loaded & never)


def _queue_a_job(settings: Settings, n: int) -> str:
    """A job queued in the store as a process that died right after starting it would leave it."""
    rows = [RecipientRow(i + 1, f"lasciato{i}@pec.example.it", {"n": str(i)}) for i in range(n)]
    plan = plan_bulk(recipients=rows, subject="Avviso {{n}}", body="Gentile {{n}}", attachments=[], settings=settings)
    store = Store(settings.store.path)
    try:
        job, _ = JobStore(store).create(plan, account=account_of(settings), idempotency_key=None, attachment_paths=[])
    finally:
        store.close()
    return job.id


async def _sent(client: Client, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:
            job = (await client.call_tool("get_bulk_pec", {"job_id": job_id})).structured_content
            assert job is not None
            if job["status"] != "sending":
                return job
            await anyio.sleep(0.05)


async def test_the_job_runner_resumes_a_job_left_by_another_process_without_being_asked(
    settings: Settings, connect: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state, "RUNNER_GRACE", 0.0)
    job_id = _queue_a_job(settings, 3)
    async with connect(settings) as client:
        job = await _sent(client, job_id)
    assert job["counts"]["sent"] == 3


async def test_starting_a_job_starts_the_runner_without_waiting_for_its_grace(
    settings: Settings, connect: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state, "RUNNER_GRACE", 3600.0)
    recipients = [{"address": f"subito{i}@pec.example.it", "variables": {"n": str(i)}} for i in range(3)]
    async with connect(settings) as client:
        started = await client.call_tool("start_bulk_pec", {"recipients": recipients, "subject": "Avviso {{n}}",
                                                            "body": "Gentile {{n}}", "confirm": True})
        assert started.structured_content is not None, started.content
        job = await _sent(client, started.structured_content["job_id"])
    assert job["counts"]["sent"] == 3


async def test_provider_clients_are_made_on_first_use_and_closed_with_the_server(
    settings: Settings, simulator: Simulator,
) -> None:
    async with open_state(settings, transport=httpx.ASGITransport(app=simulator.app)) as app:
        assert app.clients == {}
        client = app.client("pecmassiva")
        assert app.client("pecmassiva") is client and set(app.clients) == {"pecmassiva"}
    assert client.is_closed and app.clients == {}
