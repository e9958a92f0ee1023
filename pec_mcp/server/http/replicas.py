"""Several replicas behind one address: confirmations sealed with the shared ``http.state_key``, and the check
that every HTTP replica on one store holds the same key.

A confirmation asked by one replica comes back as a sealed ``requestState`` that any replica holding the same key
can open (AES-256-GCM, the SDK's own codec). The seal is bound to the user who was asked, so another user cannot
answer it. Without ``http.state_key`` each process seals with a key of its own, which suits one process.

Each HTTP replica writes a row in the store's ``replicas`` table (a fingerprint of its key, never the key) and
renews it while it runs. A replica starting with a different key than a live one is refused: a confirmation asked
by one could not be answered through the other.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field

import anyio
from mcp.server.request_state import RequestStateSecurity

from pec_mcp.config import Settings
from pec_mcp.errors import ConfigError
from pec_mcp.server.http.users import principal
from pec_mcp.store import Store

log = logging.getLogger("pec_mcp.replicas")

# A confirmation left unanswered this long must be asked again.
CONFIRMATION_TTL = 600.0
# Seconds between a replica's renewals, and after how long without one it counts as gone.
RENEW = 5.0
REPLICA_LEASE = 30.0
NO_KEY = "none"


def request_state_security(settings: Settings) -> RequestStateSecurity:
    key = settings.http.state_key
    if key is None:
        security = RequestStateSecurity.ephemeral(ttl=CONFIRMATION_TTL)
        security.bind_principal = principal
        return security
    return RequestStateSecurity(keys=[key.get_secret_value()], ttl=CONFIRMATION_TTL, bind_principal=principal)


def state_key_id(settings: Settings) -> str:
    """A fingerprint of ``http.state_key`` that tells keys apart without revealing them."""
    key = settings.http.state_key
    if key is None:
        return NO_KEY
    return hmac.new(key.get_secret_value().encode(), b"pec-mcp state key id", hashlib.sha256).hexdigest()[:16]


@dataclass
class Replica:
    """This HTTP replica's row in the store."""

    store: Store
    key_id: str
    id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")

    def check(self) -> None:
        """Refuse to serve beside a live replica with another state key (or beside one when neither has a key)."""
        now = self.store.clock()
        with self.store.transaction() as db:
            rows = db.execute("SELECT id, host, pid, state_key_id, seen_at FROM replicas WHERE id != ?",
                              (self.id,)).fetchall()
        for row in rows:
            if not _alive(row, now):
                continue
            if row["state_key_id"] == self.key_id and self.key_id != NO_KEY:
                continue
            where = f"{row['host']} (pid {row['pid']})"
            if self.key_id == NO_KEY and row["state_key_id"] == NO_KEY:
                problem = "neither has http.state_key"
            else:
                problem = "it has a different http.state_key"
            raise ConfigError(
                f"Another pec-mcp HTTP replica is serving from this store, on {where}, and {problem}: a "
                "confirmation asked by one replica could not be answered through the other",
                hint="Give every replica the same http.state_key (PEC_MCP_HTTP__STATE_KEY, 32+ random characters), "
                "then start them again.",
            )

    def renew(self) -> None:
        with self.store.transaction() as db:
            db.execute("""INSERT INTO replicas (id, host, pid, state_key_id, started_at, seen_at)
                          VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at""",
                       (self.id, socket.gethostname(), os.getpid(), self.key_id, self.store.clock(),
                        self.store.clock()))

    def forget(self) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM replicas WHERE id = ?", (self.id,))

    async def keep_alive(self) -> None:
        """Renew the row until cancelled, then remove it (a killed replica's row simply goes stale)."""
        try:
            while True:
                try:
                    await anyio.to_thread.run_sync(self.renew)
                except Exception as exc:  # the database may be away for a while; the next renewal tries again
                    log.warning("could not renew this replica's row in the store: %s", type(exc).__name__)
                await anyio.sleep(RENEW)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(self.forget)
                except Exception as exc:
                    log.warning("could not remove this replica's row from the store: %s", type(exc).__name__)


def _alive(row: object, now: float) -> bool:
    from pec_mcp.jobs.store import pid_alive

    seen_at = float(row["seen_at"])  # type: ignore[index]
    if now - seen_at > REPLICA_LEASE:
        return False
    same_host = row["host"] == socket.gethostname()  # type: ignore[index]
    return not same_host or pid_alive(int(row["pid"]))  # type: ignore[index]
