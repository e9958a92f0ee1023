"""A job's refused recipients: the runner waits out 429s itself, and retry_bulk_pec sends the rest again once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.jobs.runner import RATE_LIMIT_ATTEMPTS
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.faults import FaultPlan, Reply, respond, rule
from tests.bulk.conftest import Bench, personalised
from tests.bulk.test_bulk_tools import call
from tests.conftest import Asked
from tests.faults import LostAnswerTransport

pytestmark = pytest.mark.anyio

JOB = {"subject": "Avviso {{n}}", "body": "Gentile cliente {{n}}"}


def too_many(retry_after: float = 3, *, times: int | None = None) -> FaultPlan:
    """Sends refused 429 with ``Retry-After`` (the next ``times`` of them, or all)."""
    return FaultPlan([rule("429", "pecmassiva", "/send", method="POST", times=times, retry_after=retry_after)])


def refused_by_the_provider() -> FaultPlan:
    """Sends refused with the provider's own 500 envelope."""
    mysql_error = Reply.json({"success": False, "message": "MySQL Error"}, 500)
    return FaultPlan([respond(mysql_error, "pecmassiva", method="POST")])


# -- the runner on a virtual clock ------------------------------------------------------------------------------


async def test_the_runner_waits_out_429s_as_retry_after_asks_before_calling_anything_failed(bench: Bench) -> None:
    bench.simulator.faults = too_many(3, times=3)
    job_id = bench.start(personalised(1))
    started = bench.clock.now()
    await bench.send_all()
    assert bench.states(job_id) == {"cliente0@pec.example.it": "sent"}
    assert bench.sent_to() == {"cliente0@pec.example.it": 1}
    assert bench.clock.now() - started >= 3 * 3  # three waits of at least Retry-After


async def test_a_request_refused_429_again_and_again_fails_only_after_minutes_and_says_how_to_retry(
        bench: Bench) -> None:
    bench.simulator.faults = too_many(1)
    job_id = bench.start(personalised(1))
    started = bench.clock.now()
    await bench.send_all()
    [recipient] = bench.jobs.recipients(job_id)
    assert recipient.state == "failed" and bench.sent_to() == {}
    assert f"{RATE_LIMIT_ATTEMPTS} times" in (recipient.reason or "") and "retry_bulk_pec" in (recipient.reason or "")
    assert bench.clock.now() - started >= 5 * 60


# -- retry_bulk_pec through the MCP client -----------------------------------------------------------------------


async def settled(client: Client, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(60):  # a deadline for a loaded machine, not a measure
        while True:
            job = await call(client, "get_bulk_pec", {"job_id": job_id})
            if job["status"] != "sending":
                return job
            await anyio.sleep(0.05)  # the server's runner works on its own; this only looks


def recipients(n: int) -> list[dict[str, Any]]:
    return [{"address": f"cliente{i}@pec.example.it", "variables": {"n": str(i)}} for i in range(n)]


async def test_refused_recipients_are_sent_again_once_after_the_users_yes(
        settings: Settings, connect: Callable[..., Any], simulator: Simulator) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        simulator.faults = refused_by_the_provider()
        job = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(3), "idempotency_key": "k1"})
        failed = await settled(client, job["job_id"])
        simulator.faults = FaultPlan()
        preview = await call(client, "retry_bulk_pec", {"job_id": job["job_id"], "dry_run": True})
        asked.questions.clear()
        retried = await call(client, "retry_bulk_pec", {"job_id": job["job_id"], "which": "failed"})
        done = await settled(client, job["job_id"])
        again = await call(client, "retry_bulk_pec", {"job_id": job["job_id"]})
        same_key = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(3), "idempotency_key": "k1"})
    assert failed["counts"]["failed"] == 3 and simulator.stats.accepted.get("pecmassiva_send", 0) == 3
    assert simulator.stats.recipients == {f"cliente{i}@pec.example.it": 1 for i in range(3)}
    assert preview["status"] == "preview" and preview["total_recipients"] == 3 and preview["estimated_cost_eur"] == 0.15
    assert retried["status"] == "queued" and len(asked.questions) == 1 and "€0.15" in asked.questions[0]
    assert done["counts"]["sent"] + done["counts"]["delivered"] == 3
    assert again["status"] == "nothing_to_retry"
    assert same_key["status"] == "duplicate"


async def test_unknown_recipients_are_sent_again_only_when_the_user_checked_they_did_not_arrive(
        settings: Settings, simulator: Simulator) -> None:
    from pec_mcp.server import build_server

    losing = LostAnswerTransport(httpx.ASGITransport(app=simulator.app))
    server = build_server(settings, transport=losing)
    async with Client(server, elicitation_callback=Asked()) as client:  # type: ignore[arg-type]
        job = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(1)})
        unknown = await settled(client, job["job_id"])
        losing.path_end = "/never"  # answers come back from now on
        not_failed = await call(client, "retry_bulk_pec", {"job_id": job["job_id"], "which": "failed"})
        checked = await call(client, "retry_bulk_pec", {"job_id": job["job_id"], "which": "unknown_checked"})
        done = await settled(client, job["job_id"])
        twice = await call(client, "retry_bulk_pec", {"job_id": job["job_id"], "which": "unknown_checked"})
    assert unknown["counts"]["unknown"] == 1
    assert not_failed["status"] == "nothing_to_retry"
    assert any("unknown_checked" in r["reason"] for r in not_failed["left_alone"])
    assert checked["status"] == "queued" and checked["recipients"] == ["cliente0@pec.example.it"]
    assert done["counts"]["sent"] + done["counts"]["delivered"] == 1
    assert twice["status"] == "nothing_to_retry"
    # Two requests reached the provider: the lost one, and the one the user asked for after checking.
    assert simulator.stats.recipients == {"cliente0@pec.example.it": 2}


async def test_a_retry_of_an_unknown_job_is_a_clear_error(settings: Settings, connect: Callable[..., Any]) -> None:
    async with connect(settings) as client:
        result = await client.call_tool("retry_bulk_pec", {"job_id": "job-nope"})
    assert result.is_error and "list_bulk_pec" in result.content[0].text  # type: ignore[union-attr]
