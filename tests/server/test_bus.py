"""Resource updates cross replicas through PostgreSQL LISTEN/NOTIFY; on SQLite the bus stays in-process."""

from __future__ import annotations

import anyio
import pytest
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from pec_mcp.server.bus import SharedBus

pytestmark = pytest.mark.anyio


async def test_an_update_published_on_one_replica_reaches_the_listeners_of_the_others_once(pg_url: str) -> None:
    one, two = SharedBus(pg_url), SharedBus(pg_url)
    heard_one: list[ServerEvent] = []
    heard_two: list[ServerEvent] = []
    one.subscribe(heard_one.append)
    two.subscribe(heard_two.append)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(one.listen)
        tasks.start_soon(two.listen)
        with anyio.fail_after(20):
            await one.listening.wait()
            await two.listening.wait()
            await one.publish(ResourceUpdated(uri="pec://jobs/job-1"))
            while not heard_two:  # noqa: ASYNC110 (the notification comes through the database)
                await anyio.sleep(0.02)
            await two.publish(ResourceUpdated(uri="pec://jobs/job-2"))
            while len(heard_one) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        tasks.cancel_scope.cancel()
    await one.aclose()
    await two.aclose()
    assert heard_one == [ResourceUpdated(uri="pec://jobs/job-1"), ResourceUpdated(uri="pec://jobs/job-2")]
    assert heard_two == [ResourceUpdated(uri="pec://jobs/job-1"), ResourceUpdated(uri="pec://jobs/job-2")]


async def test_without_a_database_the_bus_is_local() -> None:
    bus = SharedBus(None)
    heard: list[ServerEvent] = []
    bus.subscribe(heard.append)
    await bus.listen()  # returns at once: nothing to listen to
    await bus.publish(ResourceUpdated(uri="pec://jobs/job-1"))
    assert heard == [ResourceUpdated(uri="pec://jobs/job-1")]
