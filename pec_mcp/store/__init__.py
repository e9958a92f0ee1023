"""The store: the send ledger, the audit trail, the shared send pacer and events, on SQLite or PostgreSQL.

SQLite (one local file, WAL) is the embedded default; PostgreSQL (``store.url``) lets any number of replicas share
one database. The SQL here is written once for both; each backend module adapts the little that differs.

Store calls are synchronous: their short transactions run on the event loop and in worker threads alike. The reads
a tool call answers from are also :class:`Read` values, which a tool awaits with :meth:`Store.fetch`: on PostgreSQL
the reads that concurrent calls ask for in the same turn of the event loop then share one round trip, instead of
each blocking the loop for its own.

The ledger is what makes "never sent twice" hold: a row is written before a request goes out and moves through
``queued -> sending -> sent | failed | unknown``. ``sending`` means the request may be on the wire; a process that
dies there leaves the row ``sending``, and the next start turns it into ``unknown``, never into a retry.

Several processes may share one store: the backend's write lock serialises their read-modify-write steps, and
the pacer table hands out send slots to all of them, so that several servers on one account stay within the
provider's limit together.

Every row belongs to one ``environment`` (offline, sandbox, production) and one ``account`` (``pecmassiva``,
``mensatek``, or an IMAP account by its config name): idempotency keys are unique per environment and account, so
a key used offline never answers for production. The ``receipts`` table keeps every receipt the server has seen,
so that a later read (receipts deleted at the provider, an offline simulator restarted empty) never forgets it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import anyio

from pec_mcp import __version__
from pec_mcp.errors import ConfigError
from pec_mcp.pacing import counted_from, early_turn, paced_interval

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

# Schema version 5: every row belongs to an environment and an account; idempotency keys are unique per
# (environment, account); sendings and jobs keep who asked (actor) and a hash of their content; Mensatek ids are
# unique per environment; the receipts table keeps every receipt seen. SQLite cannot change a UNIQUE constraint in
# place, so the tables are rebuilt (create, copy, drop, rename: the way SQLite documents, foreign keys off).
# Rows written before keep the environment they recorded; the account is the provider's (pecmassiva, mensatek);
# events and inbox index entries that recorded no environment take the one of their sending, else "unrecorded".
ACCOUNTS_SCHEMA = """
    CREATE TABLE sendings_v5 (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
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
        actor TEXT,
        content_hash TEXT,
        content TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (environment, account, idempotency_key)
    );
    INSERT INTO sendings_v5 (id, provider, environment, account, idempotency_key, state, message_id, sender,
        recipients, subject, attachments, size_bytes, job_id, delivery_status, delivery_summary, error, created_at,
        updated_at)
    SELECT id, provider, environment, provider, idempotency_key, state, message_id, sender, recipients, subject,
        attachments, size_bytes, job_id, delivery_status, delivery_summary, error, created_at, updated_at
    FROM sendings;
    DROP TABLE sendings;
    ALTER TABLE sendings_v5 RENAME TO sendings;
    CREATE INDEX sendings_message_id ON sendings (message_id, environment);
    CREATE INDEX sendings_created ON sendings (environment, created_at);

    CREATE TABLE jobs_v5 (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
        idempotency_key TEXT,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        attachments TEXT NOT NULL DEFAULT '[]',
        total INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        cost_eur REAL NOT NULL,
        actor TEXT,
        content_hash TEXT,
        content TEXT,
        created_at REAL NOT NULL,
        cancelled_at REAL,
        finished_at REAL,
        UNIQUE (environment, account, idempotency_key)
    );
    INSERT INTO jobs_v5 (id, provider, environment, account, idempotency_key, subject, body, attachments, total,
        requests, cost_eur, created_at, cancelled_at, finished_at)
    SELECT id, provider, environment, provider, idempotency_key, subject, body, attachments, total, requests,
        cost_eur, created_at, cancelled_at, finished_at
    FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v5 RENAME TO jobs;
    CREATE INDEX jobs_created ON jobs (environment, created_at);

    CREATE TABLE certified_messages_v5 (
        environment TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sending_id INTEGER NOT NULL REFERENCES sendings (id),
        position INTEGER NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (environment, message_id)
    );
    INSERT INTO certified_messages_v5 (environment, message_id, sending_id, position, email, name)
    SELECT s.environment, c.message_id, c.sending_id, c.position, c.email, c.name
    FROM certified_messages c JOIN sendings s ON s.id = c.sending_id;
    DROP TABLE certified_messages;
    ALTER TABLE certified_messages_v5 RENAME TO certified_messages;
    CREATE INDEX certified_messages_sending ON certified_messages (sending_id);

    CREATE TABLE events_v5 (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
        event_key TEXT NOT NULL,
        message_id TEXT,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL,
        UNIQUE (environment, account, event_key)
    );
    INSERT INTO events_v5 (id, provider, environment, account, event_key, message_id, kind, payload, received_at)
    SELECT e.id, e.provider,
        COALESCE((SELECT c.environment FROM certified_messages c
                  WHERE e.provider = 'mensatek' AND c.message_id = e.message_id LIMIT 1), 'unrecorded'),
        e.provider, e.event_key, e.message_id, e.kind, e.payload, e.received_at
    FROM events e;
    DROP TABLE events;
    ALTER TABLE events_v5 RENAME TO events;
    CREATE INDEX events_message ON events (environment, account, message_id);

    CREATE TABLE inbox_index_v5 (
        environment TEXT NOT NULL,
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
        deleted_at REAL,
        PRIMARY KEY (environment, account, inbox_id)
    );
    INSERT INTO inbox_index_v5 (environment, account, inbox_id, at, date, sender, recipient, subject, kind,
        message_id, code, search)
    SELECT CASE WHEN instr(account, ':') > 0 THEN substr(account, 1, instr(account, ':') - 1) ELSE 'unrecorded' END,
        'pecmassiva', inbox_id, at, date, sender, recipient, subject, kind, message_id, code, search
    FROM inbox_index;
    DROP TABLE inbox_index;
    ALTER TABLE inbox_index_v5 RENAME TO inbox_index;
    CREATE INDEX inbox_index_code ON inbox_index (environment, account, code, at, inbox_id);
    CREATE INDEX inbox_index_order ON inbox_index (environment, account, at, inbox_id);
    CREATE TABLE inbox_index_sync_v5 (
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
        synced_at REAL NOT NULL,
        PRIMARY KEY (environment, account)
    );
    INSERT OR IGNORE INTO inbox_index_sync_v5 (environment, account, synced_at)
    SELECT CASE WHEN instr(account, ':') > 0 THEN substr(account, 1, instr(account, ':') - 1) ELSE 'unrecorded' END,
        'pecmassiva', synced_at
    FROM inbox_index_sync;
    DROP TABLE inbox_index_sync;
    ALTER TABLE inbox_index_sync_v5 RENAME TO inbox_index_sync;

    CREATE TABLE receipts (
        id INTEGER PRIMARY KEY,
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sending_id INTEGER REFERENCES sendings (id),
        recipient TEXT,
        kind TEXT NOT NULL,
        date TEXT NOT NULL,
        provider_text TEXT NOT NULL,
        reason TEXT,
        source TEXT NOT NULL,
        signature TEXT,
        signature_detail TEXT,
        raw BLOB,
        dedup_key TEXT NOT NULL,
        first_seen_at REAL NOT NULL,
        last_seen_at REAL NOT NULL,
        deleted_at REAL,
        UNIQUE (environment, account, message_id, dedup_key)
    );
    CREATE INDEX receipts_sending ON receipts (sending_id);
"""

# Schema version 6: the HTTP replicas serving from this store, so that one with another http.state_key is refused.
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

# Schema version 7: the index of IMAP mailboxes (see pec_mcp.pecmail.index): per environment, account and folder,
# the UIDVALIDITY and last UID synced, and the headers of each message by UID. Deleted messages stay, marked (they
# may be proof).
MAIL_INDEX_SCHEMA = """
    CREATE TABLE mail_folders (
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        synced_at REAL NOT NULL,
        PRIMARY KEY (environment, account, folder)
    );
    CREATE TABLE mail_index (
        environment TEXT NOT NULL,
        account TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        at REAL NOT NULL,
        date TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        message_id TEXT,
        refers_to TEXT,
        x_ricevuta TEXT,
        x_trasporto TEXT,
        size INTEGER NOT NULL,
        search TEXT NOT NULL,
        receipt_pending INTEGER NOT NULL DEFAULT 0,
        deleted_at REAL,
        PRIMARY KEY (environment, account, folder, uidvalidity, uid)
    );
    CREATE INDEX mail_index_pending ON mail_index (environment, account, folder, receipt_pending);
    CREATE INDEX mail_index_refers ON mail_index (environment, account, folder, uidvalidity, refers_to);
    CREATE INDEX mail_index_order ON mail_index (environment, account, folder, at, uid);
"""

# Schema version 8: the dashboard's sign-in sessions, shared by every replica (see pec_mcp.dashboard.auth). A row
# holds no secret: the SHA-256 of the session id (the cookie), and an HMAC of the user's token keyed by that id, so
# that a session ends when its user or token leaves the config. New table only: nothing else changes.
DASHBOARD_SESSIONS_SCHEMA = """
    CREATE TABLE dashboard_sessions (
        id_hash TEXT PRIMARY KEY,
        viewer TEXT NOT NULL,
        token_mac TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
"""

# Schema version 9: each audit entry names the account it concerns, so that a user limited to some accounts sees
# their own entries and nobody else's. Entries written before are given theirs where the ledger says it exactly
# (a sending by its message id, a job by its id, Mensatek's sends); the rest stay without one, shown only to users
# with every account.
AUDIT_ACCOUNT_SCHEMA = """
    ALTER TABLE audit ADD COLUMN account TEXT;
    UPDATE audit SET account = 'mensatek' WHERE action = 'send_certified_email';
    UPDATE audit SET account = (SELECT MIN(s.account) FROM sendings s WHERE s.message_id = audit.ref)
        WHERE action IN ('send_pec', 'delete_pec_receipts') AND ref IS NOT NULL;
    UPDATE audit SET account = (SELECT MIN(j.account) FROM jobs j WHERE j.id = audit.ref)
        WHERE action IN ('start_bulk_pec', 'retry_bulk_pec', 'cancel_bulk_pec') AND ref IS NOT NULL;
"""

# Each entry moves the schema one version up; entries are never edited once released, only appended.
MIGRATIONS: list[str] = [LEDGER_SCHEMA, JOBS_SCHEMA, INBOX_INDEX_SCHEMA, CERTIFIED_SCHEMA, ACCOUNTS_SCHEMA,
                         REPLICAS_SCHEMA, MAIL_INDEX_SCHEMA, DASHBOARD_SESSIONS_SCHEMA, AUDIT_ACCOUNT_SCHEMA]

SLOT_HOLD = 5.0  # seconds after its moment a turn stays held by a taker that never says whether its request left
HELD = "#held"  # suffix of the pacer row that marks a turn held until its request leaves; it holds the moment
HELD_POLL = 0.02  # seconds between looks at a turn whose holder is late (normally the wait is computed, not polled)

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
    account: str = ""
    actor: str | None = None  # who asked for it: the user name when known, else the MCP client
    content_hash: str | None = None  # see pec_mcp.idempotency; None for rows written before schema 5
    content: dict[str, Any] | None = None  # the short description of the content that hash stands for

    @property
    def created(self) -> str:
        return iso(self.created_at)


@dataclass(frozen=True)
class Receipt:
    """One receipt as the ledger keeps it: what a provider said about one sending (and recipient), once.

    ``source`` says where it was seen (``pecmassiva``: the provider's receipts API; ``inbox``: a message of the
    inbox; ``mensatek_report`` / ``mensatek_webhook``; ``imap`` for mailbox accounts). ``signature``
    (``valid`` | ``valid_untrusted`` | ``invalid``), ``signature_detail`` and ``raw`` (the message as received)
    are for receipts read from a mailbox.
    """

    kind: str
    date: str
    provider_text: str
    source: str
    recipient: str | None = None
    reason: str | None = None
    signature: str | None = None
    signature_detail: str | None = None
    raw: bytes | None = None
    # Filled in by the store:
    first_seen_at: float | None = None
    last_seen_at: float | None = None
    deleted_at: float | None = None  # when it was deleted at the provider through pec-mcp

    @property
    def dedup_key(self) -> str:
        basis = "\x00".join((self.kind, (self.recipient or "").lower(), self.date, self.provider_text))
        return hashlib.sha256(basis.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CertifiedMessage:
    """One recipient's Mensatek message id (unique per environment) and the ledger row it belongs to."""

    message_id: str
    sending_id: int
    email: str
    name: str
    environment: str = ""


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
    account: str | None = None  # the account it concerns; None: none (openapi.it's mailbox actions) or not known


@dataclass(frozen=True)
class AuditView:
    """The audit entries a reader may see: those of ``actions``, of the ``accounts`` (None: of any account, and of
    none), and, of no account, those of the ``accountless`` actions."""

    actions: Collection[str]
    accounts: Collection[str] | None
    accountless: Collection[str]

    def where(self) -> tuple[str, list[str]]:
        clause, args = one_of("action", self.actions)
        if self.accounts is None:
            return clause, args
        mine, accounts = one_of("account", self.accounts)
        of_none, accountless = one_of("action", self.accountless)
        return f"{clause} AND ({mine} OR (account IS NULL AND {of_none}))", [*args, *accounts, *accountless]


T = TypeVar("T")


@dataclass(frozen=True)
class Read(Generic[T]):
    """One statement that only reads, and what its rows become: run now (:meth:`Store.run`) or awaited
    (:meth:`Store.fetch`)."""

    sql: str
    args: tuple[Any, ...]
    result: Callable[[list[Any]], T]


def one_of(column: str, values: Collection[str]) -> tuple[str, list[str]]:
    """``column IN (?, ...)`` and its values; an empty collection matches no row (SQL has no empty IN list)."""
    ordered = sorted(values)
    return f"{column} IN ({', '.join('?' * len(ordered)) or 'NULL'})", ordered


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

    def reading(self) -> AbstractContextManager[Db]:
        """For statements that only read: on PostgreSQL each runs on its own, without BEGIN and COMMIT round trips
        (the hot reads of a tool call); on SQLite in one transaction."""
        opened: AbstractContextManager[Db] = self.backend.reading()
        return opened

    def run(self, read: Read[T]) -> T:
        """A read, now (it blocks while the database answers)."""
        with self.reading() as db:
            return read.result(db.execute(read.sql, read.args).fetchall())

    async def fetch(self, read: Read[T]) -> T:
        """A read, awaited: on PostgreSQL the reads that the tasks of an event loop ask for in the same turn go
        to the database together, in one round trip (see :class:`~pec_mcp.store.postgres.ReadBatches`); on SQLite
        a local read, done now."""
        return read.result(await self.backend.fetch(read.sql, read.args))

    def standalone(self) -> AbstractContextManager[Db]:
        """For writes that each stand on their own (no read-modify-write across statements): on PostgreSQL each
        statement commits by itself, without BEGIN, the store-wide lock and COMMIT; on SQLite one immediate
        transaction."""
        opened: AbstractContextManager[Db] = self.backend.standalone()
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
        account: str | None = None,
        actor: str | None = None,
        content_hash: str | None = None,
        content: dict[str, Any] | None = None,
    ) -> tuple[Sending, bool]:
        """Write a ``queued`` row before anything is sent; returns (row, created).

        Keys are unique per environment and account (the provider's name unless given). A reused key gives back
        the first row (created False), unless that attempt failed before anything was sent and its content is the
        same: then the row is queued again for a new attempt. The caller compares ``content_hash`` of a row given
        back (see pec_mcp.idempotency): the same key for other content is the caller's error to raise.
        """
        account = account or provider
        now = self.clock()
        with self.transaction(immediate=True) as db:
            if idempotency_key is not None:
                existing = db.execute(
                    "SELECT * FROM sendings WHERE environment = ? AND account = ? AND idempotency_key = ?",
                    (environment, account, idempotency_key),
                ).fetchone()
                same = existing is not None and existing["content_hash"] in (None, content_hash)
                if existing is not None and (existing["state"] != "failed" or not same):
                    return _sending(existing), False
                if existing is not None:
                    # The first attempt certainly sent nothing: the same key may try again, on the same row.
                    db.execute(
                        """UPDATE sendings SET state = 'queued', error = NULL, actor = COALESCE(?, actor),
                               content_hash = COALESCE(content_hash, ?), content = COALESCE(content, ?),
                               updated_at = ? WHERE id = ?""",
                        (actor, content_hash, _json_or_none(content), now, existing["id"]),
                    )
                    row = db.execute("SELECT * FROM sendings WHERE id = ?", (existing["id"],)).fetchone()
                    return _sending(row), True
            sending_id = int(db.execute(
                """INSERT INTO sendings (provider, environment, account, idempotency_key, state, sender, recipients,
                       subject, attachments, size_bytes, job_id, actor, content_hash, content, created_at, updated_at)
                   VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id""",
                (provider, environment, account, idempotency_key, sender, json.dumps(list(recipients)), subject,
                 json.dumps(list(attachments)), size_bytes, job_id, actor, content_hash, _json_or_none(content),
                 now, now),
            ).fetchone()[0])
            db.executemany(
                "INSERT INTO sending_recipients (sending_id, address) VALUES (?, ?) ON CONFLICT DO NOTHING",
                [(sending_id, a.lower()) for a in recipients],
            )
            row = db.execute("SELECT * FROM sendings WHERE id = ?", (sending_id,)).fetchone()
        return _sending(row), True

    def sending_by_key(self, environment: str, account: str, idempotency_key: str) -> Sending | None:
        """The sending made with this key in this environment and account, if any."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT * FROM sendings WHERE environment = ? AND account = ? AND idempotency_key = ?",
                (environment, account, idempotency_key),
            ).fetchone()
        return _sending(row) if row else None

    def key_used(self, environment: str, account: str, idempotency_key: str) -> bool:
        """Whether a send with this key exists and did not fail before sending (a repeat would be a duplicate)."""
        row = self.sending_by_key(environment, account, idempotency_key)
        return row is not None and row.state != "failed"

    def mark_dispatching(self, sending_id: int) -> None:
        """The request is about to go on the wire: from now on a lost answer means ``unknown``."""
        self._set_state(sending_id, "sending", allowed_from=("queued",))

    def assign_message_id(self, sending_id: int, message_id: str) -> None:
        """Record the Message-ID a queued send will carry (mail accounts choose it), before it is submitted."""
        with self.transaction() as db:
            db.execute("UPDATE sendings SET message_id = ?, updated_at = ? WHERE id = ? AND state = 'queued'",
                       (message_id, self.clock(), sending_id))

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
        """Record a delivery status; callers pass a status that only moves forward (pec_mcp.receipts.advance)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE sendings SET delivery_status = ?, delivery_summary = ?, updated_at = ? WHERE id = ?",
                (status, summary, self.clock(), sending_id),
            )

    def sending_by_id(self, sending_id: int) -> Sending | None:
        with self.reading() as db:
            row = db.execute("SELECT * FROM sendings WHERE id = ?", (sending_id,)).fetchone()
        return _sending(row) if row else None

    def sending_by_message_id(
        self, message_id: str, *, provider: str | None = None, environment: str | None = None
    ) -> Sending | None:
        """The newest sending with this message_id (of this provider and environment, when given)."""
        query, args = "SELECT * FROM sendings WHERE message_id = ?", [message_id]
        for column, value in (("provider", provider), ("environment", environment)):
            if value:
                query += f" AND {column} = ?"
                args.append(value)
        with self.reading() as db:
            row = db.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return _sending(row) if row else None

    def find_sendings(self, **filters: Any) -> list[Sending]:
        """:meth:`sendings_found`, read now."""
        return self.run(self.sendings_found(**filters))

    def sendings_found(
        self,
        *,
        provider: str | None = None,
        environment: str | None = None,
        account: str | None = None,
        recipient: str | None = None,
        query: str | None = None,
        since: date | None = None,
        limit: int = 20,
        providers: Sequence[str] = (),
        accounts: Collection[str] | None = None,
    ) -> Read[list[Sending]]:
        """Recent sendings, newest first, filtered by provider (or any of ``providers``), environment (None: all),
        account, recipient (exact or partial), subject words, date, and the accounts a user may see (None:
        all)."""
        clauses: list[str] = ["1 = 1"]
        args: list[Any] = []
        if providers:
            clauses.append(f"s.provider IN ({', '.join('?' for _ in providers)})")
            args.extend(providers)
        for column, value in (("provider", provider), ("environment", environment), ("account", account)):
            if value:
                clauses.append(f"s.{column} = ?")
                args.append(value)
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
        if accounts is not None:  # in the query, so that the limit counts only rows the user may see
            clause, values = one_of("s.account", accounts)
            clauses.append(clause)
            args.extend(values)
        sql = f"SELECT s.* FROM sendings s WHERE {' AND '.join(clauses)} ORDER BY s.id DESC LIMIT ?"
        return Read(sql, (*args, limit), _sendings)

    # -- the audit trail ---------------------------------------------------------------------------------------

    def record_audit(
        self, *, action: str, actor: str, environment: str, summary: str, outcome: str, ref: str | None = None,
        account: str | None = None,
    ) -> None:
        """One entry of the audit trail; ``account`` is the PEC or certified-email account it concerns, if any."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit (at, action, actor, environment, summary, outcome, ref, account) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (self.clock(), action, actor, environment, summary, outcome, ref, account),
            )

    def audit_log(self, *, limit: int = 50, environment: str | None = None,
                  view: AuditView | None = None) -> list[AuditEntry]:
        """The newest entries of the audit trail, of one environment (None: every environment), and only those a
        reader may see (``view``; None: all). Filtered in the query, so that the limit counts only those."""
        clauses, args = ["1 = 1"], []
        if environment:
            clauses.append("environment = ?")
            args.append(environment)
        if view is not None:
            clause, values = view.where()
            clauses.append(clause)
            args.extend(values)
        with self.transaction() as db:
            rows = db.execute(f"SELECT * FROM audit WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
                              (*args, limit)).fetchall()
        return [AuditEntry(**dict(r)) for r in rows]

    # -- webhook and callback events ---------------------------------------------------------------------------

    def record_event(
        self,
        *,
        provider: str,
        environment: str,
        event_key: str,
        message_id: str | None,
        kind: str,
        payload: dict[str, Any],
        account: str | None = None,
    ) -> bool:
        """Store one event of an environment and account (the provider's name unless given); False if an event
        with the same key was stored there before (a replay)."""
        with self.transaction() as db:
            cursor = db.execute(
                """INSERT INTO events (provider, environment, account, event_key, message_id, kind, payload,
                       received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
                (provider, environment, account or provider, event_key, message_id, kind,
                 json.dumps(payload, ensure_ascii=False), self.clock()),
            )
        return cursor.rowcount == 1

    def events(
        self, *, provider: str, environment: str | None, message_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Events of a provider, newest first, in one environment (None: every environment)."""
        sql, args = "SELECT * FROM events WHERE provider = ?", [provider]
        for column, value in (("environment", environment), ("message_id", message_id)):
            if value:
                sql += f" AND {column} = ?"
                args.append(value)
        with self.transaction() as db:
            rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            {"kind": r["kind"], "message_id": r["message_id"], "received_at": iso(r["received_at"]),
             "payload": json.loads(r["payload"]), "environment": r["environment"], "account": r["account"]}
            for r in rows
        ]

    # -- receipts ----------------------------------------------------------------------------------------------

    def record_receipts(
        self, *, environment: str, account: str, message_id: str, sending_id: int | None,
        receipts: Sequence[Receipt],
    ) -> int:
        """Keep every receipt seen, once (deduplicated on kind, recipient, date and text); returns how many were
        new. A receipt seen again has its ``last_seen_at`` moved on (to within RECEIPT_SEEN_EVERY), so that a
        later read can tell which receipts the provider still holds.

        Each statement stands on its own (the UNIQUE constraint, not a lock, keeps a receipt once): reading a
        sending whose receipts are all known and were seen a moment ago is one read-only statement, which matters
        on the hot path of ``get_pec_receipts`` (an agent polling a pending sending writes nothing). A receipt
        that another process inserts between the steps is updated instead.
        """
        if not receipts:
            return 0
        now = self.clock()
        where = (environment, account, message_id)
        added = 0
        with self.standalone() as db:
            keys = list(dict.fromkeys(r.dedup_key for r in receipts))
            kept = db.execute(
                f"""SELECT dedup_key, last_seen_at, sending_id FROM receipts
                    WHERE environment = ? AND account = ? AND message_id = ?
                    AND dedup_key IN ({', '.join('?' * len(keys))})""", (*where, *keys)).fetchall()
            stale = [key for key, seen, sending in kept
                     if seen < now - RECEIPT_SEEN_EVERY or (sending is None and sending_id is not None)]
            if stale:
                _touch_receipts(db, self.backend.row_lock, now, sending_id, where, stale)
            done = {key for key, _, _ in kept}
            for r in receipts:
                if r.dedup_key in done:
                    continue
                done.add(r.dedup_key)
                inserted = db.execute(
                    """INSERT INTO receipts (environment, account, message_id, sending_id, recipient, kind, date,
                           provider_text, reason, source, signature, signature_detail, raw, dedup_key, first_seen_at,
                           last_seen_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (environment, account, message_id, dedup_key) DO NOTHING RETURNING id""",
                    (*where, sending_id, r.recipient, r.kind, r.date, r.provider_text, r.reason, r.source,
                     r.signature, r.signature_detail, r.raw, r.dedup_key, now, now),
                ).fetchall()
                if inserted:
                    added += 1
                else:  # kept by another process meanwhile: seen again
                    _touch_receipts(db, self.backend.row_lock, now, sending_id, where, [r.dedup_key])
        return added

    def receipts_of(self, *, environment: str, account: str, message_id: str) -> list[Receipt]:
        """Every receipt the ledger keeps for one sending, in the order they were first seen."""
        with self.reading() as db:
            rows = db.execute(
                """SELECT * FROM receipts WHERE environment = ? AND account = ? AND message_id = ?
                   ORDER BY first_seen_at, id""",
                (environment, account, message_id),
            ).fetchall()
        return [_receipt(r) for r in rows]

    def sending_with_receipts(
        self, message_id: str, *, environment: str, provider: str, statuses: Collection[str]
    ) -> Read[tuple[Sending | None, list[Receipt] | None]]:
        """The newest sending with this message_id in this environment (of any provider) and, in the same round
        trip, every receipt the ledger keeps for it when it was made through ``provider`` and its delivery status
        is one of ``statuses``; otherwise the receipts are None (not read).

        What :meth:`sending_by_message_id` then :meth:`receipts_of` would give, in one statement instead of two:
        the sending is read once, not once per receipt as a join would repeat it.
        """
        settled, values = one_of("s.delivery_status", statuses)

        def parts(rows: list[Any]) -> tuple[Sending | None, list[Receipt] | None]:
            if not rows:
                return None, None
            width = len(_SENDING_COLUMNS) + 1
            sending = _sending_from(dict(zip(_SENDING_COLUMNS, rows[0][1:width], strict=True)))
            if sending.provider != provider or sending.delivery_status not in statuses:
                return sending, None
            return sending, [Receipt(*row[width:width + len(_RECEIPT_COLUMNS)]) for row in rows[1:]]

        return Read(_SENDING_AND_RECEIPTS.format(settled=settled), (message_id, environment, provider, *values),
                    parts)

    def mark_receipts_deleted(
        self, *, environment: str, account: str, message_id: str, dedup_keys: Sequence[str] | None = None
    ) -> int:
        """The provider's copies were deleted through pec-mcp: the ledger keeps the receipts, marked deleted."""
        sql = """UPDATE receipts SET deleted_at = ? WHERE environment = ? AND account = ? AND message_id = ?
                 AND deleted_at IS NULL"""
        args: list[Any] = [self.clock(), environment, account, message_id]
        if dedup_keys is not None:
            sql += f" AND dedup_key IN ({','.join('?' * len(dedup_keys))})"
            args.extend(dedup_keys)
        with self.transaction(immediate=True) as db:
            return int(db.execute(sql, args).rowcount)

    # -- Mensatek certified email: one id per recipient, unique per environment ---------------------------------

    def record_certified_messages(
        self, *, environment: str, sending_id: int, ids: Sequence[tuple[str, str, str]]
    ) -> None:
        """The (message_id, email, name) Mensatek gave for each recipient of a sending, in order. An id another
        environment gave too is a different message: it never overwrites that environment's row."""
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO certified_messages (environment, message_id, sending_id, position, email, name)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (environment, message_id) DO UPDATE SET sending_id = excluded.sending_id,
                       position = excluded.position, email = excluded.email, name = excluded.name""",
                [(environment, mid, sending_id, position, email, name)
                 for position, (mid, email, name) in enumerate(ids)],
            )

    def certified_messages_of(self, sending_id: int) -> list[CertifiedMessage]:
        with self.transaction() as db:
            rows = db.execute("SELECT * FROM certified_messages WHERE sending_id = ? ORDER BY position",
                                    (sending_id,)).fetchall()
        return [_certified(r) for r in rows]

    def certified_message(self, environment: str, message_id: str) -> CertifiedMessage | None:
        with self.transaction() as db:
            row = db.execute("SELECT * FROM certified_messages WHERE environment = ? AND message_id = ?",
                                   (environment, message_id)).fetchone()
        return _certified(row) if row else None

    # -- the shared send pacer ---------------------------------------------------------------------------------

    def take_slot(self, name: str, *, interval: float, early: float = 0.0, hold: float = SLOT_HOLD) -> Slot:
        """Take the turn of ``name`` if its moment is at most ``early`` seconds away: the moment, else when to ask
        again (one transaction; the caller sleeps in between, so nobody polls a turn held by another).

        A turn taken is held by its taker until :meth:`slot_used` (its request left) or :meth:`free_slot` (it will
        not go); a taker that dies holds it until ``hold`` seconds after its moment. The interval to the next send
        is measured from :meth:`slot_used`, the moment of sending, so a request that is late after its turn pushes
        the next one back. Where the backend can, only this pacer's rows are locked, not the whole store: a replica
        claiming a job request meanwhile does not delay a send that has its turn.
        """
        with self.transaction(immediate=True, lock=_pacer_lock(name)) as db:
            now = self.clock()
            times = _slot_times(db, name)
            held = times.get(name + HELD)
            if held is not None and now < held + hold:
                # The holder goes at ``held``; the next moment is an interval after it, unless it gives back.
                return Slot(None, max(held + interval - early - now, HELD_POLL))
            moment = max(times.get(name, 0.0), now)
            if moment - now > early:
                return Slot(None, moment - now - early)
            _set_slot_time(db, name + HELD, moment)
        return Slot(moment, 0.0)

    def slot_used(self, name: str, interval: float, *, at: float | None = None) -> None:
        """The holder's request left at ``at`` (default: now): the next one may go ``interval`` seconds later."""
        with self.transaction(immediate=True, lock=_pacer_lock(name)) as db:
            left = self.clock() if at is None else at
            _set_slot_time(db, name, max(left + interval, _slot_times(db, name).get(name, 0.0)))
            db.execute("DELETE FROM pacer WHERE name = ?", (name + HELD,))

    def free_slot(self, name: str) -> None:
        """The holder's request will not go: the turn is free again at once."""
        with self.transaction(immediate=True, lock=_pacer_lock(name)) as db:
            db.execute("DELETE FROM pacer WHERE name = ?", (name + HELD,))

    def pause_slot(self, name: str, seconds: float) -> None:
        """The provider asked for a pause (429 with Retry-After): no send of ``name`` for ``seconds``."""
        with self.transaction(immediate=True, lock=_pacer_lock(name)) as db:
            _set_slot_time(db, name, max(self.clock() + seconds, _slot_times(db, name).get(name, 0.0)))


@dataclass(frozen=True)
class Slot:
    """What :meth:`Store.take_slot` answered: the turn's moment (a time on the store's clock), or when to ask again."""

    moment: float | None
    retry_in: float


class StorePacer:
    """A send pacer shared by every process using the same store (see ``pec_mcp.http.Pacer``).

    Each send costs two short transactions, both off the critical moment: the turn is taken a little before its
    moment (``early_turn``), so the caller's own preparation is done by then, and it is passed on once the request
    left. Senders in other processes wait by sleeping until the moment the next turn can come, not by polling.
    """

    def __init__(self, store: Store, name: str, rate: float) -> None:
        self.store = store
        self.name = name
        self.interval = paced_interval(rate)
        self.early = early_turn(self.interval)
        self._moment = 0.0
        # Within one process the turn passes through a lock, so that only the holder asks the store.
        self._local = anyio.Lock()

    async def wait_turn(self) -> None:
        await self._local.acquire()
        try:
            while True:
                # Taking the turn may wait on another process's lock: keep it off the event loop.
                slot = await anyio.to_thread.run_sync(self._take)
                if slot.moment is not None:
                    self._moment = slot.moment
                    return
                await anyio.sleep(slot.retry_in)
        except BaseException:
            self._local.release()
            raise

    def _take(self) -> Slot:
        return self.store.take_slot(self.name, interval=self.interval, early=self.early)

    async def until_moment(self) -> None:
        wait = self._moment - self.store.clock()
        if wait > 0:
            await anyio.sleep(wait)

    async def dispatched(self) -> None:
        await self.until_moment()
        left = counted_from(self._moment, self.store.clock(), self.interval)
        # The next sender of this process may ask meanwhile: it finds the turn still held at this moment, or passed
        # on, and is told the same next moment either way.
        self._local.release()
        await anyio.to_thread.run_sync(lambda: self.store.slot_used(self.name, self.interval, at=left))

    async def give_back(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.store.free_slot, self.name)
        finally:
            self._local.release()

    async def pause(self, seconds: float) -> None:
        await anyio.to_thread.run_sync(self.store.pause_slot, self.name, seconds)


def _pacer_lock(name: str) -> str:
    return f"pacer:{name}"


def _slot_times(db: Any, name: str) -> dict[str, float]:
    """The pacer's rows: its next moment (``name``) and, while a turn is held, the holder's moment."""
    rows = db.execute("SELECT name, next_at FROM pacer WHERE name IN (?, ?)", (name, name + HELD)).fetchall()
    return {row[0]: float(row[1]) for row in rows}


def _set_slot_time(db: Any, name: str, at: float) -> None:
    db.execute("INSERT INTO pacer (name, next_at) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET next_at = ?",
               (name, at, at))


def _sendings(rows: list[Any]) -> list[Sending]:
    return [_sending(r) for r in rows]


def _sending(row: Any) -> Sending:
    return _sending_from(dict(zip(row.keys(), row, strict=True)))  # one pass; dict(row) looks up each name


def _sending_from(data: dict[str, Any]) -> Sending:
    data["recipients"] = json.loads(data["recipients"])
    data["attachments"] = json.loads(data["attachments"])
    data["content"] = json.loads(data["content"]) if data.get("content") else None
    return Sending(**data)


# How stale a receipt's last_seen_at may get before a read that sees it again moves it on: to the minute is
# enough to tell which receipts a provider still holds, and spares a write to every poll of a pending sending.
RECEIPT_SEEN_EVERY = 60.0


def _touch_receipts(db: Db, row_lock: str, now: float, sending_id: int | None, where: tuple[str, str, str],
                    keys: Sequence[str]) -> set[str]:
    """Receipts already kept, seen again now: ``last_seen_at`` moves on; returns the dedup keys that were kept.

    The rows are locked in id order first (PostgreSQL), so that replicas reading the same sending at once queue
    behind each other instead of deadlocking.
    """
    rows = db.execute(
        f"""UPDATE receipts SET last_seen_at = ?, sending_id = COALESCE(sending_id, ?)
            WHERE id IN (SELECT id FROM receipts WHERE environment = ? AND account = ? AND message_id = ?
                         AND dedup_key IN ({', '.join('?' * len(keys))}) ORDER BY id{row_lock})
            RETURNING dedup_key""",
        (now, sending_id, *where, *keys),
    ).fetchall()
    return {row[0] for row in rows}


# A sending's columns are its dataclass's fields (rows become Sendings by name), and a receipt's fields are
# columns of the receipts table, in the order Receipt takes them.
_SENDING_COLUMNS = tuple(f.name for f in fields(Sending))
_RECEIPT_COLUMNS = tuple(f.name for f in fields(Receipt))

# One sending and its receipts in one result: the sending's row first, then one row per receipt; each part leaves
# the other's columns empty. {settled} stands for the delivery statuses whose receipts are read.
_SENDING_AND_RECEIPTS = (
    "WITH s AS (SELECT * FROM sendings WHERE message_id = ? AND environment = ? ORDER BY id DESC LIMIT 1) "
    "SELECT 0 AS part, "
    + ", ".join(f"s.{c} AS s_{c}" for c in _SENDING_COLUMNS) + ", "
    + ", ".join(f"NULL AS r_{c}" for c in _RECEIPT_COLUMNS) + ", NULL AS r_id FROM s "
    "UNION ALL SELECT 1, " + ", ".join("NULL" for _ in _SENDING_COLUMNS) + ", "
    + ", ".join(f"r.{c}" for c in _RECEIPT_COLUMNS) + ", r.id "
    "FROM receipts r JOIN s ON r.environment = s.environment AND r.account = s.account "
    "AND r.message_id = s.message_id WHERE s.provider = ? AND {settled} "
    "ORDER BY part, r_first_seen_at, r_id"
)


def _receipt(row: Any) -> Receipt:
    return Receipt(kind=row["kind"], date=row["date"], provider_text=row["provider_text"], source=row["source"],
                   recipient=row["recipient"], reason=row["reason"], signature=row["signature"],
                   signature_detail=row["signature_detail"], raw=row["raw"], first_seen_at=row["first_seen_at"],
                   last_seen_at=row["last_seen_at"], deleted_at=row["deleted_at"])


def _certified(row: Any) -> CertifiedMessage:
    return CertifiedMessage(row["message_id"], row["sending_id"], row["email"], row["name"], row["environment"])


def _json_or_none(data: dict[str, Any] | None) -> str | None:
    return None if data is None else json.dumps(data, ensure_ascii=False, sort_keys=True)


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
    """What the store needs of a database: see :mod:`pec_mcp.store.sqlite` and :mod:`pec_mcp.store.postgres`."""

    kind: str
    row_lock: str

    def describe(self) -> str: ...
    def close(self) -> None: ...
    def transaction(self, *, immediate: bool = False, lock: str | None = None) -> AbstractContextManager[Any]: ...

    def reading(self) -> AbstractContextManager[Any]: ...

    async def fetch(self, sql: str, params: Sequence[Any], /) -> list[Any]: ...

    def standalone(self) -> AbstractContextManager[Any]: ...
    def migration_lock(self) -> AbstractContextManager[Any]: ...
    def schema_version(self, db: Any) -> int: ...
    def set_schema_version(self, db: Any, version: int) -> None: ...
    def ddl(self, statement: str) -> str: ...
    def after_migration(self, db: Any) -> None: ...
    def utc_period(self, column: str, period: str) -> str: ...


def is_database_url(location: Path | str) -> bool:
    return str(location).lower().startswith(("postgresql://", "postgres://"))


def unavailable(exc: BaseException) -> str | None:
    """Why the store could not be used, when ``exc`` is its database not answering (PostgreSQL away or a connection
    lost, the SQLite file locked by another process too long, a full disk); None for any other error.

    The store lets its driver's errors through, so that a send interrupted by one is settled as any interruption
    is (``unknown`` when its request may have left); this names them for the person who reads the error.
    """
    from pec_mcp.store import sqlite

    reason = sqlite.did_not_answer(exc)
    postgres = sys.modules.get("pec_mcp.store.postgres")  # loaded only with a store.url: else none of its errors
    if reason is None and postgres is not None:
        reason = postgres.did_not_answer(exc)
    return reason


def open_backend(location: Path | str) -> Backend:
    """SQLite for a path, PostgreSQL for a ``postgresql://`` URL (its driver is imported only then)."""
    if is_database_url(location):
        from pec_mcp.store.postgres import PostgresBackend

        return PostgresBackend(str(location))
    from pec_mcp.store.sqlite import SqliteBackend

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
