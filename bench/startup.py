"""Cold start (spawn until the first ``tools/list`` answer) and shutdown (stdin closed until exit).

Both servers are started the same way (``python -m pec_mcp serve`` offline with a temporary store, and
``python bench/bare_server.py``) and spoken to with raw JSON-RPC over the pipes: the legacy ``initialize``,
``notifications/initialized`` and ``tools/list`` written at once, so that no client library is in the figure.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from common import BENCH, PYTHON, ROOT, env, interleaved, median, ms, row, temp_dir

MESSAGES = b"".join(
    json.dumps(message).encode() + b"\n"
    for message in (
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    )
)


def start_and_stop(command: list[str], environment: dict[str, str]) -> tuple[float, float, int]:
    """(seconds to the tools/list answer, seconds from stdin closed to exit, number of tools)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=environment, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(MESSAGES)
    proc.stdin.flush()
    tools = -1
    for line in proc.stdout:
        answer = json.loads(line)
        if answer.get("id") == 2:
            tools = len(answer["result"]["tools"])
            break
    answered = time.perf_counter()
    if tools < 0:
        proc.kill()
        raise RuntimeError(f"{command} gave no tools/list answer")
    closing = time.perf_counter()
    proc.stdin.close()
    proc.wait(timeout=30)
    exited = time.perf_counter()
    proc.stdout.close()
    return answered - started, exited - closing, tools


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 5 if quick else 11
    with temp_dir() as tmp:
        full_env = env(PEC_MCP_ENVIRONMENT="offline", PEC_MCP_STORE__PATH=str(Path(tmp) / "store.sqlite3"),
                       HOME=str(tmp))
        pec_only_env = {**full_env, "PEC_MCP_TOOLS__ENABLED": '["pec"]'}
        pec = [PYTHON, "-m", "pec_mcp", "serve"]
        bare = [PYTHON, str(BENCH / "bare_server.py")]
        for command, environment in ((pec, full_env), (pec, pec_only_env), (bare, env())):
            start_and_stop(command, environment)  # warm the page cache and the .pyc files
        full_runs, pec_only_runs, bare_runs = interleaved(
            count,
            lambda: start_and_stop(pec, full_env),
            lambda: start_and_stop(pec, pec_only_env),
            lambda: start_and_stop(bare, env()),
        )
    bare_start = ms(median([r[0] for r in bare_runs]))
    rows = []
    for runs, which in ((full_runs, "all toolsets"), (pec_only_runs, "tools.enabled = [pec]")):
        start = ms(median([r[0] for r in runs]))
        rows.append(row("cold start", f"spawn to tools/list, {which} ({runs[0][2]} tools vs 1)", start, bare_start,
                        unit="ms", target="ratio <= 1.10", met=start / bare_start <= 1.10, n=count))
    stop = ms(median([r[1] for r in full_runs]))
    bare_stop = ms(median([r[1] for r in bare_runs]))
    rows.append(row("shutdown", "stdin closed to exit", stop, bare_stop, unit="ms", target="< 50 ms",
                    met=stop < 50, n=count, note="baseline: the SDK's run() without os._exit"))
    return rows
