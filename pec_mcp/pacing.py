"""The spacing of paced sends, shared by the in-process pacer (``pec_mcp.http``) and the store's (``pec_mcp.store``).

A paced request is counted from the moment its request headers were written to the connection (see
``pec_mcp.http.PacedTransport``), not from the moment its sender decided to go: whatever delays a sender between
its turn and the wire (a busy event loop, a thread hop, a database round trip, a new connection) pushes the next
send back instead of bringing two arrivals closer. What remains between the wire and the provider's count (the
loopback or the network, the provider's own scheduling) is covered by a margin of a share of the interval.
"""

from __future__ import annotations

MARGIN_SHARE = 0.01  # of 1/rate, added between two sends: 5 ms at 2/s, 10 ms at PEC Massiva's 1/s
EARLY_SECONDS = 0.1  # a sender holds its turn this long before its moment, to prepare (mark its ledger row)
EARLY_SHARE = 0.75  # but never more than this share of the interval
PUNCTUAL_SECONDS = 0.003  # a send whose headers left at most this long after its moment counts from its moment
PUNCTUAL_SHARE = 0.02  # (never more than this share of the interval: 1 ms at 20/s)


def paced_interval(rate: float) -> float:
    """Seconds between two sends at ``rate``, plus the margin for what comes between the wire and the provider."""
    interval = 1.0 / rate
    return interval * (1.0 + MARGIN_SHARE)


def early_turn(interval: float) -> float:
    """How long before its moment a sender holds its turn: the work between a turn and the wire (a cancellation
    check, the ledger marking the row ``sending``) is done by then, so that it does not delay the send, and so
    every later one."""
    return min(EARLY_SECONDS, interval * EARLY_SHARE)


def counted_from(moment: float, left: float, interval: float) -> float:
    """When a send counts as gone, for the next one's moment: its own moment if its headers left within a few
    milliseconds of it (the unavoidable time through the HTTP client, and a timer's lateness: the moments of
    punctual senders stay exactly one interval apart, at the cost of those milliseconds of the margin), else when
    they left (a late send pushes the next one back)."""
    punctual = min(PUNCTUAL_SECONDS, interval * PUNCTUAL_SHARE)
    return moment if moment <= left <= moment + punctual else left
