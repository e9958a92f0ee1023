"""The store's database away in the middle of a session: a tool call says so in words (not an internal error), a
send made meanwhile leaves nothing behind, the server (and its job runner, which starts meanwhile) outlives the
outage, and once the database is back the ledger answers again."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import anyio
import psycopg
import pytest
from mcp.server.mcpserver.exceptions import ToolError
from psycopg_pool import PoolTimeout

from pec_mcp.config import Settings
from pec_mcp.redaction import Redactor
from pec_mcp.server.errors import STORE_AWAY, UNEXPECTED, tool_errors
from pec_mcp.simulator import Simulator
from pec_mcp.store import Store
from pec_mcp.store.postgres import DatabaseAway, PostgresBackend
from tests.postgres import PASSWORD
from tests.reliability.conftest import assert_explained, text_of

pytestmark = pytest.mark.anyio

PEC = {"recipients": ["mario.rossi@pec.it"], "subject": "Diffida", "body": "Testo"}
AWAY = STORE_AWAY.split("(")[0]  # the part that does not depend on the reason


def database_refuses(url: str, refused: bool) -> None:
    """The server refuses new connections to the database (or takes them again) and ends the ones it has."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(not refused).lower()}')
        if refused:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


async def once_answering(client: Any) -> Any:
    """find_pec_sendings, asked again as a user would until the database answers (the pool reconnects)."""
    with anyio.fail_after(30):
        while (found := await client.call_tool("find_pec_sendings", {})).is_error:
            assert AWAY in text_of(found), text_of(found)
            await anyio.sleep(0.25)
    return found


def accepted(simulator: Simulator) -> int:
    return sum(simulator.stats.as_dict()["recipients"].values())


async def test_a_database_that_stops_answering_is_named_and_a_send_meanwhile_sends_nothing(
    pg_url: str, make_settings: Callable[..., Settings], connect: Callable[..., Any], simulator: Simulator
) -> None:
    Store(pg_url).close()  # migrated, as `pec-mcp migrate` leaves it
    async with connect(make_settings(store={"url": pg_url})) as client:
        assert not (await client.call_tool("send_pec", PEC)).is_error
        database_refuses(pg_url, True)
        try:
            during = [await client.call_tool("send_pec", {**PEC, "subject": "Sollecito"}),
                      await client.call_tool("find_pec_sendings", {})]
        finally:
            database_refuses(pg_url, False)
        after = await once_answering(client)
    for result in during:
        text = text_of(result)
        assert result.is_error and AWAY in text and "do not send it again" in text, text
        assert_explained(result)
        assert PASSWORD not in text
    assert accepted(simulator) == 1  # the second send never left: it could not be recorded first
    assert [s["subject"] for s in (after.structured_content or {})["sendings"]] == ["Diffida"]


def test_once_the_database_is_away_calls_fail_at_once_and_one_a_second_asks_again(pg_url: str) -> None:
    store = Store(pg_url)
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    outage, now = backend.outage, [1000.0]
    outage.clock = lambda: now[0]
    read = store.sendings_found(limit=1)
    try:
        database_refuses(pg_url, True)
        for _ in range(3):  # the pooled connection is found broken first; then no connection comes
            with pytest.raises(psycopg.OperationalError):
                store.run(read)
            if outage.reason is not None:
                break
        assert outage.reason is not None and "couldn't get a connection after 5.00 sec" in outage.reason
        now[0] += 0.5
        with pytest.raises(DatabaseAway, match=r"no answer for 0 s: couldn't get a connection"):
            store.run(read)  # at once: the pool is not asked
        now[0] += 1.0
        with pytest.raises(PoolTimeout, match=r"after 0\.50 sec"):
            store.run(read)  # a second later the pool is asked again, for a short while
        database_refuses(pg_url, False)
        for _ in range(40):  # the pool reconnects in the background; each retry also asks for a connection
            now[0] += 1.0
            with contextlib.suppress(psycopg.OperationalError):
                store.run(read)
                break
            time.sleep(0.1)
        assert outage.reason is None and store.run(read) == []
    finally:
        database_refuses(pg_url, False)
        store.close()


@pytest.mark.parametrize("error", [sqlite3.OperationalError("database is locked"),
                                   sqlite3.OperationalError("database or disk is full"),
                                   psycopg.OperationalError("connection to server at \"db\" failed: refused")])
def test_a_store_that_cannot_be_used_is_named_with_its_reason(error: Exception) -> None:
    with pytest.raises(ToolError) as raised, tool_errors(Redactor()):
        raise error
    assert str(raised.value) == STORE_AWAY.format(reason=str(error))


def test_a_fault_in_a_statement_is_not_called_the_database_away() -> None:
    with pytest.raises(ToolError) as raised, tool_errors(Redactor()):
        raise sqlite3.OperationalError("no such table: sendings")
    assert str(raised.value) == UNEXPECTED.format(kind="OperationalError")
