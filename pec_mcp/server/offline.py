"""The offline environment's network: the in-process simulator, made at the first request, as an httpx transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from pec_mcp.config import Settings

if TYPE_CHECKING:
    from pec_mcp.simulator import Simulator


class OfflineTransport(httpx.AsyncBaseTransport):
    """The in-process simulator as an httpx transport, created on the first request (offline environment)."""

    def __init__(self, settings: Settings, on_create: Callable[[Simulator], None] | None = None) -> None:
        self._settings = settings
        self._simulator: Simulator | None = None
        self._inner: httpx.ASGITransport | None = None
        self.on_create = on_create  # wires the new simulator's callbacks to this server

    @property
    def simulator(self) -> Simulator:
        if self._simulator is None:
            from pec_mcp.simulator import create_simulator

            options = self._settings.simulator
            self._simulator = create_simulator(delivery_delay=options.delivery_delay, rate=options.rate)
            if self.on_create is not None:
                self.on_create(self._simulator)
        return self._simulator

    def start(self) -> None:
        """Make the simulator and its ASGI transport now (the first request would otherwise)."""
        if self._inner is None:
            self._inner = httpx.ASGITransport(app=self.simulator.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.start()
        assert self._inner is not None
        return await self._inner.handle_async_request(request)
