"""What the simulator counts, so tests can prove that a message was sent exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    """Accepted requests per endpoint, rate-limit rejections, how often each recipient was sent to, faults."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.rate_limited = 0
        self.recipients: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()  # "provider:kind" -> faults injected (pec_mcp.simulator.faults)

    def count_accepted(self, endpoint: str, recipients: list[str] = ()) -> None:  # type: ignore[assignment]
        self.accepted[endpoint] += 1
        for address in recipients:
            self.recipients[address.lower()] += 1

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, Any] = {
            "accepted": dict(self.accepted),
            "rate_limited": self.rate_limited,
            "recipients": dict(self.recipients),
        }
        if self.faults:  # only with a fault plan, so the documented shape stays as it is without one
            counts["faults"] = dict(self.faults)
        return counts
