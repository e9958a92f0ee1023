"""Follow an IMAP mailbox: new mail indexed by UID as it arrives, with IDLE where offered, else a UID poll.

A sync never walks the whole mailbox: it asks for the UIDs above the last one indexed (``UID SEARCH n:*``) and
fetches only their headers, a batch at a time (see ``pec_mcp.pecmail.index`` for why nothing is lost when it is
cut short). A changed UIDVALIDITY restarts the folder's index; a message count that disagrees with the index
(messages deleted by another client) costs one ``UID SEARCH ALL`` to find which. Receipts and envelopes are then
read whole and handed to ``on_receipts`` (which verifies and stores them); one that cannot be read now stays
pending and is tried again at the next sync.

:meth:`MailboxSync.follow` keeps one connection open: IDLE (RFC 2177) wakes it when mail arrives, re-issued every
``IDLE_SECONDS`` because middleboxes drop quiet connections; without IDLE it polls every ``POLL_SECONDS``.
Connection failures back off and reconnect; a refused login stops following (it would only fail again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import anyio

from pec_mcp.errors import AuthenticationFailed, ConfigError, PecError
from pec_mcp.pecmail.imap import FETCH_BATCH, ImapClient
from pec_mcp.pecmail.index import IndexedMail, MailIndex, indexed

log = logging.getLogger("pec_mcp.pecmail")

IDLE_SECONDS = 300.0
POLL_SECONDS = 30.0
MAX_BACKOFF = 300.0

# Reads and stores the receipts of a sync: given the open session and the pending receipts (headers only).
# Returns the UIDs it finished with; the others stay pending.
ReceiptHandler = Callable[[ImapClient, list[IndexedMail]], Awaitable[list[int]]]


@dataclass(frozen=True)
class SyncReport:
    added: int
    removed: int
    restarted: bool  # the UIDVALIDITY changed (or first sync): indexed from the start
    receipts: int  # receipts read and handed over in this sync
    synced_at: float


class MailboxSync:
    """Keeps the index of one folder of one account up to date."""

    def __init__(self, index: MailIndex, *, on_receipts: ReceiptHandler | None = None,
                 batch: int = FETCH_BATCH) -> None:
        self.index = index
        self.on_receipts = on_receipts
        self.batch = batch
        self._lock = anyio.Lock()

    async def sync(self, imap: ImapClient) -> SyncReport:
        """Index what arrived since the last sync (one session, already logged in)."""
        async with self._lock:
            return await self._sync(imap)

    async def _sync(self, imap: ImapClient) -> SyncReport:
        folder = await imap.select(self.index.folder)
        state = self.index.state()
        restarted = state is None or state.uidvalidity != folder.uidvalidity
        if restarted:
            self.index.restart(folder.uidvalidity)
        last = 0 if restarted or state is None else state.last_uid
        new = await imap.uids_after(last)
        for start in range(0, len(new), self.batch):
            batch = new[start:start + self.batch]
            headers = await imap.headers(batch)
            self.index.add(headers, uidvalidity=folder.uidvalidity, through_uid=batch[-1])
        removed = 0
        if self.index.count() != folder.exists:
            present = set(await imap.uids_after(0))
            gone = self.index.live_uids() - present
            self.index.forget(gone)
            removed = len(gone)
        handled = await self._receipts(imap)
        return SyncReport(added=len(new), removed=removed, restarted=restarted, receipts=handled,
                          synced_at=self.index.synced())

    async def _receipts(self, imap: ImapClient) -> int:
        if self.on_receipts is None:
            return 0
        handled = 0
        while pending := self.index.pending_receipts():
            done = await self.on_receipts(imap, pending)
            for uid in done:
                self.index.receipt_done(uid)
            handled += len(done)
            if len(done) < len(pending):
                break  # the rest could not be read now: the next sync tries again
        return handled

    async def follow(self, connect: Callable[[], AbstractAsyncContextManager[ImapClient]], *,
                     on_synced: Callable[[SyncReport], Awaitable[None]] | None = None,
                     idle_seconds: float = IDLE_SECONDS, poll_seconds: float = POLL_SECONDS) -> None:
        """Sync, then wait for news and sync again, until cancelled; reconnects after failures."""
        backoff = 1.0
        while True:
            try:
                async with connect() as imap:
                    while True:
                        report = await self.sync(imap)
                        backoff = 1.0
                        if on_synced is not None:
                            await on_synced(report)
                        if imap.supports("IDLE"):
                            await imap.wait_for_news(idle_seconds)
                        else:
                            await anyio.sleep(poll_seconds)
            except (AuthenticationFailed, ConfigError) as exc:
                log.warning("stopped following %s: %s", self.index.account, exc.message)
                return
            except PecError as exc:
                log.warning("following %s: %s; trying again in %.0f s", self.index.account, exc.message, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)


def is_pec_notice(mail: IndexedMail) -> bool:
    """A receipt or an envelope (what carries a signed daticert.xml), by its headers."""
    return bool(mail.x_ricevuta or mail.x_trasporto)


__all__ = ["IDLE_SECONDS", "POLL_SECONDS", "MailboxSync", "ReceiptHandler", "SyncReport", "indexed",
           "is_pec_notice"]
