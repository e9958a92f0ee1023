"""Exporting the ledger: 100,000 recipient rows stream with the same peak memory as 10,000.

A store is filled through the ledger's own write path (``Store.begin_send`` + ``mark_sent``), five recipients a
sending, then ``pec_mcp.exports.export_sendings`` writes it as CSV and as JSON while ``tracemalloc`` records the
peak of Python allocations. The baseline is the same export of 10,000 rows: flat memory means the two peaks are
about equal (an export that held its rows would grow ten times).
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

from common import row, temp_dir

RECIPIENTS_PER_SENDING = 5


def _fill(path: Path, rows: int) -> None:
    from pec_mcp.store import Store

    store = Store(path)
    for n in range(rows // RECIPIENTS_PER_SENDING):
        recipients = [f"r{n}-{k}@pec.example.it" for k in range(RECIPIENTS_PER_SENDING)]
        sending, _ = store.begin_send(provider="pecmassiva", environment="offline", idempotency_key=None,
                                      sender="demo@pecmassiva.com", recipients=recipients,
                                      subject=f"Avviso di pagamento n. {n}, scadenza 31/03")
        store.mark_sent(sending.id, f"2026031010{n:08d}")
    store.close()


def _export(path: Path, out: Path, fmt: str, *, traced: bool = True) -> tuple[int, float, float]:
    """(rows, seconds, peak MB of Python allocations) of one export; untraced, only the time counts."""
    from pec_mcp.exports import export_sendings_to
    from pec_mcp.records import Records, SendingFilter
    from pec_mcp.store import Store

    store = Store(path)
    records = Records(store, price_per_message_eur=0.05)
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    summary = export_sendings_to(records, SendingFilter(), fmt, out)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    peak = 0
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    store.close()
    return summary.rows, seconds, peak / 1e6


def run(quick: bool = False) -> list[dict[str, Any]]:
    big = 30_000 if quick else 100_000
    small = 10_000  # twenty pages of the export's reads: the steady state, not a first partial page
    results = []
    with temp_dir() as folder:
        stores = {}
        for count in (small, big):
            stores[count] = folder / f"ledger-{count}.sqlite3"
            _fill(stores[count], count)
        for fmt in ("csv", "json"):
            n_small, _, peak_small = _export(stores[small], folder / f"small.{fmt}", fmt)
            n_big, _, peak_big = _export(stores[big], folder / f"big.{fmt}", fmt)
            _, seconds, _ = _export(stores[big], folder / f"timed.{fmt}", fmt, traced=False)  # tracing slows it
            assert (n_small, n_big) == (small, big)
            results.append(row(
                "exports", f"peak memory, {big:,}-row {fmt.upper()} export", round(peak_big, 2), round(peak_small, 2),
                unit="MB", target=f"≤ 1.5× at {small:,} rows", met=peak_big <= 1.5 * peak_small, n=1,
                note=f"{big / seconds:,.0f} rows/s; baseline: {small:,} rows; "
                f"file {(folder / f'big.{fmt}').stat().st_size / 1e6:.1f} MB"))
    return results
