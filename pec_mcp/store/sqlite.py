"""The SQLite backend of the store: one local file in WAL mode, the embedded default.

Several processes on one machine may share the file: SQLite's locking serialises their writes, and an
``immediate`` transaction takes the write lock at once, for read-modify-write steps (claiming a job, a send slot).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pec_mcp.errors import ConfigError
from pec_mcp.store.file import check_store_path, prepare_store_file

# What sqlite3 says when the file cannot be used right now, as against a fault in a statement (also an
# OperationalError there): another process holds the write lock past the timeout, a full disk, a file it may not
# write, a disk failing.
_UNAVAILABLE = ("database is locked", "database or disk is full", "readonly database", "disk i/o error",
                "unable to open database file")


def did_not_answer(exc: BaseException) -> str | None:
    """Why the store file could not be used, when that is what ``exc`` says; None for any other error."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and any(s in text.lower() for s in _UNAVAILABLE):
        return text
    return None


class SqliteBackend:
    """A thread-safe handle on the SQLite file; the SQL is the store's own (``?`` placeholders)."""

    kind = "sqlite"
    row_lock = ""  # one writer at a time: rows need no lock of their own

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser() if str(path) != ":memory:" else Path(":memory:")
        if str(self.path) != ":memory:":
            check_store_path(self.path)
            prepare_store_file(self.path)
        try:
            # isolation_level=None: we issue BEGIN ourselves, so that BEGIN IMMEDIATE is possible.
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise ConfigError(f"Cannot open the store at store.path ({self.path}): {exc}") from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def describe(self) -> str:
        return f"store.path ({self.path})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self, *, immediate: bool = False, lock: str | None = None) -> Iterator[Any]:
        """``lock`` is ignored: SQLite has one write lock for the whole file."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """Statements that only read, in one transaction (one snapshot of the file; it costs no round trip)."""
        with self.transaction() as db:
            yield db

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """A read, done now: a local file has no round trip to share."""
        with self.reading() as db:
            rows: list[Any] = db.execute(sql, params).fetchall()
            return rows

    @contextmanager
    def standalone(self) -> Iterator[Any]:
        """Writes that each stand on their own: one immediate transaction (it costs no round trip)."""
        with self.transaction(immediate=True) as db:
            yield db

    @contextmanager
    def migration_lock(self) -> Iterator[Any]:
        """One transaction holding the write lock: a migration is all done or not at all.

        Rebuilding a table that others reference needs foreign keys off (a no-op inside a transaction).
        """
        with self._lock:
            self._db.execute("PRAGMA foreign_keys=OFF")
            try:
                with self.transaction(immediate=True) as db:
                    yield db
            finally:
                self._db.execute("PRAGMA foreign_keys=ON")

    def schema_version(self, db: Any) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, db: Any, version: int) -> None:
        db.execute(f"PRAGMA user_version = {int(version)}")

    def ddl(self, statement: str) -> str:
        """A schema statement as SQLite takes it: the store's schema is written in SQLite's dialect."""
        return statement

    def after_migration(self, db: Any) -> None:
        """Nothing to do: SQLite's integer keys continue after the largest row by themselves."""

    def utc_period(self, column: str, period: str) -> str:
        """SQL for the UTC ``day`` (2026-03-01) or ``month`` (2026-03) of a Unix-time column."""
        return f"strftime('{_FORMATS[period]}', {column}, 'unixepoch')"


_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m"}
