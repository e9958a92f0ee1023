"""What every provider client shares: calling the API safely and reading its answers tolerantly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from pec_mcp.errors import BadResponse, OutcomeUnknown, ProviderUnavailable

# Raised before a single byte of the request could have reached the server: safe to report as "not sent".
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@asynccontextmanager
async def translated_errors(provider: str, *, is_send: bool) -> AsyncIterator[None]:
    """Turn httpx failures into the error tree: a send that may have arrived becomes OutcomeUnknown."""
    try:
        yield
    except NOT_SENT_ERRORS as exc:
        raise ProviderUnavailable(
            f"Could not reach {provider} ({type(exc).__name__}); nothing was sent", provider=provider
        ) from exc
    except httpx.HTTPError as exc:
        if is_send:
            raise OutcomeUnknown(
                f"The request to {provider} went out but its answer was lost ({type(exc).__name__}): "
                "the message may or may not have been sent",
                provider=provider,
            ) from exc
        raise ProviderUnavailable(
            f"{provider} did not answer properly ({type(exc).__name__})", provider=provider
        ) from exc


async def call(
    provider: str, *, is_send: bool, request: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response:
    """Run one request with the error translation of :func:`translated_errors`."""
    async with translated_errors(provider, is_send=is_send):
        return await request()


def read_json(response: httpx.Response, provider: str) -> Any:
    """The decoded body of a JSON answer, tolerating the quirks seen in the wild.

    - an empty body (204 No Content) is ``None``;
    - a JSON document that is itself a JSON-encoded string is decoded a second time;
    - an HTML page (a proxy's 502) or invalid JSON is a BadResponse, or ProviderUnavailable for a 5xx.
    """
    if response.status_code == 204 or not response.content.strip():
        return None
    try:
        data = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = "an HTML page" if _looks_like_html(response) else "text that is not valid JSON"
        message = f"{provider} answered HTTP {response.status_code} with {kind}"
        if response.status_code >= 500:
            raise ProviderUnavailable(message, provider=provider, status=response.status_code) from None
        raise BadResponse(message, provider=provider, status=response.status_code) from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            return data
    return data


def _looks_like_html(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "")
    head = response.content[:200].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def message_of(data: Any) -> str:
    """The provider's own error text from an envelope, decoding a JSON string hidden inside ``message``."""
    if not isinstance(data, dict):
        return str(data)[:300] if data else ""
    message = data.get("message") or data.get("error_description") or data.get("Error") or ""
    if isinstance(message, str) and message.startswith(("{", "[")):
        try:
            inner = json.loads(message)
        except json.JSONDecodeError:
            return message[:300]
        return message_of(inner)
    return str(message)[:300]
