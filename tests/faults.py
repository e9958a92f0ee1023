"""Faults for tests: answers a provider (or a proxy in front of it) gives when things go wrong, and lost answers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

FaultHook = Callable[[Request], Awaitable[Response | None]]

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


def answer_with(response: Response, *, method: str | None = None, path_end: str | None = None) -> FaultHook:
    """A simulator fault hook answering ``response`` (to every request, or only to the matching ones)."""

    async def hook(request: Request) -> Response | None:
        if method is not None and request.method != method:
            return None
        if path_end is not None and not request.url.path.endswith(path_end):
            return None
        return response

    return hook


def html(status: int, *, retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return Response(HTML_502, status_code=status, media_type="text/html", headers=headers)


def raw(status: int, body: str, media_type: str = "application/json", retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def envelope(status: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"success": False, "message": message, **extra}, status_code=status)


def json_in_a_string(status: int, data: object) -> JSONResponse:
    """A JSON document that is itself a JSON-encoded string (seen from openapi.it services)."""
    return JSONResponse(json.dumps(data), status_code=status)
