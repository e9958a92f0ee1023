"""Read-only queries over the store for the dashboard, the exports and the evidence packs.

Every read that the pictures and files of pec-mcp make goes through here, so that a change of the store's tables
(or a second store engine) is adapted in one place. Nothing here writes.

Rows are read in short transactions and, for exports, in pages keyed by id: a long export never holds the store's
lock, and its memory stays flat whatever the number of rows.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pec_mcp.receipts import MEANING, ReceiptKind
from pec_mcp.store import Store, iso, one_of

PAGE_SIZE = 50
EXPORT_BATCH = 500
# Sendings that cost money: a request that went out, or may have (an unknown outcome is counted, to be safe).
SPENT_STATES = ("sent", "unknown")
# The sendings priced at sending.price_per_message_eur (in euros, per recipient).
PRICED_PROVIDER = "pecmassiva"
SEND_STATES = ("queued", "sending", "sent", "failed", "unknown")
DELIVERY_STATES = ("pending", "accepted", "delivered", "partially_delivered", "not_delivered", "not_accepted")
# What each step of a PEC means in law, for the receipt timeline (DPR 68/2005 art. 3 and 6; DM 2/11/2005).
STEP_LABELS: dict[str, str] = {
    "accepted": "ACCETTAZIONE",
    "not_accepted": "AVVISO DI NON ACCETTAZIONE",
    "not_accepted_virus": "AVVISO DI NON ACCETTAZIONE PER VIRUS",
    "envelope": "POSTA CERTIFICATA",
    "taken_in_charge": "PRESA IN CARICO",
    "anomaly": "ANOMALIA MESSAGGIO",
    "delivered": "CONSEGNA",
    "not_delivered": "AVVISO DI MANCATA CONSEGNA",
    "not_delivered_virus": "AVVISO DI MANCATA CONSEGNA PER VIRUS",
    "not_delivered_timeout": "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
    "security_problem": "PROBLEMA DI SICUREZZA",
    "other": "OTHER MESSAGE",
}


def step_label(kind: str) -> str:
    return STEP_LABELS.get(kind, kind.upper())


def step_meaning(kind: str) -> str:
    try:
        return MEANING[ReceiptKind(kind)]
    except ValueError:
        return "not a PEC receipt"


@dataclass(frozen=True)
class SendingFilter:
    """What the dashboard and the exports may filter sendings by; empty fields filter nothing."""

    account: str | None = None
    environment: str | None = None
    recipient: str | None = None
    words: str | None = None
    status: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive
    accounts_allowed: frozenset[str] | None = None  # None: every account (the signed-in user sees all)


@dataclass(frozen=True)
class SendingRow:
    id: int
    provider: str  # pecmassiva, imap (a mailbox account) or mensatek
    account: str
    environment: str
    message_id: str | None
    subject: str
    recipients: list[str]
    state: str
    delivery_status: str | None
    delivery_summary: str | None
    error: str | None
    actor: str | None
    job_id: str | None
    created_at: float
    updated_at: float

    @property
    def status(self) -> str:
        """The delivery status once receipts speak, else the state of the send itself."""
        return self.delivery_status or self.state

    @property
    def created(self) -> str:
        return iso(self.created_at)

    @property
    def paid_per_recipient(self) -> bool:
        """Whether it costs the PEC Massiva list price per recipient: a mailbox's sends cost nothing more (the
        mailbox is paid for) and Mensatek's are paid in credits."""
        return self.provider == PRICED_PROVIDER


@dataclass(frozen=True)
class ReceiptRow:
    recipient: str | None
    kind: str
    date: str
    text: str | None
    reason: str | None
    source: str | None
    signature: str | None
    signature_detail: str | None
    has_raw: bool

    @property
    def label(self) -> str:
        return step_label(self.kind)

    @property
    def meaning(self) -> str:
        return step_meaning(self.kind)


@dataclass(frozen=True)
class RecipientTimeline:
    address: str
    outcome: str
    steps: list[ReceiptRow] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    rows: list[SendingRow]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class CostLine:
    period: str
    sendings: int
    recipients: int
    cost_eur: float


@dataclass(frozen=True)
class JobRow:
    id: str
    environment: str
    account: str
    subject: str
    total: int
    cost_eur: float
    created_at: float
    cancelled: bool
    counts: dict[str, int]

    @property
    def created(self) -> str:
        return iso(self.created_at)

    @property
    def done(self) -> int:
        return self.total - self.counts.get("queued", 0) - self.counts.get("sending", 0)

    @property
    def status(self) -> str:
        if self.counts.get("queued") or self.counts.get("sending"):
            return "sending"
        if self.counts.get("sent"):
            return "awaiting_receipts"
        return "cancelled" if self.cancelled else "finished"


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: float
    action: str
    actor: str
    approval: str
    environment: str
    summary: str
    outcome: str
    ref: str | None
    account: str | None = None

    @property
    def when(self) -> str:
        return iso(self.at)


@dataclass(frozen=True)
class ExportRow:
    """One recipient of one sending, as the exports write it."""

    sending_id: int
    message_id: str | None
    created: str
    account: str
    environment: str
    subject: str
    recipient: str
    outcome: str
    accepted_at: str | None
    delivered_at: str | None
    failed_at: str | None
    reason: str | None
    cost_eur: float
    sent_by: str | None

    FIELDS = ("sending_id", "message_id", "created", "account", "environment", "subject", "recipient", "outcome",
              "accepted_at", "delivered_at", "failed_at", "reason", "cost_eur", "sent_by")

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in self.FIELDS]


APPROVALS = ("user_confirmed", "confirm_argument", "not_required")


def split_actor(actor: str) -> tuple[str, str]:
    """``"Claude 1.2 (user_confirmed)"`` -> ("Claude 1.2", "user_confirmed"); the approval is "" when not said."""
    for approval in APPROVALS:
        suffix = f" ({approval})"
        if actor.endswith(suffix):
            return actor[: -len(suffix)], approval
    return actor, ""


class Records:
    """The read side of a :class:`Store` for people: lists, details, costs, audit and export rows."""

    def __init__(self, store: Store, *, price_per_message_eur: float) -> None:
        self.store = store
        self.price = price_per_message_eur

    # -- sendings

    def _where(self, flt: SendingFilter) -> tuple[str, list[Any]]:
        account = "s.account"
        clauses: list[str] = ["1 = 1"]
        args: list[Any] = []
        if flt.accounts_allowed is not None:
            clause, values = one_of(account, flt.accounts_allowed)
            clauses.append(clause)
            args.extend(values)
        if flt.account:
            clauses.append(f"{account} = ?")
            args.append(flt.account)
        if flt.environment:
            clauses.append("s.environment = ?")
            args.append(flt.environment)
        if flt.recipient and flt.recipient.strip():
            clauses.append("s.id IN (SELECT sending_id FROM sending_recipients WHERE address LIKE ? ESCAPE '\\')")
            args.append(f"%{_like(flt.recipient.strip().lower())}%")
        for word in (flt.words or "").split():
            # lower() on both sides: SQLite's LIKE ignores case, PostgreSQL's does not.
            clauses.append("lower(s.subject) LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(word.lower())}%")
        if flt.status:
            clauses.append("COALESCE(s.delivery_status, s.state) = ?")
            args.append(flt.status)
        if flt.since:
            clauses.append("s.created_at >= ?")
            args.append(_day_start(flt.since))
        if flt.until:
            clauses.append("s.created_at < ?")
            args.append(_day_start(flt.until + timedelta(days=1)))
        return " AND ".join(clauses), args

    def _select(self) -> str:
        return ("SELECT s.id, s.provider, s.account, s.environment, s.message_id, s.subject, s.recipients, s.state, "
                "s.delivery_status, s.delivery_summary, s.error, s.actor, s.job_id, s.created_at, s.updated_at "
                "FROM sendings s")

    def sendings(self, flt: SendingFilter, *, page: int = 1, size: int = PAGE_SIZE) -> Page:
        where, args = self._where(flt)
        with self.store.transaction() as db:
            total = int(db.execute(f"SELECT COUNT(*) FROM sendings s WHERE {where}", args).fetchone()[0])
            pages = max(1, -(-total // size))
            page = min(max(1, page), pages)
            rows = db.execute(f"{self._select()} WHERE {where} ORDER BY s.id DESC LIMIT ? OFFSET ?",
                              (*args, size, (page - 1) * size)).fetchall()
        return Page([_sending_row(r) for r in rows], page, pages, total)

    def sending(self, sending_id: int, *, accounts_allowed: frozenset[str] | None = None) -> SendingRow | None:
        flt = SendingFilter(accounts_allowed=accounts_allowed)
        where, args = self._where(flt)
        with self.store.transaction() as db:
            row = db.execute(f"{self._select()} WHERE {where} AND s.id = ?", (*args, sending_id)).fetchone()
        return _sending_row(row) if row else None

    def sending_by_message_id(self, message_id: str) -> SendingRow | None:
        with self.store.transaction() as db:
            row = db.execute(f"{self._select()} WHERE s.message_id = ? ORDER BY s.id DESC LIMIT 1",
                             (message_id,)).fetchone()
        return _sending_row(row) if row else None

    def accounts(self) -> list[str]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT DISTINCT account FROM sendings ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def environments(self) -> list[str]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT DISTINCT environment FROM sendings ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    # -- receipts

    def receipts(self, sending: SendingRow) -> list[ReceiptRow]:
        """Every receipt the ledger kept for a sending, in the order they were first seen."""
        if not sending.message_id:
            return []
        with self.store.transaction() as db:
            rows = db.execute(
                f"""SELECT {RECEIPT_COLUMNS} FROM receipts WHERE environment = ? AND account = ? AND message_id = ?
                    ORDER BY first_seen_at, id""",
                (sending.environment, sending.account, sending.message_id)).fetchall()
        return [_receipt_row(r) for r in rows]

    def receipts_as_received(self, sending: SendingRow) -> Iterator[tuple[ReceiptRow, bytes | None]]:
        """Each receipt with what was received (a message, or the provider's text), read one at a time."""
        last = 0
        while sending.message_id:
            with self.store.transaction() as db:
                row = db.execute(
                    f"""SELECT id, {RECEIPT_COLUMNS}, raw FROM receipts WHERE environment = ? AND account = ? AND
                            message_id = ? AND id > ? ORDER BY id LIMIT 1""",
                    (sending.environment, sending.account, sending.message_id, last)).fetchone()
            if row is None:
                return
            last = row["id"]
            yield _receipt_row(row), None if row["raw"] is None else bytes(row["raw"])

    def timeline(self, sending: SendingRow) -> list[RecipientTimeline]:
        """Per recipient, the receipts that speak of them (and those that speak of the whole message), in order."""
        receipts = self.receipts(sending)
        outcomes = self._job_outcomes(sending)
        lines = []
        for address in sending.recipients:
            mine = [r for r in receipts if r.recipient is None or r.recipient.lower() == address.lower()]
            lines.append(RecipientTimeline(address, outcomes.get(address.lower()) or _outcome(sending, mine), mine))
        return lines

    def _job_outcomes(self, sending: SendingRow) -> dict[str, str]:
        if not sending.job_id:
            return {}
        with self.store.transaction() as db:
            rows = db.execute(
                """SELECT r.address, r.state FROM job_recipients r JOIN job_groups g
                       ON g.job_id = r.job_id AND g.seq = r.group_seq WHERE g.sending_id = ?""",
                (sending.id,)).fetchall()
        return {r["address"].lower(): r["state"] for r in rows}

    # -- jobs

    def jobs(self, *, limit: int = 50, environment: str | None = None) -> list[JobRow]:
        sql = "SELECT * FROM jobs" + (" WHERE environment = ?" if environment else "")
        args: tuple[Any, ...] = (environment,) if environment else ()
        with self.store.transaction() as db:
            rows = db.execute(sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?", (*args, limit)).fetchall()
            return [self._job_row(db, r) for r in rows]

    def job(self, job_id: str) -> JobRow | None:
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return self._job_row(db, row) if row else None

    def _job_row(self, db: Any, row: Any) -> JobRow:
        counts = dict(db.execute("SELECT state, COUNT(*) FROM job_recipients WHERE job_id = ? GROUP BY state",
                                 (row["id"],)).fetchall())
        return JobRow(row["id"], row["environment"], row["account"], row["subject"], row["total"], row["cost_eur"],
                      row["created_at"], row["cancelled_at"] is not None, counts)

    def job_recipients(self, job_id: str, *, limit: int = 500) -> list[tuple[int, str, str, str | None]]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT row, address, state, reason FROM job_recipients WHERE job_id = ? ORDER BY row "
                              "LIMIT ?", (job_id, limit)).fetchall()
        return [(r["row"], r["address"], r["state"], r["reason"]) for r in rows]

    # -- costs

    def costs(self, period: str, *, environment: str | None = None, limit: int = 60) -> list[CostLine]:
        """Money spent on PEC Massiva at the list price, per ``day`` or ``month`` (UTC), newest first (a mailbox's
        sends cost nothing per message; Mensatek's are paid in credits)."""
        where = f"s.provider = ? AND s.state IN ({','.join('?' * len(SPENT_STATES))})"
        args: list[Any] = [PRICED_PROVIDER, *SPENT_STATES]
        if environment:
            where += " AND s.environment = ?"
            args.append(environment)
        # The calendar day or month of a Unix time has no SQL both databases accept: the backend writes it.
        bucket = self.store.backend.utc_period("s.created_at", period)
        sql = f"""SELECT {bucket} AS period, COUNT(DISTINCT s.id) AS sendings, COUNT(r.sending_id) AS recipients
                  FROM sendings s LEFT JOIN sending_recipients r ON r.sending_id = s.id
                  WHERE {where} GROUP BY {bucket} ORDER BY 1 DESC LIMIT ?"""
        with self.store.transaction() as db:
            rows = db.execute(sql, (*args, limit)).fetchall()
        return [CostLine(r["period"], int(r["sendings"]), int(r["recipients"]),
                         round(int(r["recipients"]) * self.price, 2)) for r in rows]

    def job_costs(self, *, environment: str | None = None, limit: int = 60) -> list[CostLine]:
        """Per bulk job: recipients sent to (or maybe sent to) and their cost; the estimate is on the job page."""
        spent = ("sent", "delivered", "not_delivered", "unknown")
        where = "WHERE j.environment = ?" if environment else ""
        args: tuple[Any, ...] = (environment,) if environment else ()
        sql = f"""SELECT j.id AS period, j.provider, COUNT(DISTINCT r.group_seq) AS sendings,
                      COUNT(r.row) AS recipients
                  FROM jobs j LEFT JOIN job_recipients r ON r.job_id = j.id
                      AND r.state IN ({','.join('?' * len(spent))})
                  {where} GROUP BY j.id, j.provider ORDER BY j.created_at DESC LIMIT ?"""
        with self.store.transaction() as db:
            rows = db.execute(sql, (*spent, *args, limit)).fetchall()
        # A job from a mailbox (provider "imap") costs nothing per message: the mailbox is paid for.
        return [CostLine(r["period"], r["sendings"], r["recipients"],
                         0.0 if r["provider"] == "imap" else round(r["recipients"] * self.price, 2)) for r in rows]

    # -- audit

    def audit(self, *, limit: int = 100, ref: str | None = None, offset: int = 0,
              accounts_allowed: Collection[str] | None = None) -> list[AuditRow]:
        """The newest audit entries; with ``accounts_allowed``, only those of these accounts (an entry of no known
        account is shown only to people who may see every account)."""
        clauses: list[str] = []
        args: list[Any] = []
        if ref:
            clauses.append("ref = ?")
            args.append(ref)
        if accounts_allowed is not None:
            clause, values = one_of("account", accounts_allowed)
            clauses.append(clause)
            args.extend(values)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                              (*args, limit, offset)).fetchall()
        result = []
        for r in rows:
            who, how = split_actor(r["actor"])
            result.append(AuditRow(r["id"], r["at"], r["action"], who, how, r["environment"], r["summary"],
                                   r["outcome"], r["ref"], r["account"]))
        return result

    # -- exports

    def export_rows(self, flt: SendingFilter) -> Iterator[ExportRow]:
        """One row per recipient of every matching sending, oldest first, read a page at a time."""
        where, args = self._where(flt)
        last = 0
        while True:
            with self.store.transaction() as db:
                batch = db.execute(f"{self._select()} WHERE {where} AND s.id > ? ORDER BY s.id LIMIT ?",
                                   (*args, last, EXPORT_BATCH)).fetchall()
            if not batch:
                return
            sendings = [_sending_row(r) for r in batch]
            last = sendings[-1].id
            receipts = self._receipts_of([s.id for s in sendings])
            for sending in sendings:
                yield from self._export_rows(sending, receipts.get(sending.id, []))

    def count_export_rows(self, flt: SendingFilter) -> int:
        where, args = self._where(flt)
        with self.store.transaction() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM sending_recipients r JOIN sendings s ON s.id = r.sending_id "
                                  f"WHERE {where}", args).fetchone()[0])

    def _receipts_of(self, ids: Sequence[int]) -> dict[int, list[ReceiptRow]]:
        if not ids:
            return {}
        found: dict[int, list[ReceiptRow]] = {}
        with self.store.transaction() as db:
            rows = db.execute(
                f"""SELECT sending_id, {RECEIPT_COLUMNS} FROM receipts WHERE sending_id IN ({','.join('?' * len(ids))})
                    ORDER BY first_seen_at, id""", list(ids)).fetchall()
        for r in rows:
            found.setdefault(r["sending_id"], []).append(_receipt_row(r))
        return found

    def _export_rows(self, sending: SendingRow, receipts: list[ReceiptRow]) -> Iterator[ExportRow]:
        paid = sending.state in SPENT_STATES and sending.paid_per_recipient
        created = sending.created
        for address in sending.recipients:
            mine = [r for r in receipts if r.recipient is None or r.recipient.lower() == address.lower()]
            accepted = _first(mine, {"accepted"})
            delivered = _first(mine, {"delivered"})
            failed = _first(mine, {"not_delivered", "not_delivered_virus", "not_delivered_timeout", "not_accepted",
                                   "not_accepted_virus"})
            yield ExportRow(
                sending.id, sending.message_id, created, sending.account, sending.environment, sending.subject,
                address, _outcome(sending, mine), accepted.date if accepted else None,
                delivered.date if delivered else None, failed.date if failed else None,
                (failed.reason if failed else None) or (sending.error if sending.state in ("failed", "unknown")
                                                         else None),
                round(self.price, 4) if paid else 0.0, sending.actor,
            )


RECEIPT_COLUMNS = ("recipient, kind, date, provider_text, reason, source, signature, signature_detail, "
                   "raw IS NOT NULL AS has_raw")


def _receipt_row(row: Any) -> ReceiptRow:
    return ReceiptRow(row["recipient"], row["kind"], row["date"], row["provider_text"], row["reason"], row["source"],
                      row["signature"], row["signature_detail"], bool(row["has_raw"]))


def _first(receipts: list[ReceiptRow], kinds: set[str]) -> ReceiptRow | None:
    return next((r for r in receipts if r.kind in kinds), None)


def _outcome(sending: SendingRow, receipts: list[ReceiptRow]) -> str:
    """One recipient's outcome: from its own receipts when the ledger has them, else from the sending."""
    kinds = {r.kind for r in receipts if r.signature != "invalid"}  # a forged receipt proves nothing
    if "delivered" in kinds:
        return "delivered"
    if kinds & {"not_delivered", "not_delivered_virus", "not_delivered_timeout"}:
        return "not_delivered"
    if kinds & {"not_accepted", "not_accepted_virus"}:
        return "not_accepted"
    if sending.state != "sent":
        return sending.state  # queued, sending, failed, unknown: no receipt can exist
    if sending.delivery_status in ("delivered", "not_delivered", "not_accepted") and len(sending.recipients) == 1:
        return sending.delivery_status
    return "accepted" if "accepted" in kinds or sending.delivery_status else "sent"


def _sending_row(row: Any) -> SendingRow:
    data = dict(row)
    data["recipients"] = json.loads(data["recipients"])
    return SendingRow(**data)


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
