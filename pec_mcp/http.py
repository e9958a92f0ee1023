"""The shared HTTP client: pacing of sends, retries of reads, and logs with secrets removed.

Behaviour is added by wrapping httpx transports (outermost first)::

    ReadRetryTransport   GET retried on 429/5xx/connection errors, with backoff and Retry-After
    LoggingTransport     one redacted line per attempt
    PacedTransport       requests marked as paced (PEC Massiva POST /send) wait for their turn, measured from
                         the moment the previous one's headers were on the wire; a 429 with Retry-After pauses
                         them all
    DeadlineTransport    with ClientOptions.deadline: one attempt may take that long in all, then ReadTimeout
    base transport       the network, or the in-process simulator (httpx.ASGITransport)

Sends are never retried here: once a POST may have reached the server, only the caller can decide, and the
send path records such an outcome as unknown.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import anyio
import httpx

from pec_mcp.pacing import paced_interval

log = logging.getLogger("pec_mcp.http")

# Request extensions understood by the transports (httpx passes extensions through to transports untouched).
PACE = "pec_mcp.pace"  # True: wait for a slot of the send pacer before this request goes out
ON_DISPATCH = "pec_mcp.on_dispatch"  # async callable awaited right before the request goes on the wire
NO_RETRY = "pec_mcp.no_retry"  # True: a GET that changes state (a paid renewal) must never be repeated
READ_ONLY = "pec_mcp.read_only"  # True: a POST that only reads (Mensatek's API is all POST) is retried like a GET

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAUSE = 300.0  # seconds: the longest a provider's Retry-After may hold every sender of a pacer

RETRY_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError,
                    httpx.ReadError, httpx.PoolTimeout)

Sleep = Callable[[float], Awaitable[None]]


class Pacer(Protocol):
    """Hands out send slots no closer together than the provider allows.

    A turn is held from :meth:`wait_turn` until the request goes on the wire (:meth:`dispatched`) or will not go
    (:meth:`give_back`). :meth:`wait_turn` may return a little before the turn's moment, so that the caller prepares
    meanwhile (a ledger write); :meth:`until_moment` then waits for the moment itself. The interval is measured
    from :meth:`dispatched`, the moment of sending, so a request that is late after its turn (a slow ledger write, a
    busy event loop, a new connection) pushes the next one back instead of arriving just before it. The calls come
    from one task, in that order; :meth:`dispatched` waits for the moment too, for callers that do not.
    """

    async def wait_turn(self) -> None: ...

    async def until_moment(self) -> None: ...

    async def dispatched(self) -> None: ...

    async def give_back(self) -> None: ...

    async def pause(self, seconds: float) -> None:
        """The provider refused a send as too many: nobody sharing this pacer sends for ``seconds``."""
        ...


class LocalPacer:
    """Paces every caller in this process: a request goes no sooner than 1/rate seconds after the previous one left."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic, sleep: Sleep = anyio.sleep):
        self.interval = paced_interval(rate)
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        # Held from a caller's turn until its request left: one request between turn and wire at a time (FIFO).
        self._lock = anyio.Lock()

    async def wait_turn(self) -> None:
        await self._lock.acquire()
        try:
            while (wait := self._next - self._clock()) > 0:
                await self._sleep(wait)
        except BaseException:
            self._lock.release()
            raise

    async def until_moment(self) -> None:
        return None  # wait_turn returned at the moment itself

    async def dispatched(self) -> None:
        self._next = max(self._next, self._clock() + self.interval)
        self._lock.release()

    async def give_back(self) -> None:
        self._lock.release()

    async def pause(self, seconds: float) -> None:
        self._next = max(self._next, self._clock() + seconds)


def safe_url(url: httpx.URL) -> str:
    """The URL without its query string, which may carry tokens."""
    return str(url.copy_with(query=None))


# The trace event (httpcore's ``trace`` request extension) after which the provider can count a request: its headers
# are on the connection (for HTTP/1.1 ``http11.send_request_headers.complete``, for HTTP/2 ``http2.``...).
HEADERS_SENT = ".send_request_headers.complete"


async def mark_dispatched(pacer: Pacer) -> None:
    """Tell the pacer a request is on the wire, without ever cutting that request in half: if the store cannot be
    reached, the turn stays held until its hold runs out, which only delays the next sender."""
    with anyio.CancelScope(shield=True):
        try:
            await pacer.dispatched()
        except Exception as exc:
            log.warning("could not record the moment of a paced request: %s", exc)


class PacedTransport(httpx.AsyncBaseTransport):
    """Makes requests marked with the PACE extension wait for the pacer, then runs their dispatch hook.

    The pacer's slot is stamped when the request's headers have been written to the connection (httpcore's trace
    extension tells): whatever delays a request on its way out, from the dispatch hook to opening a connection,
    counts before the stamp and pushes the next send back. A transport that does not trace (an in-process app)
    stamps the slot when the answer came, which is after the provider counted it. A paced request refused with
    429 pauses the pacer for as long as the provider's Retry-After asks (capped at MAX_PAUSE).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, pacer: Pacer) -> None:
        self.inner = inner
        self.pacer = pacer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hook = request.extensions.get(ON_DISPATCH)
        if not request.extensions.get(PACE):
            if hook is not None:
                await hook()
            return await self.inner.handle_async_request(request)
        await self.pacer.wait_turn()
        try:
            if hook is not None:
                await hook()
            await self.pacer.until_moment()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.pacer.give_back()
            raise
        stamped = False
        outer_trace = request.extensions.get("trace")

        async def trace(event: str, info: dict[str, object]) -> None:
            nonlocal stamped
            if not stamped and event.endswith(HEADERS_SENT):
                stamped = True
                await mark_dispatched(self.pacer)
            if outer_trace is not None:
                await outer_trace(event, info)

        request.extensions["trace"] = trace
        try:
            response = await self.inner.handle_async_request(request)
        finally:
            if not stamped:
                # No trace (an in-process app), or failed on the way out: counted from now, after any arrival.
                stamped = True
                with anyio.CancelScope(shield=True):
                    await self.pacer.dispatched()
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait:
                await self.pacer.pause(min(wait, MAX_PAUSE))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class LoggingTransport(httpx.AsyncBaseTransport):
    """One DEBUG line per request (method, path, status, time), never headers, query strings or bodies."""

    def __init__(self, inner: httpx.AsyncBaseTransport, provider: str) -> None:
        self.inner = inner
        self.provider = provider

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.HTTPError as exc:
            log.warning("%s %s %s failed: %s", self.provider, request.method, safe_url(request.url),
                        type(exc).__name__)
            raise
        if log.isEnabledFor(logging.DEBUG):  # cleaning the URL costs more than the request's other bookkeeping
            log.debug("%s %s %s -> %s in %.0f ms", self.provider, request.method, safe_url(request.url),
                      response.status_code, (time.perf_counter() - started) * 1000)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # the first try plus three retries
    backoff: float = 0.5  # seconds before the first retry, doubled each time, with jitter
    max_wait: float = 30.0  # cap on any single wait, Retry-After included


class ReadRetryTransport(httpx.AsyncBaseTransport):
    """Retries GET requests that failed in a way that may pass; everything else goes through once."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: RetryPolicy, *, sleep: Sleep = anyio.sleep):
        self.inner = inner
        self.policy = policy
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        reads = request.method == "GET" or request.extensions.get(READ_ONLY)
        if not reads or request.extensions.get(NO_RETRY):
            return await self.inner.handle_async_request(request)
        for attempt in range(1, self.policy.attempts + 1):
            last = attempt == self.policy.attempts
            try:
                response = await self.inner.handle_async_request(request)
            except RETRY_EXCEPTIONS:
                if last:
                    raise
                await self._sleep(self._backoff(attempt))
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            await response.aclose()
            await self._sleep(min(self.policy.max_wait, wait if wait is not None else self._backoff(attempt)))
        raise AssertionError("unreachable")  # the loop always returns or raises on its last attempt

    def _backoff(self, attempt: int) -> float:
        base: float = self.policy.backoff * 2 ** (attempt - 1)
        return min(self.policy.max_wait, base * random.uniform(0.8, 1.2))

    async def aclose(self) -> None:
        await self.inner.aclose()


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


class DeadlineTransport(httpx.AsyncBaseTransport):
    """Gives one attempt ``seconds`` in all, then raises ReadTimeout as a silent server would.

    httpx's own timeouts bound each network operation, not the whole exchange, and do not apply at all to an
    in-process app (httpx.ASGITransport); this bounds both.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with anyio.move_on_after(self.seconds) as scope:
            return await self.inner.handle_async_request(request)
        assert scope.cancelled_caught
        raise httpx.ReadTimeout(f"no complete answer within {self.seconds:g} s", request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True)
class ClientOptions:
    """How one provider's client behaves; the defaults suit the real services."""

    timeout: float = 30.0
    connect_timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    sleep: Sleep | None = None  # injectable so tests of backoff never wait
    deadline: float | None = None  # the longest one attempt may take in all; None: httpx's timeouts only


def build_client(
    *,
    provider: str,
    base_url: str,
    transport: httpx.AsyncBaseTransport | None = None,
    pacer: Pacer | None = None,
    headers: dict[str, str] | None = None,
    options: ClientOptions = ClientOptions(),
) -> httpx.AsyncClient:
    """One AsyncClient for one provider, with the transport stack described in this module's docstring."""
    base = transport if transport is not None else httpx.AsyncHTTPTransport()
    if options.deadline is not None:
        base = DeadlineTransport(base, options.deadline)
    # Every client gets the paced layer: without a pacer it still runs the dispatch hook of a send.
    stack: httpx.AsyncBaseTransport = PacedTransport(base, pacer or _NoPacer())
    stack = LoggingTransport(stack, provider)
    stack = ReadRetryTransport(stack, options.retry, sleep=options.sleep or anyio.sleep)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=stack,
        headers=headers,
        timeout=httpx.Timeout(options.timeout, connect=options.connect_timeout),
        follow_redirects=False,
    )


class _NoPacer:
    async def wait_turn(self) -> None:
        return None

    async def until_moment(self) -> None:
        return None

    async def dispatched(self) -> None:
        return None

    async def give_back(self) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        return None
