"""Change notifications for job resources, throttled per job."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("pec_mcp.jobs")

Publish = Callable[[str], Awaitable[None]]

NOTIFY_EVERY = 1.0  # at most one change notification per job per second


class Notifier:
    """Tells subscribers that a job changed, at most once per ``every`` seconds per job, the last change always."""

    def __init__(self, publish: Publish | None, clock: Callable[[], float], every: float = NOTIFY_EVERY) -> None:
        self.publish = publish
        self.clock = clock
        self.every = every
        self._last: dict[str, float] = {}
        self._dirty: set[str] = set()

    async def changed(self, job_id: str) -> None:
        if self.publish is None:
            return
        last = self._last.get(job_id)
        if last is not None and self.clock() - last < self.every:
            self._dirty.add(job_id)
            return
        await self._send(job_id)

    async def flush(self) -> None:
        for job_id in sorted(self._dirty):
            if self.clock() - self._last.get(job_id, 0.0) >= self.every:
                await self._send(job_id)

    async def _send(self, job_id: str) -> None:
        assert self.publish is not None
        self._dirty.discard(job_id)
        self._last[job_id] = self.clock()
        try:
            await self.publish(job_uri(job_id))
        except Exception:
            log.exception("could not publish a job change")


def job_uri(job_id: str) -> str:
    return f"pec://jobs/{job_id}"
