"""What the simulator counts, so tests can prove that a message was sent exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    """Accepted requests per endpoint, rate-limit rejections, and how often each recipient was sent to."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.rate_limited = 0
        self.recipients: Counter[str] = Counter()

    def count_accepted(self, endpoint: str, recipients: list[str] = ()) -> None:  # type: ignore[assignment]
        self.accepted[endpoint] += 1
        for address in recipients:
            self.recipients[address.lower()] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": dict(self.accepted),
            "rate_limited": self.rate_limited,
            "recipients": dict(self.recipients),
        }
