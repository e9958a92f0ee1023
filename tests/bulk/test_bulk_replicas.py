"""Three HTTP replicas on one PostgreSQL database: SIGKILLed one after another in the middle of a bulk job, the
survivors take the job over and every recipient is sent exactly once (or, for a request on its way when a
replica died, reported ``unknown``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest

from pec_mcp.server.errors import STORE_AWAY
from tests.bulk.test_bulk_processes import JOB, recipients, simulate, stats
from tests.proxy import CuttableProxy
from tests.replicas import Replica, client, migrate, replica_env, replicas, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STATE_KEY = "bulk-replicas-state-key-0123456789abcdef"


def settled(job: dict[str, Any], counted: dict[str, int], total: int) -> None:
    """Every recipient settled, and as the provider saw it: sent ones received, failed ones (a 429 retried too
    often on a loaded machine) not received, unknown ones either."""
    counts = job["counts"]
    assert counts["queued"] == counts["sending"] == 0, counts
    done = counts["sent"] + counts["delivered"]
    assert done + counts["unknown"] + counts["failed"] == total, (counts, job["first_errors"])
    assert done <= len(counted) <= total - counts["failed"], (counts, len(counted))


async def call(replica: Replica, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    async with client([replica], None) as c:
        result = await c.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def until_done(replica: Replica, job_id: str) -> dict[str, Any]:
    """The job once nothing is left to send, as ``replica`` reports it. In the second after a database outage a
    call may still be told that the database could not be used: it is asked again, as that error says to."""
    with anyio.fail_after(120):
        while True:
            async with client([replica], None) as c:
                result = await c.call_tool("get_bulk_pec", {"job_id": job_id})
            text = " ".join(getattr(part, "text", "") for part in result.content)
            assert not result.is_error or STORE_AWAY.split("(")[0] in text, text
            job = result.structured_content
            if job is not None and job["status"] != "sending":
                return job
            await anyio.sleep(0.2)  # real processes on a real clock: their pace, not a test shortcut


async def sent_total(origin: str) -> int:
    return sum((await stats(origin))["recipients"].values())


async def until_sent(origin: str, at_least: int) -> None:
    with anyio.fail_after(60):
        while await sent_total(origin) < at_least:  # noqa: ASYNC110 (the replicas are other processes)
            await anyio.sleep(0.05)


async def test_replicas_killed_mid_job_hand_it_over_and_every_recipient_is_sent_once(
    pg_url: str, tmp_path: Path
) -> None:
    with simulate(rate=20) as origin:
        env = replica_env(origin=origin, store=pg_url, config=write_config(tmp_path, ""), rate=20,
                          extra={"PEC_MCP_SENDING__CONFIRM": "never", "PEC_MCP_TOOLS__ENABLED": '["pec", "bulk"]',
                                 "PEC_MCP_HTTP__STATE_KEY": STATE_KEY})
        assert migrate(env).returncode == 0
        async with replicas(3, env, tmp_path) as (first, second, third):
            started = await call(first, "start_bulk_pec", {**JOB, "recipients": recipients(90, "rep"),
                                                           "idempotency_key": "solleciti-replicas"})
            await until_sent(origin, 20)
            first.kill()  # the replica the job was started on
            await until_sent(origin, 50)
            second.kill()
            job = await until_done(third, started["job_id"])
            again = await call(third, "start_bulk_pec", {**JOB, "recipients": recipients(90, "rep"),
                                                         "idempotency_key": "solleciti-replicas"})
        final = await stats(origin)
    counted = final["recipients"]
    assert again["status"] == "duplicate"
    assert max(counted.values()) == 1, "somebody got the notice twice"
    settled(job, counted, 90)
    assert job["counts"]["unknown"] <= 2 * 2  # at most the requests on their way (two workers) in each killed replica
    # The limit held across the replicas, through both kills: the provider refused nothing as too many.
    assert final["rate_limited"] == 0, final["rate_limited"]


async def test_a_database_lost_in_the_middle_of_a_job_pauses_it_and_nothing_is_sent_twice(
    pg_url: str, tmp_path: Path
) -> None:
    direct = urlsplit(pg_url)
    async with CuttableProxy(direct.port or 5432).running() as proxy:
        through_proxy = urlunsplit(direct._replace(netloc=f"{direct.username}:{direct.password}@127.0.0.1:"
                                                          f"{proxy.port}"))
        with simulate(rate=10) as origin:
            env = replica_env(origin=origin, store=through_proxy, config=write_config(tmp_path, ""), rate=10,
                              extra={"PEC_MCP_SENDING__CONFIRM": "never",
                                     "PEC_MCP_TOOLS__ENABLED": '["pec", "bulk"]'})
            # Directly: a blocking call here would stall the proxy, which runs on this event loop.
            assert migrate({**env, "PEC_MCP_STORE__URL": pg_url}).returncode == 0
            async with replicas(1, env, tmp_path) as [replica]:
                started = await call(replica, "start_bulk_pec", {**JOB, "recipients": recipients(40, "lost"),
                                                                 "idempotency_key": "lost-db"})
                await until_sent(origin, 10)
                proxy.cut()
                await anyio.sleep(3)  # the outage: whatever the runner does meanwhile must not send twice
                during = await sent_total(origin)
                proxy.restore()
                job = await until_done(replica, started["job_id"])
            final = await stats(origin)
    counted = final["recipients"]
    assert max(counted.values()) == 1, "somebody got the notice twice"
    assert during < 40  # the outage really came in the middle of the job
    settled(job, counted, 40)
    assert set(job["unknown_recipients"]) <= set(counted)  # unknown: sent, but the outcome could not be recorded
