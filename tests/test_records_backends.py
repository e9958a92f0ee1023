"""The dashboard's queries and the IMAP mail index give the same answers on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from pec_mcp.config import Settings
from pec_mcp.jobs import JobStore, RecipientRow, account_of, plan_bulk
from pec_mcp.pecmail.imap import MessageHeaders
from pec_mcp.pecmail.index import FolderSync, MailIndex
from pec_mcp.records import Records, SendingFilter
from pec_mcp.store import Store

# Half a second before midnight UTC: a day bucket that rounded instead of truncating would move it to March.
LAST_OF_FEBRUARY = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC).timestamp() + 0.6
FIRST_OF_MARCH = datetime(2026, 3, 1, 10, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = LAST_OF_FEBRUARY

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_location: str, clock: Clock) -> Iterator[Store]:
    handle = Store(store_location, clock=clock)
    yield handle
    handle.close()


def _sent(store: Store, subject: str, recipients: list[str]) -> int:
    row, _ = store.begin_send(provider="pecmassiva", environment="offline", idempotency_key=None,
                              sender="me@pecmassiva.com", recipients=recipients, subject=subject)
    store.mark_sent(row.id, f"<{row.id}@pec.example.it>")
    return row.id


def test_costs_fall_on_the_utc_day_and_month_of_each_sending(store: Store, clock: Clock) -> None:
    _sent(store, "Diffida", ["a@pec.it", "b@pec.it"])
    clock.now = FIRST_OF_MARCH
    _sent(store, "Sollecito", ["c@pec.it"])
    _sent(store, "Sollecito bis", ["d@pec.it", "e@pec.it", "f@pec.it"])
    records = Records(store, price_per_message_eur=0.5)

    days = records.costs("day")
    assert [(c.period, c.sendings, c.recipients, c.cost_eur) for c in days] == [
        ("2026-03-01", 2, 4, 2.0), ("2026-02-28", 1, 2, 1.0)]
    months = records.costs("month", environment="offline")
    assert [(c.period, c.sendings, c.recipients) for c in months] == [("2026-03", 2, 4), ("2026-02", 1, 2)]
    assert records.costs("day", environment="sandbox") == []


def test_only_pec_massiva_sendings_are_priced_in_euros(store: Store) -> None:
    _sent(store, "Diffida", ["a@pec.it", "b@pec.it"])
    for provider, account in (("imap", "studio"), ("mensatek", "mensatek")):
        row, _ = store.begin_send(provider=provider, environment="offline", idempotency_key=None, account=account,
                                  sender="studio@pec.it", recipients=["c@pec.it", "d@pec.it"], subject=provider)
        store.mark_sent(row.id, f"<{row.id}@pec.example.it>")
    records = Records(store, price_per_message_eur=0.5)

    [day] = records.costs("day")
    assert (day.sendings, day.recipients, day.cost_eur) == (1, 2, 1.0)  # a mailbox and Mensatek cost no euros
    exported = {(r.subject, r.cost_eur) for r in records.export_rows(SendingFilter())}
    assert exported == {("Diffida", 0.5), ("imap", 0.0), ("mensatek", 0.0)}


def test_sendings_filter_by_words_in_any_case_recipient_and_day(store: Store, clock: Clock) -> None:
    _sent(store, "Diffida ad adempiere", ["Mario.Rossi@pec.it"])
    clock.now = FIRST_OF_MARCH
    _sent(store, "Sollecito", ["anna@pec.it"])
    records = Records(store, price_per_message_eur=0.5)

    assert [s.subject for s in records.sendings(SendingFilter(words="DIFFIDA")).rows] == ["Diffida ad adempiere"]
    assert [s.subject for s in records.sendings(SendingFilter(recipient="mario.rossi")).rows] == [
        "Diffida ad adempiere"]
    march = records.sendings(SendingFilter(since=date(2026, 3, 1), until=date(2026, 3, 1)))
    assert [s.subject for s in march.rows] == ["Sollecito"] and march.total == 1


def test_jobs_and_their_costs_are_listed(store: Store, settings: Settings) -> None:
    rows = [RecipientRow(i + 1, f"dest{i}@pec.example.it", {"n": str(i)}) for i in range(3)]
    plan = plan_bulk(recipients=rows, subject="Avviso {{n}}", body="Gentile {{n}}", attachments=[],
                     settings=settings)
    job, _ = JobStore(store).create(plan, account=account_of(settings), idempotency_key=None, attachment_paths=[])
    records = Records(store, price_per_message_eur=0.5)

    [listed] = records.jobs()
    assert listed.id == job.id and listed.total == 3 and sum(listed.counts.values()) == 3
    [line] = records.job_costs(environment=job.environment)
    assert (line.period, line.sendings, line.recipients, line.cost_eur) == (job.id, 0, 0, 0.0)


def _headers(uid: int, subject: str, *, receipt: bool = False) -> MessageHeaders:
    return MessageHeaders(uid=uid, size=100 + uid, internal_date=datetime(2026, 3, 1, 9, uid, tzinfo=UTC),
                          message_id=f"<m{uid}@pec.example.it>", date=None, sender="posta-certificata@pec.it",
                          to="studio@pec.it", subject=subject, x_ricevuta="accettazione" if receipt else None,
                          x_trasporto=None, x_riferimento="<sent1@pec.example.it>" if receipt else None,
                          x_tipo_ricevuta=None)


def test_the_mail_index_stores_syncs_and_searches(store: Store) -> None:
    index = MailIndex(store, environment="sandbox", account="studio")
    index.restart(uidvalidity=7)
    index.add([_headers(1, "ACCETTAZIONE: Diffida", receipt=True), _headers(2, "Fattura marzo")],
              uidvalidity=7, through_uid=5)
    index.add([], uidvalidity=7, through_uid=3)  # a batch that ends lower never moves the last UID back
    state = index.state()
    assert state is not None and (state.uidvalidity, state.last_uid) == (7, 5)

    assert [m.uid for m in index.page(query="fattura").messages] == [2]
    assert [m.uid for m in index.page(query="<sent1@pec.example.it>").messages] == [1]
    assert [m.uid for m in index.page().messages] == [2, 1] and index.count() == 2
    assert [m.uid for m in index.referring_to("sent1@pec.example.it")] == [1]
    assert [m.uid for m in index.pending_receipts()] == [1]
    index.receipt_done(1)
    assert index.pending_receipts() == []

    index.forget([2])
    assert index.live_uids() == {1} and index.get(2) is None
    index.restart(uidvalidity=8)
    assert index.count() == 0 and index.state() == FolderSync(8, 0, 0.0)
