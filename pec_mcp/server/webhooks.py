"""Webhook receivers for provider callbacks, protected by ``http.webhook_token`` in the query string.

Providers cannot add headers to their callbacks (and Mensatek does not sign them), so the shared secret travels
as ``?token=...``; it is compared in constant time and removed from every log line by the redactor.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pec_mcp.config import Settings
from pec_mcp.server.state import AppState, StateHolder

MAX_WEBHOOK_BYTES = 64 * 1024

# provider path segment -> handler(state, payload) returning (stored, message)
Handler = Callable[[AppState, dict[str, Any]], Awaitable[tuple[bool, str]]]
HANDLERS: dict[str, Handler] = {}


async def read_payload(request: Request) -> dict[str, Any] | None:
    """The callback body as a dict: JSON, or form fields (a JSON document in a field is decoded too)."""
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise _PayloadTooLarge
    content_type = request.headers.get("content-type", "")
    if "json" in content_type or body.lstrip().startswith((b"{", b"[")):
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
    except (UnicodeDecodeError, ValueError):
        return None
    return fields


class _PayloadTooLarge(Exception):
    pass


def webhook_routes(settings: Settings, holder: StateHolder) -> list[Route]:
    """One POST route per registered provider handler, under ``/webhooks/<provider>``."""
    token = settings.http.webhook_token.get_secret_value() if settings.http.webhook_token else None

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def receive(request: Request) -> JSONResponse:
            if token is None:
                return JSONResponse({"success": False, "message": "webhooks are disabled: set http.webhook_token"},
                                    status_code=404)
            given = request.query_params.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"success": False, "message": "unauthorized"}, status_code=401)
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_WEBHOOK_BYTES:
                return JSONResponse({"success": False, "message": "payload too large"}, status_code=413)
            try:
                payload = await read_payload(request)
            except _PayloadTooLarge:
                return JSONResponse({"success": False, "message": "payload too large"}, status_code=413)
            if payload is None:
                return JSONResponse({"success": False, "message": "the body is not valid JSON or form data"},
                                    status_code=400)
            stored, message = await handler(holder.get(), payload)
            return JSONResponse({"success": True, "stored": stored, "message": message})

        return receive

    return [Route(f"/webhooks/{name}", endpoint(handler), methods=["POST"]) for name, handler in HANDLERS.items()]
