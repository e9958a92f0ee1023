"""Peak memory while sending a 25 MB attachment through ``send_pec`` to ``pec-mcp simulate``.

Each measurement runs in a fresh child process (``python bench/attachments.py child MODE ...``) so that peaks
do not mix: the resident-set high-water mark is reset once everything is warm (``/proc/self/clear_refs``), the
send is made, and the peak over the resident size before the send is reported. The baseline sends the same file
the simple way: httpx ``json=`` with the whole base64 text in the payload.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from common import (
    child_peak,
    median,
    memory_status,
    reset_peak_memory,
    row,
    sandbox_settings_env,
    simulator,
    temp_dir,
)

SIZE = 25 * 1024 * 1024
MB = 1024 * 1024


async def _child(mode: str, origin: str, folder: str) -> dict[str, int]:
    import httpx
    from mcp import Client

    from pec_mcp.config import load_settings
    from pec_mcp.providers.pecmassiva import Attachment
    from pec_mcp.server import build_server
    from pec_mcp.simulator import credentials as sim

    small, big = Path(folder) / "small.pdf", Path(folder) / "big.pdf"
    environ = sandbox_settings_env(origin, str(Path(folder) / f"store-{mode}.sqlite3"))
    settings = load_settings(environ=environ, sending={"confirm": "never", "requests_per_second": 1000.0},  # type: ignore[arg-type]
                             attachments={"allowed_dirs": [folder]})
    args = {"recipients": ["mario.rossi@pec.it"], "subject": "Allegato", "body": "In allegato."}
    headers = {"Authorization": f"Bearer {sim.PECMASSIVA_TOKEN}"}

    sizes = {path: path.stat().st_size for path in (small, big)}

    async def naive(path: Path) -> None:
        payload = {"sender": sim.PECMASSIVA_USERNAME, "recipient": ["mario.rossi@pec.it"], "subject": "Allegato",
                   "body": "In allegato.", "username": sim.PECMASSIVA_USERNAME, "password": sim.PECMASSIVA_PASSWORD,
                   "attachments": [{"name": path.name,
                                    "file": Attachment(path, path.name, sizes[path]).data_uri()}]}
        async with httpx.AsyncClient(base_url=origin + "/pecmassiva", timeout=120) as http:
            response = await http.post("/send", json=payload, headers=headers)
            assert response.status_code == 201, response.text

    if mode == "naive":
        await naive(small)
        before = memory_status("VmRSS")
        reset_peak_memory()
        await naive(big)
    else:
        async with Client(build_server(settings)) as client:
            result = await client.call_tool("send_pec", {**args, "attachments": [str(small)], "confirm": True})
            assert not result.is_error, result.content
            before = memory_status("VmRSS")
            reset_peak_memory()
            result = await client.call_tool("send_pec", {**args, "attachments": [str(big)], "confirm": True})
            assert not result.is_error, result.content
    return {"before": before, "peak": memory_status("VmHWM")}


def _one(mode: str, origin: str, folder: Path) -> int:
    return child_peak(__file__, [mode, origin, str(folder)], f"attachments ({mode})")


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 1 if quick else 3
    with temp_dir() as tmp, simulator() as origin:
        (tmp / "small.pdf").write_bytes(os.urandom(64 * 1024))
        (tmp / "big.pdf").write_bytes(os.urandom(SIZE))
        pec, naive = [], []
        for _ in range(count):
            pec.append(_one("pec", origin, tmp))
            naive.append(_one("naive", origin, tmp))
    pec_mb, naive_mb = median(pec) / MB, median(naive) / MB
    return [row("attachments", "peak RSS over baseline, 25 MB file", pec_mb, naive_mb, unit="MB",
                target="<= 75 MB (3x file)", met=pec_mb <= 3 * SIZE / MB, n=count,
                note="baseline: httpx json= with the whole base64")]


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "child":
    import anyio

    print(json.dumps(anyio.run(_child, sys.argv[2], sys.argv[3], sys.argv[4])))
