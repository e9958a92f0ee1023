"""The job tables (jobs, their requests, recipients and runners) and every read and write of them."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from pec_mcp.idempotency import check_same, content_hash
from pec_mcp.jobs.planning import BulkPlan
from pec_mcp.store import Store

RECIPIENT_STATES = ("queued", "sending", "sent", "failed", "unknown", "delivered", "not_delivered", "cancelled")
CANCELLED_REASON = "the job was cancelled before this was sent"
_VERDICT_RANK = {"invalid": 1, "valid_untrusted": 2, "valid": 3}  # a recipient shows the best verdict they have


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
    actor: str | None = None
    content_hash: str | None = None
    content: dict[str, Any] | None = None


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
    key: str = ""  # the ledger key of this attempt (see ledger_key)


@dataclass(frozen=True)
class RetryCandidates:
    """What ``retry_bulk_pec`` would queue again, and what it leaves alone (and why)."""

    groups: list[int]
    addresses: list[str]
    left_alone: dict[str, int]  # reason -> recipients


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
               cost_eur=row["cost_eur"], created_at=row["created_at"], cancelled_at=row["cancelled_at"],
               actor=row["actor"], content_hash=row["content_hash"],
               content=json.loads(row["content"]) if row["content"] else None)


def ledger_key(job_id: str, seq: int, *, after: int | None = None) -> str:
    """The idempotency key of a request's ledger row. A request sent again after the user checked that its
    unknown first attempt (ledger row ``after``) did not arrive is a new send, with a key of its own."""
    return f"bulk:{job_id}:{seq}" + (f":after-{after}" if after is not None else "")


def _group_key(db: Any, job_id: str, seq: int) -> str:
    """The ledger key the request's next (or current) attempt uses; see :func:`ledger_key`.

    A request queued again while its last ledger row is ``unknown`` was re-queued by the user after checking
    (``retry_bulk_pec(which="unknown_checked")``): only that path leaves a queued request on an unknown row.
    """
    row = db.execute("""SELECT s.id, s.state, s.idempotency_key FROM job_groups g JOIN sendings s ON s.id = g.sending_id
                        WHERE g.job_id = ? AND g.seq = ?""", (job_id, seq)).fetchone()
    if row is None:
        return ledger_key(job_id, seq)
    if row["state"] == "unknown":
        group_state = db.execute("SELECT state FROM job_groups WHERE job_id = ? AND seq = ?", (job_id, seq)).fetchone()
        if group_state[0] in ("queued", "sending"):
            return ledger_key(job_id, seq, after=int(row["id"]))
    return str(row["idempotency_key"])


def _ledger_id(db: Any, job_id: str, key: str) -> int | None:
    """The ledger row of a job's key, in the job's own environment and account (None if there is none yet)."""
    row = db.execute("SELECT s.id FROM sendings s JOIN jobs j ON j.id = ? WHERE s.environment = j.environment AND "
                     "s.account = j.account AND s.idempotency_key = ?", (job_id, key)).fetchone()
    return None if row is None else int(row[0])


class JobStore:
    """The job tables of a :class:`Store`; every method is one short transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, plan: BulkPlan, *, idempotency_key: str | None, attachment_paths: Sequence[str],
               account: str | None = None, actor: str | None = None,
               content: dict[str, Any] | None = None) -> tuple[Job, bool]:
        """Write the job, its requests and its recipients, all queued, on the plan's account (``account``, when
        given, must name it); the same key in the same environment and account gives back the first job (the
        caller compares its content: see pec_mcp.idempotency)."""
        if account is not None and account != plan.account.name:
            raise ValueError(f"the job was planned for the account {plan.account.name}, not {account}")
        account = plan.account.name
        now = self.store.clock()
        job_id = f"job-{time.strftime('%Y%m%d', time.gmtime(now))}-{secrets.token_hex(4)}"
        group_of = {}
        for seq, members in enumerate(plan.requests, start=1):
            for index in members:
                group_of[index] = seq
        with self.store.transaction(immediate=True) as db:
            if idempotency_key is not None:
                existing = db.execute("SELECT * FROM jobs WHERE environment = ? AND account = ? AND "
                                      "idempotency_key = ?", (plan.environment, account, idempotency_key)).fetchone()
                if existing is not None:
                    return _job(existing), False
            db.execute(
                """INSERT INTO jobs (id, provider, environment, account, idempotency_key, subject, body, attachments,
                       total, requests, cost_eur, actor, content_hash, content, created_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (job_id, plan.account.kind, plan.environment, account, idempotency_key, plan.subject, plan.body,
                 json.dumps([str(a.path) for a in plan.attachments] or list(attachment_paths)), plan.total,
                 len(plan.requests), plan.cost_eur, actor, content_hash(content) if content else None,
                 json.dumps(content, ensure_ascii=False, sort_keys=True) if content else None, now),
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

    def job_by_key(self, environment: str, account: str, idempotency_key: str) -> Job | None:
        with self.store.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE environment = ? AND account = ? AND idempotency_key = ?",
                             (environment, account, idempotency_key)).fetchone()
        return _job(row) if row else None

    def check_key(self, environment: str, account: str, idempotency_key: str | None,
                  content: dict[str, Any], addresses: Sequence[str]) -> Job | None:
        """The job this key started in this environment and account, if any; KeyReused if it was for other
        content (see pec_mcp.idempotency)."""
        if not idempotency_key:
            return None
        first = self.job_by_key(environment, account, idempotency_key)
        if first is not None:
            check_same(key=idempotency_key, first_hash=first.content_hash, first_content=first.content,
                       first_recipients=[] if first.content else self.addresses(first.id), first_subject=first.subject,
                       first_state="a bulk job " + first.id, content=content, addresses=addresses)
        return first

    def addresses(self, job_id: str) -> list[str]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT address FROM job_recipients WHERE job_id = ? ORDER BY row", (job_id,)).fetchall()
        return [r[0] for r in rows]

    def recent(self, limit: int, *, environment: str | None = None) -> list[Job]:
        """The newest jobs of one environment (None: every environment)."""
        where, args = ("WHERE environment = ?", (environment,)) if environment else ("", ())
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                              (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    def queued_requests(self, environment: str, account: str, *, before: float | None = None) -> int:
        """Requests waiting to be sent on this account (of jobs created before ``before``, when given)."""
        sql = """SELECT COUNT(*) FROM job_groups g JOIN jobs j ON j.id = g.job_id
                 WHERE g.state IN ('queued', 'sending') AND j.environment = ? AND j.account = ?"""
        args: tuple[Any, ...] = (environment, account)
        if before is not None:
            sql += " AND j.created_at < ?"
            args = (environment, account, before)
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
                   AND j.environment = ? AND j.account = ? AND j.created_at < ? AND j.id != ?""",
                (job.environment, job.account, job.created_at, job_id),
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

    def receipt_verdicts(self, job_id: str) -> dict[str, str]:
        """Per recipient (lower-case), the verdict on the signature of the receipts about their delivery that the
        ledger keeps for the job's sendings: the best of ``valid`` > ``valid_untrusted`` > ``invalid``. Only
        receipts read from a mailbox carry one; PEC Massiva's receipts API gives them without their signatures."""
        with self.store.transaction() as db:
            rows = db.execute(
                """SELECT lower(r.recipient), r.signature FROM receipts r JOIN jobs j ON j.id = ?
                   JOIN job_groups g ON g.job_id = j.id AND g.message_id = r.message_id
                   WHERE r.environment = j.environment AND r.account = j.account AND r.recipient IS NOT NULL
                   AND r.signature IS NOT NULL AND r.kind NOT IN ('accepted', 'envelope', 'other')""",
                (job_id,)).fetchall()
        verdicts: dict[str, str] = {}
        for address, verdict in rows:
            best = verdicts.get(address)
            if best is None or _VERDICT_RANK.get(verdict, 0) > _VERDICT_RANK.get(best, 0):
                verdicts[address] = verdict
        return verdicts

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

    def claim_next(self, owner: str, environment: str, account: str) -> Claim | None:
        """Take the oldest queued request of this environment and account: its group and recipients become
        ``sending``."""
        now = self.store.clock()
        with self.store.transaction(immediate=True) as db:
            row = db.execute(
                """SELECT g.job_id, g.seq, g.attempts FROM job_groups g JOIN jobs j ON j.id = g.job_id
                   WHERE g.state = 'queued' AND j.environment = ? AND j.account = ? AND j.cancelled_at IS NULL
                   ORDER BY j.created_at, j.rowid, g.seq LIMIT 1""",
                (environment, account),
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
            key = _group_key(db, job_id, seq)
        return Claim(job, seq, [m["address"] for m in members], json.loads(members[0]["variables"]), row[2] + 1,
                     key)

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

    def due_followups(self, environment: str, account: str, *, limit: int) -> list[FollowTarget]:
        now = self.store.clock()
        with self.store.transaction() as db:
            rows = db.execute(
                """SELECT g.job_id, g.seq, g.message_id, g.sent_at FROM job_groups g JOIN jobs j ON j.id = g.job_id
                   WHERE g.followed = 0 AND g.state = 'sent' AND g.next_check_at <= ? AND j.environment = ?
                   AND j.account = ? ORDER BY g.next_check_at LIMIT ?""",
                (now, environment, account, limit),
            ).fetchall()
        return [FollowTarget(r[0], r[1], r[2], r[3]) for r in rows]

    def recipients_of(self, job_id: str, seq: int) -> list[str]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT address FROM job_recipients WHERE job_id = ? AND group_seq = ? ORDER BY row",
                              (job_id, seq)).fetchall()
        return [r[0] for r in rows]

    def next_followup_at(self, environment: str, account: str) -> float | None:
        with self.store.transaction() as db:
            row = db.execute(
                """SELECT MIN(g.next_check_at) FROM job_groups g JOIN jobs j ON j.id = g.job_id
                   WHERE g.followed = 0 AND g.state = 'sent' AND j.environment = ? AND j.account = ?""",
                (environment, account)).fetchone()
        return None if row[0] is None else float(row[0])

    def record_delivery(self, job_id: str, seq: int, outcomes: Mapping[str, tuple[str, str | None]],
                        next_check_at: float) -> bool:
        """Per-recipient outcomes of a sent request; returns whether any changed. Done when none is pending."""
        now = self.store.clock()
        changed = False
        with self.store.transaction(immediate=True) as db:
            for address, (state, reason) in outcomes.items():
                # A recipient still 'sent' may get a reason (a receipt not counted): only a change counts.
                changed |= db.execute(
                    """UPDATE job_recipients SET state = ?, reason = ?, updated_at = ? WHERE job_id = ? AND
                           group_seq = ? AND lower(address) = ? AND state = 'sent'
                           AND (state != ? OR COALESCE(reason, '') != COALESCE(?, ''))""",
                    (state, reason, now, job_id, seq, address.lower(), state, reason),
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

    def orphaned(self, owner: str, *, lease: float,
                 in_flight: AbstractSet[tuple[str, int]] = frozenset()) -> list[tuple[str, int]]:
        """Requests left ``sending`` by a runner that is gone (its process died, or it stopped beating), and this
        runner's own that it no longer works on (the store was unreachable when their outcome came)."""
        with self.store.transaction() as db:
            rows = db.execute("SELECT job_id, seq, owner FROM job_groups WHERE state = 'sending'").fetchall()
            runners = {r["owner"]: r for r in db.execute("SELECT * FROM job_runners").fetchall()}
        now = self.store.clock()
        return [(r["job_id"], r["seq"]) for r in rows
                if (r["job_id"], r["seq"]) not in in_flight
                and (r["owner"] == owner or _gone(runners.get(r["owner"]), now, lease))]

    def ledger_row(self, job_id: str, seq: int) -> Any:
        with self.store.transaction() as db:
            return db.execute("SELECT id, state, message_id, error FROM sendings WHERE id = ?",
                              (_ledger_id(db, job_id, _group_key(db, job_id, seq)),)).fetchone()

    # -- sending again

    def retry_candidates(self, job_id: str, which: str) -> RetryCandidates:
        """The requests ``which`` would queue again: ``failed`` ones whose ledger proves nothing left, or ``unknown``
        ones (``which == "unknown_checked"``: the user checked that they did not arrive)."""
        with self.store.transaction() as db:
            return _candidates(db, job_id, which)

    def requeue(self, job_id: str, which: str) -> RetryCandidates:
        """Queue the candidates again, in one transaction (so two callers never both queue the same request)."""
        now = self.store.clock()
        with self.store.transaction(immediate=True) as db:
            found = _candidates(db, job_id, which)
            for seq in found.groups:
                db.execute("UPDATE job_groups SET state = 'queued', error = NULL, owner = NULL, attempts = 0, "
                           "updated_at = ? WHERE job_id = ? AND seq = ?", (now, job_id, seq))
                db.execute("UPDATE job_recipients SET state = 'queued', reason = NULL, updated_at = ? WHERE job_id = ? "
                           "AND group_seq = ?", (now, job_id, seq))
        return found


def _gone(runner: Any, now: float, lease: float) -> bool:
    if runner is None or now - runner["seen_at"] > lease:
        return True
    return runner["host"] == socket.gethostname() and not pid_alive(int(runner["pid"]))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _candidates(db: Any, job_id: str, which: str) -> RetryCandidates:
    wanted = "failed" if which == "failed" else "unknown"
    groups: list[int] = []
    left: dict[str, int] = {}
    for group in db.execute("SELECT seq, state, recipients FROM job_groups WHERE job_id = ? AND state IN "
                            "('failed', 'unknown') ORDER BY seq", (job_id,)).fetchall():
        if group["state"] != wanted:
            reason = ("outcome unknown: may have been sent; retry with which='unknown_checked' only after "
                      "checking it did not arrive" if group["state"] == "unknown" else
                      "refused, not sent: retry with which='failed'")
            left[reason] = left.get(reason, 0) + group["recipients"]
            continue
        ledger = db.execute("SELECT state FROM sendings WHERE id = ?",
                            (_ledger_id(db, job_id, _group_key(db, job_id, group["seq"])),)).fetchone()
        may_have_left = ledger is not None and ledger["state"] in ("sending", "sent")
        if wanted == "failed" and may_have_left:
            left["the ledger says it may have been sent"] = left.get("the ledger says it may have been sent", 0) \
                + group["recipients"]
            continue
        groups.append(group["seq"])
    not_accepted = db.execute("""SELECT COUNT(*) FROM job_recipients r JOIN job_groups g ON g.job_id = r.job_id AND
                                 g.seq = r.group_seq WHERE r.job_id = ? AND r.state = 'failed' AND g.state = 'sent'""",
                              (job_id,)).fetchone()[0]
    if not_accepted:
        left["sent but not accepted by the provider (the same message would be refused again): start a new job "
             "with the content corrected"] = not_accepted
    addresses = [r[0] for r in db.execute(
        f"SELECT address FROM job_recipients WHERE job_id = ? AND group_seq IN ({','.join('?' * len(groups))}) "
        "ORDER BY row", (job_id, *groups)).fetchall()] if groups else []
    return RetryCandidates(groups, addresses, left)
