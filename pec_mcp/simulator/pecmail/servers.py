"""Start the simulated PEC provider: SMTP and IMAP on free loopback ports, TLS from its own test CA.

Both servers run on an event loop of their own, in a background thread, so that blocking clients (``imaplib``,
``smtplib``) and asyncio clients in any thread can reach them, and the caller's event loop never waits on them::

    with start_pec_mail_provider() as pec:
        pec.endpoints.imap_port, pec.endpoints.ca_file, pec.endpoints.accounts[0].password
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.credentials import PECMAIL_ACCOUNTS, PECMAIL_DOMAIN
from pec_mcp.simulator.pecmail.authority import AuthorityFiles, SimulatorAuthority, create_authority, write_authority
from pec_mcp.simulator.pecmail.imap_server import serve_session
from pec_mcp.simulator.pecmail.provider import PecProvider
from pec_mcp.simulator.pecmail.smtp_server import smtp_factory
from pec_mcp.simulator.stats import Stats

log = logging.getLogger(__name__)
T = TypeVar("T")

DOMAIN = PECMAIL_DOMAIN
HOST = "127.0.0.1"
TICK_SECONDS = 0.25  # how often due receipts are delivered without any client command


@dataclass(frozen=True)
class PecMailAccount:
    address: str
    password: str  # a simulator password: it protects nothing


DEFAULT_ACCOUNTS = tuple(PecMailAccount(address, password) for address, password in PECMAIL_ACCOUNTS.items())


@dataclass(frozen=True)
class PecMailOptions:
    delivery_delay: float = 2.0  # seconds from ACCETTAZIONE to CONSEGNA
    accounts: tuple[PecMailAccount, ...] = DEFAULT_ACCOUNTS
    quota_bytes: int = 1 << 30  # per mailbox
    smtp_rate: float | None = None  # submissions per second each account may make (None: no limit)


@dataclass(frozen=True)
class PecMailEndpoints:
    """Everything a client needs: where to connect, what to trust, who can log in."""

    host: str
    imap_port: int  # IMAP over implicit TLS (like port 993)
    smtp_port: int  # SMTP submission over implicit TLS (like port 465)
    smtp_starttls_port: int  # SMTP submission with STARTTLS (like port 587)
    ca_file: Path  # the test CA (PEM): trust it for TLS
    trust_file: Path  # the simulated accredited-providers list (PEM), for trust.pec_providers
    domain: str
    accounts: tuple[PecMailAccount, ...]


class PecMailServers:
    """The running provider. ``close()`` (or leaving the ``with`` block) stops both servers and removes the files."""

    def __init__(self, provider: PecProvider, endpoints: PecMailEndpoints, loop: asyncio.AbstractEventLoop,
                 thread: threading.Thread, folder: Path, owns_folder: bool) -> None:
        self.provider = provider
        self.endpoints = endpoints
        self._loop = loop
        self._thread = thread
        self._folder = folder
        self._owns_folder = owns_folder
        self._stop: asyncio.Event | None = None

    @property
    def stats(self) -> Stats:
        return self.provider.stats

    @property
    def clock(self) -> Clock:
        return self.provider.clock

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the servers' loop and wait for it (to read or change mailboxes safely)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    def add_messages(self, address: str, messages: Sequence[bytes]) -> list[int]:
        """Put ``messages`` (raw bytes) into an account's INBOX, as if delivered now; their UIDs. For benchmarks."""

        async def add() -> list[int]:
            mailbox = self.provider.mailbox(address)
            if mailbox is None:
                raise KeyError(f"no simulator mailbox {address}")
            now = self.provider.clock.now()
            return [mailbox.append(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), now) for raw in messages]

        return self.call(add())

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._request_stop)
            self._thread.join(timeout=10)
        if self._owns_folder:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    def __enter__(self) -> PecMailServers:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def start_pec_mail_provider(
    options: PecMailOptions = PecMailOptions(),
    *,
    clock: Clock | None = None,
    stats: Stats | None = None,
    folder: Path | None = None,
    authority: SimulatorAuthority | None = None,
) -> PecMailServers:
    """Start SMTP and IMAP on free loopback ports; returns once both accept connections.

    ``clock`` and ``stats`` may be the HTTP simulator's, so that one ``advance`` moves both and one stats answer
    counts both. ``folder`` receives the PEM files (a temporary folder, removed at close, when None).
    """
    owns_folder = folder is None
    folder = Path(tempfile.mkdtemp(prefix="pec-mcp-pecmail-")) if folder is None else folder
    clock = clock or Clock()
    # Valid around the simulator's clock, which tests may freeze at any date.
    authority = authority or create_authority(DOMAIN, now=datetime.fromtimestamp(clock.now(), UTC))
    files = write_authority(authority, folder)
    provider = PecProvider(DOMAIN, authority, clock=clock, stats=stats or Stats(),
                           delivery_delay=options.delivery_delay)
    for account in options.accounts:
        provider.add_mailbox(account.address, account.password, quota_bytes=options.quota_bytes)
        if options.smtp_rate is not None:
            provider.limit_submissions(account.address, options.smtp_rate)
    loop = asyncio.new_event_loop()
    ready: Future[tuple[int, int, int]] = Future()
    holder: dict[str, PecMailServers] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(_serve(provider, files, ready, holder))
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="pec-mail-simulator", daemon=True)
    servers = PecMailServers(provider, _placeholder(files, options), loop, thread, folder, owns_folder)
    holder["servers"] = servers
    thread.start()
    imap_port, smtp_port, starttls_port = ready.result(timeout=30)
    servers.endpoints = PecMailEndpoints(HOST, imap_port, smtp_port, starttls_port, files.ca_pem, files.trust_pem,
                                         DOMAIN, options.accounts)
    return servers


def _placeholder(files: AuthorityFiles, options: PecMailOptions) -> PecMailEndpoints:
    return PecMailEndpoints(HOST, 0, 0, 0, files.ca_pem, files.trust_pem, DOMAIN, options.accounts)


async def _serve(
    provider: PecProvider, files: AuthorityFiles, ready: Future[tuple[int, int, int]],
    holder: dict[str, PecMailServers],
) -> None:
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.tls_cert, files.tls_key)
        loop = asyncio.get_running_loop()
        imap = await asyncio.start_server(
            lambda r, w: serve_session(provider, r, w), HOST, 0, ssl=context, limit=1 << 20
        )
        smtps = await loop.create_server(lambda: smtp_factory(provider), HOST, 0, ssl=context)
        submission = await loop.create_server(
            lambda: smtp_factory(provider, tls_context=context, require_starttls=True), HOST, 0
        )
    except BaseException as exc:
        ready.set_exception(exc)
        raise
    stop = asyncio.Event()
    holder["servers"]._stop = stop
    ports = tuple(server.sockets[0].getsockname()[1] for server in (imap, smtps, submission))
    ready.set_result((ports[0], ports[1], ports[2]))
    ticker = asyncio.ensure_future(_tick(provider, stop))
    await stop.wait()
    ticker.cancel()
    for server in (imap, smtps, submission):
        server.close()
    for server in (imap, smtps, submission):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _tick(provider: PecProvider, stop: asyncio.Event) -> None:
    # Receipts fall due with time, not only with commands: deliver them so that IDLE clients hear at once.
    while not stop.is_set():
        provider.deliver_due()
        await asyncio.sleep(TICK_SECONDS)
