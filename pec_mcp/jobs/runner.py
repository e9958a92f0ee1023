"""The job runner: sends the queued requests of bulk jobs, recovers those left by a stopped server, follows receipts.

One runner per server serves every account that can send: each account has its own send workers and its own
receipt follow-up, so a slow account (a mailbox's SMTP pace) never holds up another. How a request goes out and how
its receipts are read is the account's :class:`pec_mcp.channels.Channel`; the runner never asks which kind it is.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from pec_mcp.accounts import Account, resolve_account
from pec_mcp.channels import Channel, Delivery
from pec_mcp.config import Settings
from pec_mcp.errors import LimitExceeded, PecError, RateLimited
from pec_mcp.jobs.notify import Notifier, Publish
from pec_mcp.jobs.planning import render
from pec_mcp.jobs.store import CANCELLED_REASON, Claim, FollowTarget, Job, JobStore, ledger_key
from pec_mcp.paths import MB
from pec_mcp.receipts import RecipientState
from pec_mcp.sending import PecMessage, load_attachments, message_size
from pec_mcp.store import Store, unavailable

log = logging.getLogger("pec_mcp.jobs")

NO_RECEIPT_REASON = "no delivery receipt within 24 hours"

Sleep = Callable[[float], Awaitable[None]]


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
RATE_LIMIT_ATTEMPTS = 10  # refusals (429) of one request before it is called failed: about ten minutes of waiting
RATE_LIMIT_MAX_WAIT = 120.0  # seconds: the longest pause between two tries, whatever Retry-After says


def rate_limit_wait(retry_after: float | None, attempt: int) -> float:
    """How long to wait after the ``attempt``-th 429: what Retry-After asks, never less than a doubling backoff."""
    backoff = min(2.0 ** (attempt - 1), RATE_LIMIT_MAX_WAIT)
    return min(max(retry_after or 0.0, backoff, 0.1), RATE_LIMIT_MAX_WAIT)


def job_actor(job: Job) -> str:
    """Who a job's sends are for, in the ledger: whoever started the job (a user's name when known)."""
    return f"{job.actor}, bulk job {job.id}" if job.actor else f"bulk job {job.id}"


class JobCancelled(PecError):
    """The job was cancelled while this request waited for its turn: nothing was sent."""


@dataclass
class JobRunner:
    """Sends the queued requests of the jobs of ``accounts`` and follows their receipts, until cancelled.

    ``channel`` gives an account's channel by name; it is called only when that account has work, so an account
    with no job never connects anywhere.
    """

    store: Store
    settings: Settings
    channel: Callable[[str], Channel]
    accounts: Sequence[str] = ("pecmassiva",)
    publish: Publish | None = None
    policy: FollowUpPolicy = FollowUpPolicy()
    clock: Callable[[], float] | None = None
    sleep: Sleep = anyio.sleep
    workers: int = 2
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")

    def __post_init__(self) -> None:
        self.jobs = JobStore(self.store)
        self.now = self.clock or self.store.clock
        self.notifier = Notifier(self.publish, self.now)
        self._wake = anyio.Event()
        self._next_read: dict[str, float] = {}
        self._in_flight: set[tuple[str, int]] = set()
        self._accounts: dict[str, Account] = {}

    def wake(self) -> None:
        """A job was started: look for work now rather than at the next idle check."""
        self._wake.set()
        self._wake = anyio.Event()

    async def run(self) -> None:
        await self._start()
        try:
            async with anyio.create_task_group() as tg:
                for account in self.accounts:
                    for _ in range(self.workers):
                        tg.start_soon(self._send_loop, account)
                    tg.start_soon(self._follow_loop, account)
                tg.start_soon(self._housekeeping)
        finally:
            # A clean stop: the requests this runner held are settled, so others need not wait for its lease.
            try:
                self.jobs.forget_runner(self.owner)
            except Exception:
                log.warning("the bulk job runner stopped without the store: other runners wait for its lease")

    async def _start(self) -> None:
        """Announce this runner and settle what a dead one left. While the store cannot be used (a database
        outage as the server starts), try again: the server goes on serving, and the jobs wait for the store."""
        while True:
            try:
                self.jobs.heartbeat(self.owner)
                self.recover()
                return
            except Exception as exc:
                _failed(f"the bulk job runner cannot start yet; it tries again in {IDLE:.0f} s", exc)
            await self.sleep(IDLE)

    async def _send_loop(self, account: str) -> None:
        while True:
            try:
                busy = await self.send_next(account)
            except Exception as exc:
                _failed("the bulk job runner met a problem; it carries on", exc)
                busy = False
            if not busy:
                await self._nap(IDLE)

    async def _follow_loop(self, account: str) -> None:
        while True:
            try:
                await self.follow_due(account)
                due = self.jobs.next_followup_at(self.settings.env, account)
            except Exception as exc:
                _failed("the receipt follow-up met a problem; it carries on", exc)
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
                except Exception as exc:
                    _failed("job runner housekeeping failed; it carries on", exc)

    async def _nap(self, seconds: float) -> None:
        event = self._wake
        with anyio.move_on_after(seconds):
            await event.wait()

    # -- sending

    async def send_next(self, account: str | None = None) -> bool:
        """Send the next queued request of ``account`` (None: of the first of this runner's accounts that has one);
        returns whether there was one."""
        claim = None
        for name in [account] if account else self.accounts:
            claim = self.jobs.claim_next(self.owner, self.settings.env, name)
            if claim is not None:
                break
        if claim is None:
            return False
        key = (claim.job.id, claim.seq)
        self._in_flight.add(key)  # before any await: recovery must not take a request this runner works on
        try:
            await self.notifier.changed(claim.job.id)
            await self._send(claim)
        finally:
            self._in_flight.discard(key)
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
            outcome = await self.channel(claim.job.account).send(
                message, idempotency_key=claim.key or ledger_key(job_id, seq), actor=job_actor(claim.job),
                job_id=job_id, before_dispatch=before_dispatch)
        except JobCancelled:
            self.jobs.finish(job_id, seq, "cancelled", reason=CANCELLED_REASON)
            return
        except RateLimited as exc:
            # A 429 means the provider refused the request: nothing was sent, so it goes back to the queue (a crash
            # during the wait then loses nothing) and this worker pauses as the provider asked (the pacer pauses the
            # other senders too). Only after RATE_LIMIT_ATTEMPTS refusals, minutes apart, is it called failed.
            if claim.attempts >= RATE_LIMIT_ATTEMPTS:
                self.jobs.finish(job_id, seq, "failed", reason=f"{exc.message} ({claim.attempts} times, the last "
                                 f"{RATE_LIMIT_MAX_WAIT:.0f} s apart): nothing was sent; retry_bulk_pec with "
                                 "which='failed' queues it again")
                return
            self.jobs.release(job_id, seq)
            wait = rate_limit_wait(exc.retry_after, claim.attempts)
            log.warning("the provider of account %s refused request %d of job %s as too many; retrying in %.1f s",
                        claim.job.account, seq, job_id, wait)
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
        if outcome.sending.state in ("sent", "unknown"):
            self.channel(claim.job.account).receipts_coming()

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
        price = self._account(job.account).price_per_message_eur
        return PecMessage(recipients=claim.addresses, subject=subject, body=body, attachments=files,
                          message_bytes=size, cost_eur=round(len(claim.addresses) * price, 2),
                          environment=job.environment)

    def _account(self, name: str) -> Account:
        found = self._accounts.get(name)
        if found is None:
            found = self._accounts[name] = resolve_account(self.settings, name)
        return found

    # -- recovery

    def recover(self) -> int:
        """Requests left ``sending`` by a runner that is gone, or by this one when the store was unreachable as
        their outcome came: queued again if they never left, else settled from the ledger (``sent``, ``failed``,
        or ``unknown``: never resent by the runner)."""
        orphans = self.jobs.orphaned(self.owner, lease=LEASE, in_flight=set(self._in_flight))
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

    async def follow_due(self, account: str | None = None) -> int:
        """Read the receipts of the sent requests of ``account`` (None: of every account of this runner) that are
        due a check; returns how many were read."""
        read = 0
        for name in [account] if account else self.accounts:
            for target in self.jobs.due_followups(self.settings.env, name, limit=self.policy.batch):
                await self._read_turn(name)
                await self._follow(name, target)
                read += 1
        return read

    async def _follow(self, account: str, target: FollowTarget) -> None:
        try:
            delivery = await self.channel(account).delivery(target.message_id)
            if delivery.unreachable:  # the ledger's receipts answered: what they settle stays settled
                log.warning("could not read the receipts of %s: %s", target.message_id, delivery.unreachable)
        except PecError as exc:
            log.warning("could not read the receipts of %s: %s", target.message_id, exc.message)
            delivery = None
        timed_out = self.now() - target.sent_at >= self.policy.timeout
        settled = self._settle(target, delivery, timed_out=timed_out)
        if self.jobs.record_delivery(target.job_id, target.seq, settled, self.now() + self.policy.interval):
            await self.notifier.changed(target.job_id)

    def _settle(self, target: FollowTarget, delivery: Delivery | None, *,
                timed_out: bool) -> dict[str, tuple[str, str | None]]:
        outcomes: Mapping[str, tuple[RecipientState, str | None]] = {} if delivery is None else {
            o.address.lower(): (o.state, o.reason) for o in delivery.status.recipients}
        not_counted = {} if delivery is None else delivery.not_counted
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
                forged = not_counted.get(address.lower())
                settled[address] = ("not_delivered", NO_RECEIPT_REASON + (f"; {forged}" if forged else ""))
            elif address.lower() in not_counted:
                settled[address] = ("sent", not_counted[address.lower()])  # still waiting, and why
        return settled

    async def _read_turn(self, account: str) -> None:
        now = self.now()
        start = max(now, self._next_read.get(account, 0.0))
        self._next_read[account] = start + 1.0 / self.policy.reads_per_second
        if start > now:
            await self.sleep(start - now)


def _failed(what: str, exc: Exception) -> None:
    """A loop of the runner met an error and carries on: the store's database away is one line with its reason
    (each loop says it once a second until the database is back); anything else is logged with its traceback."""
    reason = unavailable(exc)
    if reason is None:
        log.error("%s", what, exc_info=exc)
    else:
        log.warning("%s: the store's database could not be used (%s)", what, reason)
