"""One rule for times: every time pec-mcp shows is ISO 8601 in UTC (``2026-12-01T09:30:05+00:00``).

Providers write times their own way (PEC Massiva: ``Wed, 26 Aug 2020 10:00:35 +0200``); they are converted here,
once, so a model never compares a UTC time with an Italian one. Mensatek's scheduling, which must be given in
Spanish local time, is the one place that speaks another zone, and it says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache


@lru_cache(maxsize=4096)  # the same receipts' times come back at every read of a sending
def as_utc(text: str | None) -> str | None:
    """A provider's time as ISO 8601 UTC; a text that is not a time with a zone is returned as it is."""
    if not text:
        return text
    when = _parse(text.strip())
    if when is None or when.tzinfo is None:
        return text
    return when.astimezone(UTC).isoformat(timespec="seconds")


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
