"""A TCP proxy that can cut every connection and refuse new ones for a while (the database "lost" and back), or
hold what clients send until released (a provider that has not answered yet)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import SocketStream


class CuttableProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`cut` drops everything until :meth:`restore`;
    :meth:`hold` keeps what clients send from reaching the upstream until :meth:`release`."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.open = True
        self._live: set[SocketStream] = set()
        self._flowing = anyio.Event()
        self._flowing.set()
        self.held = 0  # chunks that waited for a release

    def hold(self) -> None:
        if self._flowing.is_set():
            self._flowing = anyio.Event()

    def release(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        self.open = False
        for stream in list(self._live):
            self._tasks.start_soon(stream.aclose)
        self._live.clear()

    def restore(self) -> None:
        self.open = True

    async def _handle(self, client: SocketStream) -> None:
        upstream: SocketStream | None = None
        try:
            if not self.open:
                return
            with contextlib.suppress(OSError):
                upstream = await anyio.connect_tcp("127.0.0.1", self.upstream_port)
            if upstream is None or not self.open:  # refused, or cut while connecting
                return
            self._live.update((client, upstream))
            async with anyio.create_task_group() as pipes:
                pipes.start_soon(self._pipe, client, upstream, pipes.cancel_scope, True)
                pipes.start_soon(self._pipe, upstream, client, pipes.cancel_scope, False)
        finally:
            # Closed here even when the proxy stops (cancelled) mid-connection: a socket left to the garbage
            # collector is a ResourceWarning in whichever test runs next.
            self._live.difference_update((client, upstream))
            with anyio.CancelScope(shield=True):
                for stream in (client, upstream):
                    if stream is not None:
                        with contextlib.suppress(Exception):
                            await stream.aclose()

    async def _pipe(self, source: SocketStream, target: SocketStream, scope: anyio.CancelScope,
                    holdable: bool) -> None:
        with contextlib.suppress(Exception):
            async for chunk in source:
                if holdable and not self._flowing.is_set():
                    self.held += 1
                    await self._flowing.wait()
                await target.send(chunk)
        scope.cancel()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CuttableProxy]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tasks:
            self._tasks = tasks
            tasks.start_soon(listener.serve, self._handle)
            try:
                yield self
            finally:
                tasks.cancel_scope.cancel()
