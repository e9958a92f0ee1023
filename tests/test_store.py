"""The send ledger: states, idempotency, recovery after a crash, search, schema, and two handles on one store.

Every test that does not name SQLite runs on both backends (``store_location``: a SQLite file, a PostgreSQL
database).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from pec_mcp.errors import ConfigError
from pec_mcp.store import HELD_POLL, MIGRATIONS, Slot, Store

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC).timestamp()


class Tick:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tick() -> Tick:
    return Tick()


def wait_of(slot: Slot) -> float:
    """How long a sender that did not get the turn is told to wait before asking again."""
    assert slot.moment is None, "the turn was given"
    return slot.retry_in


@pytest.fixture
def store(store_location: str, tick: Tick) -> Iterator[Store]:
    handle = Store(store_location, clock=tick)
    yield handle
    handle.close()


def _begin(store: Store, key: str | None = "k1", **kw: Any):  # type: ignore[no-untyped-def]
    args: dict[str, Any] = dict(provider="pecmassiva", environment="offline", idempotency_key=key,
                                sender="me@pecmassiva.com", recipients=["Mario.Rossi@pec.it"], subject="Diffida")
    return store.begin_send(**{**args, **kw})


def test_a_new_send_is_written_queued_before_anything_happens(store: Store) -> None:
    row, created = _begin(store, attachments=[{"name": "a.pdf", "size": 3}], size_bytes=10)
    assert created and row.state == "queued" and row.message_id is None
    assert row.recipients == ["Mario.Rossi@pec.it"] and row.attachments == [{"name": "a.pdf", "size": 3}]
    assert row.created == "2026-03-10T09:00:00+00:00"


def test_a_send_moves_queued_sending_sent(store: Store) -> None:
    row, _ = _begin(store)
    store.mark_dispatching(row.id)
    assert store.sending_by_id(row.id).state == "sending"  # type: ignore[union-attr]
    sent = store.mark_sent(row.id, "2026031010000001")
    assert (sent.state, sent.message_id) == ("sent", "2026031010000001")
    assert store.sending_by_message_id("2026031010000001", provider="pecmassiva") == sent


def test_a_finished_send_does_not_change_state_again(store: Store) -> None:
    row, _ = _begin(store)
    store.mark_sent(row.id, "2026031010000001")
    assert store.mark_failed(row.id, "late error").state == "sent"
    assert store.mark_unknown(row.id, "late").state == "sent"
    store.mark_dispatching(row.id)
    assert store.sending_by_id(row.id).state == "sent"  # type: ignore[union-attr]


def test_a_lost_answer_is_recorded_as_unknown_with_its_reason(store: Store) -> None:
    row, _ = _begin(store)
    store.mark_dispatching(row.id)
    unknown = store.mark_unknown(row.id, "ReadTimeout")
    assert (unknown.state, unknown.error) == ("unknown", "ReadTimeout")


@pytest.mark.parametrize("first_end", ["sent", "unknown", "sending", "queued"])
def test_a_reused_key_gives_back_the_first_row_unless_that_attempt_failed(store: Store, first_end: str) -> None:
    row, _ = _begin(store)
    if first_end in ("sending", "unknown", "sent"):
        store.mark_dispatching(row.id)
    if first_end == "sent":
        store.mark_sent(row.id, "2026031010000001")
    if first_end == "unknown":
        store.mark_unknown(row.id, "lost")
    again, created = _begin(store, recipients=["other@pec.it"])
    assert not created and again.id == row.id and again.state == first_end
    assert store.key_used("offline", "pecmassiva", "k1")


def test_a_failed_first_attempt_is_retried_on_the_same_row(store: Store, tick: Tick) -> None:
    row, _ = _begin(store)
    store.mark_failed(row.id, "401 refused")
    assert not store.key_used("offline", "pecmassiva", "k1")
    tick.now += 60
    retry, created = _begin(store)
    assert created and retry.id == row.id
    assert (retry.state, retry.error, retry.updated_at) == ("queued", None, T0 + 60)
    assert len(store.find_sendings()) == 1


def test_keys_are_per_provider_and_sends_without_a_key_are_always_new(store: Store) -> None:
    first, _ = _begin(store)
    other, created = _begin(store, provider="mensatek")
    assert created and other.id != first.id
    a, _ = _begin(store, key=None)
    b, created = _begin(store, key=None)
    assert created and a.id != b.id


def test_after_a_crash_requests_on_their_way_become_unknown_and_queued_ones_failed(store: Store) -> None:
    on_wire, _ = _begin(store, key="wire")
    store.mark_dispatching(on_wire.id)
    queued, _ = _begin(store, key="queued")
    done, _ = _begin(store, key="done")
    store.mark_sent(done.id, "2026031010000001")
    job_row, _ = _begin(store, key="job", job_id="job-1")
    store.mark_dispatching(job_row.id)
    assert store.recover_interrupted() == 2
    assert store.sending_by_id(on_wire.id).state == "unknown"  # type: ignore[union-attr]
    assert "may or may not" in (store.sending_by_id(on_wire.id).error or "")  # type: ignore[union-attr]
    assert store.sending_by_id(queued.id).state == "failed"  # type: ignore[union-attr]
    assert store.sending_by_id(done.id).state == "sent"  # type: ignore[union-attr]
    assert store.sending_by_id(job_row.id).state == "sending"  # type: ignore[union-attr] # the job runner's business
    assert store.key_used("offline", "pecmassiva", "wire") and not store.key_used("offline", "pecmassiva", "queued")


def test_recovery_can_be_limited_to_one_provider(store: Store) -> None:
    row, _ = _begin(store, provider="mensatek")
    assert store.recover_interrupted(provider="pecmassiva") == 0
    assert store.sending_by_id(row.id).state == "queued"  # type: ignore[union-attr]


def test_sendings_are_found_by_recipient_part_subject_words_and_date(store: Store, tick: Tick) -> None:
    _begin(store, key="a", recipients=["mario.rossi@pec.it", "anna@legalmail.it"], subject="Diffida ad adempiere")
    tick.now += 2 * 86400
    _begin(store, key="b", recipients=["ufficio@pec.comune.it"], subject="Richiesta accesso agli atti")
    _begin(store, key="c", recipients=["x_y@pec.it"], subject="100% pagato")

    def subjects(**kw: Any) -> list[str]:
        read = store.sendings_found(**kw)
        found = store.run(read)
        assert anyio.run(store.fetch, read) == found  # the same read, whether it blocks or is awaited
        return [s.subject for s in found]

    assert subjects(recipient="ROSSI") == ["Diffida ad adempiere"]
    assert subjects(recipient="legalmail.it") == ["Diffida ad adempiere"]
    assert subjects(recipient="@pec.it") == ["100% pagato", "Diffida ad adempiere"]
    assert subjects(query="atti richiesta") == ["Richiesta accesso agli atti"]
    assert subjects(query="diffida atti") == []
    assert subjects(since=date(2026, 3, 11)) == ["100% pagato", "Richiesta accesso agli atti"]
    assert subjects(recipient="x_y") == ["100% pagato"] and subjects(recipient="x%y") == []  # wildcards are literal
    assert subjects(query="100%") == ["100% pagato"]
    assert subjects(limit=1) == ["100% pagato"]
    assert subjects(provider="mensatek") == []


def test_a_search_limited_to_some_accounts_counts_only_their_rows_toward_the_limit(store: Store) -> None:
    _begin(store, key="a", account="studio", subject="Dello studio")
    for n in range(3):  # newer, of other accounts: a filter after the limit would leave nothing
        _begin(store, key=f"p{n}", subject=f"PEC Massiva {n}")  # no account: PEC Massiva's own
        _begin(store, key=f"u{n}", account="ufficio", subject=f"Dell'ufficio {n}")

    def subjects(**kw: Any) -> list[str]:
        return [s.subject for s in store.find_sendings(limit=2, **kw)]

    assert subjects(accounts={"studio"}) == ["Dello studio"]
    assert subjects(accounts={"pecmassiva"}) == ["PEC Massiva 2", "PEC Massiva 1"]
    assert subjects(accounts={"studio", "ufficio"}) == ["Dell'ufficio 2", "Dell'ufficio 1"]
    assert subjects(accounts=set()) == []
    assert subjects(accounts=None) == ["Dell'ufficio 2", "PEC Massiva 2"]


def test_the_schema_is_at_the_latest_version_and_a_newer_one_is_refused(store_location: str) -> None:
    store = Store(store_location)
    assert store.schema_version() == len(MIGRATIONS)
    store.close()
    reopened = Store(store_location)  # migrating an up-to-date store is a no-op
    assert reopened.schema_version() == len(MIGRATIONS)
    assert reopened.migrate() == (len(MIGRATIONS), len(MIGRATIONS))
    with reopened.backend.migration_lock() as db:
        reopened.backend.set_schema_version(db, len(MIGRATIONS) + 1)
        db.execute("UPDATE pec_mcp_meta SET value = '9.9.0' WHERE key = 'written_by'")
    reopened.close()
    with pytest.raises(ConfigError, match=r"newer pec-mcp.*install pec-mcp 9\.9\.0 or newer"):
        Store(store_location)
    with pytest.raises(ConfigError, match="newer pec-mcp"):
        Store(store_location, upgrade=False)


def test_an_older_schema_is_refused_without_upgrade_and_names_migrate(store_location: str) -> None:
    with pytest.raises(ConfigError, match=r"schema version 0.*pec-mcp migrate"):
        Store(store_location, upgrade=False)
    Store(store_location).close()
    Store(store_location, upgrade=False).close()  # up to date: accepted


def test_a_migration_interrupted_half_way_leaves_nothing_and_a_rerun_completes_it(
    store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pec_mcp.store as module

    # The last step breaks after its first statements ran: the whole migration must roll back.
    broken = [*MIGRATIONS[:-1], MIGRATIONS[-1] + ";\nCREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL"]
    monkeypatch.setattr(module, "MIGRATIONS", broken)
    with pytest.raises(Exception, match=r"(?i)syntax"):
        Store(store_location)
    monkeypatch.setattr(module, "MIGRATIONS", MIGRATIONS)
    store = Store(store_location)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        row, created = _begin(store)
        assert created and row.state == "queued"
        with store.transaction() as db:
            tables = {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'" if store.kind == "sqlite" else
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}
        assert "half_done" not in tables and "sendings" in tables
    finally:
        store.close()


def test_two_store_objects_on_one_store_share_the_ledger_the_keys_and_the_send_pacer(
    store_location: str, tick: Tick
) -> None:
    one, two = Store(store_location, clock=tick), Store(store_location, clock=tick)
    try:
        row, _ = _begin(one)
        again, created = _begin(two)
        assert not created and again.id == row.id
        one.mark_sent(row.id, "2026031010000001")
        assert two.sending_by_message_id("2026031010000001") is not None
        # The turn is shared: held by one until its request left, and the other is told when the next can come.
        assert one.take_slot("send", interval=1.0).moment == T0
        assert wait_of(two.take_slot("send", interval=1.0, early=0.1)) == pytest.approx(0.9)
        one.slot_used("send", 1.0)
        assert wait_of(two.take_slot("send", interval=1.0)) == 1.0
        tick.now += 0.4
        assert wait_of(two.take_slot("send", interval=1.0)) == pytest.approx(0.6)
        assert two.take_slot("send", interval=1.0, early=0.6).moment == T0 + 1.0  # early: prepare meanwhile
    finally:
        one.close()
        two.close()


def test_the_interval_runs_from_the_moment_a_request_left_not_from_its_turn(store: Store, tick: Tick) -> None:
    assert store.take_slot("send", interval=1.0).moment == T0
    tick.now += 0.7  # the request was held up after its turn
    store.slot_used("send", 1.0)
    assert wait_of(store.take_slot("send", interval=1.0)) == pytest.approx(1.0)
    store.slot_used("send", 1.0, at=T0 + 0.5)  # an earlier stamp never brings the next moment forward
    assert wait_of(store.take_slot("send", interval=1.0)) == pytest.approx(1.0)


def test_a_turn_taken_early_holds_its_moment_and_the_others_sleep_until_the_next_one(store: Store, tick: Tick) -> None:
    store.slot_used("send", 1.0)
    tick.now += 0.8
    assert store.take_slot("send", interval=1.0, early=0.3).moment == T0 + 1.0  # 0.2 s ahead of its moment
    # Another sender learns when to look again: the next moment (an interval after the holder's), less its own lead.
    assert wait_of(store.take_slot("send", interval=1.0, early=0.3)) == pytest.approx(0.9)
    tick.now += 1.5  # the holder is late: the others look again shortly, not an interval later
    assert wait_of(store.take_slot("send", interval=1.0, early=0.3)) == HELD_POLL


def test_a_turn_given_back_or_held_by_a_taker_that_died_frees_up(store: Store, tick: Tick) -> None:
    assert store.take_slot("send", interval=1.0).moment == T0
    store.free_slot("send")
    assert store.take_slot("send", interval=1.0).moment == T0  # given back: free at once
    tick.now += 30.0  # never used nor given back (its process died): the hold runs out
    assert store.take_slot("send", interval=1.0).moment == T0 + 30.0


def test_a_pause_asked_by_the_provider_holds_every_sender(store: Store, tick: Tick) -> None:
    store.pause_slot("send", 20.0)
    assert wait_of(store.take_slot("send", interval=1.0)) == pytest.approx(20.0)
    tick.now += 20.0
    assert store.take_slot("send", interval=1.0).moment == T0 + 20.0
    store.slot_used("send", 1.0)
    store.pause_slot("send", 0.5)  # a shorter pause never brings the next slot forward
    assert wait_of(store.take_slot("send", interval=1.0)) == pytest.approx(1.0)


def test_the_audit_trail_keeps_the_newest_first(store: Store) -> None:
    store.record_audit(action="send_pec", actor="mcp", environment="offline", summary="a", outcome="sent", ref="1")
    store.record_audit(action="delete_pec_message", actor="mcp", environment="offline", summary="b", outcome="ok")
    assert [a.summary for a in store.audit_log()] == ["b", "a"]


def test_an_unusable_store_path_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"store\.path"):
        Store(blocker / "sub" / "s.sqlite3")


def test_a_process_killed_while_holding_the_write_lock_does_not_block_the_send_slot(store_location: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    Store(store_location).close()  # the schema exists before the holder starts
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pec_mcp.store import Store\n"
         "store = Store(sys.argv[1])\nwith store.transaction(immediate=True):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n", store_location],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        store = Store(store_location)
        try:
            # Free at once: the lock went with the process.
            assert store.take_slot("pecmassiva-send", interval=1.0).moment is not None
        finally:
            store.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_schema_statements_written_for_sqlite_become_postgresql() -> None:
    from pec_mcp.store.postgres import ddl, translate

    assert ddl("CREATE TABLE t (id INTEGER PRIMARY KEY, at REAL NOT NULL, raw BLOB)") == (
        "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION NOT NULL, "
        "raw BYTEA)")
    assert ddl("CREATE TABLE j (id TEXT PRIMARY KEY, n INTEGER)") == (
        "CREATE TABLE j ( rowid BIGINT GENERATED BY DEFAULT AS IDENTITY,id TEXT PRIMARY KEY, n BIGINT)")
    assert ddl("INSERT OR IGNORE INTO a (x) SELECT x FROM b") == (
        "INSERT INTO a (x) SELECT x FROM b ON CONFLICT DO NOTHING")
    assert ddl("DROP TABLE sendings") == "DROP TABLE sendings CASCADE"
    assert translate("SELECT '?', x FROM t WHERE a = ? AND b LIKE '%' AND instr(s, ?) > 0") == (
        "SELECT '?', x FROM t WHERE a = %s AND b LIKE '%%' AND strpos(s, %s) > 0")


def test_rows_copied_by_a_migration_keep_their_ids_and_new_rows_continue_after_them(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        with store.backend.migration_lock() as db:
            db.execute("INSERT INTO audit (id, at, action, actor, environment, summary, outcome) "
                       "VALUES (41, 0, 'a', 'b', 'offline', 's', 'o')")
            store.backend.after_migration(db)
        store.record_audit(action="send_pec", actor="anna", environment="offline", summary="x", outcome="sent")
        assert [a.id for a in store.audit_log()] == [42, 41]
    finally:
        store.close()


def test_receipts_are_kept_once_per_environment_and_account_and_marked_when_deleted(store: Store, tick: Tick) -> None:
    from pec_mcp.store import Receipt

    accepted = Receipt(kind="accepted", date="d1", provider_text="ACCETTAZIONE: Diffida 1", source="pecmassiva")
    delivered = Receipt(kind="delivered", date="d2", provider_text="CONSEGNA: Diffida 1", source="pecmassiva",
                        recipient="mario.rossi@pec.it", raw=b"signed bytes")
    where = dict(environment="offline", account="pecmassiva", message_id="1")
    assert store.record_receipts(**where, sending_id=None, receipts=[accepted, delivered]) == 2
    tick.now += 10
    assert store.record_receipts(**where, sending_id=None, receipts=[accepted]) == 0  # seen again: kept once
    assert store.receipts_of(**where)[0].last_seen_at == T0  # seen a moment ago: a poll writes nothing
    tick.now += 60
    assert store.record_receipts(**where, sending_id=None, receipts=[accepted]) == 0
    assert store.record_receipts(**where, sending_id=None, receipts=[delivered]) == 0
    assert store.record_receipts(**where, sending_id=None, receipts=[]) == 0
    assert store.receipts_of(environment="production", account="pecmassiva", message_id="1") == []
    assert store.mark_receipts_deleted(**where, dedup_keys=[delivered.dedup_key]) == 1
    kept = store.receipts_of(**where)
    assert [(r.kind, r.last_seen_at, r.deleted_at) for r in kept] == [("accepted", T0 + 70, None),
                                                                      ("delivered", T0 + 70, T0 + 70)]
    assert kept[1].raw == b"signed bytes" and kept[1].signature is None


def test_a_sending_and_its_receipts_read_together_are_what_the_two_reads_give(store: Store, tick: Tick) -> None:
    from pec_mcp.store import Receipt

    def sent(message_id: str, *, environment: str = "offline", provider: str = "pecmassiva", key: str) -> int:
        row, _ = store.begin_send(provider=provider, environment=environment, idempotency_key=key, sender=None,
                                  recipients=["mario.rossi@pec.it"], subject="Diffida", content={"body": "Testo"})
        store.mark_sent(row.id, message_id)
        return row.id

    first = sent("m1", key="a")
    tick.now += 1
    newest = sent("m1", key="b")  # the same message_id again: the newest row answers, as sending_by_message_id does
    sent("m1", environment="production", key="c")
    where = dict(environment="offline", account="pecmassiva", message_id="m1")
    store.record_receipts(**where, sending_id=first, receipts=[
        Receipt(kind="accepted", date="d1", provider_text="ACCETTAZIONE: Diffida", source="pecmassiva"),
        Receipt(kind="delivered", date="d2", provider_text="CONSEGNA: Diffida", source="pecmassiva",
                recipient="mario.rossi@pec.it", raw=b"signed bytes")])
    store.record_receipts(environment="offline", account="altro", message_id="m1", sending_id=None, receipts=[
        Receipt(kind="accepted", date="d3", provider_text="ACCETTAZIONE: altro", source="imap")])
    store.mark_receipts_deleted(**where, dedup_keys=None)
    settled = ("delivered", "not_accepted")

    def together(message_id: str = "m1", **kwargs: object) -> tuple[object, object]:
        read = store.sending_with_receipts(message_id, **{"environment": "offline", "provider": "pecmassiva",
                                                          "statuses": settled, **kwargs})  # type: ignore[arg-type]
        now, awaited = store.run(read), anyio.run(store.fetch, read)
        assert now == awaited  # the same read, whether it blocks or is awaited
        return now

    assert together() == (store.sending_by_message_id("m1", environment="offline"), None)  # not settled: not read
    store.update_delivery(newest, "delivered", "delivered to 1 of 1")
    row, receipts = together()
    assert row == store.sending_by_message_id("m1", environment="offline") and row is not None and row.id == newest
    assert receipts == store.receipts_of(**where) and len(receipts) == 2  # type: ignore[arg-type]
    assert receipts[1].raw == b"signed bytes" and receipts[1].deleted_at == T0 + 1  # type: ignore[index]
    assert together(provider="imap") == (row, None)
    assert together(statuses=()) == (row, None)
    assert together("m2") == (None, None)


def test_a_send_slot_held_by_a_process_that_died_frees_up_after_the_hold(store_location: str) -> None:
    import subprocess
    import sys
    import time

    from pec_mcp.store import SLOT_HOLD

    Store(store_location).close()
    took = subprocess.run(  # takes the turn and exits without saying whether its request left: as if killed
        [sys.executable, "-c", "import sys\nfrom pec_mcp.store import Store\n"
         "print(Store(sys.argv[1]).take_slot('pecmassiva-send', interval=1.0).retry_in)", store_location],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert took.stdout.strip() == "0.0", took.stderr
    now = Store(store_location)
    later = Store(store_location, clock=lambda: time.time() + SLOT_HOLD + 1)
    try:
        assert now.take_slot("pecmassiva-send", interval=1.0).moment is None  # still held
        assert later.take_slot("pecmassiva-send", interval=1.0).moment is not None  # ran out: another one sends
    finally:
        now.close()
        later.close()
