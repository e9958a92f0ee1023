"""Helpers shared by the benchmarks: timing, the machine, subprocesses (servers and the simulator)."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def row(benchmark: str, measure: str, pec_mcp: float, baseline: float | None, *, unit: str, target: str,
        met: bool | None, n: int, note: str = "") -> dict[str, Any]:
    """One line of the table; ``ratio`` is pec-mcp over the baseline."""
    ratio = pec_mcp / baseline if baseline else None
    return {"benchmark": benchmark, "measure": measure, "pec_mcp": pec_mcp, "baseline": baseline, "ratio": ratio,
            "unit": unit, "target": target, "met": met, "n": n, "note": note}


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()} ({platform.system()})"


def env(**extra: str) -> dict[str, str]:
    """A clean environment: no PEC_MCP_* from the caller, the repository importable, then ``extra``.

    Bytecode is written (PYTHONDONTWRITEBYTECODE dropped), so that after the first start pec_mcp loads from
    .pyc files as an installed package does, like the SDK it is compared with.
    """
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("PEC_MCP_") and k != "PYTHONDONTWRITEBYTECODE"}
    base["PYTHONPATH"] = str(ROOT) + os.pathsep + base.get("PYTHONPATH", "")
    base.update(extra)
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pec-bench-") as name:
        yield Path(name)


@contextmanager
def simulator(*, rate: float = 1000.0, delivery_delay: float = 0.0) -> Iterator[str]:
    """``pec-mcp simulate`` in a subprocess on a free loopback port; yields its origin URL."""
    port = free_port()
    proc = subprocess.Popen(
        [PYTHON, "-m", "pec_mcp", "simulate", "--port", str(port), "--rate", str(rate),
         "--delivery-delay", str(delivery_delay)],
        env=env(), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the simulator exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the simulator did not start listening")


def sandbox_settings_env(origin: str, store: Path) -> dict[str, str]:
    """Environment variables for a server in the sandbox environment whose PEC Massiva is the simulator."""
    from pec_mcp.simulator import credentials as sim

    return {
        "PEC_MCP_ENVIRONMENT": "sandbox",
        "PEC_MCP_PECMASSIVA__TOKEN": sim.PECMASSIVA_TOKEN,
        "PEC_MCP_PECMASSIVA__USERNAME": sim.PECMASSIVA_USERNAME,
        "PEC_MCP_PECMASSIVA__PASSWORD": sim.PECMASSIVA_PASSWORD,
        "PEC_MCP_PECMASSIVA__BASE_URL": origin + "/pecmassiva",
        "PEC_MCP_STORE__PATH": str(store),
    }


def interleaved(count: int, *runs: Callable[[], float]) -> list[list[float]]:
    """Run each function ``count`` times, alternating them so that drift of the machine hits all alike."""
    results: list[list[float]] = [[] for _ in runs]
    for _ in range(count):
        for index, run in enumerate(runs):
            results[index].append(run())
    return results


def memory_status(key: str) -> int:
    """A size from /proc/self/status (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def reset_peak_memory() -> None:
    """Start VmHWM again from the current resident size."""
    Path("/proc/self/clear_refs").write_text("5")


def child_peak(script: str, args: Sequence[str], label: str) -> int:
    """Run ``python script child *args`` (which prints {"before", "peak"} last); the peak over the resting size."""
    import json

    out = subprocess.run([PYTHON, script, "child", *args], env=env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{label} child failed: {out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return max(0, int(data["peak"]) - int(data["before"]))
