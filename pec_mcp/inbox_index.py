"""A local index of the PEC inbox headers: searches and receipt lookups answered without walking the provider.

PEC Massiva lists the INBOX newest first, 25 messages a page, and warns that searching a full mailbox is slow.
The index keeps each message's headers (inbox_id, date, sender, recipient, subject, classified kind, sending
code) in the store and is brought up to date on demand:

- a sync reads pages from the first until it meets ids already indexed (ids only grow and are never reused),
  so a sync after a few new messages costs one request;
- the provider's ``total`` is then compared with the number of indexed messages; when they differ (messages
  deleted elsewhere, or a message that arrived out of order) the whole inbox is walked once more and ids no
  longer present are dropped;
- messages deleted through pec-mcp leave the answers at once, but their headers stay in the store, marked deleted
  (they may be legal proof: what was deleted is never forgotten); so do messages gone from the provider;
- an answer older than ``max_age`` seconds (60 by default) triggers a sync first, so an answer is never staler
  than that, and every answer says when the index was synced.

The index holds headers, not bodies: it searches subject and sender (the provider's own search may also look at
bodies; callers fall back to the provider when the index finds nothing).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import anyio

from pec_mcp.receipts import ReceiptKind, classify_subject
from pec_mcp.store import Store

PAGE_SIZE = 25
INDEX_MAX_AGE = 60.0  # seconds an answer from the index may lag behind the provider

_CODE_AT_END = re.compile(r"\s(\d{10,20})\s*$")
_BARE_CODE = re.compile(r"^\s*(\d{10,20})\s*$")


class InboxItem(Protocol):
    id: int
    sender: str
    recipient: str
    date: str
    subject: str


class InboxListing(Protocol):
    @property
    def items(self) -> Sequence[InboxItem]: ...
    @property
    def total(self) -> int: ...
    @property
    def pages(self) -> int: ...


class InboxSource(Protocol):
    """What the index reads: ``PecMassivaClient.inbox``."""

    async def inbox(self, *, query: str | None = None, page: int = 1) -> InboxListing: ...


@dataclass(frozen=True)
class IndexedMessage:
    """The headers of one inbox message, as indexed."""

    inbox_id: int
    date: str
    sender: str
    recipient: str
    subject: str
    kind: str  # receipt kind by subject (accepted, delivered, ...), envelope, or other
    message_id: str | None  # the sending a receipt refers to (receipts only)


@dataclass(frozen=True)
class IndexPage:
    messages: list[IndexedMessage]
    page: int
    pages: int
    total: int  # messages matching, over all pages
    synced_at: float  # Unix time of the last sync


@dataclass(frozen=True)
class SyncReport:
    added: int
    removed: int
    pages_read: int
    full_walk: bool
    synced_at: float


def classify_header(subject: str) -> tuple[str, str | None]:
    """The kind of an inbox message by its subject, and the sending code it refers to (receipts only)."""
    kind, _ = classify_subject(subject)
    code = None
    if kind not in (ReceiptKind.OTHER, ReceiptKind.ENVELOPE):
        code = trailing_code(subject)
    return kind.value, code


def trailing_code(subject: str) -> str | None:
    """The sending code PEC Massiva appends to the subject of every message of a sending (envelopes too)."""
    match = _CODE_AT_END.search(subject)
    return match.group(1) if match else None


class InboxIndex:
    """The index of one mailbox (``account``, in ``environment``) in the store, synced from ``source`` on demand."""

    def __init__(
        self,
        store: Store,
        source: InboxSource,
        account: str,
        *,
        environment: str,
        max_age: float = INDEX_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.source = source
        self.account = account
        self.environment = environment
        self._key = (environment, account)
        self.max_age = max_age
        self.clock = clock
        self._lock = anyio.Lock()

    # -- freshness ---------------------------------------------------------------------------------------------

    @property
    def synced_at(self) -> float | None:
        """When the last sync finished (Unix time), None before the first."""
        with self.store.transaction() as db:
            row = db.execute("SELECT synced_at FROM inbox_index_sync WHERE environment = ? AND account = ?",
                             self._key).fetchone()
        return float(row[0]) if row and row[0] > 0 else None

    def mark_stale(self) -> None:
        """Make the next answer sync first (after a send, whose receipts are on their way)."""
        with self.store.transaction() as db:
            db.execute("UPDATE inbox_index_sync SET synced_at = 0 WHERE environment = ? AND account = ?", self._key)

    async def ensure_fresh(self) -> float:
        """Sync when the index is older than ``max_age``; returns the time of the last sync."""
        synced = self.synced_at
        if synced is not None and self.clock() - synced < self.max_age:
            return synced
        async with self._lock:
            synced = self.synced_at  # another task may have synced while this one waited
            if synced is not None and self.clock() - synced < self.max_age:
                return synced
            return (await self._sync()).synced_at

    async def sync(self) -> SyncReport:
        """Bring the index up to date now (new pages first; a full walk when the counts disagree)."""
        async with self._lock:
            return await self._sync()

    async def _sync(self) -> SyncReport:
        known = self._ids()
        first = await self.source.inbox(page=1)
        listing, number, pages_read = first, 1, 1
        new: dict[int, InboxItem] = {}
        while True:
            fresh = [item for item in listing.items if item.id not in known]
            new.update((item.id, item) for item in fresh)
            # A page holding an id already indexed means everything after it is indexed too.
            if not listing.items or len(fresh) < len(listing.items) or number >= listing.pages:
                break
            number += 1
            listing = await self.source.inbox(page=number)
            pages_read += 1
        self._upsert(new.values())
        removed, full_walk = 0, False
        if len(known) + len(new) != first.total:
            everything, pages = await self._walk_all()
            pages_read += pages
            removed = self._replace(everything)
            full_walk = True
        now = self.clock()
        with self.store.transaction() as db:
            db.execute(
                """INSERT INTO inbox_index_sync (environment, account, synced_at) VALUES (?, ?, ?)
                   ON CONFLICT (environment, account) DO UPDATE SET synced_at = excluded.synced_at""",
                (*self._key, now),
            )
        return SyncReport(added=len(new), removed=removed, pages_read=pages_read, full_walk=full_walk,
                          synced_at=now)

    async def _walk_all(self) -> tuple[list[InboxItem], int]:
        items: dict[int, InboxItem] = {}
        number, pages = 0, 1
        while number < pages:
            number += 1
            listing = await self.source.inbox(page=number)
            items.update((item.id, item) for item in listing.items)
            pages = listing.pages if listing.items else 0
        return list(items.values()), number

    # -- answers -----------------------------------------------------------------------------------------------

    async def find(self, *, query: str, page: int = 1) -> IndexPage | None:
        """Messages matching ``query`` after a sync if needed; None when the index has no match."""
        await self.ensure_fresh()
        found = self.search(query=query, page=page)
        return found if found.total else None

    async def receipts_of(self, message_id: str) -> list[IndexedMessage]:
        """Every message of one sending (receipts and its envelope), oldest first, after a sync if needed."""
        await self.ensure_fresh()
        return list(reversed(self.search(query=message_id, page=1, page_size=10_000).messages))

    def search(self, *, query: str, page: int = 1, page_size: int = PAGE_SIZE) -> IndexPage:
        """One page of the indexed messages matching ``query`` (a sending code, or text in subject or sender)."""
        code = _BARE_CODE.match(query)
        live = "environment = ? AND account = ? AND deleted_at IS NULL"
        if code:
            where, args = live + " AND code = ?", [*self._key, code.group(1)]
        else:
            where, args = live + " AND instr(search, ?) > 0", [*self._key, query.strip().lower()]
        with self.store.transaction() as db:
            total = int(db.execute(f"SELECT COUNT(*) FROM inbox_index WHERE {where}", args).fetchone()[0])
            rows = db.execute(
                f"""SELECT inbox_id, date, sender, recipient, subject, kind, message_id FROM inbox_index
                    WHERE {where} ORDER BY at DESC, inbox_id DESC LIMIT ? OFFSET ?""",
                (*args, page_size, (page - 1) * page_size),
            ).fetchall()
            synced = db.execute("SELECT synced_at FROM inbox_index_sync WHERE environment = ? AND account = ?",
                                self._key).fetchone()
        messages = [IndexedMessage(*row) for row in rows]
        return IndexPage(messages=messages, page=page, pages=-(-total // page_size), total=total,
                         synced_at=float(synced[0]) if synced else 0.0)

    def count(self) -> int:
        with self.store.transaction() as db:
            return int(db.execute("SELECT COUNT(*) FROM inbox_index WHERE environment = ? AND account = ? AND "
                                  "deleted_at IS NULL", self._key).fetchone()[0])

    # -- changes made through pec-mcp --------------------------------------------------------------------------

    def forget(self, inbox_id: int, item: InboxItem | None = None) -> None:
        """A message deleted through pec-mcp leaves the answers at once; its headers (``item``, as read before
        deleting it) stay in the store, marked deleted."""
        if item is not None:
            self._upsert([item])
        with self.store.transaction() as db:
            db.execute("UPDATE inbox_index SET deleted_at = ? WHERE environment = ? AND account = ? AND inbox_id = ? "
                       "AND deleted_at IS NULL", (self.clock(), *self._key, inbox_id))

    def forget_sending(self, message_id: str) -> None:
        """The receipts (and envelope) of a sending deleted through pec-mcp leave the answers at once (kept,
        marked deleted)."""
        with self.store.transaction() as db:
            db.execute("UPDATE inbox_index SET deleted_at = ? WHERE environment = ? AND account = ? AND code = ? "
                       "AND deleted_at IS NULL", (self.clock(), *self._key, message_id))

    def deleted(self, inbox_id: int) -> IndexedMessage | None:
        """The headers of a message deleted through pec-mcp (or gone from the provider), if the index had them."""
        with self.store.transaction() as db:
            row = db.execute(
                """SELECT inbox_id, date, sender, recipient, subject, kind, message_id FROM inbox_index
                   WHERE environment = ? AND account = ? AND inbox_id = ? AND deleted_at IS NOT NULL""",
                (*self._key, inbox_id)).fetchone()
        return IndexedMessage(*row) if row else None

    # -- storage -----------------------------------------------------------------------------------------------

    def _ids(self) -> set[int]:
        with self.store.transaction() as db:
            rows = db.execute("SELECT inbox_id FROM inbox_index WHERE environment = ? AND account = ? AND "
                              "deleted_at IS NULL", self._key).fetchall()
        return {int(row[0]) for row in rows}

    def _upsert(self, items: Iterable[InboxItem]) -> None:
        rows = [self._row(item) for item in items]
        if not rows:
            return
        with self.store.transaction() as db:
            db.executemany(
                """INSERT INTO inbox_index (environment, account, inbox_id, at, date, sender, recipient, subject, kind,
                       message_id, code, search)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (environment, account, inbox_id) DO UPDATE SET at = excluded.at, date = excluded.date,
                       sender = excluded.sender, recipient = excluded.recipient, subject = excluded.subject,
                       kind = excluded.kind, message_id = excluded.message_id, code = excluded.code,
                       search = excluded.search, deleted_at = NULL""",
                rows,
            )

    def _replace(self, items: list[InboxItem]) -> int:
        """Make the live index exactly ``items``; returns how many indexed messages are gone from the provider
        (kept, marked deleted: their headers may be all that is left of a receipt)."""
        present = {item.id for item in items}
        now = self.clock()
        gone = [(now, *self._key, i) for i in self._ids() - present]
        with self.store.transaction() as db:
            db.executemany("UPDATE inbox_index SET deleted_at = ? WHERE environment = ? AND account = ? AND "
                           "inbox_id = ?", gone)
        self._upsert(items)
        return len(gone)

    def _row(self, item: InboxItem) -> tuple[object, ...]:
        kind, message_id = classify_header(item.subject)
        return (*self._key, item.id, _timestamp(item.date), item.date, item.sender, item.recipient, item.subject,
                kind, message_id, trailing_code(item.subject), f"{item.subject}\n{item.sender}".lower())


def _timestamp(date: str) -> float:
    try:
        return parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError, IndexError):
        return 0.0
