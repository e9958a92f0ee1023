"""Per-call overhead: ``get_pec_quota`` through the MCP client against the same HTTP request made with httpx.

The server runs in this process behind the in-memory MCP client (sandbox environment, its PEC Massiva base_url
pointing at ``pec-mcp simulate`` on loopback); the baseline is an httpx client calling the simulator directly.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
from common import median, ms, row, sandbox_settings_env, simulator, temp_dir


async def _measure(origin: str, store: str, count: int) -> tuple[list[float], list[float]]:
    from mcp import Client

    from pec_mcp.config import load_settings
    from pec_mcp.server import build_server
    from pec_mcp.simulator import credentials as sim

    settings = load_settings(environ=sandbox_settings_env(origin, store))  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {sim.PECMASSIVA_TOKEN}", "x-username": sim.PECMASSIVA_USERNAME,
               "x-password": sim.PECMASSIVA_PASSWORD}
    tool_times: list[float] = []
    direct_times: list[float] = []
    async with Client(build_server(settings)) as client, httpx.AsyncClient(base_url=origin + "/pecmassiva",
                                                                           headers=headers) as http:
        for _ in range(20):  # warm up both paths (connections, caches, first-call imports)
            await client.call_tool("get_pec_quota", {})
            (await http.get("/quota/INBOX")).json()
        for _ in range(count):
            started = time.perf_counter()
            result = await client.call_tool("get_pec_quota", {})
            tool_times.append(time.perf_counter() - started)
            assert not result.is_error, result.content
            started = time.perf_counter()
            response = await http.get("/quota/INBOX")
            response.json()
            direct_times.append(time.perf_counter() - started)
    return tool_times, direct_times


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 100 if quick else 400
    with temp_dir() as tmp, simulator() as origin:
        tool, direct = anyio.run(_measure, origin, str(tmp / "store.sqlite3"), count)
    tool_ms, direct_ms = ms(median(tool)), ms(median(direct))
    extra = tool_ms - direct_ms
    return [row("per call", "get_pec_quota via MCP vs httpx", tool_ms, direct_ms, unit="ms",
                target="<= 1 ms more", met=extra <= 1.0, n=count, note=f"{extra:+.2f} ms per call")]
