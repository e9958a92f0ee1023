"""The spacing of paced sends, shared by the in-process pacer (``pec_mcp.http``) and the store's (``pec_mcp.store``)."""

from __future__ import annotations

MARGIN_SECONDS = 0.025  # at least this much more than 1/rate between two sends
MARGIN_SHARE = 0.02  # or this share of 1/rate, if more


def paced_interval(rate: float) -> float:
    """Seconds between two sends at ``rate``, plus a margin for what comes between the moment a request leaves and
    the moment the provider counts it (a thread hop, the loopback, another process's event loop), so that a provider
    measuring arrivals never sees two sends closer than its limit allows."""
    interval = 1.0 / rate
    return interval + max(MARGIN_SECONDS, MARGIN_SHARE * interval)
