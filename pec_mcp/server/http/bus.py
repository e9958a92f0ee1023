"""Resource-updated events for every replica: the SDK's subscription bus, shared through PostgreSQL LISTEN/NOTIFY.

A replica publishes to its own listeners at once and NOTIFYs the others; each replica LISTENs on one connection
and hands what the others published to its own listeners. So a client subscribed to ``pec://jobs/<id>`` on any
replica hears about a job whichever replica's runner moved it. On SQLite (one machine) the bus stays in-process.
Delivery is fire-and-forget, as the SDK's bus is: a client that drops re-listens and re-reads.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated, ServerEvent

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("pec_mcp.bus")

CHANNEL = "pec_mcp_events"
RECONNECT_AFTER = 1.0  # seconds between attempts while the database is away


class SharedBus:
    """A :class:`~mcp.server.subscriptions.SubscriptionBus` whose resource updates reach every replica."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.local = InMemorySubscriptionBus()
        self.origin = secrets.token_hex(8)  # to skip our own notifications when they come back
        self._sender: psycopg.AsyncConnection[object] | None = None
        self.listening = anyio.Event()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        return self.local.subscribe(listener)

    async def publish(self, event: ServerEvent) -> None:
        await self.local.publish(event)
        if self.url is not None and isinstance(event, ResourceUpdated):
            try:
                await self._notify(f"{self.origin} {event.uri}")
            except Exception as exc:  # the other replicas miss one update; their clients re-read on reconnect
                log.warning("could not tell the other replicas that %s changed: %s", event.uri, type(exc).__name__)
                broken, self._sender = self._sender, None
                if broken is not None:
                    with anyio.CancelScope(shield=True):
                        await broken.close()

    async def _notify(self, payload: str) -> None:
        import psycopg

        if self._sender is None or self._sender.closed:
            assert self.url is not None
            self._sender = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5)
        await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    async def listen(self) -> None:
        """Hand the other replicas' updates to this replica's listeners, until cancelled (reconnects as needed)."""
        if self.url is None:
            return
        import psycopg

        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5)
                try:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    async for note in connection.notifies():
                        origin, _, uri = note.payload.partition(" ")
                        if origin != self.origin and uri:
                            await self.local.publish(ResourceUpdated(uri=uri))
                finally:
                    # Shielded: listening ends by cancellation, and a cancelled scope would cancel the close too,
                    # leaving the connection open for the garbage collector.
                    with anyio.CancelScope(shield=True):
                        await connection.close()
            except psycopg.Error as exc:
                log.warning("lost the shared event channel (%s); reconnecting", type(exc).__name__)
            await anyio.sleep(RECONNECT_AFTER)

    async def aclose(self) -> None:
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
