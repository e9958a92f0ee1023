"""The store: the send ledger, the audit trail, the shared send pacer and events, on SQLite or PostgreSQL.

SQLite (one local file, WAL) is the embedded default; PostgreSQL (``store.url``) lets any number of replicas share
one database. The SQL here is written once for both; each backend module adapts the little that differs.

The ledger is what makes "never sent twice" hold: a row is written before a request goes out and moves through
``queued -> sending -> sent | failed | unknown``. ``sending`` means the request may be on the wire; a process that
dies there leaves the row ``sending``, and the next start turns it into ``unknown``, never into a retry.

Several processes may share one store: the backend's write lock serialises their read-modify-write steps, and
the pacer table hands out send slots to all of them, so that several servers on one account stay within the
provider's limit together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio

from pec_mcp import __version__
from pec_mcp.errors import ConfigError

# Schema version 1: the send ledger, the audit trail, the send pacer, webhook and callback events.
LEDGER_SCHEMA = """
    CREATE TABLE sendings (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        environment TEXT NOT NULL,
        idempotency_key TEXT,
        state TEXT NOT NULL,
        message_id TEXT,
        sender TEXT,
        recipients TEXT NOT NULL,
        subject TEXT NOT NULL,
        attachments TEXT NOT NULL DEFAULT '[]',
        size_bytes INTEGER NOT NULL DEFAULT 0,
        job_id TEXT,
        delivery_status TEXT,
        delivery_summary TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (provider, idempotency_key)
    );
    CREATE INDEX sendings_message_id ON sendings (message_id);
    CREATE INDEX sendings_created ON sendings (created_at);
    CREATE TABLE sending_recipients (
        sending_id INTEGER NOT NULL REFERENCES sendings (id),
        address TEXT NOT NULL,
        PRIMARY KEY (sending_id, address)
    );
    CREATE INDEX sending_recipients_address ON sending_recipients (address);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        action TEXT NOT NULL,
        actor TEXT NOT NULL,
        environment TEXT NOT NULL,
        summary TEXT NOT NULL,
        outcome TEXT NOT NULL,
        ref TEXT
    );
    CREATE TABLE pacer (name TEXT PRIMARY KEY, next_at REAL NOT NULL);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        event_key TEXT NOT NULL UNIQUE,
        message_id TEXT,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE INDEX events_message ON events (provider, message_id);
"""

# Schema version 2: bulk jobs, their requests (groups of recipients sent as one), their recipients, and the
# job runners alive on this store (so that a runner can tell a dead process's half-done request from a live one's).
JOBS_SCHEMA = """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        attachments TEXT NOT NULL DEFAULT '[]',
        total INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        cost_eur REAL NOT NULL,
        created_at REAL NOT NULL,
        cancelled_at REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_created ON jobs (created_at);
    CREATE TABLE job_groups (
        job_id TEXT NOT NULL REFERENCES jobs (id),
        seq INTEGER NOT NULL,
        state TEXT NOT NULL,
        recipients INTEGER NOT NULL,
        message_bytes INTEGER NOT NULL,
        owner TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        sending_id INTEGER,
        message_id TEXT,
        error TEXT,
        sent_at REAL,
        next_check_at REAL,
        followed INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE INDEX job_groups_state ON job_groups (state);
    CREATE INDEX job_groups_follow ON job_groups (followed, next_check_at);
    CREATE TABLE job_recipients (
        job_id TEXT NOT NULL REFERENCES jobs (id),
        row INTEGER NOT NULL,
        address TEXT NOT NULL,
        variables TEXT NOT NULL,
        group_seq INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (job_id, row)
    );
    CREATE INDEX job_recipients_group ON job_recipients (job_id, group_seq);
    CREATE TABLE job_runners (owner TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, seen_at REAL NOT NULL);
"""

# Schema version 3: the local index of inbox message headers (see pec_mcp.inbox_index), per mailbox account.
INBOX_INDEX_SCHEMA = """
    CREATE TABLE inbox_index (
        account TEXT NOT NULL,
        inbox_id INTEGER NOT NULL,
        at REAL NOT NULL,
        date TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        kind TEXT NOT NULL,
        message_id TEXT,
        code TEXT,
        search TEXT NOT NULL,
        PRIMARY KEY (account, inbox_id)
    );
    CREATE INDEX inbox_index_code ON inbox_index (account, code, at, inbox_id);
    CREATE INDEX inbox_index_order ON inbox_index (account, at, inbox_id);
    CREATE TABLE inbox_index_sync (account TEXT PRIMARY KEY, synced_at REAL NOT NULL);
"""

# Schema version 4: Mensatek certified email, one id per recipient of a ledger row (see pec_mcp.certified).
CERTIFIED_SCHEMA = """
    CREATE TABLE certified_messages (
        message_id TEXT PRIMARY KEY,
        sending_id INTEGER NOT NULL REFERENCES sendings (id),
        position INTEGER NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX certified_messages_sending ON certified_messages (sending_id);
"""

# Schema version 5: the HTTP replicas serving from this store, so that one with another http.state_key is refused.
REPLICAS_SCHEMA = """
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        state_key_id TEXT,
        started_at REAL NOT NULL,
        seen_at REAL NOT NULL
    );
"""

# Each entry moves the schema one version up; entries are never edited once released, only appended.
MIGRATIONS: list[str] = [LEDGER_SCHEMA, JOBS_SCHEMA, INBOX_INDEX_SCHEMA, CERTIFIED_SCHEMA, REPLICAS_SCHEMA]

CATCH_UP = 0.005  # seconds of a late send slot the pacer may win back on the next one

SEND_STATES = ("queued", "sending", "sent", "failed", "unknown")


@dataclass(frozen=True)
class Sending:
    """One row of the send ledger."""

    id: int
    provider: str
    environment: str
    idempotency_key: str | None
    state: str
    message_id: str | None
    sender: str | None
    recipients: list[str]
    subject: str
    attachments: list[dict[str, Any]]
    size_bytes: int
    job_id: str | None
    delivery_status: str | None
    delivery_summary: str | None
    error: str | None
    created_at: float
    updated_at: float

    @property
    def created(self) -> str:
        return iso(self.created_at)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    action: str
    actor: str
    environment: str
    summary: str
    outcome: str
    ref: str | None


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


class Store:
    """The store on its backend (SQLite by default, PostgreSQL for ``postgresql://`` URLs); every method is one
    short transaction.

    ``location`` is a file path or a PostgreSQL URL. ``upgrade`` creates or upgrades the schema when it is older
    than this pec-mcp's; without it an older schema is refused (``pec-mcp migrate`` upgrades it). A newer schema
    is always refused: it was written by a newer pec-mcp, which is named.
    """

    def __init__(
        self, location: Path | str, *, clock: Callable[[], float] = time.time, upgrade: bool = True
    ) -> None:
        self.clock = clock
        self.backend: Backend = open_backend(location)
        self.path = getattr(self.backend, "path", None)
        # (schema version found, version now): what opening did to the schema.
        self.migrated: tuple[int, int] = (len(MIGRATIONS), len(MIGRATIONS))
        try:
            if upgrade:
                self.migrated = self.migrate()
            else:
                self.check_schema()
        except BaseException:
            self.backend.close()
            raise

    @property
    def kind(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.backend.kind

    def close(self) -> None:
        self.backend.close()

    def transaction(self, *, immediate: bool = False, lock: str | None = None) -> AbstractContextManager[Db]:
        """One transaction; ``immediate`` takes the write lock at once (for read-modify-write across processes).

        ``lock`` names a narrower lock for an immediate transaction that touches only its own rows (PostgreSQL
        takes that one instead of the store-wide one; SQLite has only the one).
        """
        opened: AbstractContextManager[Db] = self.backend.transaction(immediate=immediate, lock=lock)
        return opened

    def schema_version(self) -> int:
        with self.backend.migration_lock() as db:
            return self.backend.schema_version(db)

    def migrate(self) -> tuple[int, int]:
        """Create or upgrade the schema to this pec-mcp's; returns (version before, version after).

        All pending steps run in one transaction: a migration interrupted half way leaves the schema as it was,
        and the next run does it all.
        """
        with self.backend.migration_lock() as db:
            version = self._version_known(db)
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    db.execute(self.backend.ddl(statement))
                self.backend.set_schema_version(db, number)
            if version < len(MIGRATIONS):
                self.backend.after_migration(db)
                _set_meta(db, "written_by", __version__)
        return version, len(MIGRATIONS)

    def check_schema(self) -> None:
        """Refuse a schema older or newer than this pec-mcp's, saying what to do."""
        with self.backend.migration_lock() as db:
            version = self._version_known(db)
        if version < len(MIGRATIONS):
            raise ConfigError(
                f"The store at {self.backend.describe()} has schema version {version}; this pec-mcp needs "
                f"version {len(MIGRATIONS)}: run `pec-mcp migrate` (with the same --config) once",
                hint="Then start the server again; every replica of this version can then use it.",
            )

    def _version_known(self, db: Any) -> int:
        version = self.backend.schema_version(db)
        if version > len(MIGRATIONS):
            writer = _meta(db, "written_by")
            install = f"pec-mcp {writer} or newer" if writer else "a newer pec-mcp"
            raise ConfigError(
                f"The store at {self.backend.describe()} was written by a newer pec-mcp (schema {version}; this is "
                f"pec-mcp {__version__}, schema {len(MIGRATIONS)}): install {install}",
                hint="An older pec-mcp must not write to it.",
            )
        return version

    # -- the send ledger ---------------------------------------------------------------------------------------

    def begin_send(
        self,
        *,
        provider: str,
        environment: str,
        idempotency_key: str | None,
        sender: str | None,
        recipients: Sequence[str],
        subject: str,
        attachments: Sequence[dict[str, Any]] = (),
        size_bytes: int = 0,
        job_id: str | None = None,
    ) -> tuple[Sending, bool]:
        """Write a ``queued`` row before anything is sent; returns (row, created).

        A reused idempotency key gives back the first row (created False), unless that attempt failed before
        anything was sent: then the row is queued again for a new attempt.
        """
        now = self.clock()
        with self.transaction(immediate=True) as db:
            if idempotency_key is not None:
                existing = db.execute(
                    "SELECT * FROM sendings WHERE provider = ? AND idempotency_key = ?", (provider, idempotency_key)
                ).fetchone()
                if existing is not None and existing["state"] != "failed":
                    return _sending(existing), False
                if existing is not None:
                    # The first attempt certainly sent nothing: the same key may try again, on the same row.
                    db.execute(
                        "UPDATE sendings SET state = 'queued', error = NULL, updated_at = ? WHERE id = ?",
                        (now, existing["id"]),
                    )
                    row = db.execute("SELECT * FROM sendings WHERE id = ?", (existing["id"],)).fetchone()
                    return _sending(row), True
            sending_id = int(db.execute(
                """INSERT INTO sendings (provider, environment, idempotency_key, state, sender, recipients, subject,
                       attachments, size_bytes, job_id, created_at, updated_at)
                   VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
                (provider, environment, idempotency_key, sender, json.dumps(list(recipients)), subject,
                 json.dumps(list(attachments)), size_bytes, job_id, now, now),
            ).fetchone()[0])
            db.executemany(
                "INSERT INTO sending_recipients (sending_id, address) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(sending_id, a.lower()) for a in recipients],
            )
            row = db.execute("SELECT * FROM sendings WHERE id = ?", (sending_id,)).fetchone()
        return _sending(row), True

    def key_used(self, provider: str, idempotency_key: str) -> bool:
        """Whether a send with this key exists and did not fail before sending (a repeat would be a duplicate)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT state FROM sendings WHERE provider = ? AND idempotency_key = ?", (provider, idempotency_key)
            ).fetchone()
        return row is not None and row["state"] != "failed"

    def mark_dispatching(self, sending_id: int) -> None:
        """The request is about to go on the wire: from now on a lost answer means ``unknown``."""
        self._set_state(sending_id, "sending", allowed_from=("queued",))

    def mark_sent(self, sending_id: int, message_id: str) -> Sending:
        return self._set_state(sending_id, "sent", message_id=message_id, allowed_from=("queued", "sending"))

    def mark_failed(self, sending_id: int, error: str) -> Sending:
        return self._set_state(sending_id, "failed", error=error, allowed_from=("queued", "sending"))

    def mark_unknown(self, sending_id: int, error: str) -> Sending:
        return self._set_state(sending_id, "unknown", error=error, allowed_from=("queued", "sending"))

    def _set_state(
        self,
        sending_id: int,
        state: str,
        *,
        allowed_from: tuple[str, ...],
        message_id: str | None = None,
        error: str | None = None,
    ) -> Sending:
        # One guarded UPDATE of one row: atomic by itself, so no store-wide lock (this runs between a send's turn
        # and the request leaving, where waiting on another replica's lock would make requests arrive in bursts).
        with self.transaction() as db:
            marks = ",".join("?" * len(allowed_from))
            db.execute(
                f"""UPDATE sendings SET state = ?, message_id = COALESCE(?, message_id), error = COALESCE(?, error),
                        updated_at = ? WHERE id = ? AND state IN ({marks})""",
                (state, message_id, error, self.clock(), sending_id, *allowed_from),
            )
            row = db.execute("SELECT * FROM sendings WHERE id = ?", (sending_id,)).fetchone()
        return _sending(row)

    def recover_interrupted(self, *, provider: str | None = None) -> int:
        """After a crash: a request that may have gone out is ``unknown``; one that never left is ``failed``.

        Sendings owned by a bulk job are left to the job runner, which knows how to resume them.
        """
        now = self.clock()
        where = "job_id IS NULL" + (" AND provider = ?" if provider else "")
        args: tuple[Any, ...] = (provider,) if provider else ()
        with self.transaction(immediate=True) as db:
            unknown = db.execute(
                f"""UPDATE sendings SET state = 'unknown', updated_at = ?,
                        error = 'the server stopped while this request was on its way; it may or may not have been sent'
                    WHERE state = 'sending' AND {where}""",
                (now, *args),
            ).rowcount
            failed = db.execute(
                f"""UPDATE sendings SET state = 'failed', updated_at = ?,
                        error = 'the server stopped before this request was sent; nothing was sent'
                    WHERE state = 'queued' AND {where}""",
                (now, *args),
            ).rowcount
        return unknown + failed

    def update_delivery(self, sending_id: int, status: str, summary: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE sendings SET delivery_status = ?, delivery_summary = ?, updated_at = ? WHERE id = ?",
                (status, summary, self.clock(), sending_id),
            )

    def sending_by_id(self, sending_id: int) -> Sending | None:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM sendings WHERE id = ?", (sending_id,)).fetchone()
        return _sending(row) if row else None

    def sending_by_message_id(self, message_id: str, *, provider: str | None = None) -> Sending | None:
        query = "SELECT * FROM sendings WHERE message_id = ?" + (" AND provider = ?" if provider else "")
        args = (message_id, provider) if provider else (message_id,)
        with self.transaction() as db:
            row = db.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return _sending(row) if row else None

    def find_sendings(
        self,
        *,
        provider: str | None = None,
        recipient: str | None = None,
        query: str | None = None,
        since: date | None = None,
        limit: int = 20,
    ) -> list[Sending]:
        """Recent sendings, newest first, filtered by recipient (exact or partial), subject words and date."""
        clauses: list[str] = ["1 = 1"]
        args: list[Any] = []
        if provider:
            clauses.append("s.provider = ?")
            args.append(provider)
        if recipient:
            clauses.append(
                "s.id IN (SELECT sending_id FROM sending_recipients WHERE address LIKE ? ESCAPE '\\')"
            )
            args.append(f"%{_like(recipient.strip().lower())}%")
        for word in (query or "").split():
            clauses.append("lower(s.subject) LIKE ? ESCAPE '\\'")  # PostgreSQL's LIKE minds the case
            args.append(f"%{_like(word.lower())}%")
        if since:
            clauses.append("s.created_at >= ?")
            args.append(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp())
        sql = f"SELECT s.* FROM sendings s WHERE {' AND '.join(clauses)} ORDER BY s.id DESC LIMIT ?"
        with self.transaction() as db:
            rows = db.execute(sql, (*args, limit)).fetchall()
        return [_sending(r) for r in rows]

    # -- the audit trail ---------------------------------------------------------------------------------------

    def record_audit(
        self, *, action: str, actor: str, environment: str, summary: str, outcome: str, ref: str | None = None
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit (at, action, actor, environment, summary, outcome, ref) VALUES (?,?,?,?,?,?,?)",
                (self.clock(), action, actor, environment, summary, outcome, ref),
            )

    def audit_log(self, *, limit: int = 50) -> list[AuditEntry]:
        with self.transaction() as db:
            rows = db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [AuditEntry(**dict(r)) for r in rows]

    # -- webhook and callback events ---------------------------------------------------------------------------

    def record_event(
        self, *, provider: str, event_key: str, message_id: str | None, kind: str, payload: dict[str, Any]
    ) -> bool:
        """Store one event; False if an event with the same key was stored before (a replay)."""
        with self.transaction() as db:
            cursor = db.execute(
                """INSERT INTO events (provider, event_key, message_id, kind, payload, received_at)
                   VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (provider, event_key, message_id, kind, json.dumps(payload, ensure_ascii=False), self.clock()),
            )
        return cursor.rowcount == 1

    def events(self, *, provider: str, message_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events WHERE provider = ?" + (" AND message_id = ?" if message_id else "")
        args: tuple[Any, ...] = (provider, message_id) if message_id else (provider,)
        with self.transaction() as db:
            rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            {"kind": r["kind"], "message_id": r["message_id"], "received_at": iso(r["received_at"]),
             "payload": json.loads(r["payload"])}
            for r in rows
        ]

    # -- the shared send pacer ---------------------------------------------------------------------------------

    def take_slot(self, name: str, interval: float) -> float:
        """Take the send slot of ``name`` if it is free now: returns 0.0 (go), else the seconds until it frees up.

        The slot is taken at the moment of sending, not booked ahead: a request that is late (a busy event loop,
        a slow disk) pushes the next one back, so two requests never leave closer together than ``interval``.
        Where the backend can, only this slot is locked, not the whole store: a replica claiming a job request
        meanwhile does not delay a send that has its turn.
        """
        with self.transaction(immediate=True, lock=f"pacer:{name}") as db:
            row = db.execute("SELECT next_at FROM pacer WHERE name = ?", (name,)).fetchone()
            now = self.clock()
            due = float(row[0]) if row is not None else now
            if due > now:
                return due - now
            # Taking a slot a little late (waking up, the thread hop) would lower the rate for good; win back at
            # most a few milliseconds of it, far less than any provider's tolerance for arrival jitter.
            next_at = now + interval - min(now - due, CATCH_UP, interval * 0.05)
            db.execute(
                "INSERT INTO pacer (name, next_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET next_at = ?",
                (name, next_at, next_at),
            )
        return 0.0


class StorePacer:
    """A send pacer shared by every process using the same store file (see ``pec_mcp.http.Pacer``)."""

    def __init__(self, store: Store, name: str, rate: float) -> None:
        self.store = store
        self.name = name
        self.interval = 1.0 / rate

    async def wait_turn(self) -> None:
        while True:
            # Taking the slot may wait on another process's write lock: keep it off the event loop.
            wait = await anyio.to_thread.run_sync(self.store.take_slot, self.name, self.interval)
            if wait <= 0:
                return
            await anyio.sleep(wait)


def _sending(row: Any) -> Sending:
    data = dict(row)
    data["recipients"] = json.loads(data["recipients"])
    data["attachments"] = json.loads(data["attachments"])
    return Sending(**data)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


class Cursor(Protocol):
    """What the store reads from a statement, on either backend."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection inside one transaction; SQL with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Cursor: ...


class Backend(Protocol):
    """What the store needs of a database: see :mod:`pec_mcp.store_sqlite` and :mod:`pec_mcp.store_postgres`."""

    kind: str

    def describe(self) -> str: ...
    def close(self) -> None: ...
    def transaction(self, *, immediate: bool = False, lock: str | None = None) -> AbstractContextManager[Any]: ...
    def migration_lock(self) -> AbstractContextManager[Any]: ...
    def schema_version(self, db: Any) -> int: ...
    def set_schema_version(self, db: Any, version: int) -> None: ...
    def ddl(self, statement: str) -> str: ...
    def after_migration(self, db: Any) -> None: ...


def is_database_url(location: Path | str) -> bool:
    return str(location).lower().startswith(("postgresql://", "postgres://"))


def open_backend(location: Path | str) -> Backend:
    """SQLite for a path, PostgreSQL for a ``postgresql://`` URL (its driver is imported only then)."""
    if is_database_url(location):
        from pec_mcp.store_postgres import PostgresBackend

        return PostgresBackend(str(location))
    from pec_mcp.store_sqlite import SqliteBackend

    return SqliteBackend(location)


def store_location(store: Any) -> Path | str:
    """Where the settings put the store (``store`` is the ``[store]`` section): ``url`` when set, else ``path``."""
    url: str | None = store.url.get_secret_value() if store.url is not None else None
    path: Path = store.path
    return url or path


META_TABLE = "pec_mcp_meta"


def _meta(db: Any, key: str) -> str | None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = db.execute(f"SELECT value FROM {META_TABLE} WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(db: Any, key: str, value: str) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(f"""INSERT INTO {META_TABLE} (key, value) VALUES (?, ?)
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value""", (key, value))
