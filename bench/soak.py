"""Soak: a bulk job of thousands of recipients, random provider faults, and a server killed and restarted.

``pec-mcp simulate --rate 50 --faults ...`` runs in a subprocess; the server is ``python -m pec_mcp serve
--transport http`` in another, sharing one store file across its lives, driven by an MCP client over HTTP. The
job is started once; the server is then SIGKILLed at random moments and started again, several times, while the
simulator drops, delays, garbles and refuses requests; then the job is left to finish. At the end, from the
simulator's own counts and the store:

- recipients sent once, and duplicates (sent more than once: must be 0);
- lost (must be 0): not settled at the end (still queued or sending), or recorded as sent while the simulator
  never received them, or recorded as failed (not sent) while the simulator did receive them;
- unknown: the answer was lost, recorded so and never resent (how many of them really went out is shown too);
- unexplained errors (must be 0): tool results with the generic internal-error text, or a server log line
  reporting an unexpected problem;
- faults injected, restarts.

``python bench/soak.py [--quick] [--recipients N] [--restarts N] [--seed N]`` prints the figures; ``run()``
returns rows for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import PYTHON, ROOT, env, free_port, row, sandbox_settings_env, temp_dir, wait_for_port

RATE = 50.0  # the simulator's /send limit
CLIENT_RATE = 45.0  # the server's pacing: a little under the limit, as a careful deployment would set it
FAULTS = ",".join([
    "pecmassiva:/send:drop-after:0.02",  # sent, answer lost
    "pecmassiva:/send:drop:0.01",  # connection lost before the provider saw it
    "pecmassiva:/send:503-html:0.01",
    "pecmassiva:/send:429:0.01:burst=3:retry_after=1",
    "pecmassiva:/send:truncated:0.01",
    "pecmassiva:/send:invalid-json:0.005",
    "pecmassiva:/send:empty-204:0.005",
    "pecmassiva:/send:success-false:0.01",
    "pecmassiva:/send:slow:0.01:delay=0.5",
    "pecmassiva:*:502-html:0.03",  # reads too: receipts, inbox, quota
    "pecmassiva:*:drop-after:0.02",
])
STATE_KEY = "soak-replicas-state-key-0123456789abcdef"
UNEXPLAINED_LOG = ("unexpected error in a tool", "unexpected problem", "Traceback")


@dataclass
class Figures:
    recipients: int
    restarts: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    sent_once: int = 0
    duplicates: int = 0
    lost: int = 0
    unknown: int = 0
    unknown_really_sent: int = 0
    failed: int = 0
    unexplained: int = 0
    tool_calls: int = 0
    seconds: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Server:
    """``pec-mcp serve --transport http`` in a subprocess that can be killed and started again."""

    def __init__(self, environ: dict[str, str], logs: Path) -> None:
        self.environ = environ
        self.logs = logs
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.lives += 1
        log = (self.logs / f"server-{self.lives}.log").open("wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "pec_mcp", "serve", "--transport", "http", "--port", str(self.port)],
            env=self.environ, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        wait_for_port(self.port, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()  # reaped, so that the next runner sees its claims' owner is gone

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def unexplained_log_lines(self) -> list[str]:
        lines = []
        for path in sorted(self.logs.glob("server-*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if any(marker in line for marker in UNEXPLAINED_LOG):
                    lines.append(f"{path.name}: {line[:200]}")
        return lines


class Simulator:
    """``pec-mcp simulate --faults`` in a subprocess."""

    def __init__(self, faults: str, logs: Path) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        log = (logs / "simulator.log").open("wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "pec_mcp", "simulate", "--port", str(self.port), "--rate", str(RATE),
             "--delivery-delay", "1", "--faults", faults],
            env=env(), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        wait_for_port(self.port, self.proc)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.origin + "/__simulator__/stats", timeout=10) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Driver:
    """MCP calls over HTTP, one short session each (the server may have been killed since the last one); with
    several replicas, each call goes to the next one that is running."""

    def __init__(self, servers: list[Server], figures: Figures) -> None:
        self.servers = servers
        self.figures = figures
        self.turn = 0

    def next_url(self) -> str:
        for _ in range(len(self.servers)):
            self.turn += 1
            server = self.servers[self.turn % len(self.servers)]
            if server.proc is not None and server.proc.poll() is None:
                return server.url
        raise RuntimeError("no server is running")

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any] | None:
        from mcp import Client

        from pec_mcp.server.errors import UNEXPECTED

        with anyio.fail_after(60):
            async with Client(self.next_url()) as client:
                result = await client.call_tool(tool, args)
        self.figures.tool_calls += 1
        text = " ".join(getattr(c, "text", "") for c in result.content)
        if result.is_error and (UNEXPECTED.split("(")[0] in text or text.strip().endswith(f"tool {tool}")):
            self.figures.unexplained += 1
            self.figures.problems.append(f"{tool}: {text[:200]}")
        return None if result.is_error else result.structured_content

    async def reads(self) -> None:
        """A few provider reads, which meet the faults too: each must be a result or a clear error."""
        for tool, args in [("get_pec_quota", {}), ("list_pec_inbox", {"page": 1})]:
            await self.call(tool, args)


def addresses(count: int) -> list[str]:
    return [f"destinatario{n:05d}@pec-soak.it" for n in range(count)]


async def soak(recipients: int, restarts: int, seed: int, *, faults: str = FAULTS, replicas: int = 1,
               postgres: bool = False) -> Figures:
    """``replicas`` servers on one store (a SQLite file, or with ``postgres`` a PostgreSQL database); at each
    restart one of them, chosen at random, is SIGKILLed and started again."""
    figures = Figures(recipients=recipients)
    rng = random.Random(seed)
    started = time.perf_counter()
    with temp_dir() as tmp, database(postgres) as url:
        store = url or str(tmp / "store.sqlite3")
        sim = Simulator(f"{faults},seed={seed}", tmp)
        where = {"PEC_MCP_STORE__URL": url} if url else {}
        environ = env(**sandbox_settings_env(sim.origin, tmp / "store.sqlite3"), **where,
                      PEC_MCP_SENDING__REQUESTS_PER_SECOND=str(CLIENT_RATE), PEC_MCP_SENDING__CONFIRM="never",
                      PEC_MCP_TOOLS__ENABLED='["pec", "bulk"]', PEC_MCP_HTTP__STATE_KEY=STATE_KEY)
        if url:
            await anyio.to_thread.run_sync(partial(subprocess.run, [PYTHON, "-m", "pec_mcp", "migrate"], env=environ,
                                                   cwd=ROOT, check=True, capture_output=True))
        servers = [Server(environ, tmp / f"replica-{n}") for n in range(replicas)]
        driver = Driver(servers, figures)
        try:
            for server in servers:
                server.logs.mkdir(exist_ok=True)
                server.start()
            job_id = await start_job(driver, recipients)
            # Kill at random moments spread over the job's expected duration.
            expected = recipients / CLIENT_RATE
            for _ in range(restarts):
                await anyio.sleep(rng.uniform(0.3, 1.2) * expected / (restarts + 1))
                victim = rng.choice(servers)
                victim.kill()
                figures.restarts += 1
                victim.start()
                await driver.reads()
            progress = await wait_until_sent(driver, job_id, within=expected * 4 + 120)
            figures.states = {k: v for k, v in progress["counts"].items() if v}
            for server in servers:
                server.stop()
            stats = sim.stats()
        finally:
            for server in servers:
                server.stop()
            sim.stop()
        for server in servers:
            figures.unexplained += len(server.unexplained_log_lines())
            figures.problems += server.unexplained_log_lines()[:10]
        account(figures, job_id, store, stats)
    figures.seconds = time.perf_counter() - started
    return figures


@contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    """A PostgreSQL database on a throwaway cluster (its URL), or None for the SQLite file."""
    if not postgres:
        yield None
        return
    from tests.postgres import cluster

    with cluster() as running:
        yield running.url(running.create_database("soak"))


async def start_job(driver: Driver, count: int) -> str:
    people = [{"address": a, "variables": {"nome": f"Cliente {n}"}} for n, a in enumerate(addresses(count))]
    started = await driver.call("start_bulk_pec", {
        "recipients": people, "subject": "Sollecito di pagamento", "body": "<p>Gentile {{nome}}, ...</p>",
        "idempotency_key": "soak-1", "confirm": True})
    assert started is not None and started["status"] == "started", started
    return str(started["job_id"])


async def wait_until_sent(driver: Driver, job_id: str, *, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        progress = await driver.call("get_bulk_pec", {"job_id": job_id})
        assert progress is not None
        counts = progress["counts"]
        if counts["queued"] == 0 and counts["sending"] == 0:
            return progress
        if time.monotonic() > deadline:
            raise RuntimeError(f"the job did not finish sending in {within:.0f} s: {counts}")
        await anyio.sleep(1.0)


def account(figures: Figures, job_id: str, store: str, stats: dict[str, Any]) -> None:
    """Compare what the store says about every recipient with what the simulator received."""
    received: dict[str, int] = stats["recipients"]
    figures.faults = dict(sorted(stats.get("faults", {}).items()))
    figures.rate_limited = int(stats["rate_limited"])
    from pec_mcp.store import Store

    opened = Store(store)
    try:
        with opened.transaction() as db:
            rows = db.execute("SELECT address, state FROM job_recipients WHERE job_id = ?", (job_id,)).fetchall()
    finally:
        opened.close()
    assert len(rows) == figures.recipients, (len(rows), figures.recipients)
    for address, state in rows:
        times = received.get(address.lower(), 0)
        figures.sent_once += times == 1
        figures.duplicates += times > 1
        if state == "unknown":
            figures.unknown += 1
            figures.unknown_really_sent += times >= 1
        elif state == "failed":
            figures.failed += 1
        wrong = (state in ("queued", "sending") or (state in ("sent", "delivered", "not_delivered") and times == 0)
                 or (state in ("failed", "cancelled") and times > 0))
        if wrong:
            figures.lost += 1
            if len(figures.problems) < 20:
                figures.problems.append(f"{address}: recorded {state}, received {times} time(s)")


def run(quick: bool = False) -> list[dict[str, Any]]:
    recipients, restarts = (600, 3) if quick else (3000, 6)
    figures = anyio.run(soak, recipients, restarts, 7)
    return rows_of(figures)


def rows_of(f: Figures) -> list[dict[str, Any]]:
    note = (f"{f.recipients} recipients, {f.restarts} SIGKILL restarts, {sum(f.faults.values())} faults, "
            f"{f.seconds:.0f} s")
    return [
        row("soak", "recipients sent exactly once", f.sent_once, None, unit="", target="", met=None, n=f.recipients,
            note=note),
        row("soak", "duplicates (sent more than once)", f.duplicates, None, unit="", target="0",
            met=f.duplicates == 0, n=f.recipients),
        row("soak", "lost (unsettled or misrecorded)", f.lost, None, unit="", target="0", met=f.lost == 0,
            n=f.recipients),
        row("soak", "unknown (answer lost, never resent)", f.unknown, None, unit="", target="", met=None,
            n=f.recipients, note=f"{f.unknown_really_sent} of them had reached the provider"),
        row("soak", "failed (refused, not sent)", f.failed, None, unit="", target="", met=None, n=f.recipients),
        row("soak", "unexplained errors", f.unexplained, None, unit="", target="0", met=f.unexplained == 0,
            n=f.tool_calls),
        row("soak", "faults injected", sum(f.faults.values()), None, unit="", target="", met=None, n=f.recipients,
            note=", ".join(f"{k.split(':')[1]} {v}" for k, v in f.faults.items())),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 recipients and 3 restarts")
    parser.add_argument("--recipients", type=int)
    parser.add_argument("--restarts", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replicas", type=int, default=1, help="servers on one store, killed at random")
    parser.add_argument("--postgres", action="store_true", help="the store on a throwaway PostgreSQL cluster")
    args = parser.parse_args()
    recipients = args.recipients or (600 if args.quick else 3000)
    restarts = args.restarts if args.restarts is not None else (3 if args.quick else 6)
    f = anyio.run(partial(soak, recipients, restarts, args.seed, replicas=args.replicas, postgres=args.postgres))
    store = "PostgreSQL" if args.postgres else "SQLite"
    print(f"soak: {f.recipients} recipients, {args.replicas} replica(s) on {store}, {f.restarts} restarts (SIGKILL), "
          f"{f.seconds:.0f} s, seed {args.seed}")
    print(f"  faults injected:     {sum(f.faults.values())}  ({', '.join(f'{k} {v}' for k, v in f.faults.items())})")
    print(f"  rate-gate 429s:      {f.rate_limited} (the simulator's own limit, besides the injected ones)")
    print(f"  final states:        {f.states}")
    print(f"  sent exactly once:   {f.sent_once}")
    print(f"  duplicates:          {f.duplicates}")
    print(f"  lost:                {f.lost}")
    print(f"  unknown:             {f.unknown} ({f.unknown_really_sent} of them had reached the provider)")
    print(f"  failed (not sent):   {f.failed}")
    print(f"  unexplained errors:  {f.unexplained} (in {f.tool_calls} tool calls and the server logs)")
    for problem in f.problems[:20]:
        print(f"  ! {problem}")
    return 0 if f.duplicates == f.lost == f.unexplained == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
