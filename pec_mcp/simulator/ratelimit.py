"""The provider-side rate limit: a request closer to the previous accepted one than 1/rate is refused."""

from __future__ import annotations

from pec_mcp.simulator.clock import Clock

# Clients pace the start of each request; network jitter may bring two arrivals a little closer than that.
TOLERANCE = 0.05


class RateGate:
    def __init__(self, rate: float, clock: Clock) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self._last: float | None = None

    def admit(self) -> float | None:
        """None if the request may pass (and is counted), else the seconds to wait before trying again."""
        now = self.clock.now()
        if self._last is not None:
            since = now - self._last
            if since < self.interval * (1 - TOLERANCE):
                return self.interval - since
        self._last = now
        return None
