"""Run the benchmarks and print one table: ``python bench/run.py [--quick] [--only NAME]``.

Each benchmark module in this folder has ``run() -> list[dict]`` (``run(quick=...)`` when it takes the
argument). A row has ``benchmark``, ``measure``, ``pec_mcp``, ``baseline``, ``ratio``, ``unit``, ``target``,
``met``, ``n`` and ``note`` (see ``common.row``); missing keys print empty. Modules listed in ``REGISTRY`` run
first in that order; any other module here with a ``run`` function runs after them, so a new benchmark needs
only its file. Everything runs offline (the simulator on loopback), in a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import machine

REGISTRY = ["startup", "calls", "attachments", "inbox", "pacing"]
NOT_BENCHMARKS = {"run", "common", "bare_server"}
COLUMNS = [("benchmark", 12), ("measure", 40), ("pec_mcp", 9), ("baseline", 9), ("ratio", 7), ("unit", 4),
           ("target", 18), ("met", 4), ("n", 4), ("note", 0)]


def modules() -> list[str]:
    here = Path(__file__).resolve().parent
    found = sorted(p.stem for p in here.glob("*.py") if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_"))
    return [m for m in REGISTRY if m in found] + [m for m in found if m not in REGISTRY]


def collect(name: str, quick: bool) -> list[dict[str, Any]]:
    module = importlib.import_module(name)
    run = getattr(module, "run", None)
    if run is None:
        return []
    takes_quick = "quick" in inspect.signature(run).parameters
    rows = run(quick=quick) if takes_quick else run()
    return list(rows)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["  ".join(name.ljust(width) for name, width in COLUMNS).rstrip()]
    lines.append("  ".join("-" * max(width, len(name)) for name, width in COLUMNS))
    for r in rows:
        lines.append("  ".join(cell(r.get(name)).ljust(width) for name, width in COLUMNS).rstrip())
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a rough figure, faster)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this module (repeatable): "
                        + ", ".join(modules()))
    args = parser.parse_args()
    names = modules()
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in args.only]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    failed = False
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows += collect(name, args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed = True
            rows.append({"benchmark": name, "measure": "FAILED", "note": f"{type(exc).__name__}: {exc}"[:200]})
    print(f"pec-mcp benchmarks on {machine()}; {'quick' if args.quick else 'full'} run, "
          f"{time.perf_counter() - started:.0f} s; medians; ratio = pec-mcp / baseline")
    print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
