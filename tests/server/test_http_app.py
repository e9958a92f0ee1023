"""The HTTP transport: a bearer token on /mcp, DNS-rebinding protection, body limits, loopback-only without a token."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from pec_mcp.config import Settings
from pec_mcp.errors import ConfigError
from pec_mcp.server.http.app import build_http_app, is_loopback

pytestmark = pytest.mark.anyio

TOKEN = "http-token-for-tests-8d1f"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _starlette(app: Any) -> Any:
    while not hasattr(app, "router"):
        app = app.app
    return app


@pytest.fixture
async def http(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    app = build_http_app(make_settings(http={"auth_token": TOKEN}), host="127.0.0.1")
    inner = _starlette(app)
    async with inner.router.lifespan_context(inner):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            yield client


async def test_mcp_without_a_token_is_refused_with_401(http: httpx.AsyncClient) -> None:
    response = await http.post("/mcp", json=INITIALIZE, headers=HEADERS)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_mcp_with_a_wrong_token_is_refused_with_401(http: httpx.AsyncClient) -> None:
    response = await http.post("/mcp", json=INITIALIZE, headers={**HEADERS, "authorization": "Bearer nope"})
    assert response.status_code == 401


async def test_mcp_with_the_token_answers(http: httpx.AsyncClient) -> None:
    response = await http.post("/mcp", json=INITIALIZE, headers={**HEADERS, "authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "pec-mcp" in response.text


async def test_a_foreign_host_header_is_refused(http: httpx.AsyncClient) -> None:
    headers = {**HEADERS, "authorization": f"Bearer {TOKEN}", "host": "evil.example"}
    response = await http.post("/mcp", json=INITIALIZE, headers=headers)
    assert response.status_code == 421


async def test_a_body_over_the_limit_gets_413(http: httpx.AsyncClient) -> None:
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    response = await http.post("/mcp", content=body, headers={**HEADERS, "authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 413


async def test_a_streamed_body_over_the_limit_gets_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    headers = {**HEADERS, "authorization": f"Bearer {TOKEN}"}
    response = await http.post("/mcp", content=chunks(), headers=headers)
    assert response.status_code == 413


def test_listening_beyond_loopback_without_a_token_refuses_to_start(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="auth_token"):
        build_http_app(make_settings(), host="0.0.0.0")


def test_listening_beyond_loopback_with_a_token_is_allowed(make_settings: Callable[..., Settings]) -> None:
    build_http_app(make_settings(http={"auth_token": TOKEN}), host="0.0.0.0")


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("[::1]", True), ("0.0.0.0", False), ("192.168.1.5", False)])
def test_loopback_hosts_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
