"""The local index of an IMAP mailbox: headers by UID, so that searches and receipt lookups never walk the server.

One folder of one account in one environment is indexed under its UIDVALIDITY. A sync adds the messages above the
last UID seen, a batch at a time, and moves the last UID in the same transaction as the rows it stored: a sync
cut short (a dropped connection in the middle of a FETCH) loses nothing and resumes where it stopped. When the
server's UIDVALIDITY changes, the UIDs of the old one mean nothing any more: the old rows are kept, marked
deleted, and the folder is indexed again from the start. Messages deleted (here or elsewhere) stay in the store
marked deleted: a receipt once seen is never forgotten.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr, parsedate_to_datetime

from pec_mcp.pecmail.imap import MessageHeaders
from pec_mcp.pecmail.message import envelope_sender, envelope_subject
from pec_mcp.store import Store

PAGE_SIZE = 25
_ANGLES = re.compile(r"^\s*<?\s*([^<>\s]+)\s*>?\s*$")


def bare_message_id(value: str | None) -> str | None:
    """A Message-ID without angle brackets or spaces (how sendings are named); None when there is none."""
    if not value:
        return None
    match = _ANGLES.match(value)
    return match.group(1) if match else None


@dataclass(frozen=True)
class FolderSync:
    uidvalidity: int
    last_uid: int
    synced_at: float


@dataclass(frozen=True)
class IndexedMail:
    """The headers of one indexed message."""

    uid: int
    at: float  # when the server received it (Unix time)
    date: str
    sender: str
    recipient: str
    subject: str
    message_id: str | None  # its own Message-ID, bare
    refers_to: str | None  # X-Riferimento-Message-ID, bare: the sending a receipt belongs to
    x_ricevuta: str | None
    x_trasporto: str | None
    size: int

    @property
    def is_receipt(self) -> bool:
        return bool(self.x_ricevuta)


@dataclass(frozen=True)
class MailPage:
    messages: list[IndexedMail]
    page: int
    pages: int
    total: int
    synced_at: float


_COLUMNS = "uid, at, date, sender, recipient, subject, message_id, refers_to, x_ricevuta, x_trasporto, size"


class MailIndex:
    """The index of one folder of one IMAP account, in the store."""

    def __init__(self, store: Store, *, environment: str, account: str, folder: str = "INBOX",
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.environment = environment
        self.account = account
        self.folder = folder
        self.clock = clock
        self._key = (environment, account, folder)

    # -- sync state --------------------------------------------------------------------------------------------

    def state(self) -> FolderSync | None:
        with self.store.transaction() as db:
            row = db.execute("SELECT uidvalidity, last_uid, synced_at FROM mail_folders WHERE environment = ? AND "
                             "account = ? AND folder = ?", self._key).fetchone()
        return FolderSync(int(row[0]), int(row[1]), float(row[2])) if row else None

    def restart(self, uidvalidity: int) -> None:
        """A new UIDVALIDITY: the old rows stay (marked deleted), and indexing starts again from UID 0."""
        now = self.clock()
        with self.store.transaction(immediate=True) as db:
            db.execute("UPDATE mail_index SET deleted_at = ? WHERE environment = ? AND account = ? AND folder = ? "
                       "AND uidvalidity != ? AND deleted_at IS NULL", (now, *self._key, uidvalidity))
            db.execute("""INSERT INTO mail_folders (environment, account, folder, uidvalidity, last_uid, synced_at)
                          VALUES (?, ?, ?, ?, 0, 0)
                          ON CONFLICT (environment, account, folder) DO UPDATE SET
                              uidvalidity = excluded.uidvalidity, last_uid = 0, synced_at = 0""",
                       (*self._key, uidvalidity))

    def add(self, headers: Sequence[MessageHeaders], *, uidvalidity: int, through_uid: int) -> None:
        """Store a batch and move the last UID synced to ``through_uid``, in one transaction."""
        rows = [(*self._key, uidvalidity, *_row(h)) for h in headers]
        with self.store.transaction(immediate=True) as db:
            db.executemany(
                """INSERT INTO mail_index (environment, account, folder, uidvalidity, uid, at, date, sender,
                       recipient, subject, message_id, refers_to, x_ricevuta, x_trasporto, size, search,
                       receipt_pending)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT DO NOTHING""",
                rows,
            )
            # A CASE, not SQLite's two-argument MAX(): PostgreSQL has no scalar MAX (GREATEST is its own).
            db.execute("UPDATE mail_folders SET last_uid = CASE WHEN last_uid > ? THEN last_uid ELSE ? END "
                       "WHERE environment = ? AND account = ? AND folder = ? AND uidvalidity = ?",
                       (through_uid, through_uid, *self._key, uidvalidity))

    def pending_receipts(self, limit: int = 200) -> list[IndexedMail]:
        """Receipts indexed but not yet read and verified (their reading failed or has not happened yet)."""
        live = self._live_args()
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM mail_index WHERE {self._live()} AND receipt_pending = 1 "
                              "ORDER BY uid LIMIT ?", (*live, limit)).fetchall()
        return [IndexedMail(*row) for row in rows]

    def receipt_done(self, uid: int) -> None:
        live = self._live_args()
        with self.store.transaction() as db:
            db.execute(f"UPDATE mail_index SET receipt_pending = 0 WHERE {self._live()} AND uid = ?",
                       (*live, uid))

    def unread_receipts_of(self, message_id: str) -> set[int]:
        """The UIDs of a sending's receipts not yet read whole, verified and kept in the ledger."""
        bare = bare_message_id(message_id) or message_id
        live = self._live_args()
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT uid FROM mail_index WHERE {self._live()} AND refers_to = ? "
                              "AND receipt_pending = 1", (*live, bare)).fetchall()
        return {int(row[0]) for row in rows}

    def synced(self) -> float:
        now = self.clock()
        with self.store.transaction() as db:
            db.execute("UPDATE mail_folders SET synced_at = ? WHERE environment = ? AND account = ? AND folder = ?",
                       (now, *self._key))
        return now

    def mark_stale(self) -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE mail_folders SET synced_at = 0 WHERE environment = ? AND account = ? AND folder = ?",
                       self._key)

    def live_uids(self) -> set[int]:
        live = self._live_args()
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT uid FROM mail_index WHERE {self._live()}", live).fetchall()
        return {int(r[0]) for r in rows}

    def forget(self, uids: Iterable[int]) -> None:
        """Messages deleted (through pec-mcp or elsewhere) leave the answers; their headers stay, marked."""
        now = self.clock()
        live = self._live_args()
        with self.store.transaction() as db:
            db.executemany(f"UPDATE mail_index SET deleted_at = ? WHERE {self._live()} AND uid = ?",
                           [(now, *live, uid) for uid in uids])

    # -- answers -----------------------------------------------------------------------------------------------

    def get(self, uid: int) -> IndexedMail | None:
        live = self._live_args()
        with self.store.transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM mail_index WHERE {self._live()} AND uid = ?",
                             (*live, uid)).fetchone()
        return IndexedMail(*row) if row else None

    def referring_to(self, message_id: str) -> list[IndexedMail]:
        """Every indexed message of one sending (its receipts), oldest first, by X-Riferimento-Message-ID."""
        bare = bare_message_id(message_id) or message_id
        live = self._live_args()
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM mail_index WHERE {self._live()} AND refers_to = ?",
                              (*live, bare)).fetchall()
        # Sorted here: an ORDER BY would lead SQLite to the date index and a scan of the whole folder.
        return sorted((IndexedMail(*row) for row in rows), key=lambda m: (m.at, m.uid))

    def page(self, *, query: str | None = None, page: int = 1, page_size: int = PAGE_SIZE) -> MailPage:
        """One page, newest first, of every message or of those matching ``query`` (subject, sender, a
        Message-ID of a sending)."""
        where, args = self._live(), list[str | int | None](self._live_args())
        if query and query.strip():
            bare = bare_message_id(query.strip())
            where += " AND (instr(search, ?) > 0 OR refers_to = ? OR message_id = ?)"
            args += [query.strip().lower(), bare, bare]
        with self.store.transaction() as db:
            total = int(db.execute(f"SELECT COUNT(*) FROM mail_index WHERE {where}", args).fetchone()[0])
            rows = db.execute(f"SELECT {_COLUMNS} FROM mail_index WHERE {where} ORDER BY at DESC, uid DESC "
                              "LIMIT ? OFFSET ?", (*args, page_size, (page - 1) * page_size)).fetchall()
        state = self.state()
        return MailPage(messages=[IndexedMail(*r) for r in rows], page=page, pages=max(1, -(-total // page_size)),
                        total=total, synced_at=state.synced_at if state else 0.0)

    def count(self) -> int:
        live = self._live_args()
        with self.store.transaction() as db:
            return int(db.execute(f"SELECT COUNT(*) FROM mail_index WHERE {self._live()}",
                                  live).fetchone()[0])

    def _live(self) -> str:
        return "environment = ? AND account = ? AND folder = ? AND uidvalidity = ? AND deleted_at IS NULL"

    def _live_args(self) -> tuple[str, str, str, int]:
        # Only the current UIDVALIDITY's rows answer: older UIDs name other messages, or none.
        state = self.state()
        return (*self._key, state.uidvalidity if state else -1)


def indexed(h: MessageHeaders) -> IndexedMail:
    """The indexed form of fetched headers; an incoming PEC under its real sender and original subject."""
    at = h.internal_date.timestamp() if h.internal_date else _timestamp(h.date)
    sender, subject = h.sender, h.subject
    if (h.x_trasporto or "").strip().lower() == "posta-certificata":
        sender, subject = envelope_sender(h.sender, h.reply_to), envelope_subject(h.subject)
    return IndexedMail(uid=h.uid, at=at, date=h.date or "", sender=sender, recipient=h.to, subject=subject,
                       message_id=bare_message_id(h.message_id), refers_to=bare_message_id(h.x_riferimento),
                       x_ricevuta=h.x_ricevuta, x_trasporto=h.x_trasporto, size=h.size)


def _row(h: MessageHeaders) -> tuple[object, ...]:
    mail = indexed(h)
    search = f"{mail.subject}\n{mail.sender}\n{parseaddr(mail.recipient)[1]}".lower()
    # Receipts and envelopes are read whole and verified after indexing; until then they are pending.
    pending = int(bool(mail.x_ricevuta or mail.x_trasporto))
    return (mail.uid, mail.at, mail.date, mail.sender, mail.recipient, mail.subject, mail.message_id,
            mail.refers_to, mail.x_ricevuta, mail.x_trasporto, mail.size, search, pending)


def _timestamp(date: str | None) -> float:
    try:
        return parsedate_to_datetime(date or "").timestamp()
    except (TypeError, ValueError, IndexError):
        return 0.0
