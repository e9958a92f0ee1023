"""The provider-side rate limit: a request closer to the previous accepted one than 1/rate is refused.

Clients pace the start of each request; across a network (and a busy machine) an arrival may come a little earlier
than its start implies. Like a gateway that measures arrivals, the simulator forgives that jitter up to
``max(5% of the interval, 10 ms)``; anything closer is refused with a 429. The average rate still cannot exceed the
limit by more than that allowance on one request.
"""

from __future__ import annotations

from pec_mcp.simulator.clock import Clock

TOLERANCE = 0.05  # of the interval
JITTER_ALLOWANCE = 0.010  # seconds, at least


class RateGate:
    def __init__(self, rate: float, clock: Clock) -> None:
        self.interval = 1.0 / rate
        self.allowance = max(self.interval * TOLERANCE, JITTER_ALLOWANCE) if rate != float("inf") else 0.0
        self.clock = clock
        self._last: float | None = None

    def admit(self) -> float | None:
        """None if the request may pass (and is counted), else the seconds to wait before trying again."""
        now = self.clock.now()
        if self._last is not None:
            since = now - self._last
            if since < self.interval - self.allowance:
                return self.interval - since
        self._last = now
        return None
