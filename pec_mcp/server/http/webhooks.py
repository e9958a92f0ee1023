"""Webhook receivers for provider callbacks, protected by ``http.webhook_token`` in the query string.

Providers cannot add headers to their callbacks (and Mensatek does not sign them), so the shared secret travels
as ``?token=...``; it is compared in constant time and removed from every log line by the redactor.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pec_mcp.certified import store_report
from pec_mcp.config import Settings
from pec_mcp.server.state import AppState, StateHolder

if TYPE_CHECKING:
    from pec_mcp.simulator import Simulator

log = logging.getLogger("pec_mcp.webhooks")
MAX_WEBHOOK_BYTES = 64 * 1024

# provider path segment -> handler(state, payload) returning (stored, message)
Handler = Callable[[AppState, dict[str, Any]], Awaitable[tuple[bool, str]]]




async def read_payload(request: Request) -> dict[str, Any] | None:
    """The callback body as a dict: a JSON object, or form fields; None when it is neither."""
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


# -- Mensatek: a delivery report of a certified email ------------------------------------------------------------


async def mensatek_report(state: AppState, payload: dict[str, Any]) -> tuple[bool, str]:
    """A Mensatek delivery report: validated, stored once per idMensaje+Resultado+Fecha (replays are not stored).

    An invalid report is answered 200 with ``stored: false``: a retry of the same payload could not do better.
    """
    stored, message = store_report(state.store, payload, environment=state.environment)
    if stored:
        await announce(state, f"certified://messages/{payload['idMensaje']}")
    return stored, message


async def announce(state: AppState, uri: str) -> None:
    """Tell the clients listening for ``uri``, on every replica (through the shared bus), that it changed.

    Fire-and-forget: the event is stored whatever happens here, and a client that missed it reads it later.
    """
    if state.publish is not None:
        await state.publish(uri)


# -- openapi.it PEC: a mailbox or a business-register filing changed state ------------------------------------

# What is kept of a callback: enough to follow the state, none of the applicant's personal data.
OPENAPI_KEPT_FIELDS = ("id", "casella_pec", "tipo_casella", "stato", "timestamp", "data_scadenza",
                       "codice_registro_imprese")


def openapi_document(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The mailbox or filing object of a callback: the JSON body itself, or the JSON held in a form field."""
    if "id" in payload and "stato" in payload:
        return payload
    for value in payload.values():
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                inner = json.loads(value)
            except json.JSONDecodeError:
                continue
            if isinstance(inner, dict) and "id" in inner and "stato" in inner:
                return inner
    return None


def openapi_event_key(document: dict[str, Any]) -> str:
    """The same state change always gives the same key, so a replayed callback is stored once."""
    stamps = document.get("timestamp")
    changed = stamps.get("ultima_modifica") if isinstance(stamps, dict) else stamps
    if changed is not None:
        basis = f"{document['id']}|{document['stato']}|{changed}"
    else:
        basis = json.dumps(document, sort_keys=True, ensure_ascii=False)
    return "openapi:" + hashlib.sha256(basis.encode()).hexdigest()


async def openapi_callback(state: AppState, payload: dict[str, Any]) -> tuple[bool, str]:
    """Record an openapi.it PEC callback (mailbox or filing state change) as an event; replays are ignored."""
    document = openapi_document(payload)
    if document is None:
        return False, "ignored: not an openapi.it PEC callback (no id and stato)"
    kept = {key: document[key] for key in OPENAPI_KEPT_FIELDS if key in document}
    kept["object"] = "filing" if "codice_registro_imprese" in document else "mailbox"
    stored = state.store.record_event(provider="openapi_pec", environment=state.environment,
                                      event_key=openapi_event_key(document),
                                      message_id=str(document["id"]), kind=str(document["stato"]), payload=kept)
    if stored and kept["object"] == "mailbox":
        await announce(state, f"pec://mailboxes/{document['id']}")
    return stored, "recorded" if stored else "already recorded (a replay)"


def in_process_sender(get_state: Callable[[], AppState], name: str = "openapi") -> Callable[
        [httpx.Request], Awaitable[httpx.Response]]:
    """A callback sender for the in-process simulator: hands the request to a handler directly, without HTTP."""

    async def send(request: httpx.Request) -> httpx.Response:
        body = request.content
        if "json" in request.headers.get("content-type", ""):
            try:
                data = json.loads(body)
            except json.JSONDecodeError:
                data = None
            payload = data if isinstance(data, dict) else {}
        else:
            payload = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        try:
            stored, message = await HANDLERS[name](get_state(), payload)
        except Exception:  # the simulator's side of a callback: a failing handler answers 500, as over HTTP
            log.exception("offline %s callback failed", name)
            return httpx.Response(500, json={"success": False, "message": "handler failed"})
        return httpx.Response(200, json={"success": True, "stored": stored, "message": message})

    return send


HANDLERS: dict[str, Handler] = {"mensatek": mensatek_report, "openapi": openapi_callback}


# -- the offline environment: the in-process simulator reports straight to the handler ---------------------------

OFFLINE_REPORT_URL = "internal:/webhooks/mensatek"  # never fetched: the sender below calls the handler directly
REPORT_PUMP_SECONDS = 0.5


def wire_offline_reports(state: AppState, simulator: Simulator) -> None:
    """Make the in-process Mensatek simulator deliver its report webhooks to :func:`mensatek_report`, no HTTP."""

    async def deliver(url: str, fields: dict[str, str], fmt: str) -> None:
        await mensatek_report(state, dict(fields))

    simulator.mensatek.report_url = OFFLINE_REPORT_URL
    simulator.mensatek.report_sender = deliver


async def pump_offline_reports(simulator: Simulator) -> None:
    """Flush the simulator's due reports twice a second, as the real service pushes them without being asked.

    Bounded work: each flush looks at the simulator's messages once and sends only the status changes now due.
    """
    while True:
        await anyio.sleep(REPORT_PUMP_SECONDS)
        try:
            await simulator.mensatek.flush_reports()
        except Exception:  # the top of a background task: one bad flush must not stop the server
            log.exception("offline Mensatek report flush failed")
