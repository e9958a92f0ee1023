"""A real browser on a real server: ``pec-mcp serve --transport http`` (offline) and Debian's headless chromium.

Chromium is driven by Playwright for Python with ``executable_path`` set to the system's ``chromium`` (Playwright's
own browser downloads are never used) and the flags that keep it off the network. Without chromium the tests are
skipped locally and fail when ``CI`` is set, so that CI can never skip them silently.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.processes import serving_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-test-token-5f0e2a"
PLANTED = "<script>alert('x')</script>"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE = ROOT / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
DOCS = ROOT / "docs"
# Screenshots for the README are written only when asked, like the tool catalogue snapshot.
SCREENSHOTS = os.environ.get("PEC_MCP_UPDATE_SCREENSHOTS") == "1"


def missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (scripts/test.sh installs what they need)")
    pytest.skip(reason)


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        missing("chromium is not installed (apt-get install chromium)")
    assert found is not None
    return found


@dataclass
class Served:
    """A running ``pec-mcp serve --transport http`` and what was sent through it."""

    origin: str
    folder: Path
    message_ids: dict[str, str] = field(default_factory=dict)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call a tool over MCP (streamable HTTP, bearer token); the wire form of the result, as a host gets it.

        Runs in a thread of its own, with its own event loop, so that it can be called from Playwright callbacks.
        """
        return self._pool.submit(anyio.run, self._call, name, arguments).result(timeout=60)

    async def _call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        http = httpx2.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
        async with http, Client(streamable_http_client(f"{self.origin}/mcp", http_client=http)) as client:
            result = await client.call_tool(name, arguments)
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    def read_resource(self, uri: str) -> str:
        async def read() -> str:
            http = httpx2.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
            async with http, Client(streamable_http_client(f"{self.origin}/mcp", http_client=http)) as client:
                return str((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]

        return self._pool.submit(anyio.run, read).result(timeout=60)

    def start_job(self, key: str, count: int = 16) -> str:
        recipients = [{"address": f"socio{n}@pec.example.it", "variables": {"nome": f"Socio {n}"}}
                      for n in range(count)]
        result = self.call_tool("start_bulk_pec", {"recipients": recipients, "subject": "Convocazione {{nome}}",
                                                   "body": "Gentile {{nome}}", "idempotency_key": key,
                                                   "confirm": True})
        assert not result.get("isError"), result
        return str(result["structuredContent"]["job_id"])


def _config(folder: Path) -> Path:
    files = folder / "files"
    files.mkdir()
    config = folder / "config.toml"
    config.write_text(
        'environment = "offline"\n'
        f'[store]\npath = "{folder / "store.sqlite3"}"\n'
        f'[attachments]\nallowed_dirs = ["{files}"]\n'
        # Two requests a second: a bulk job of sixteen personalised messages takes eight seconds to watch.
        '[sending]\nrequests_per_second = 2.0\n'
        '[simulator]\ndelivery_delay = 0.5\nrate = 100.0\n'
    )
    config.chmod(0o600)
    return config


def _wait_for(process: subprocess.Popen[bytes], log: Path) -> int:
    """The port the server said it serves on, once it accepts connections there."""
    deadline = time.monotonic() + 90  # a loaded machine (six test suites at once) starts slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        port = serving_port(log.read_text())
        try:
            if port:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return port
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not start listening: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The server, with three PEC sent through it and their receipts read once they arrived."""
    chromium_path()
    folder = tmp_path_factory.mktemp("served")
    env = {"HOME": str(folder), "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
           "PEC_MCP_HTTP__AUTH_TOKEN": TOKEN}
    log = folder / "server.log"
    with log.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "pec_mcp", "serve", "--transport", "http", "--port", "0",
                                    "--config", str(_config(folder))], env=env, cwd=folder,
                                   stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = _wait_for(process, log)
        served = Served(f"http://127.0.0.1:{port}", folder)
        _seed(served)
        yield served
    finally:
        stop_process(process)


def _seed(served: Served) -> None:
    sendings = {
        "delivered": (["mario.rossi@pec.example.it"], "Fattura 114 marzo"),
        "failed": (["fail-anna@pec.example.it"], f"Sollecito {PLANTED}"),
        "two": (["luca@pec.example.it", "giulia@pec.other.it"], "Convocazione assemblea soci"),
    }
    for name, (recipients, subject) in sendings.items():
        result = served.call_tool("send_pec", {"recipients": recipients, "subject": subject, "body": "Gentile cliente",
                                               "idempotency_key": f"seed-{name}", "confirm": True})
        assert not result.get("isError"), result
        served.message_ids[name] = result["structuredContent"]["message_id"]
    # The offline simulator delivers after delivery_delay (0.5 s) of real time; a busy machine may take longer,
    # so wait for each sending's outcome rather than for a fixed time.
    for message_id in served.message_ids.values():
        _until_settled(served, message_id)


def _until_settled(served: Served, message_id: str, *, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = served.call_tool("get_pec_receipts", {"message_id": message_id})
        assert not result.get("isError"), result
        if result["structuredContent"]["status"] not in ("pending", "accepted"):
            return
        assert time.monotonic() < deadline, f"no outcome for {message_id} within {within} s: {result}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def browser(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS, headless=True)
        yield launched
        launched.close()


def axe_script() -> str:
    if not AXE.is_file():
        missing(f"axe-core is not installed at {AXE} (npm install --prefix .ci/node axe-core)")
    return AXE.read_text(encoding="utf-8")


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now (axe is injected, then run)."""
    page.add_script_tag(content=axe_script())
    result = page.evaluate("async () => JSON.stringify(await axe.run(document))")
    violations = json.loads(result)["violations"]
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in violations if v["impact"] in ("serious", "critical")]
