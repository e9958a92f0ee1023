"""Bulk PEC jobs: planning (CSV, templates, grouping into requests), the job tables, and the job runner.

A job is planned whole before anything is sent: every row is read, its address checked and its subject and body
rendered, and the recipients whose rendered message is identical are put into requests of at most
``max_recipients_per_request`` recipients and ``max_request_mb`` of recipients × message size. Personalised
messages go one request each.

The runner sends the queued requests ("groups") in order, through the same paced PEC Massiva client and the same
send ledger as ``send_pec`` (one ledger row per request, keyed ``bulk:<job>:<seq>``), so the provider's limit holds
for every tool, job and process sharing the store, and a request is never sent twice. A group moves
``queued -> sending -> sent | failed | unknown | cancelled``; its recipients follow, and after sending move on to
``delivered`` or ``not_delivered`` from the receipts. A group left ``sending`` by a process that died is looked up
in the ledger: never dispatched, it is queued again; possibly on the wire, it is ``unknown`` and never resent.

Nothing here knows MCP.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from pec_mcp.config import Settings
from pec_mcp.errors import InputError, LimitExceeded, PecError, RateLimited
from pec_mcp.paths import MB, allowed_file
from pec_mcp.providers.pecmassiva import Attachment
from pec_mcp.receipts import RecipientState
from pec_mcp.sending import (
    MAX_SUBJECT,
    PecMessage,
    PecSender,
    load_attachments,
    message_size,
    normalise_address,
)
from pec_mcp.store import Store

log = logging.getLogger("pec_mcp.jobs")

PROVIDER = "pecmassiva"
RECIPIENT_STATES = ("queued", "sending", "sent", "failed", "unknown", "delivered", "not_delivered", "cancelled")
NO_RECEIPT_REASON = "no delivery receipt within 24 hours"
CANCELLED_REASON = "the job was cancelled before this was sent"
SHOWN_PROBLEMS = 20

Sleep = Callable[[float], Awaitable[None]]
Publish = Callable[[str], Awaitable[None]]


# -- planning: recipients ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientRow:
    """One recipient as given: where it came from (CSV line or list position), its address and variables."""

    row: int
    address: str
    variables: dict[str, str]


def inline_recipients(items: Sequence[Mapping[str, Any]]) -> list[RecipientRow]:
    """Recipients given in the call, numbered from 1; variable names are case-insensitive."""
    rows = []
    for number, item in enumerate(items, start=1):
        variables = item.get("variables") or {}
        rows.append(RecipientRow(number, str(item.get("address") or ""),
                                 {str(k).strip().lower(): str(v) for k, v in variables.items() if str(v) != ""}))
    return rows


def decode_csv(raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, and Latin-1 for what is not UTF-8 (old Excel exports)."""
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("The CSV file starts with a UTF-8 mark but is not valid UTF-8",
                             hint="Save it again as CSV UTF-8.") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sniff_delimiter(header: str) -> str:
    """The delimiter of the header row: whichever of ``;``, ``,`` and tab it uses most (``,`` when none)."""
    counts = {d: header.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_recipients_csv(raw: str, folders: Sequence[Path]) -> list[RecipientRow]:
    """The recipients of a CSV file inside ``folders``; rows are numbered by their line in the file."""
    path = allowed_file(raw, folders)
    return parse_recipients_csv(path.read_bytes(), name=path.name)


def parse_recipients_csv(data: bytes, *, name: str = "the CSV file") -> list[RecipientRow]:
    """Parse CSV bytes: a header row naming ``address`` and the variables, then one recipient per row."""
    text = decode_csv(data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise InputError(f"{name} is empty", hint="The first row names the columns, one of them 'address'.")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first))
    try:
        header = next(row for row in reader if any(cell.strip() for cell in row))
        names = [cell.strip().lower() for cell in header]
        _check_header(names, name)
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names) and any(c.strip() for c in cells[len(names):]):
                raise InputError(f"{name}, row {reader.line_num}: {len(cells)} cells for {len(names)} columns",
                                 hint="A value probably contains the delimiter: put it in double quotes.")
            values = {names[i]: cell.strip() for i, cell in enumerate(cells[: len(names)]) if names[i]}
            address = values.pop("address", "")
            rows.append(RecipientRow(reader.line_num, address, {k: v for k, v in values.items() if v != ""}))
    except csv.Error as exc:
        raise InputError(f"{name} cannot be read as CSV (row {reader.line_num}: {exc})") from None
    return rows


def _check_header(names: list[str], name: str) -> None:
    if "address" not in names:
        found = ", ".join(repr(n) for n in names if n) or "none"
        raise InputError(f"{name} has no 'address' column (columns found: {found})",
                         hint="The first row must name the columns, one of them 'address'; separate them with "
                         "';' or ','.")
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise InputError(f"{name} names the column(s) {', '.join(repeated)} more than once")


# -- planning: templates ------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_variables(template: str) -> set[str]:
    return {m.group(1).lower() for m in _VARIABLE.finditer(template)}


def render(template: str, variables: Mapping[str, str]) -> str:
    """``{{name}}`` replaced by the variable (names case-insensitive); every name must be present."""
    return _VARIABLE.sub(lambda m: variables[m.group(1).lower()], template)


def _variables_of(row: RecipientRow, address: str) -> dict[str, str]:
    # The address itself may be used in the text ("Spett.le {{address}}").
    return {"address": address, **row.variables}


# -- planning: grouping -----------------------------------------------------------------------------------------


def group_requests(messages: Sequence[tuple[bytes, int]], *, max_recipients: int, max_bytes: float) -> list[list[int]]:
    """Split recipients into requests: identical messages together, within both limits; order of first sight.

    ``messages`` holds, per recipient, the key of its rendered message and the message size. Returns, per request,
    the indexes of its recipients. A message too large for even one recipient raises LimitExceeded.
    """
    by_key: dict[bytes, list[int]] = {}
    sizes: dict[bytes, int] = {}
    for index, (key, size) in enumerate(messages):
        by_key.setdefault(key, []).append(index)
        sizes[key] = size
    requests: list[list[int]] = []
    for key, members in by_key.items():
        per_request = min(max_recipients, int(max_bytes // max(sizes[key], 1)))
        if per_request < 1:
            raise LimitExceeded(
                f"One message is {sizes[key] / MB:.1f} MB, more than a request may carry "
                f"({max_bytes / MB:g} MB, sending.max_request_mb)",
                hint="Send smaller attachments.",
            )
        requests.extend(members[i : i + per_request] for i in range(0, len(members), per_request))
    return requests


def message_key(subject: str, body: str) -> bytes:
    return hashlib.sha256(subject.encode() + b"\x00" + body.encode()).digest()


@dataclass(frozen=True)
class Preview:
    """The first message as its recipient will see it."""

    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class BulkPlan:
    """A checked bulk sending: recipients (addresses normalised), templates, attachments and the requests."""

    recipients: list[RecipientRow]
    subject: str
    body: str
    attachments: list[Attachment]
    requests: list[list[int]]  # indexes into recipients
    request_bytes: list[int]  # the message size of each request's message
    cost_eur: float
    environment: str
    preview: Preview

    @property
    def total(self) -> int:
        return len(self.recipients)


def plan_bulk(
    *,
    recipients: Sequence[RecipientRow],
    subject: str,
    body: str,
    attachments: Sequence[str],
    settings: Settings,
    row_word: str = "row",
) -> BulkPlan:
    """Check every recipient and render every message before anything is sent; InputError names the bad rows."""
    if not recipients:
        raise InputError("No recipient was given", hint="Give recipients or a CSV file with at least one row.")
    limit = settings.sending.max_recipients_per_call
    if len(recipients) > limit:
        raise LimitExceeded(f"{len(recipients)} recipients is more than the {limit} allowed in one job "
                            "(sending.max_recipients_per_call)", hint="Split the list into several jobs.")
    if not subject.strip():
        raise InputError("The subject is empty", hint="A PEC needs a subject.")
    if not body.strip():
        raise InputError("The body is empty", hint="Write the text of the PEC (plain text or HTML).")
    files = load_attachments(attachments, settings)
    file_bytes = sum(a.size for a in files)
    problems: list[str] = []
    seen: dict[str, int] = {}
    checked: list[RecipientRow] = []
    keys: list[tuple[bytes, int]] = []
    preview: Preview | None = None
    needed = template_variables(subject) | template_variables(body)
    allowed = settings.sending.allowed_recipient_domains
    for row in recipients:
        where = f"{row_word} {row.row}"
        try:
            address = normalise_address(row.address)
        except InputError:
            problems.append(f"{where}: {row.address!r} is not a valid email address")
            continue
        if address.lower() in seen:
            problems.append(f"{where}: {address} is also on {row_word} {seen[address.lower()]}")
            continue
        seen[address.lower()] = row.row
        domain = address.rsplit("@", 1)[1]
        if allowed and not any(domain == d or domain.endswith("." + d) for d in allowed):
            problems.append(f"{where}: {address} is outside the allowed domains ({', '.join(allowed)})")
            continue
        variables = _variables_of(row, address)
        missing = sorted(needed - variables.keys())
        if missing:
            problems.append(f"{where}: no value for " + ", ".join("{{" + m + "}}" for m in missing))
            continue
        rendered_subject, rendered_body = render(subject, variables).strip(), render(body, variables)
        if len(rendered_subject) > MAX_SUBJECT or "\n" in rendered_subject or "\r" in rendered_subject:
            problems.append(f"{where}: the subject is not one line of at most {MAX_SUBJECT} characters")
            continue
        if preview is None:
            preview = Preview(address, rendered_subject, rendered_body)
        checked.append(RecipientRow(row.row, address, row.variables))
        size = len(rendered_subject.encode()) + len(rendered_body.encode()) + file_bytes
        keys.append((message_key(rendered_subject, rendered_body), size))
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise InputError(f"The job was refused and nothing was sent: {len(problems)} problem(s) in the "
                         f"recipients: {shown}{more}", hint="Correct these rows (or remove them) and start again.")
    assert preview is not None
    requests = group_requests(keys, max_recipients=settings.sending.max_recipients_per_request,
                              max_bytes=settings.sending.max_request_mb * MB)
    return BulkPlan(
        recipients=checked, subject=subject.strip(), body=body, attachments=files, requests=requests,
        request_bytes=[keys[r[0]][1] for r in requests],
        cost_eur=round(len(checked) * settings.sending.price_per_message_eur, 2),
        environment=settings.env, preview=preview,
    )


def account_of(settings: Settings) -> str:
    """Which provider account a job belongs to: runners only take jobs of their own environment and account."""
    return f"{settings.env}:{settings.pecmassiva.username or 'simulator'}"


# -- the job tables ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    id: str
    environment: str
    account: str
    idempotency_key: str | None
    subject: str
    body: str
    attachments: list[str]
    total: int
    requests: int
    cost_eur: float
    created_at: float
    cancelled_at: float | None


@dataclass(frozen=True)
class Progress:
    """What a job has done so far, from its tables."""

    job: Job
    counts: dict[str, int]
    requests_by_state: dict[str, int]
    first_sent_at: float | None
    last_sent_at: float | None
    dispatched_requests: int
    queued_ahead: int  # queued requests of older jobs on the same account

    @property
    def status(self) -> str:
        if self.counts["queued"] or self.counts["sending"]:
            return "sending"
        if self.counts["sent"]:
            return "awaiting_receipts"
        return "cancelled" if self.job.cancelled_at is not None else "finished"

    @property
    def achieved_rate(self) -> float | None:
        """Requests per second between the first and the last request sent."""
        if self.dispatched_requests < 2 or not self.first_sent_at or not self.last_sent_at:
            return None
        span = self.last_sent_at - self.first_sent_at
        return round((self.dispatched_requests - 1) / span, 3) if span > 0 else None


@dataclass(frozen=True)
class Claim:
    """A group taken by a runner: the recipients of one request and the job it belongs to."""

    job: Job
    seq: int
    addresses: list[str]
    variables: dict[str, str]  # of the first recipient: every recipient of a group has the same message
    attempts: int  # including this one


@dataclass(frozen=True)
class FollowTarget:
    job_id: str
    seq: int
    message_id: str
    sent_at: float


@dataclass(frozen=True)
class RecipientInfo:
    row: int
    address: str
    state: str
    reason: str | None


def _job(row: Any) -> Job:
    return Job(id=row["id"], environment=row["environment"], account=row["account"],
               idempotency_key=row["idempotency_key"], subject=row["subject"], body=row["body"],
               attachments=json.loads(row["attachments"]), total=row["total"], requests=row["requests"],
               cost_eur=row["cost_eur"], created_at=row["created_at"], cancelled_at=row["cancelled_at"])


def ledger_key(job_id: str, seq: int) -> str:
    return f"bulk:{job_id}:{seq}"


class JobStore:
    """The job tables of a :class:`Store`; every method is one short transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, plan: BulkPlan, *, account: str, idempotency_key: str | None,
               attachment_paths: Sequence[str]) -> tuple[Job, bool]:
        """Write the job, its requests and its recipients, all queued; the same key gives back the first job."""
        now = self.store.clock()
        job_id = f"job-{time.strftime('%Y%m%d', time.gmtime(now))}-{secrets.token_hex(4)}"
        group_of = {}
        for seq, members in enumerate(plan.requests, start=1):
            for index in members:
                group_of[index] = seq
        with self.store.transaction(immediate=True) as db:
            if idempotency_key is not None:
                existing = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
                if existing is not None:
                    return _job(existing), False
            db.execute(
                """INSERT INTO jobs (id, provider, environment, account, idempotency_key, subject, body, attachments,
                       total, requests, cost_eur, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)""",
                (job_id, PROVIDER, plan.environment, account, idempotency_key, plan.subject, plan.body,
                 json.dumps([str(a.path) for a in plan.attachments] or list(attachment_paths)), plan.total,
                 len(plan.requests), plan.cost_eur, now),
            )
            db.executemany(
                """INSERT INTO job_groups (job_id, seq, state, recipients, message_bytes, updated_at)
                   VALUES (?, ?, 'queued', ?, ?, ?)""",
                [(job_id, seq, len(m), size, now)
                 for seq, (m, size) in enumerate(zip(plan.requests, plan.request_bytes, strict=True), start=1)],
            )
            db.executemany(
                """INSERT INTO job_recipients (job_id, row, address, variables, group_seq, state, updated_at)
                   VALUES (?, ?, ?, ?, ?, 'queued', ?)""",
                [(job_id, r.row, r.address, json.dumps(r.variables, ensure_ascii=False), group_of[i], now)
                 for i, r in enumerate(plan.recipients)],
            )
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row), True

    def job(self, job_id: str) -> Job | None:
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def job_by_key(self, idempotency_key: str) -> Job | None:
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        return _job(row) if row else None

    def recent(self, limit: int) -> list[Job]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [_job(r) for r in rows]

    def queued_requests(self, account: str, *, before: float | None = None) -> int:
        """Requests waiting to be sent on this account (of jobs created before ``before``, when given)."""
        sql = """SELECT COUNT(*) FROM job_groups g JOIN jobs j ON j.id = g.job_id
                 WHERE g.state IN ('queued', 'sending') AND j.account = ?"""
        args: tuple[Any, ...] = (account,)
        if before is not None:
            sql += " AND j.created_at < ?"
            args = (account, before)
        with self.store.transaction() as db:
            return int(db.execute(sql, args).fetchone()[0])

    def progress(self, job_id: str) -> Progress | None:
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            job = _job(row)
            counts = dict.fromkeys(RECIPIENT_STATES, 0)
            for state, n in db.execute(
                "SELECT state, COUNT(*) FROM job_recipients WHERE job_id = ? GROUP BY state", (job_id,)
            ):
                counts[state] = n
            groups = dict(db.execute(
                "SELECT state, COUNT(*) FROM job_groups WHERE job_id = ? GROUP BY state", (job_id,)
            ).fetchall())
            first, last, dispatched = db.execute(
                "SELECT MIN(sent_at), MAX(sent_at), COUNT(sent_at) FROM job_groups WHERE job_id = ?", (job_id,)
            ).fetchone()
            ahead = db.execute(
                """SELECT COUNT(*) FROM job_groups g JOIN jobs j ON j.id = g.job_id WHERE g.state = 'queued'
                   AND j.account = ? AND j.created_at < ? AND j.id != ?""",
                (job.account, job.created_at, job_id),
            ).fetchone()[0]
        return Progress(job, counts, groups, first, last, dispatched, ahead)

    def recipients(self, job_id: str, *, states: Sequence[str] = (), limit: int = 100) -> list[RecipientInfo]:
        sql = "SELECT row, address, state, reason FROM job_recipients WHERE job_id = ?"
        args: list[Any] = [job_id]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        with self.store.transaction() as db:
            rows = db.execute(sql + " ORDER BY row LIMIT ?", (*args, limit)).fetchall()
        return [RecipientInfo(r["row"], r["address"], r["state"], r["reason"]) for r in rows]

    def is_cancelled(self, job_id: str) -> bool:
        with self.store.transaction() as db:
            row = db.execute("SELECT cancelled_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is not None and row[0] is not None

    def cancel(self, job_id: str) -> int:
        """Stop what is not yet sent; returns how many recipients will not be sent to."""
        now = self.store.clock()
        with self.store.transaction(immediate=True) as db:
            db.execute("UPDATE jobs SET cancelled_at = COALESCE(cancelled_at, ?) WHERE id = ?", (now, job_id))
            db.execute("UPDATE job_groups SET state = 'cancelled', updated_at = ? WHERE job_id = ? AND "
                       "state = 'queued'", (now, job_id))
            return db.execute(
                """UPDATE job_recipients SET state = 'cancelled', reason = 'the job was cancelled before this was sent',
                       updated_at = ? WHERE job_id = ? AND state = 'queued'""",
                (now, job_id),
            ).rowcount

    # -- the runner's side

    def claim_next(self, owner: str, account: str) -> Claim | None:
        """Take the oldest queued request of this account: its group and recipients become ``sending``."""
        now = self.store.clock()
        with self.store.transaction(immediate=True) as db:
            row = db.execute(
                """SELECT g.job_id, g.seq, g.attempts FROM job_groups g JOIN jobs j ON j.id = g.job_id
                   WHERE g.state = 'queued' AND j.account = ? AND j.cancelled_at IS NULL
                   ORDER BY j.created_at, j.rowid, g.seq LIMIT 1""",
                (account,),
            ).fetchone()
            if row is None:
                return None
            job_id, seq = row[0], row[1]
            db.execute("UPDATE job_groups SET state = 'sending', owner = ?, attempts = attempts + 1, updated_at = ? "
                       "WHERE job_id = ? AND seq = ?", (owner, now, job_id, seq))
            db.execute("UPDATE job_recipients SET state = 'sending', updated_at = ? WHERE job_id = ? AND group_seq = ?",
                       (now, job_id, seq))
            members = db.execute("SELECT address, variables FROM job_recipients WHERE job_id = ? AND group_seq = ? "
                                 "ORDER BY row", (job_id, seq)).fetchall()
            job = _job(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        return Claim(job, seq, [m["address"] for m in members], json.loads(members[0]["variables"]), row[2] + 1)

    def finish(self, job_id: str, seq: int, state: str, *, reason: str | None = None, message_id: str | None = None,
               sending_id: int | None = None, next_check_at: float | None = None) -> None:
        """Record how a request ended; its recipients take the same state (and the reason)."""
        now = self.store.clock()
        dispatched = state in ("sent", "unknown")
        with self.store.transaction(immediate=True) as db:
            db.execute(
                """UPDATE job_groups SET state = ?, error = ?, message_id = COALESCE(?, message_id),
                       sending_id = COALESCE(?, sending_id), sent_at = CASE WHEN ? THEN ? ELSE sent_at END,
                       next_check_at = ?, followed = ?, owner = NULL, updated_at = ?
                   WHERE job_id = ? AND seq = ?""",
                (state, reason, message_id, sending_id, dispatched, now, next_check_at, 0 if state == "sent" else 1,
                 now, job_id, seq),
            )
            db.execute("UPDATE job_recipients SET state = ?, reason = ?, updated_at = ? WHERE job_id = ? AND "
                       "group_seq = ? AND state IN ('sending', 'queued')", (state, reason, now, job_id, seq))

    def release(self, job_id: str, seq: int) -> None:
        """A request that certainly never left goes back to the queue (or is cancelled with its job)."""
        now = self.store.clock()
        with self.store.transaction(immediate=True) as db:
            cancelled = db.execute("SELECT cancelled_at FROM jobs WHERE id = ?", (job_id,)).fetchone()[0] is not None
            state, reason = ("cancelled", CANCELLED_REASON) if cancelled else ("queued", None)
            db.execute("UPDATE job_groups SET state = ?, owner = NULL, updated_at = ? WHERE job_id = ? AND seq = ?",
                       (state, now, job_id, seq))
            db.execute("UPDATE job_recipients SET state = ?, reason = ?, updated_at = ? WHERE job_id = ? AND "
                       "group_seq = ? AND state = 'sending'", (state, reason, now, job_id, seq))

    def due_followups(self, account: str, *, limit: int) -> list[FollowTarget]:
        now = self.store.clock()
        with self.store.transaction() as db:
            rows = db.execute(
                """SELECT g.job_id, g.seq, g.message_id, g.sent_at FROM job_groups g JOIN jobs j ON j.id = g.job_id
                   WHERE g.followed = 0 AND g.state = 'sent' AND g.next_check_at <= ? AND j.account = ?
                   ORDER BY g.next_check_at LIMIT ?""",
                (now, account, limit),
            ).fetchall()
        return [FollowTarget(r[0], r[1], r[2], r[3]) for r in rows]

    def recipients_of(self, job_id: str, seq: int) -> list[str]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT address FROM job_recipients WHERE job_id = ? AND group_seq = ? ORDER BY row",
                              (job_id, seq)).fetchall()
        return [r[0] for r in rows]

    def next_followup_at(self, account: str) -> float | None:
        with self.store.transaction() as db:
            row = db.execute(
                """SELECT MIN(g.next_check_at) FROM job_groups g JOIN jobs j ON j.id = g.job_id
                   WHERE g.followed = 0 AND g.state = 'sent' AND j.account = ?""", (account,)).fetchone()
        return None if row[0] is None else float(row[0])

    def record_delivery(self, job_id: str, seq: int, outcomes: Mapping[str, tuple[str, str | None]],
                        next_check_at: float) -> bool:
        """Per-recipient outcomes of a sent request; returns whether any changed. Done when none is pending."""
        now = self.store.clock()
        changed = False
        with self.store.transaction(immediate=True) as db:
            for address, (state, reason) in outcomes.items():
                changed |= db.execute(
                    """UPDATE job_recipients SET state = ?, reason = ?, updated_at = ? WHERE job_id = ? AND
                           group_seq = ? AND lower(address) = ? AND state = 'sent'""",
                    (state, reason, now, job_id, seq, address.lower()),
                ).rowcount > 0
            pending = db.execute("SELECT COUNT(*) FROM job_recipients WHERE job_id = ? AND group_seq = ? AND "
                                 "state = 'sent'", (job_id, seq)).fetchone()[0]
            db.execute("UPDATE job_groups SET next_check_at = ?, followed = ?, updated_at = ? WHERE job_id = ? AND "
                       "seq = ?", (next_check_at, 0 if pending else 1, now, job_id, seq))
        return changed

    # -- runners and recovery

    def heartbeat(self, owner: str) -> None:
        with self.store.transaction(immediate=True) as db:
            db.execute("INSERT INTO job_runners (owner, host, pid, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (owner) "
                       "DO UPDATE SET seen_at = excluded.seen_at",
                       (owner, socket.gethostname(), os.getpid(), self.store.clock()))

    def forget_runner(self, owner: str) -> None:
        with self.store.transaction(immediate=True) as db:
            db.execute("DELETE FROM job_runners WHERE owner = ?", (owner,))

    def orphaned(self, owner: str, *, lease: float) -> list[tuple[str, int]]:
        """Requests left ``sending`` by a runner that is gone (its process died, or it stopped beating)."""
        with self.store.transaction() as db:
            rows = db.execute("SELECT job_id, seq, owner FROM job_groups WHERE state = 'sending' AND "
                              "(owner IS NULL OR owner != ?)", (owner,)).fetchall()
            runners = {r["owner"]: r for r in db.execute("SELECT * FROM job_runners").fetchall()}
        now = self.store.clock()
        return [(r["job_id"], r["seq"]) for r in rows if _gone(runners.get(r["owner"]), now, lease)]

    def ledger_row(self, job_id: str, seq: int) -> Any:
        with self.store.transaction() as db:
            return db.execute("SELECT id, state, message_id, error FROM sendings WHERE provider = ? AND "
                              "idempotency_key = ?", (PROVIDER, ledger_key(job_id, seq))).fetchone()


def _gone(runner: Any, now: float, lease: float) -> bool:
    if runner is None or now - runner["seen_at"] > lease:
        return True
    return runner["host"] == socket.gethostname() and not _pid_alive(int(runner["pid"]))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the runner -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUpPolicy:
    """How receipts are followed: each sending read at most every ``interval`` s, all reads within
    ``reads_per_second``, until delivered, not delivered, or ``timeout`` s after sending (the PEC rules' 24 h)."""

    interval: float = 30.0
    reads_per_second: float = 2.0
    timeout: float = 24 * 3600.0
    batch: int = 20


# Seconds between heartbeats, and after how long without one a runner counts as gone (another host, or a hang).
HEARTBEAT = 5.0
LEASE = 60.0
IDLE = 1.0  # a runner with nothing to send looks again this often (jobs of other processes, recovery)
RATE_LIMIT_ATTEMPTS = 5
NOTIFY_EVERY = 1.0  # at most one change notification per job per second


class JobCancelled(PecError):
    """The job was cancelled while this request waited for its turn: nothing was sent."""


class Notifier:
    """Tells subscribers that a job changed, at most once per ``every`` seconds per job, the last change always."""

    def __init__(self, publish: Publish | None, clock: Callable[[], float], every: float = NOTIFY_EVERY) -> None:
        self.publish = publish
        self.clock = clock
        self.every = every
        self._last: dict[str, float] = {}
        self._dirty: set[str] = set()

    async def changed(self, job_id: str) -> None:
        if self.publish is None:
            return
        last = self._last.get(job_id)
        if last is not None and self.clock() - last < self.every:
            self._dirty.add(job_id)
            return
        await self._send(job_id)

    async def flush(self) -> None:
        for job_id in sorted(self._dirty):
            if self.clock() - self._last.get(job_id, 0.0) >= self.every:
                await self._send(job_id)

    async def _send(self, job_id: str) -> None:
        assert self.publish is not None
        self._dirty.discard(job_id)
        self._last[job_id] = self.clock()
        try:
            await self.publish(job_uri(job_id))
        except Exception:
            log.exception("could not publish a job change")


def job_uri(job_id: str) -> str:
    return f"pec://jobs/{job_id}"


@dataclass
class JobRunner:
    """Sends the queued requests of this account's jobs and follows their receipts, until cancelled."""

    store: Store
    settings: Settings
    sender: Callable[[], PecSender]
    publish: Publish | None = None
    policy: FollowUpPolicy = FollowUpPolicy()
    clock: Callable[[], float] | None = None
    sleep: Sleep = anyio.sleep
    workers: int = 4
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")

    def __post_init__(self) -> None:
        self.jobs = JobStore(self.store)
        self.account = account_of(self.settings)
        self.now = self.clock or self.store.clock
        self.notifier = Notifier(self.publish, self.now)
        self._wake = anyio.Event()
        self._next_read = 0.0

    def wake(self) -> None:
        """A job was started: look for work now rather than at the next idle check."""
        self._wake.set()
        self._wake = anyio.Event()

    async def run(self) -> None:
        self.jobs.heartbeat(self.owner)
        try:
            self.recover()
            async with anyio.create_task_group() as tg:
                for _ in range(self.workers):
                    tg.start_soon(self._send_loop)
                tg.start_soon(self._follow_loop)
                tg.start_soon(self._housekeeping)
        finally:
            # A clean stop: the requests this runner held are settled, so others need not wait for its lease.
            self.jobs.forget_runner(self.owner)

    async def _send_loop(self) -> None:
        while True:
            try:
                busy = await self.send_next()
            except Exception:
                log.exception("the bulk job runner met an unexpected problem; it carries on")
                busy = False
            if not busy:
                await self._nap(IDLE)

    async def _follow_loop(self) -> None:
        while True:
            try:
                await self.follow_due()
                due = self.jobs.next_followup_at(self.account)
            except Exception:
                log.exception("the receipt follow-up met an unexpected problem; it carries on")
                due = None
            wait = IDLE if due is None else min(max(due - self.now(), 0.05), self.policy.interval)
            await self._nap(wait)

    async def _housekeeping(self) -> None:
        beats = 0.0
        while True:
            await self.sleep(0.25)
            await self.notifier.flush()
            if self.now() - beats >= HEARTBEAT:
                beats = self.now()
                try:
                    self.jobs.heartbeat(self.owner)
                    self.recover()
                except Exception:
                    log.exception("job runner housekeeping failed; it carries on")

    async def _nap(self, seconds: float) -> None:
        event = self._wake
        with anyio.move_on_after(seconds):
            await event.wait()

    # -- sending

    async def send_next(self) -> bool:
        """Send the next queued request of this account, if any; returns whether there was one."""
        claim = self.jobs.claim_next(self.owner, self.account)
        if claim is None:
            return False
        await self.notifier.changed(claim.job.id)
        await self._send(claim)
        await self.notifier.changed(claim.job.id)
        return True

    async def _send(self, claim: Claim) -> None:
        job_id, seq = claim.job.id, claim.seq
        try:
            message = self._message(claim)
        except PecError as exc:
            self.jobs.finish(job_id, seq, "failed", reason=exc.message)
            return
        dispatched = False

        async def before_dispatch() -> None:
            nonlocal dispatched
            if self.jobs.is_cancelled(job_id):
                raise JobCancelled("the job was cancelled before this request was sent")
            dispatched = True

        try:
            outcome = await self.sender().send(message, idempotency_key=ledger_key(job_id, seq),
                                               actor=f"bulk job {job_id}", job_id=job_id,
                                               before_dispatch=before_dispatch)
        except JobCancelled:
            self.jobs.finish(job_id, seq, "cancelled", reason=CANCELLED_REASON)
            return
        except RateLimited as exc:
            # A 429 means the provider refused the request: nothing was sent, so it goes back to the queue (a crash
            # during the wait then loses nothing) and this worker pauses as the provider asked.
            if claim.attempts >= RATE_LIMIT_ATTEMPTS:
                self.jobs.finish(job_id, seq, "failed", reason=exc.message)
                return
            self.jobs.release(job_id, seq)
            wait = min(max(exc.retry_after or 1.0, 0.1), 60.0)
            log.warning("PEC Massiva refused request %d of job %s as too many (429); retrying in %.1f s",
                        seq, job_id, wait)
            await self.sleep(wait)
            return
        except PecError as exc:
            self.jobs.finish(job_id, seq, "failed", reason=exc.message)
            return
        except BaseException:
            # Stopped (server closing) mid-request: if it never left it goes back to the queue, else unknown.
            if dispatched:
                self.jobs.finish(job_id, seq, "unknown", reason="interrupted while the request was on its way")
            else:
                self.jobs.release(job_id, seq)
            raise
        self._record(job_id, seq, outcome.sending.state, outcome.sending.message_id, outcome.sending.id,
                     outcome.sending.error)

    def _record(self, job_id: str, seq: int, ledger_state: str, message_id: str | None, sending_id: int,
                error: str | None) -> None:
        if ledger_state == "sent":
            self.jobs.finish(job_id, seq, "sent", message_id=message_id, sending_id=sending_id,
                             next_check_at=self.now() + self.policy.interval)
        elif ledger_state in ("unknown", "sending"):
            self.jobs.finish(job_id, seq, "unknown", sending_id=sending_id,
                             reason=error or "the answer was lost: it may or may not have been sent")
        else:
            self.jobs.finish(job_id, seq, "failed", sending_id=sending_id, reason=error or "not sent")

    def _message(self, claim: Claim) -> PecMessage:
        """The request's message, rendered again from the job's templates and rechecked against the limits."""
        job = claim.job
        variables = {"address": claim.addresses[0], **claim.variables}
        subject, body = render(job.subject, variables).strip(), render(job.body, variables)
        files = load_attachments(job.attachments, self.settings)
        size = message_size(subject, body, files)
        if size * len(claim.addresses) > self.settings.sending.max_request_mb * MB:
            raise LimitExceeded("the attachments grew since the job was planned; this request is now over "
                                f"{self.settings.sending.max_request_mb:g} MB")
        return PecMessage(recipients=claim.addresses, subject=subject, body=body, attachments=files,
                          message_bytes=size, cost_eur=round(len(claim.addresses) *
                                                             self.settings.sending.price_per_message_eur, 2),
                          environment=job.environment)

    # -- recovery

    def recover(self) -> int:
        """Requests left ``sending`` by a runner that is gone: queued again if they never left, else settled from
        the ledger (``sent``, ``failed``, or ``unknown``: never resent by the runner)."""
        orphans = self.jobs.orphaned(self.owner, lease=LEASE)
        for job_id, seq in orphans:
            row = self.jobs.ledger_row(job_id, seq)
            if row is None or row["state"] == "queued":
                if row is not None:
                    # Let the next attempt reuse this ledger row (begin_send requeues a failed row).
                    self.store.mark_failed(row["id"], "interrupted before the request was sent")
                self.jobs.release(job_id, seq)
            elif row["state"] == "failed" and (row["error"] or "").startswith("interrupted before"):
                self.jobs.release(job_id, seq)
            elif row["state"] == "sending":
                reason = "the server stopped while this request was on its way; it may or may not have been sent"
                self.store.mark_unknown(row["id"], reason)
                self.jobs.finish(job_id, seq, "unknown", reason=reason, sending_id=row["id"])
            else:
                self._record(job_id, seq, row["state"], row["message_id"], row["id"], row["error"])
        if orphans:
            log.warning("resumed %d request(s) left unfinished by a server that stopped", len(orphans))
        return len(orphans)

    # -- delivery follow-up

    async def follow_due(self) -> int:
        """Read the receipts of the sent requests that are due a check; returns how many were read."""
        targets = self.jobs.due_followups(self.account, limit=self.policy.batch)
        for target in targets:
            await self._read_turn()
            try:
                report = await self.sender().status(target.message_id)
                outcomes = {o.address.lower(): (o.state, o.reason) for o in report.status.recipients}
            except PecError as exc:
                log.warning("could not read the receipts of %s: %s", target.message_id, exc.message)
                outcomes = {}
            timed_out = self.now() - target.sent_at >= self.policy.timeout
            settled = self._settle(target, outcomes, timed_out=timed_out)
            if self.jobs.record_delivery(target.job_id, target.seq, settled, self.now() + self.policy.interval):
                await self.notifier.changed(target.job_id)
        return len(targets)

    def _settle(self, target: FollowTarget, outcomes: Mapping[str, tuple[RecipientState, str | None]], *,
                timed_out: bool) -> dict[str, tuple[str, str | None]]:
        settled: dict[str, tuple[str, str | None]] = {}
        members = self.jobs.recipients_of(target.job_id, target.seq)
        for address in members:
            state, reason = outcomes.get(address.lower(), (RecipientState.PENDING, None))
            if state == RecipientState.DELIVERED:
                settled[address] = ("delivered", None)
            elif state == RecipientState.NOT_DELIVERED:
                settled[address] = ("not_delivered", reason)
            elif state == RecipientState.NOT_ACCEPTED:
                settled[address] = ("failed", f"not accepted by the provider: {reason}" if reason else "not accepted")
            elif timed_out:
                settled[address] = ("not_delivered", NO_RECEIPT_REASON)
        return settled

    async def _read_turn(self) -> None:
        now = self.now()
        start = max(now, self._next_read)
        self._next_read = start + 1.0 / self.policy.reads_per_second
        if start > now:
            await self.sleep(start - now)
