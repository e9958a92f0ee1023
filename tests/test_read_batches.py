"""Awaited reads on PostgreSQL: the reads that tasks ask for in the same turn of the event loop share one round trip,
and each still gets its own rows or its own error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from pec_mcp.store import Read, Store
from pec_mcp.store.postgres import PostgresBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    handle = Store(pg_url)
    for n, subject in enumerate(["Diffida", "Sollecito", "Diffida e messa in mora"]):
        row, _ = handle.begin_send(provider="pecmassiva", environment="offline", idempotency_key=f"k{n}",
                                   sender=None, recipients=[f"ufficio{n}@pec.it"], subject=subject,
                                   content={"body": "Testo"})
        handle.mark_sent(row.id, f"m{n}")
    handle.update_delivery(1, "delivered", "delivered to 1 of 1")
    yield handle
    handle.close()


def connections_asked(store: Store) -> int:
    backend = store.backend
    assert isinstance(backend, PostgresBackend)
    return backend.pool.pop_stats().get("requests_num", 0)


async def test_reads_asked_in_the_same_turn_take_one_connection_and_each_gets_its_own_rows(store: Store) -> None:
    reads: list[Read[object]] = [
        store.sendings_found(query="diffida"), store.sendings_found(limit=1), store.sendings_found(recipient="nobody"),
        store.sending_with_receipts("m0", environment="offline", provider="pecmassiva", statuses=("delivered",)),
        store.sending_with_receipts("m9", environment="offline", provider="pecmassiva", statuses=("delivered",)),
    ]
    connections_asked(store)
    together = await asyncio.gather(*(store.fetch(read) for read in reads))
    assert connections_asked(store) == 1  # one connection, one pipeline: one round trip for the five
    assert together == [store.run(read) for read in reads]
    assert [s.subject for s in together[0]] == ["Diffida e messa in mora", "Diffida"]  # type: ignore[attr-defined]
    assert together[4] == (None, None)


async def test_reads_of_different_turns_each_go_on_their_own(store: Store) -> None:
    connections_asked(store)
    first = await store.fetch(store.sendings_found(limit=1))
    second = await store.fetch(store.sendings_found(limit=2))
    assert connections_asked(store) == 2
    assert [s.id for s in first] == [s.id for s in second][:1]


async def test_a_read_that_fails_fails_alone(store: Store) -> None:
    broken: Read[object] = Read("SELECT * FROM no_such_table", (), list)
    results = await asyncio.gather(store.fetch(store.sendings_found(limit=1)), store.fetch(broken),
                                   store.fetch(store.sendings_found(query="sollecito")), return_exceptions=True)
    assert isinstance(results[1], psycopg.errors.UndefinedTable)
    assert [s.subject for s in results[0]] == ["Diffida e messa in mora"]  # type: ignore[union-attr]
    assert [s.subject for s in results[2]] == ["Sollecito"]  # type: ignore[union-attr]


async def test_the_read_of_a_task_cancelled_before_it_left_is_not_run(store: Store, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("CREATE SEQUENCE probe")
    cancelled = asyncio.ensure_future(store.fetch(Read("SELECT nextval('probe')", (), list)))
    kept = asyncio.ensure_future(store.fetch(store.sendings_found(limit=1)))
    await asyncio.sleep(0)  # both have asked; the reads leave at the end of the next turn
    cancelled.cancel()
    assert len(await kept) == 1
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    with psycopg.connect(pg_url, autocommit=True) as db:
        assert db.execute("SELECT is_called FROM probe").fetchone() == (False,)  # nextval never ran


async def test_a_connection_lost_fails_every_read_of_the_turn_and_the_next_read_works(store: Store,
                                                                                     pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as db:  # the server ends the store's connections
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    results = await asyncio.gather(store.fetch(store.sendings_found(limit=1)),
                                   store.fetch(store.sendings_found(limit=2)), return_exceptions=True)
    assert all(isinstance(r, psycopg.OperationalError) for r in results), results
    assert len(await store.fetch(store.sendings_found(limit=2))) == 2  # the pool replaced the lost connection
