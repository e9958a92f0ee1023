"""Real replicas for the tests: ``pec-mcp serve --transport http --port 0`` processes, one store. Each binds a free
loopback port itself and prints it; a port chosen here and released before the process bound it could be taken
meanwhile.

The replicas talk to one ``pec-mcp simulate`` process (the sandbox environment pointed at it), so that what one
replica sends, another can follow. A client reaches them through :class:`RoundRobin`, a transport that sends each
HTTP request to the next replica, as a load balancer without sticky sessions would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from pec_mcp.simulator import credentials as sim
from tests.bulk.test_bulk_processes import server_env
from tests.processes import serving_port

ROOT = Path(__file__).resolve().parents[1]


def replica_env(*, origin: str, store: str, config: Path, rate: float = 1000.0,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one replica: sandbox on the simulator at ``origin``, the store at ``store`` (a file or a
    postgresql:// URL), every toolset, the confirmation policy of the config file."""
    env = server_env(origin, Path(store), rate, config)
    for left_to_the_config in ("PEC_MCP_SENDING__CONFIRM", "PEC_MCP_TOOLS__ENABLED"):
        env.pop(left_to_the_config)
    env.update({
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "PEC_MCP_MENSATEK__BASE_URL": origin + "/mensatek/v7",
        "PEC_MCP_MENSATEK__API_USER": sim.MENSATEK_API_USER,
        "PEC_MCP_MENSATEK__API_TOKEN": sim.MENSATEK_API_TOKEN,
        "PEC_MCP_MENSATEK__SENDER": sim.MENSATEK_SENDER,
    })
    if store.startswith("postgresql://"):
        env.pop("PEC_MCP_STORE__PATH")
        env["PEC_MCP_STORE__URL"] = store
    env.update(extra or {})
    return env


def write_config(folder: Path, text: str) -> Path:
    config = folder / f"config-{os.urandom(4).hex()}.toml"
    config.write_text(text)
    config.chmod(0o600)
    return config


def migrate(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pec_mcp", "migrate"], cwd=ROOT, env=dict(env),
                          capture_output=True, text=True, timeout=120)


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    log: Path
    port: int = 0  # known once it printed where it serves (wait_ready)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_replica(env: Mapping[str, str], folder: Path) -> Replica:
    log = Path(tempfile.mkstemp(prefix="replica-", suffix=".log", dir=folder)[1])
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "pec_mcp", "serve", "--transport", "http", "--port", "0"],
                                   cwd=ROOT, env=dict(env), stderr=out, stdout=subprocess.DEVNULL)
    return Replica(process, log)


READY_WITHIN = 120.0  # seconds for a replica to start answering, on a loaded machine


async def wait_ready(replica: Replica) -> None:
    """Until the replica said where it serves and answers HTTP there (any status: /mcp wants a token); fails if the
    process exits first."""
    with anyio.fail_after(READY_WITHIN):
        while True:
            if replica.process.poll() is not None:
                raise AssertionError(f"replica exited {replica.process.returncode}: {replica.log.read_text()}")
            if not replica.port:
                replica.port = serving_port(replica.log.read_text()) or 0
                if not replica.port:
                    await anyio.sleep(0.05)
                    continue
            try:
                async with httpx.AsyncClient() as http:
                    await http.get(f"http://127.0.0.1:{replica.port}/mcp")
                return
            except httpx.TransportError:
                await anyio.sleep(0.1)


@contextlib.contextmanager
def running(replicas: Sequence[Replica]) -> Iterator[Sequence[Replica]]:
    try:
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()


@asynccontextmanager
async def replicas(n: int, env: Mapping[str, str], folder: Path) -> AsyncIterator[list[Replica]]:
    """``n`` replicas on one store, ready; stopped (SIGTERM) at the end."""
    started = [start_replica(env, folder) for _ in range(n)]
    with running(started):
        for replica in started:
            await wait_ready(replica)
        yield started


@dataclass
class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next replica in turn (no sticky sessions), counting where each went."""

    ports: list[int]
    sent: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def client(replicas: Sequence[Replica], token: str | None, **options: Any) -> AsyncIterator[Client]:
    """An MCP client for ``token`` whose requests go round the replicas."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    transport = RoundRobin([r.port for r in replicas])
    http = httpx2.AsyncClient(transport=transport, headers=headers, timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(replicas[0].url, http_client=http), **options) as connected:
        connected.round_robin = transport  # type: ignore[attr-defined]
        yield connected


class Browser:
    """A browser on the dashboard over plain HTTP, each request to the replica it names.

    The dashboard's cookies are ``Secure``; a test server on loopback speaks plain HTTP, where httpx would not send
    them back, so this keeps them by hand, as a browser keeps them for ``http://localhost``.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.cookies: dict[str, str] = {}

    async def get(self, origin: str, path: str) -> httpx.Response:
        return self._keep(await self.http.get(origin + path, headers=self._header()))

    async def post(self, origin: str, path: str, data: Mapping[str, str]) -> httpx.Response:
        return self._keep(await self.http.post(origin + path, data=dict(data), headers=self._header()))

    async def sign_in(self, origin: str, token: str) -> httpx.Response:
        form = await self.get(origin, "/dashboard/signin")
        return await self.post(origin, "/dashboard/signin", {"csrf": csrf_of(form.text), "token": token})

    async def sign_out(self, origin: str) -> httpx.Response:
        page = await self.get(origin, "/dashboard/sendings")
        return await self.post(origin, "/dashboard/signout", {"csrf": csrf_of(page.text)})

    def _header(self) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for line in response.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if value and "max-age=0" not in line.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response


def csrf_of(page: str) -> str:
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
