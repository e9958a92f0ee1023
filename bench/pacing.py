"""Bulk pacing and planning: how close a job runs to the provider's limit, and what a 10,000-recipient job costs.

1. Pacing: a job of personalised recipients (one request each) through a real pec-mcp server, its job runner and
   its shared send pacer, against ``pec-mcp simulate`` in a subprocess on loopback with the same limit. Reported:
   the requests per second the job achieved as a fraction of the limit (median of several runs; target 0.97 or
   better) and the requests the simulator refused as over the limit (target 0).
2. Planning: reading a 10,000-row CSV, checking and rendering every row, grouping and queueing the job in the
   store; time and peak memory (tracemalloc), against a baseline measured in the same run: the same file only
   parsed with ``csv.DictReader`` into a list of dicts.

``python bench/pacing.py [--quick]`` prints a table; ``run()`` returns its rows.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RATE = 20.0  # requests per second, for the simulator and the server alike
RECIPIENTS = 200
RUNS = 3
PLANNED = 10_000


def row(measure: str, value: float, baseline: float | None, *, unit: str, target: str, met: bool | None, n: int,
        note: str = "") -> dict[str, Any]:
    return {"benchmark": "pacing", "measure": measure, "pec_mcp": value, "baseline": baseline,
            "ratio": value / baseline if baseline else None, "unit": unit, "target": target, "met": met, "n": n,
            "note": note}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _simulator(rate: float) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "pec_mcp", "simulate", "--port", str(port), "--rate",
                                str(rate), "--delivery-delay", "1"], cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _stats(origin)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.05)
        yield origin
    finally:
        process.terminate()
        process.wait(timeout=10)


def _stats(origin: str) -> dict[str, Any]:
    with urllib.request.urlopen(origin + "/__simulator__/stats", timeout=5) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


async def _one_job(origin: str, folder: Path, count: int, rate: float) -> dict[str, Any]:
    import anyio
    from mcp import Client

    from pec_mcp.config import load_settings
    from pec_mcp.server import build_server
    from pec_mcp.simulator import credentials as sim

    settings = load_settings(environ={}, environment="sandbox", store={"path": str(folder / "store.sqlite3")},
                             pecmassiva={"token": sim.PECMASSIVA_TOKEN, "username": sim.PECMASSIVA_USERNAME,
                                         "password": sim.PECMASSIVA_PASSWORD, "base_url": origin + "/pecmassiva"},
                             sending={"requests_per_second": rate, "confirm": "never"},
                             attachments={"allowed_dirs": [str(folder)]}, tools={"enabled": ["bulk"]})
    recipients = [{"address": f"cliente{i}@pec.example.it", "variables": {"n": str(i)}} for i in range(count)]
    async with Client(build_server(settings)) as client:
        started = await client.call_tool("start_bulk_pec", {"recipients": recipients, "subject": "Sollecito {{n}}",
                                                            "body": "Gentile cliente {{n}}, le ricordiamo..."})
        assert started.structured_content is not None, started.content
        job_id = started.structured_content["job_id"]
        while True:
            job = (await client.call_tool("get_bulk_pec", {"job_id": job_id})).structured_content
            assert job is not None
            if job["status"] != "sending":
                return job
            await anyio.sleep(0.25)


def pacing(runs: int = RUNS, count: int = RECIPIENTS, rate: float = RATE) -> list[dict[str, Any]]:
    import anyio

    fractions, rejected, sent = [], 0, 0
    for _ in range(runs):
        with _simulator(rate) as origin, tempfile.TemporaryDirectory(prefix="pec-bench-") as tmp:
            job = anyio.run(_one_job, origin, Path(tmp), count, rate)
            stats = _stats(origin)
        fractions.append((job["achieved_rate_per_second"] or 0.0) / rate)
        rejected += stats["rate_limited"]
        sent += job["counts"]["sent"]
    fraction = statistics.median(fractions)
    return [
        row(f"achieved rate / limit ({count} personalised, {rate:g}/s)", fraction, None, unit="x", target=">= 0.97",
            met=fraction >= 0.97, n=runs, note="runs: " + ", ".join(f"{f:.3f}" for f in fractions)),
        row("requests refused by the simulator (429)", float(rejected), None, unit="n", target="0",
            met=rejected == 0, n=runs, note=f"{sent} of {runs * count} recipients sent"),
    ]


def _csv(count: int) -> bytes:
    lines = ["address;nome;pratica;importo"]
    lines += [f"cliente{i}@pec.example.it;Cliente numero {i};2026/{i:05d};{i % 977},00" for i in range(count)]
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def _measure(work: Any) -> tuple[float, float]:
    """Seconds and peak MB (tracemalloc) of one call."""
    tracemalloc.start()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024
    tracemalloc.stop()
    return seconds, peak


def planning(count: int = PLANNED, runs: int = RUNS) -> list[dict[str, Any]]:
    from pec_mcp.config import load_settings
    from pec_mcp.jobs import JobStore, account_of, plan_bulk, read_recipients_csv
    from pec_mcp.store import Store

    subject = "Sollecito pratica {{pratica}}"
    body = "<p>Gentile {{nome}},</p><p>la pratica {{pratica}} risulta aperta per un importo di {{importo}} euro.</p>"
    plan_times, plan_peaks, base_times, base_peaks = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="pec-bench-") as tmp:
        folder = Path(tmp)
        path = folder / "destinatari.csv"
        path.write_bytes(_csv(count))
        for number in range(runs):
            settings = load_settings(environ={}, environment="offline",
                                     store={"path": str(folder / f"store{number}.sqlite3")},
                                     attachments={"allowed_dirs": [str(folder)]})
            store = Store(settings.store.path)

            def job(settings: Any = settings, store: Store = store) -> None:
                rows = read_recipients_csv(str(path), settings.attachments.resolved_dirs())
                plan = plan_bulk(recipients=rows, subject=subject, body=body, attachments=[], settings=settings)
                JobStore(store).create(plan, account=account_of(settings), idempotency_key=None, attachment_paths=[])

            def baseline() -> None:
                text = path.read_bytes().decode("utf-8-sig")
                assert len(list(csv.DictReader(io.StringIO(text), delimiter=";"))) == count

            seconds, peak = _measure(baseline)
            base_times.append(seconds)
            base_peaks.append(peak)
            seconds, peak = _measure(job)
            plan_times.append(seconds)
            plan_peaks.append(peak)
            store.close()
    median = statistics.median
    return [
        row(f"{count:,}-recipient job: plan + queue time", median(plan_times) * 1000, median(base_times) * 1000,
            unit="ms", target="< 5 s", met=median(plan_times) < 5, n=runs,
            note="baseline: the same CSV only parsed (csv.DictReader)"),
        row(f"{count:,}-recipient job: peak memory", median(plan_peaks), median(base_peaks), unit="MB",
            target="< 50 MB", met=median(plan_peaks) < 50, n=runs, note="tracemalloc peak, same baseline"),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    runs = 1 if quick else RUNS
    return [*pacing(runs=runs), *planning(runs=runs)]


def _print(rows: list[dict[str, Any]]) -> None:
    print(f"{'measure':58} {'pec-mcp':>10} {'baseline':>10} {'unit':>5}  {'target':10} met  n  note")
    for r in rows:
        base = "" if r["baseline"] is None else f"{r['baseline']:.3f}"
        print(f"{r['measure']:58} {r['pec_mcp']:>10.3f} {base:>10} {r['unit']:>5}  {r['target']:10} "
              f"{'yes' if r['met'] else 'NO':3} {r['n']:>2}  {r['note']}")


if __name__ == "__main__":
    _print(run(quick="--quick" in sys.argv))
