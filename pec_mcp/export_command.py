"""``pec-mcp export``: the ledger as CSV or JSON (to a new file or standard output), or one sending's evidence ZIP.

The command line is the user at their own shell, so the file may go anywhere they name (never over an existing
file); the MCP tools, driven by a model, write only inside ``attachments.allowed_dirs``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO

from pec_mcp.config import Settings
from pec_mcp.errors import ConfigError
from pec_mcp.exports import evidence_pack, export_sendings, open_new
from pec_mcp.records import Records, SendingFilter
from pec_mcp.store import Store

# Exports shorter than this finish before a bar would be read.
LONG_EXPORT_ROWS = 10_000
BAR_WIDTH = 30


class ProgressBar:
    """``[#########.....]  61%  61,000 of 100,000 rows`` on one line of stderr, redrawn at most ten times a second."""

    def __init__(self, out: IO[str], *, force: bool) -> None:
        self.out = out
        self.force = force
        self.drawn_at = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not (self.force or total >= LONG_EXPORT_ROWS):
            return
        now = time.monotonic()
        if done < total and now - self.drawn_at < 0.1:
            return
        self.drawn_at = now
        share = done / total if total else 1.0
        filled = int(share * BAR_WIDTH)
        self.out.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%}  {done:,} of {total:,} rows")
        self.shown = True
        if done >= total:
            self.out.write("\n")
        self.out.flush()


def open_store(settings: Settings) -> Store:
    path = settings.store.path.expanduser()
    if not path.exists():
        raise ConfigError(f"There is no ledger at {path} (store.path): nothing was sent from this machine yet")
    return Store(path)


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings)
    try:
        records = Records(store, price_per_message_eur=settings.sending.price_per_message_eur)
        if args.evidence:
            return _evidence(records, settings, args.evidence, args.output)
        environment = args.environment or settings.env
        flt = SendingFilter(account=args.account, environment=None if environment == "all" else environment,
                            since=args.since, until=args.until)
        bar = ProgressBar(sys.stderr, force=args.progress or sys.stderr.isatty())
        if args.output is None:
            rows = export_sendings(records, flt, args.format, sys.stdout.buffer, progress=bar)
            sys.stdout.flush()
        else:
            with open_new(args.output) as out:
                rows = export_sendings(records, flt, args.format, out, progress=bar)
            print(f"{rows:,} row(s) written to {args.output}", file=sys.stderr)
        return 0
    finally:
        store.close()


def _evidence(records: Records, settings: Settings, message_id: str, output: Path | None) -> int:
    target = output or Path(f"pec-evidence-{''.join(c if c.isalnum() else '-' for c in message_id)}.zip")
    pack = evidence_pack(records, message_id, target, environment=settings.env)
    print(f"Evidence of {message_id} ({pack.receipts} receipt(s), {pack.originals} original signed message(s)) "
          f"written to {pack.path}", file=sys.stderr)
    return 0
