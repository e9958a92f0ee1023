"""Faults for tests: answers a provider (or a proxy in front of it) gives when things go wrong, and lost answers.

The answers are :class:`~pec_mcp.simulator.faults.Reply` values for the simulator's fault plan
(``simulator.faults = FaultPlan([respond(reply, "pecmassiva", method="POST")])``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from pec_mcp.simulator.faults import Reply

HTML_502 = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>nginx</p></body></html>"
)


class LostAnswerTransport(httpx.AsyncBaseTransport):
    """Forwards every request to the simulator, then loses the answer of those matching ``method`` and ``path``.

    The request really reaches the simulator (which counts it), exactly like a connection reset after sending.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, *, method: str = "POST", path_end: str = "/send") -> None:
        self.inner = inner
        self.method = method
        self.path_end = path_end
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == self.method and request.url.path.endswith(self.path_end):
            await response.aclose()
            self.lost += 1
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Sent:
    """One request as it left the client: what a test inspects to prove what goes on the wire."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any = field(default=None)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Forwards every request unchanged and keeps a copy of it in ``sent``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[Sent] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sent.append(Sent(request.method, request.url.path, dict(request.headers),
                              json.loads(body) if body else None))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def html(status: int, *, retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return Reply.text(status, HTML_502, "text/html", headers)


def raw(status: int, body: str, media_type: str = "application/json", retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return Reply.text(status, body, media_type, headers)


def envelope(status: int, message: str, **extra: object) -> Reply:
    """PEC Massiva's own error envelope (openapi.it's carries ``error`` and ``data`` too: pass them as ``extra``)."""
    return Reply.json({"success": False, "message": message, **extra}, status)


def json_in_a_string(status: int, data: object) -> Reply:
    """A JSON document that is itself a JSON-encoded string (seen from openapi.it services)."""
    return Reply.json(json.dumps(data), status)


def mensatek_res(res: int, error: str = "") -> Reply:
    """Mensatek's refusal as it answers a ``Resp=JSON`` call: HTTP 200, a one-element list holding ``Res``."""
    fields = {"Res": str(res), **({"Error": error} if error else {})}
    return Reply.json([fields])
