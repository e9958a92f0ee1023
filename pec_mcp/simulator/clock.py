"""Time for the simulator: the real clock, shifted on request, so tests never sleep for receipts."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Unix time in seconds, plus an offset that :meth:`advance` moves forward.

    ``Clock(frozen_at=...)`` stands still until advanced, for tests that want exact times.
    """

    def __init__(self, *, frozen_at: float | None = None, source: Callable[[], float] = time.time) -> None:
        self._frozen_at = frozen_at
        self._source = source
        self._offset = 0.0

    def now(self) -> float:
        base = self._frozen_at if self._frozen_at is not None else self._source()
        return base + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset += seconds
