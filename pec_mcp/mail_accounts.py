"""What the PEC tools do on an IMAP/SMTP account: inbox, messages, deletion, quota, receipts, through the index.

One :class:`MailAccount` per IMAP account and server. Every answer about the mailbox comes from the local index
(``pec_mcp.pecmail.index``), synced first when it is older than ``max_age`` (a sync costs one UID SEARCH and
the headers of what is new), so a receipt lookup in a mailbox of ten thousand messages is a query on the store,
not a SEARCH on the server. Reading, deleting and the quota talk to the server. Nothing here knows MCP.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from pec_mcp.accounts import Account, MailEndpoints
from pec_mcp.errors import NotFound
from pec_mcp.paths import free_name, write_new_file
from pec_mcp.pecmail.imap import ImapClient, Quota
from pec_mcp.pecmail.index import IndexedMail, MailIndex, MailPage
from pec_mcp.pecmail.message import KIND_OF_TIPO, Attachment, PecMessage, parse_pec_message
from pec_mcp.pecmail.signature import TrustStore
from pec_mcp.pecmail.sync import MailboxSync, ReceiptHandler, SyncReport
from pec_mcp.receipts import ClassifiedReceipt, ReceiptKind, SendingStatus, sending_status
from pec_mcp.store import Receipt, Store

INDEX_MAX_AGE = 60.0  # seconds an answer from the index may lag behind the server

def header_kind(mail: IndexedMail) -> str:
    """The kind a message claims in its headers (receipts and envelopes), else ``other``."""
    # Outside the signature, so for listing only: a receipt's real kind comes from its verified daticert.xml.
    claimed = (mail.x_ricevuta or mail.x_trasporto or "").strip().lower()
    return KIND_OF_TIPO.get(claimed, ReceiptKind.OTHER).value


@dataclass(frozen=True)
class ReadMessage:
    """One message read from the server: its index entry and what it holds (for an incoming PEC, the original
    unpacked from postacert.eml; for a receipt, its text and signed facts), with the signature's verdict."""

    mail: IndexedMail
    message: PecMessage

    @property
    def is_certified(self) -> bool:
        """A PEC (receipt or envelope) rather than ordinary mail: signed, or claiming to be by its headers."""
        headers = self.message.headers
        return self.message.daticert is not None or bool(headers.x_ricevuta or headers.x_trasporto)


def save_attachments(attachments: Sequence[Attachment], folder: Path) -> list[Path]:
    """Write each attachment into ``folder`` (already checked to be allowed) under its own name, never over an
    existing file (``atto (2).pdf`` then), decoded a piece at a time."""
    saved = []
    for attachment in attachments:
        target = free_name(folder, attachment.filename)
        write_new_file(target, attachment.chunks())
        saved.append(target)
    return saved


class MailAccount:
    """The PEC operations of one IMAP account on one server; sessions are opened per operation."""

    def __init__(self, account: Account, endpoints: MailEndpoints, store: Store, *,
                 on_receipts: ReceiptHandler | None = None, max_age: float = INDEX_MAX_AGE,
                 clock: Callable[[], float] = time.time, timeout: float = 30.0) -> None:
        self.account = account
        self.endpoints = endpoints
        self.index = MailIndex(store, environment=account.environment, account=account.name, clock=clock)
        self.sync = MailboxSync(self.index, on_receipts=on_receipts)
        self.max_age = max_age
        self.clock = clock
        self.timeout = timeout
        self._lock = anyio.Lock()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ImapClient]:
        async with ImapClient(self.endpoints.imap, self.endpoints.login, timeout=self.timeout) as imap:
            yield imap

    # -- freshness ---------------------------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False, max_age: float | None = None) -> float:
        """Sync the index when older than ``max_age`` (None: this account's own) or when forced; returns when it
        was last synced."""
        limit = self.max_age if max_age is None else max_age
        state = self.index.state()
        if not force and state is not None and self.clock() - state.synced_at < limit:
            return state.synced_at
        async with self._lock:
            state = self.index.state()
            if not force and state is not None and self.clock() - state.synced_at < limit:
                return state.synced_at
            return (await self.sync_now()).synced_at

    async def sync_now(self) -> SyncReport:
        async with self.session() as imap:
            return await self.sync.sync(imap)

    def mark_stale(self) -> None:
        self.index.mark_stale()

    # -- answers -----------------------------------------------------------------------------------------------

    async def inbox(self, *, query: str | None, page: int) -> MailPage:
        await self.refresh()
        return self.index.page(query=query, page=page)

    async def receipts_of(self, message_id: str) -> list[IndexedMail]:
        """The messages of one sending (by X-Riferimento-Message-ID), after a sync if the index is old."""
        await self.refresh()
        return self.index.referring_to(message_id)

    async def read(self, uid: int, *, trust: TrustStore | None) -> ReadMessage:
        """One message, whole, from the server, parsed and its signature verified (NotFound when it is not in
        the mailbox any more). The raw bytes are dropped once parsed: one copy of a large message, not two."""
        await self.refresh()
        mail = self.index.get(uid)
        raw = None
        if mail is not None:
            async with self.session() as imap:
                await imap.select(self.index.folder)
                raw = await imap.message(uid)
        if mail is None or raw is None:
            raise self._not_found(uid)
        return ReadMessage(mail=mail, message=parse_pec_message(raw, trust=trust))

    async def get(self, uid: int) -> IndexedMail:
        """The indexed headers of one message (NotFound when it is not in the mailbox)."""
        await self.refresh()
        mail = self.index.get(uid)
        if mail is None:
            raise self._not_found(uid)
        return mail

    async def delete(self, uid: int) -> IndexedMail:
        """Delete one message on the server; its headers stay in the index, marked deleted."""
        await self.refresh()
        mail = self.index.get(uid)
        if mail is None:
            raise self._not_found(uid)
        await self.delete_many([mail])
        return mail

    async def receipts_on_server(self, message_id: str) -> tuple[list[IndexedMail], list[IndexedMail]]:
        """A sending's receipts still on the server, after a sync: those already read, verified and kept in the
        ledger with the message as received (safe to delete), and those not read yet (they stay on the server
        until a sync has kept them)."""
        await self.refresh(force=True)
        mails = self.index.referring_to(message_id)
        unread = self.index.unread_receipts_of(message_id)
        return [m for m in mails if m.uid not in unread], [m for m in mails if m.uid in unread]

    async def delete_many(self, mails: Sequence[IndexedMail]) -> None:
        """Delete these messages on the server in one command; their headers stay in the index, marked deleted."""
        uids = [m.uid for m in mails]
        async with self.session() as imap:
            await imap.select(self.index.folder, readonly=False)
            await imap.delete(uids)
        self.index.forget(uids)

    async def quota(self, folder: str = "INBOX") -> Quota | None:
        async with self.session() as imap:
            return await imap.quota(folder)

    def _not_found(self, uid: int) -> NotFound:
        return NotFound(f"There is no message {uid} in the {self.index.folder} of the account {self.account.name!r}",
                        provider=f"IMAP {self.endpoints.imap.host}",
                        hint=f"List the inbox with list_pec_inbox(account=\"{self.account.name}\") for current ids.")


@dataclass(frozen=True)
class MailDelivery:
    """The delivery status of a sending made from an IMAP account, from the receipts the ledger keeps."""

    status: SendingStatus
    counted: list[Receipt]
    ignored: list[Receipt]  # signature invalid: reported with the reason, never counted


def mail_delivery(recipients: Sequence[str], receipts: Sequence[Receipt]) -> MailDelivery:
    """Per-recipient status from every receipt with a valid (or, without a trust list, untrusted) signature.

    An ``invalid`` receipt (forged, tampered, unsigned) is left out: a forged CONSEGNA never makes a recipient
    delivered, whatever its headers and subject claim.
    """
    counted = [r for r in receipts if r.signature != "invalid"]
    ignored = [r for r in receipts if r.signature == "invalid"]
    classified = [ClassifiedReceipt(ReceiptKind(r.kind), "", r.recipient, r.reason, r.date) for r in counted]
    return MailDelivery(status=sending_status(recipients, classified), counted=counted, ignored=ignored)
