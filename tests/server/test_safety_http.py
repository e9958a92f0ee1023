"""The HTTP transport's guard rails: webhooks behind their own token, size limits, Host checks, clean access logs."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from pec_mcp.config import Settings
from pec_mcp.redaction import RedactingFilter, Redactor, install_log_redaction
from pec_mcp.server.http.app import build_http_app, transport_security
from pec_mcp.server.http.webhooks import MAX_WEBHOOK_BYTES

pytestmark = pytest.mark.anyio

TOKEN = "bearer-token-for-safety-tests-1b7e"
HOOK = "webhook-token/with+odd=chars&3c"  # characters that are URL-encoded in a query string
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
REPORT = {"Servicio": "EMAILCERTIFICADO", "Resultado": "1", "idMensaje": "12345", "Fecha": "2026-03-10 10:00"}


@asynccontextmanager
async def http_client(settings: Settings, host: str, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = build_http_app(settings, host=host)
    inner: Any = app
    while not hasattr(inner, "router"):
        inner = inner.app
    async with inner.router.lifespan_context(inner), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        yield client


@pytest.fixture
def secured(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(http={"auth_token": TOKEN, "webhook_token": HOOK})


async def test_webhooks_need_their_own_token_not_the_bearer_token(secured: Settings) -> None:
    async with http_client(secured, "127.0.0.1", "http://127.0.0.1:8000") as http:
        bearer_only = await http.post("/webhooks/mensatek", data=REPORT,
                                      headers={"authorization": f"Bearer {TOKEN}"})
        bearer_as_token = await http.post("/webhooks/mensatek", params={"token": TOKEN}, data=REPORT)
        own_token = await http.post("/webhooks/mensatek", params={"token": HOOK}, data=REPORT)
    assert bearer_only.status_code == 401 and bearer_as_token.status_code == 401
    assert own_token.status_code == 200 and own_token.json()["stored"] is True


async def test_the_webhook_token_does_not_open_mcp(secured: Settings) -> None:
    async with http_client(secured, "127.0.0.1", "http://127.0.0.1:8000") as http:
        response = await http.post("/mcp", params={"token": HOOK}, json=INITIALIZE,
                                   headers={**HEADERS, "authorization": f"Bearer {HOOK}"})
    assert response.status_code == 401


async def test_a_webhook_body_over_its_limit_gets_413(secured: Settings) -> None:
    big = {"Asunto": "x" * (MAX_WEBHOOK_BYTES + 1), **REPORT}
    async with http_client(secured, "127.0.0.1", "http://127.0.0.1:8000") as http:
        response = await http.post("/webhooks/mensatek", params={"token": HOOK}, data=big)
    assert response.status_code == 413


async def test_webhooks_are_off_without_a_webhook_token(make_settings: Callable[..., Settings]) -> None:
    async with http_client(make_settings(), "127.0.0.1", "http://127.0.0.1:8000") as http:
        response = await http.post("/webhooks/mensatek", params={"token": ""}, data=REPORT)
    assert response.status_code == 404


async def test_a_named_address_beyond_loopback_keeps_the_host_check(secured: Settings) -> None:
    headers = {**HEADERS, "authorization": f"Bearer {TOKEN}"}
    async with http_client(secured, "192.168.1.5", "http://192.168.1.5:8000") as http:
        good = await http.post("/mcp", json=INITIALIZE, headers=headers)
        rebound = await http.post("/mcp", json=INITIALIZE, headers={**headers, "host": "evil.example"})
        foreign = await http.post("/mcp", json=INITIALIZE, headers={**headers, "origin": "http://evil.example"})
    assert good.status_code == 200
    assert rebound.status_code == 421 and foreign.status_code == 403


async def test_loopback_keeps_dns_rebinding_protection(secured: Settings) -> None:
    headers = {**HEADERS, "authorization": f"Bearer {TOKEN}"}
    async with http_client(secured, "127.0.0.1", "http://127.0.0.1:8000") as http:
        rebound = await http.post("/mcp", json=INITIALIZE, headers={**headers, "host": "evil.example:8000"})
        foreign = await http.post("/mcp", json=INITIALIZE, headers={**headers, "origin": "http://evil.example"})
    assert rebound.status_code == 421 and foreign.status_code == 403


@pytest.mark.parametrize(("host", "protected"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                 ("127.0.0.2", True), ("pec.example.org", True),
                                                 ("10.0.0.7", True), ("0.0.0.0", False), ("::", False)])
def test_only_a_wildcard_bind_goes_without_the_host_check(host: str, protected: bool) -> None:
    assert transport_security(host).enable_dns_rebinding_protection is protected


async def test_a_wildcard_bind_relies_on_the_bearer_token(secured: Settings) -> None:
    async with http_client(secured, "0.0.0.0", "http://pec.example.org:8000") as http:
        without = await http.post("/mcp", json=INITIALIZE, headers=HEADERS)
        with_token = await http.post("/mcp", json=INITIALIZE, headers={**HEADERS,
                                                                       "authorization": f"Bearer {TOKEN}"})
    assert without.status_code == 401 and with_token.status_code == 200


# -- logs: the webhook token never shows, not even in uvicorn's access log --------------------------------------


@pytest.fixture
def root_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it: the path with its query string, in the args."""
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             ("203.0.113.9:5123", "POST", path, "1.1", 200), None)


@pytest.mark.parametrize("path", [f"/webhooks/mensatek?token={HOOK}",
                                  "/webhooks/mensatek?token=" + httpx.QueryParams({"t": HOOK}).get("t", ""),
                                  "/webhooks/mensatek?" + str(httpx.QueryParams({"token": HOOK}))])
def test_the_redacting_filter_removes_the_webhook_token_from_an_access_log_record(path: str) -> None:
    record = access_record(path)
    RedactingFilter(Redactor([HOOK])).filter(record)
    line = record.getMessage()
    assert HOOK not in line and "token=" in line and "***" in line
    assert str(httpx.QueryParams({"token": HOOK})).split("=", 1)[1] not in line


def test_uvicorn_access_records_reach_the_redacting_root_handler_clean(root_stream: io.StringIO) -> None:
    install_log_redaction(Redactor([HOOK, TOKEN]))
    access = logging.getLogger("uvicorn.access")
    level, access.level = access.level, logging.INFO
    try:
        access.handle(access_record("/webhooks/mensatek?" + str(httpx.QueryParams({"token": HOOK}))))
    finally:
        access.setLevel(level)
    text = root_stream.getvalue()
    assert "/webhooks/mensatek?token=***" in text
    assert HOOK not in text and str(httpx.QueryParams({"token": HOOK})) not in text
