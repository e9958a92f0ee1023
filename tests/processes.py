"""Real processes for the tests: ``pec-mcp simulate`` and ``pec-mcp serve --transport http`` on ports they pick
themselves, with what they printed on start read back; and stopping any process the tests started.

``--port 0`` leaves the choice of port to the command, which binds it before anything else; a port chosen here
and released before the process binds it could be taken meanwhile, by the simulator's own mail servers too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 60  # a cold start on a loaded machine
HTTP_LINE = re.compile(r"pec-mcp simulator on (http://\S+) ")
MAIL_LINE = "PEC mail provider on"  # printed once the SMTP and IMAP servers accept connections
SERVING_LINE = re.compile(r"pec-mcp serving MCP on http://127\.0\.0\.1:(\d+)/mcp")


def serving_port(printed: str) -> int | None:
    """The port a ``serve --transport http --port 0`` process said it serves on, once it said it."""
    found = SERVING_LINE.search(printed)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Simulated:
    origin: str  # the HTTP simulator, e.g. http://127.0.0.1:41234
    banner: str  # what it printed on start: the mail provider's ports, CA and trust files


@contextmanager
def simulate_process(*options: str) -> Iterator[Simulated]:
    """Start ``pec-mcp simulate --port 0 OPTIONS``; yields once its HTTP, SMTP and IMAP servers all answer."""
    with tempfile.TemporaryDirectory(prefix="pec-mcp-simulate-") as folder:
        log = Path(folder) / "simulate.log"
        with log.open("w") as out:
            process = subprocess.Popen([sys.executable, "-m", "pec_mcp", "simulate", "--port", "0", *options],
                                       cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out)
        try:
            yield _started(process, log)
        finally:
            stop_process(process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, and SIGKILL if it has not ended within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _started(process: subprocess.Popen[bytes], log: Path) -> Simulated:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        banner = log.read_text()
        if process.poll() is not None:
            raise AssertionError(f"pec-mcp simulate exited with code {process.returncode}:\n{banner}")
        found = HTTP_LINE.search(banner)
        if found and MAIL_LINE in banner and _answers(found.group(1)):
            return Simulated(found.group(1), banner)
        time.sleep(0.05)
    raise AssertionError(f"pec-mcp simulate did not start within {START_SECONDS} s:\n{log.read_text()}")


def _answers(origin: str) -> bool:
    try:
        httpx.get(origin + "/__simulator__/stats", timeout=5)
    except httpx.TransportError:
        return False
    return True
