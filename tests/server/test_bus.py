"""Resource updates cross replicas through PostgreSQL LISTEN/NOTIFY; on SQLite the bus stays in-process."""

from __future__ import annotations

import gc

import anyio
import pytest
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from pec_mcp.server.http.bus import SharedBus

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


async def test_a_bus_that_stops_listening_closes_its_connections_itself(pg_url: str) -> None:
    import psycopg

    bus = SharedBus(pg_url)
    gc.disable()  # a connection left open would otherwise be closed, late and with a warning, by the collector
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(bus.listen)
            with anyio.fail_after(20):
                await bus.listening.wait()
            await bus.publish(ResourceUpdated(uri="pec://jobs/job-1"))  # opens the sending connection too
            tasks.cancel_scope.cancel()  # how a server stops listening
        await bus.aclose()
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as watcher:
            with anyio.fail_after(20):  # a closed client's server process ends a moment later
                while True:
                    found = await (await watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid()")).fetchone()
                    if found is not None and found[0] == 0:
                        break
                    await anyio.sleep(0.05)
    finally:
        gc.enable()
