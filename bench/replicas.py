"""Replicas on one PostgreSQL database: shared pacing, takeover after SIGKILL, HTTP throughput.

A throwaway PostgreSQL 15 cluster is started on loopback (as in the tests), with ``pec-mcp simulate`` and
``pec-mcp serve --transport http`` processes around it.

1. Pacing: a bulk job of personalised recipients (one request each) run by 3 replicas together on one account,
   against a simulator with the same limit. Reported: the achieved rate as a fraction of the limit (target 0.97)
   and the requests the simulator refused as over the limit (target 0).
2. Takeover: one of the 3 replicas is SIGKILLed while it holds requests of the job; reported: the seconds until
   every request it held is settled by another (queued again and sent, or ``unknown`` if it may have left).
3. HTTP load: 60 concurrent clients calling ``find_pec_sendings`` and ``get_pec_receipts`` of a delivered
   sending (stateless 2026-07-28 requests, round-robin over the replicas): 3 replicas vs 1 replica, throughput
   and p99 latency; and 1 replica vs a bare SDK streamable-HTTP server with one tool
   (``bench/bare_server.py --http``), same run; the same replica on ``list_pec_accounts``, which reads neither the
   ledger nor a provider (its own request path against the SDK's). Then the CPU a call costs when it must ask the
   provider: ``get_pec_receipts`` of a pending sending. The load generator runs in its own process. Each pair
   compared (3 replicas and 1, 1 replica and the bare server) is measured in alternating rounds, and the medians
   are reported with the ratio of each round: the speed of these shared machines drifts by more than the
   difference measured, within minutes.

``python bench/replicas.py [--quick]`` prints a table; ``run()`` returns its rows.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from common import PYTHON, ROOT, env, free_port, row, simulator, temp_dir, wait_for_port

STATE_KEY = "bench-replicas-state-key-0123456789abcdef"
PACING_RATE = 2.0  # requests per second: PEC Massiva's real limit is 1/s; 2/s keeps the run short
PACING_RECIPIENTS = 60
CLIENTS = 60
LOAD_SECONDS = 6.0  # one round of one setup
LOAD_ROUNDS = 5  # rounds per setup, alternating with the setup it is compared with
# A stateless 2026-07-28 request names its method and tool in headers too (the SDK checks they match the body).
HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28"}
MODERN = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
          "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
          "io.modelcontextprotocol/clientCapabilities": {}}


@contextmanager
def postgres() -> Iterator[Any]:
    from tests.postgres import cluster

    with cluster() as running:
        yield running


def server_env(origin: str, url: str, rate: float, folder: Path) -> dict[str, str]:
    from pec_mcp.simulator import credentials as sim

    config = folder / "config.toml"
    config.write_text("")
    config.chmod(0o600)
    return env(PEC_MCP_CONFIG=str(config), PEC_MCP_ENVIRONMENT="sandbox", PEC_MCP_STORE__URL=url,
               PEC_MCP_PECMASSIVA__TOKEN=sim.PECMASSIVA_TOKEN, PEC_MCP_PECMASSIVA__USERNAME=sim.PECMASSIVA_USERNAME,
               PEC_MCP_PECMASSIVA__PASSWORD=sim.PECMASSIVA_PASSWORD,
               PEC_MCP_PECMASSIVA__BASE_URL=origin + "/pecmassiva",
               PEC_MCP_SENDING__REQUESTS_PER_SECOND=str(rate), PEC_MCP_SENDING__CONFIRM="never",
               PEC_MCP_TOOLS__ENABLED='["pec", "bulk"]', PEC_MCP_HTTP__STATE_KEY=STATE_KEY)


class Replica:
    def __init__(self, environ: dict[str, str], folder: Path) -> None:
        self.port = free_port()
        self.log = folder / f"replica-{self.port}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([PYTHON, "-m", "pec_mcp", "serve", "--transport", "http", "--port",
                                          str(self.port)], env=environ, cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out)

    def ready(self) -> Replica:
        wait_for_port(self.port, self.proc, timeout=120)
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def replicas(count: int, environ: dict[str, str], folder: Path) -> Iterator[list[Replica]]:
    started = [Replica(environ, folder) for _ in range(count)]
    try:
        yield [r.ready() for r in started]
    finally:
        for r in started:
            r.stop()


def migrate(environ: dict[str, str]) -> None:
    subprocess.run([PYTHON, "-m", "pec_mcp", "migrate"], env=environ, cwd=ROOT, check=True, capture_output=True)


def stats(origin: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(origin + "/__simulator__/stats", timeout=10) as answer:
        data: dict[str, Any] = json.load(answer)
    return data


def call(port: int, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """One stateless 2026-07-28 tools/call; the structured result."""
    import httpx

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": args, "_meta": MODERN}}
    answer = httpx.post(f"http://127.0.0.1:{port}/mcp", json=body, timeout=60,
                        headers={**HEADERS, "mcp-method": "tools/call", "mcp-name": tool})
    if answer.status_code != 200:
        raise RuntimeError(f"{tool}: HTTP {answer.status_code} {answer.text[:300]}")
    message = _message(answer.text)
    result: dict[str, Any] = message["result"]
    if result.get("isError"):
        raise RuntimeError(f"{tool}: {result['content'][0]['text']}")
    structured: dict[str, Any] = result["structuredContent"]
    return structured


def _message(text: str) -> dict[str, Any]:
    """The JSON-RPC answer, from a JSON body or the data line of an SSE stream."""
    text = text.strip()
    if text.startswith("{"):
        data: dict[str, Any] = json.loads(text)
        return data
    for line in text.splitlines():
        if line.startswith("data:") and line[5:].strip().startswith("{"):
            data = json.loads(line[5:])
            if "result" in data or "error" in data:
                return data
    raise RuntimeError(f"no JSON-RPC answer in {text[:200]!r}")


def recipients(count: int, tag: str) -> list[dict[str, Any]]:
    return [{"address": f"{tag}{i}@pec.example.it", "variables": {"n": str(i)}} for i in range(count)]


def job_progress(port: int, job_id: str) -> dict[str, Any]:
    return call(port, "get_bulk_pec", {"job_id": job_id})


def wait_job(port: int, job_id: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        job = job_progress(port, job_id)
        if job["status"] != "sending" or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


# -- 1 and 2: pacing across replicas, takeover after SIGKILL -------------------------------------------------------


def pacing_and_takeover(cluster: Any, folder: Path, count: int) -> list[dict[str, Any]]:
    import psycopg

    url = cluster.url(cluster.create_database("pacing"))
    with simulator(rate=PACING_RATE, delivery_delay=1.0) as origin:
        environ = server_env(origin, url, PACING_RATE, folder)
        migrate(environ)
        with replicas(3, environ, folder) as (first, second, third):
            started = call(first.port, "start_bulk_pec", {"recipients": recipients(count, "pace"),
                                                          "subject": "Sollecito {{n}}", "body": "Gentile {{n}}"})
            job_id = started["job_id"]
            job = wait_job(first.port, job_id, within=count / PACING_RATE * 3 + 60)
            paced = stats(origin)
            # Takeover: a second job; SIGKILL a replica while it holds requests, time until they are settled.
            second_job = call(first.port, "start_bulk_pec", {"recipients": recipients(count, "take"),
                                                             "subject": "Sollecito {{n}}", "body": "Gentile {{n}}"})
            held: list[Any] = []
            with psycopg.connect(url, autocommit=True) as db:
                deadline = time.monotonic() + 60
                while not held and time.monotonic() < deadline:
                    held = db.execute("SELECT job_id, seq FROM job_groups WHERE state = 'sending' AND owner LIKE %s",
                                      (f"%:{second.proc.pid}:%",)).fetchall()
                    time.sleep(0.02)
                second.kill()
                killed_at = time.monotonic()
                while db.execute("SELECT COUNT(*) FROM job_groups WHERE state = 'sending' AND owner LIKE %s",
                                 (f"%:{second.proc.pid}:%",)).fetchone()[0]:
                    time.sleep(0.05)
                takeover = time.monotonic() - killed_at
            wait_job(third.port, second_job["job_id"], within=count / PACING_RATE * 3 + 60)
    cluster.drop_database(url.rsplit("/", 1)[1])
    fraction = (job["achieved_rate_per_second"] or 0.0) / PACING_RATE
    from pec_mcp.jobs.runner import HEARTBEAT, LEASE

    return [
        row("replicas", f"achieved rate / limit (3 replicas, {count} requests, {PACING_RATE:g}/s)", fraction, None,
            unit="x", target=">= 0.97", met=fraction >= 0.97, n=count,
            note=f"{job['counts']['sent'] + job['counts']['delivered']} sent"),
        row("replicas", "requests refused by the simulator (429)", float(paced["rate_limited"]), None, unit="n",
            target="0", met=paced["rate_limited"] == 0, n=count),
        row("replicas", "takeover after SIGKILL (s)", takeover, LEASE, unit="s", target=f"<= lease ({LEASE:g} s)",
            met=takeover <= LEASE, n=len(held),
            note=f"{len(held)} request(s) held; same host: a dead pid is seen at the next check (every "
                 f"{HEARTBEAT:g} s); another host: when the lease runs out"),
    ]


# -- 3: HTTP load ---------------------------------------------------------------------------------------------------


# The load generator: HTTP/1.1 over asyncio streams, written by hand, so that it spends a small fraction of the
# CPU a call costs the server (httpx would spend about as much per call as the bare server): on two cores every
# millisecond it spends is taken from the replicas it measures. One keep-alive connection per client and replica.
LOAD_SCRIPT = r"""
import asyncio, json, os, sys, time
ports, calls, clients, seconds = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "load", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}
REQUESTS = {}
for port in ports:
    for name, args in calls:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": name, "arguments": args, "_meta": META}}).encode()
        head = (f"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
                "accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n"
                f"mcp-method: tools/call\r\nmcp-name: {name}\r\ncontent-length: {len(body)}\r\n\r\n").encode()
        REQUESTS.setdefault(port, []).append(head + body)
latencies, errors, reconnects, turn = [], 0, 0, 0

async def exchange(conn, request):
    reader, writer = conn
    writer.write(request)
    status = int((await reader.readuntil(b"\r\n")).split(b" ", 2)[1])
    length, chunked = None, False
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        key, _, value = line.decode("latin-1").partition(":")
        key = key.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "transfer-encoding" and "chunked" in value:
            chunked = True
    if chunked:
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await reader.readexactly(length or 0)
    return status, body

# One exchange; a keep-alive connection the server closed while idle is opened again once, as any HTTP client
# does (counted apart: the request was answered).
async def send(conns, port, request):
    global reconnects
    reused = port in conns
    for attempt in (1, 2):
        if port not in conns:
            conns[port] = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await exchange(conns[port], request)
        except (OSError, asyncio.IncompleteReadError):
            conns.pop(port, None)
            if not reused or attempt == 2:
                raise
            reconnects += 1

async def client(index, stop):
    global errors, turn
    conns, n = {}, index
    while time.monotonic() < stop:
        port = ports[turn % len(ports)]; turn += 1
        request = REQUESTS[port][n % len(calls)]; n += 1
        started = time.monotonic()
        try:
            status, body = await send(conns, port, request)
            ok = status == 200 and b'"isError":true' not in body and b'"error"' not in body[:200]
        except (OSError, asyncio.IncompleteReadError, ValueError):
            conns.pop(port, None)
            ok = False
        if ok:
            latencies.append(time.monotonic() - started)
        else:
            errors += 1
    for reader, writer in conns.values():
        writer.close()

async def main():
    at_start = os.times()
    stop = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(client(i, stop) for i in range(clients)))
    elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else 0.0
    times = os.times()
    print(json.dumps({"done": len(latencies), "errors": errors, "reconnects": reconnects,
                      "per_second": len(latencies) / elapsed, "p99": p99,
                      "cpu": times.user + times.system - at_start.user - at_start.system}))
asyncio.run(main())
"""


def load(ports: Sequence[int], calls: list[tuple[str, dict[str, Any]]], seconds: float) -> dict[str, Any]:
    done = subprocess.run([PYTHON, "-c", LOAD_SCRIPT, json.dumps(list(ports)), json.dumps(calls), str(CLIENTS),
                           str(seconds)], env=env(), cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=seconds + 300)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- CPU time per call: a figure that does not depend on what else the machine is doing ----------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and of its children it has waited for (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / TICKS


def postgres_cpu(cluster: Any) -> float:
    """The CPU of the whole PostgreSQL cluster: the postmaster, its live backends and the ones that ended."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    total += cpu_seconds(int(entry.name))
            except (OSError, ValueError):
                continue
    return total


def pid_listening(port: int) -> int:
    """The process started with ``--port PORT`` (or ``--http PORT``) on its command line."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(port).encode() in words and any(w in (b"--port", b"--http") for w in words):
                return int(entry.name)
    raise RuntimeError(f"no process started for port {port}")


def measured(servers: Sequence[int], ports: Sequence[int], calls: list[tuple[str, dict[str, Any]]],
             seconds: float, *, simulator_pid: int | None = None, cluster: Any = None) -> dict[str, Any]:
    """One load run, with the CPU milliseconds per call that each part spent: the servers under test, the
    simulator (the provider behind get_pec_receipts), PostgreSQL and the load generator."""

    def sample() -> dict[str, float]:
        parts = {"servers": sum(cpu_seconds(pid) for pid in servers)}
        if simulator_pid is not None:
            parts["simulator"] = cpu_seconds(simulator_pid)
        if cluster is not None:
            parts["postgresql"] = postgres_cpu(cluster)
        return parts

    before, started = sample(), time.monotonic()
    result = load(ports, calls, seconds)
    after, elapsed = sample(), time.monotonic() - started
    calls_done = max(result["done"], 1)
    cpu = {name: (after[name] - before[name]) * 1000 / calls_done for name in before}
    cpu["load generator"] = result.pop("cpu") * 1000 / calls_done
    result["cpu_ms"] = cpu
    result["server_busy"] = (after["servers"] - before["servers"]) / elapsed / len(servers)
    return result


@contextmanager
def bare_http_server() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen([PYTHON, str(ROOT / "bench" / "bare_server.py"), "--http", str(port)], env=env(),
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, timeout=120)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def where_it_goes(result: dict[str, Any]) -> str:
    cpu = result["cpu_ms"]
    total = sum(cpu.values())
    return "CPU per call " + ", ".join(f"{name} {ms:.2f} ms ({ms / total:.0%})" for name, ms in cpu.items())


def alternating(first: Callable[[], dict[str, Any]], second: Callable[[], dict[str, Any]],
                rounds: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two setups measured in alternating rounds (AB, BA, AB, ...), one result per round each: a slower or faster
    spell of a shared machine falls on both instead of on whichever ran then."""
    firsts: list[dict[str, Any]] = []
    seconds: list[dict[str, Any]] = []
    for turn in range(rounds):
        pairs = [(first, firsts), (second, seconds)]
        for measure, results in pairs[::-1] if turn % 2 else pairs:
            results.append(measure())
    return firsts, seconds


def typical(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (the upper one of an even count), as it was measured."""
    return sorted(results, key=lambda r: r["per_second"])[len(results) // 2]


def ratios(ours: Sequence[dict[str, Any]], theirs: Sequence[dict[str, Any]]) -> str:
    each = sorted(a["per_second"] / b["per_second"] for a, b in zip(ours, theirs, strict=True) if b["per_second"])
    return f"ratio round by round {', '.join(f'{r:.2f}' for r in each)}"


def http_load(cluster: Any, folder: Path, seconds: float, rounds: int) -> list[dict[str, Any]]:
    url = cluster.url(cluster.create_database("load"))
    with simulator(rate=1000, delivery_delay=0.0) as origin, ExitStack() as stack:
        simulator_pid = pid_listening(int(origin.rsplit(":", 1)[1]))
        environ = server_env(origin, url, 1000, folder)
        migrate(environ)
        three = stack.enter_context(replicas(3, environ, folder))
        # Something to find: a few sendings, with receipts at the simulator.
        ids = [call(three[0].port, "send_pec", {"recipients": [f"destinatario{i}@pec.example.it"],
                                                "subject": f"Comunicazione {i}", "body": "Testo",
                                                "idempotency_key": f"load-{i}"})["message_id"] for i in range(5)]
        # The sendings are delivered at once (delivery_delay 0): get_pec_receipts answers a settled sending from
        # the ledger. A pending one (a recipient whose delivery times out only after hours) asks the provider.
        pending = call(three[0].port, "send_pec", {"recipients": ["timeout-lento@pec.example.it"],
                                                   "subject": "In attesa", "body": "Testo",
                                                   "idempotency_key": "load-pending"})["message_id"]
        calls: list[tuple[str, dict[str, Any]]] = [("find_pec_sendings", {"limit": 5})]
        calls += [("get_pec_receipts", {"message_id": mid}) for mid in ids[:1]]
        polls: list[tuple[str, dict[str, Any]]] = [("get_pec_receipts", {"message_id": pending})]
        parts = {"simulator_pid": simulator_pid, "cluster": cluster}
        one = [three[0].proc.pid], [three[0].port]
        load([r.port for r in three], calls, min(seconds, 3.0))  # warm-up: connections, prepared statements
        one_replica, three_replicas = alternating(
            lambda: measured(*one, calls, seconds, **parts),
            lambda: measured([r.proc.pid for r in three], [r.port for r in three], calls, seconds, **parts), rounds)
        for replica in three[1:]:
            replica.stop()
        with bare_http_server() as bare_port:
            echo: list[tuple[str, dict[str, Any]]] = [("echo", {"text": "ciao"})]
            load([bare_port], echo, min(seconds, 3.0))
            bare, single = alternating(lambda: measured([pid_listening(bare_port)], [bare_port], echo, seconds),
                                       lambda: measured(*one, calls, seconds, **parts), rounds)
            # The same replica on a tool that reads neither the ledger nor a provider: its own request path.
            no_io = measured(*one, [("list_pec_accounts", {})], seconds, **parts)
        polling = measured(*one, polls, seconds, **parts)
    cluster.drop_database(url.rsplit("/", 1)[1])
    return load_rows(one_replica, three_replicas, bare, single, no_io, polling, rounds=rounds, seconds=seconds)


def load_rows(one_replica: list[dict[str, Any]], three_replicas: list[dict[str, Any]], bare: list[dict[str, Any]],
              single: list[dict[str, Any]], no_io: dict[str, Any], polling: dict[str, Any], *, rounds: int,
              seconds: float) -> list[dict[str, Any]]:
    one, three, echo, ours = typical(one_replica), typical(three_replicas), typical(bare), typical(single)
    ratio = three["per_second"] / one["per_second"] if one["per_second"] else 0.0
    versus_bare = ours["per_second"] / echo["per_second"] if echo["per_second"] else 0.0
    server_cpu = sorted(r["cpu_ms"]["servers"] for r in single)[rounds // 2]
    bare_cpu = sorted(r["cpu_ms"]["servers"] for r in bare)[rounds // 2]

    def note(result: dict[str, Any]) -> str:
        return (f"{result['per_second']:.0f}/s, p99 {result['p99'] * 1000:.0f} ms, {result['errors']} errors, "
                f"{result['reconnects']} idle connections closed by the server and opened again, "
                f"servers {result['server_busy']:.0%} busy each")

    load_average = os.getloadavg()[0]
    each = f"medians of {rounds} alternating rounds of {seconds:.0f} s"
    return [
        row("replicas", f"HTTP calls/s, 3 replicas vs 1 ({CLIENTS} clients)", three["per_second"],
            one["per_second"], unit="/s", target="ratio >= 1.6", met=ratio >= 1.6,
            n=sum(r["done"] for r in three_replicas),
            note=f"{each}; {ratios(three_replicas, one_replica)}; 3: {note(three)}; {where_it_goes(three)}; "
                 f"1: {note(one)}; load average {load_average:.1f}"),
        row("replicas", "HTTP calls/s, 1 replica vs bare SDK server", ours["per_second"], echo["per_second"],
            unit="/s", target="ratio >= 0.8", met=versus_bare >= 0.8, n=sum(r["done"] for r in single),
            note=f"{each}; {ratios(single, bare)}; pec-mcp: {note(ours)}; bare echo: {note(echo)}"),
        row("replicas", "server CPU per call, 1 replica vs bare SDK server", server_cpu, bare_cpu,
            unit="ms", target="", met=None, n=sum(r["done"] for r in single),
            note=f"{each}; pec-mcp: {where_it_goes(ours)}; bare echo: {where_it_goes(echo)}"),
        row("replicas", "HTTP calls/s, 1 replica on list_pec_accounts (no ledger, no provider) vs bare SDK server",
            no_io["per_second"], echo["per_second"], unit="/s", target="", met=None, n=no_io["done"],
            note=f"pec-mcp's request path alone: {note(no_io)}; {where_it_goes(no_io)}"),
        row("replicas", "server CPU per call, get_pec_receipts of a pending sending vs bare SDK server",
            polling["cpu_ms"]["servers"], bare_cpu, unit="ms", target="", met=None, n=polling["done"],
            note=f"the provider is asked at every call: {note(polling)}; {where_it_goes(polling)}"),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    with postgres() as cluster, temp_dir() as folder:
        rows = pacing_and_takeover(cluster, folder, 20 if quick else PACING_RECIPIENTS)
        rows += http_load(cluster, folder, *((2.0, 3) if quick else (LOAD_SECONDS, LOAD_ROUNDS)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["pacing", "load"])
    args = parser.parse_args()
    with postgres() as cluster, temp_dir() as folder:
        rows = []
        if args.only in (None, "pacing"):
            rows += pacing_and_takeover(cluster, folder, 20 if args.quick else PACING_RECIPIENTS)
        if args.only in (None, "load"):
            rows += http_load(cluster, folder, *((2.0, 3) if args.quick else (LOAD_SECONDS, LOAD_ROUNDS)))
    for r in rows:
        ratio = f" ratio {r['ratio']:.2f}" if r["ratio"] else ""
        print(f"{r['measure']}: {r['pec_mcp']:.3f}{ratio} (target {r['target']}) {r['note']}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
