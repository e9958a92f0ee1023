"""How a PEC goes out from an account and how its delivery is read back, for each kind of account.

This is the one place that tells a PEC Massiva account from an IMAP/SMTP mailbox. ``send_pec`` and the bulk job
runner both hold a :class:`Channel` and never ask which kind it is:

- ``PecMassivaChannel``: sends through PEC Massiva's API (``pec_mcp.sending.PecSender``) and reads receipts from
  its receipts API (merged with those the ledger kept);
- ``MailboxChannel``: sends over SMTP (``pec_mcp.mail_sending.MailSender``) and reads the receipts the mailbox sync
  verified and kept in the ledger (``pec_mcp.mail_receipts``), counting none whose signature is ``invalid``.

Both keep the rules of the send path: the ledger row before the request, one row per request, a lost answer
``unknown`` and never resent. Nothing here knows MCP or opens a connection before it is needed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pec_mcp.receipts import SETTLED, DeliveryStatus, ReceiptKind, SendingStatus, advance

if TYPE_CHECKING:
    from pec_mcp.accounts import Account
    from pec_mcp.mail_accounts import MailAccount, MailDelivery
    from pec_mcp.mail_sending import MailSender
    from pec_mcp.sending import PecMessage, PecSender, SendOutcome
    from pec_mcp.store import Receipt, Sending, Store

BeforeDispatch = Callable[[], Awaitable[None]]
SYNC_GAP = 2.0  # seconds: the job runner's delivery reads sync a mailbox at most this often


@dataclass(frozen=True)
class Delivery:
    """What the receipts of one sending say now, per recipient.

    ``unreachable``: what the provider said when it could not be read (the ledger answered alone).
    ``not_counted``: per recipient (lower-case), why receipts about them were left out (an invalid signature: a
    forged or tampered CONSEGNA is never proof).
    """

    status: SendingStatus
    unreachable: str | None = None
    not_counted: dict[str, str] = field(default_factory=dict)


class Channel(Protocol):
    """How one account sends a PEC and reads its delivery."""

    account: Account

    async def send(self, message: PecMessage, *, idempotency_key: str | None, actor: str, job_id: str | None = None,
                   before_dispatch: BeforeDispatch | None = None) -> SendOutcome:
        """One request through the ledger (see ``pec_mcp.sending.submit_once``); ``before_dispatch`` runs after
        the pacing wait, right before the request leaves: raising there sends nothing."""
        ...

    async def delivery(self, message_id: str) -> Delivery:
        """The delivery of a sending of this account, from every receipt seen so far."""
        ...

    def receipts_coming(self) -> None:
        """A sending left: its receipts are on their way, so the next read of the mailbox must not be stale."""
        ...


class PecMassivaChannel:
    """The PEC Massiva account: its API sends, its receipts API answers."""

    def __init__(self, account: Account, sender: PecSender, *, on_sent: Callable[[], None] = lambda: None) -> None:
        self.account = account
        self.sender = sender
        self._on_sent = on_sent

    async def send(self, message: PecMessage, *, idempotency_key: str | None, actor: str, job_id: str | None = None,
                   before_dispatch: BeforeDispatch | None = None) -> SendOutcome:
        return await self.sender.send(message, idempotency_key=idempotency_key, actor=actor, job_id=job_id,
                                      before_dispatch=before_dispatch)

    async def delivery(self, message_id: str) -> Delivery:
        report = await self.sender.status(message_id)
        return Delivery(status=report.status, unreachable=report.unreachable)

    def receipts_coming(self) -> None:
        self._on_sent()


class MailboxChannel:
    """An IMAP/SMTP mailbox: SMTP sends, the receipts arrive in its INBOX, signed, and are verified there.

    The SMTP sender and the mailbox are made on first use (offline that starts the simulator's PEC provider), and
    then kept: one sender per account, so its pacer's turns pass through one lock in this process. A delivery read
    syncs the mailbox itself (one UID SEARCH and the headers of what is new) at most every ``SYNC_GAP`` seconds,
    so receipts are found even when the background follower has not brought them in yet.
    """

    def __init__(self, account: Account, sender: Callable[[], MailSender], mail: Callable[[], MailAccount],
                 store: Store) -> None:
        self.account = account
        self._make_sender = sender
        self._sender: MailSender | None = None
        self._mail = mail
        self.store = store
        self._synced_at = 0.0

    async def send(self, message: PecMessage, *, idempotency_key: str | None, actor: str, job_id: str | None = None,
                   before_dispatch: BeforeDispatch | None = None) -> SendOutcome:
        if self._sender is None:
            self._sender = self._make_sender()
        return await self._sender.send(message, idempotency_key=idempotency_key, actor=actor, job_id=job_id,
                                       before_dispatch=before_dispatch)

    async def delivery(self, message_id: str) -> Delivery:
        row = self.store.sending_by_message_id(message_id, provider="imap", environment=self.account.environment)
        fresh = time.monotonic() - self._synced_at >= SYNC_GAP
        if fresh:
            self._synced_at = time.monotonic()
        found, _ = await mailbox_delivery(self.store, self._mail(), message_id, row, fresh=fresh)
        not_counted: dict[str, str] = {}
        for receipt in found.ignored:
            if receipt.recipient:
                not_counted.setdefault(receipt.recipient.lower(), _ignored_reason(receipt.kind,
                                                                                  receipt.signature_detail))
        return Delivery(status=found.status, not_counted=not_counted)

    def receipts_coming(self) -> None:
        self._mail().mark_stale()


async def mailbox_delivery(store: Store, mail: MailAccount, message_id: str, row: Sending | None, *,
                           fresh: bool = False) -> tuple[MailDelivery, list[Receipt]]:
    """The delivery of a sending from a mailbox, and every receipt the ledger keeps of it (in the order first seen):
    the mailbox synced when its index is old, or now when ``fresh`` (new receipts read, verified and kept), each
    receipt counted unless its signature is invalid. The ledger row's status moves forward only.

    While the sending waits for receipts, "old" is ``SYNC_GAP``: the background follower brings receipts in as the
    server announces them, but an answer to "was it delivered?" must not lag behind the server by the index's
    usual minute if an announcement was missed.
    """
    from pec_mcp.mail_accounts import mail_delivery

    settled = row is not None and row.delivery_status in {s.value for s in SETTLED}
    await mail.refresh(force=fresh, max_age=None if settled else SYNC_GAP)
    account = mail.account
    receipts = store.receipts_of(environment=account.environment, account=account.name, message_id=message_id)
    recipients = row.recipients if row else sorted({r.recipient for r in receipts if r.recipient})
    found = mail_delivery(recipients, receipts)
    if row is not None and receipts:
        recorded = DeliveryStatus(row.delivery_status) if row.delivery_status else None
        store.update_delivery(row.id, advance(recorded, found.status.status).value, found.status.summary)
    return found, receipts


def _ignored_reason(kind: str, detail: str | None) -> str:
    what = "a CONSEGNA" if kind == ReceiptKind.DELIVERED.value else f"a receipt ({kind})"
    return (f"{what} arrived with an invalid signature ({detail or 'no detail'}): not legal proof, not counted; "
            "still waiting for a genuine receipt")
