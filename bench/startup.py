"""Cold start (spawn until the first ``tools/list`` answer), the first tool call, and shutdown (stdin closed to exit).

Both servers are started the same way (``python -m pec_mcp serve`` offline with a temporary store, and
``python bench/bare_server.py``) and spoken to with raw JSON-RPC over the pipes: the legacy ``initialize``,
``notifications/initialized``, ``tools/list`` and a ``tools/call`` written at once, so that no client library is
in the figure. pec-mcp remembers its tool catalogue between starts (under ``$XDG_CACHE_HOME``); the first start
after an install or upgrade, which builds it, is measured apart with a new cache folder each time.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import BENCH, PYTHON, ROOT, env, interleaved, median, ms, row, temp_dir


def _messages(call: dict[str, Any]) -> bytes:
    return b"".join(
        json.dumps(message).encode() + b"\n"
        for message in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": {"name": "bench", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call},
        )
    )


PEC_MESSAGES = _messages({"name": "get_pec_quota", "arguments": {}})
BARE_MESSAGES = _messages({"name": "echo", "arguments": {"text": "x"}})


class Run:
    """One start: seconds from spawn to the tools/list answer and to the tools/call answer, and to exit."""

    def __init__(self, command: list[str], environment: dict[str, str], messages: bytes) -> None:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=environment, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(messages)
        proc.stdin.flush()
        answers: dict[int, float] = {}
        self.tools = -1
        for line in proc.stdout:
            answer = json.loads(line)
            answers[answer.get("id")] = time.perf_counter() - started
            if answer.get("id") == 2:
                self.tools = len(answer["result"]["tools"])
            if answer.get("id") == 3:
                if answer.get("result", {}).get("isError", True):
                    proc.kill()
                    raise RuntimeError(f"{command}: the tool call failed: {answer}")
                break
        if 3 not in answers or self.tools < 0:
            proc.kill()
            raise RuntimeError(f"{command} gave no tools/list or tools/call answer")
        self.listed, self.called = answers[2], answers[3]
        closing = time.perf_counter()
        proc.stdin.close()
        proc.wait(timeout=30)
        self.stopped = time.perf_counter() - closing
        proc.stdout.close()


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 5 if quick else 11
    with temp_dir() as tmp:
        base = dict(PEC_MCP_ENVIRONMENT="offline", PEC_MCP_STORE__PATH=str(Path(tmp) / "store.sqlite3"),
                    HOME=str(tmp))
        full_env = env(**base)
        pec_only_env = {**full_env, "PEC_MCP_TOOLS__ENABLED": '["pec"]'}
        fresh_caches = iter(range(10**6))

        def first_start_env() -> dict[str, str]:
            return {**full_env, "XDG_CACHE_HOME": str(Path(tmp) / f"cache-{next(fresh_caches)}")}

        pec = [PYTHON, "-m", "pec_mcp", "serve"]
        bare = [PYTHON, str(BENCH / "bare_server.py")]
        starts: dict[str, Callable[[], Run]] = {
            "all": lambda: Run(pec, full_env, PEC_MESSAGES),
            "pec": lambda: Run(pec, pec_only_env, PEC_MESSAGES),
            "first": lambda: Run(pec, first_start_env(), PEC_MESSAGES),
            "bare": lambda: Run(bare, env(), BARE_MESSAGES),
        }
        for start in starts.values():
            start()  # warm the page cache and the .pyc files; pec-mcp remembers its catalogue
        runs = dict(zip(starts, interleaved(count, *starts.values()), strict=True))
    return _rows(runs, count)


def _rows(runs: dict[str, list[Run]], count: int) -> list[dict[str, Any]]:
    def at(which: str, moment: str) -> float:
        return ms(median([getattr(r, moment) for r in runs[which]]))

    bare_listed, bare_called = at("bare", "listed"), at("bare", "called")
    rows = []
    for which, label in (("all", "all toolsets"), ("pec", "tools.enabled = [pec]")):
        listed = at(which, "listed")
        rows.append(row("cold start", f"spawn to tools/list, {label} ({runs[which][0].tools} tools vs 1)", listed,
                        bare_listed, unit="ms", target="ratio <= 1.10", met=listed / bare_listed <= 1.10, n=count))
    rows.append(row("cold start", "spawn to tools/list, first start after install (builds its catalogue)",
                    at("first", "listed"), bare_listed, unit="ms", target="(informative)", met=None, n=count,
                    note="once per install or upgrade"))
    rows.append(row("first call", "spawn to the answer of a first tools/call (get_pec_quota vs echo)",
                    at("all", "called"), bare_called, unit="ms", target="(informative)", met=None, n=count,
                    note="includes registering the toolsets"))
    stop = at("all", "stopped")
    rows.append(row("shutdown", "stdin closed to exit", stop, at("bare", "stopped"), unit="ms", target="< 50 ms",
                    met=stop < 50, n=count, note="baseline: the SDK's run() without os._exit"))
    return rows
