"""The certified toolset (Mensatek) end to end: the in-memory MCP client, a real server, the real simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from starlette.applications import Starlette

from pec_mcp.config import Settings
from pec_mcp.server.app import build
from pec_mcp.server.http.webhooks import MAX_WEBHOOK_BYTES, webhook_routes
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.credentials import MENSATEK_API_TOKEN, MENSATEK_API_USER, MENSATEK_SENDER
from pec_mcp.simulator.faults import FaultPlan, respond
from pec_mcp.store import Store
from tests.faults import mensatek_res

pytestmark = pytest.mark.anyio

HOOK_TOKEN = "hook-secret-4f1c"
SIM_BASE = "http://simulator/mensatek/v7"
WINTER = "2030-01-15T09:00:00Z"  # CET, UTC+1
SUMMER = "2030-07-15T09:00:00Z"  # CEST, UTC+2

ANA = {"email": "ana@example.es", "name": "Ana", "variables": {"expediente": "EXP-1"}}
LUIS = {"email": "luis@example.es", "name": "Luis", "variables": {"expediente": "EXP-2"}}
SEND = {"recipients": [ANA, LUIS], "subject": "Expediente {{expediente}}",
        "message": "<p>Estimado/a {{name}}: resolución del expediente {{ expediente }}.</p>"}


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    content: dict[str, Any] = result.structured_content
    return content


def error(result: Any) -> str:
    assert result.is_error, result.structured_content
    text: str = result.content[0].text
    return text


def sends(simulator: Simulator) -> int:
    return int(simulator.stats.as_dict()["accepted"].get("mensatek_send", 0))


@pytest.fixture
def hooked(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(http={"webhook_token": HOOK_TOKEN})


@pytest.fixture
def serve(simulator: Simulator) -> Callable[..., Any]:
    """``async with serve(settings) as (client, holder, webhooks)``: the MCP client, the running state's holder,
    and an HTTP client on the webhook routes of that same server."""

    @asynccontextmanager
    async def open_all(settings: Settings, transport: httpx.AsyncBaseTransport | None = None
                       ) -> AsyncIterator[tuple[Client, Any, httpx.AsyncClient]]:
        built = build(settings, transport=transport or httpx.ASGITransport(app=simulator.app))
        hooks_app = Starlette(routes=webhook_routes(settings, built.holder))
        async with Client(built.mcp, elicitation_callback=_accept) as client, httpx.AsyncClient(
                transport=httpx.ASGITransport(app=hooks_app), base_url="http://pec-mcp") as webhooks:
            yield client, built.holder, webhooks

    return open_all


async def _accept(context: Any, params: Any) -> Any:
    import mcp.types as t

    return t.ElicitResult(action="accept", content={"confirm": True})


# --- sending and templating -----------------------------------------------------------------------------------


async def test_a_send_carries_mensateks_own_placeholders_and_each_recipient_gets_an_id(
        settings, connect, simulator) -> None:
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", {**SEND, "idempotency_key": "k1"}))
    assert sent["status"] == "sent" and sent["environment"] == "offline"
    assert [r["message_id"] for r in sent["recipients"]] == ["108366478", "108366479"]
    assert sent["message_id"] == "108366478"
    assert sent["variables"] == {"name": "{{Nombre}}", "expediente": "{{Variable_1}}"}
    assert sent["preview_subject"] == "Expediente EXP-1" and "Estimado/a Ana" in sent["preview_message"]
    assert sent["reference"] == "k1" and sent["credits_needed"] == 2 and sent["credits_left"] == 98
    # One request for both; Mensatek itself personalised each copy.
    assert sends(simulator) == 1
    assert [m.subject for m in simulator.mensatek.messages.values()] == ["Expediente EXP-1", "Expediente EXP-2"]


async def test_a_dry_run_previews_with_the_credits_and_sends_nothing(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        data(await client.call_tool("get_certified_email_credits", {}))
        preview = data(await client.call_tool("send_certified_email", {**SEND, "dry_run": True}))
    assert preview["status"] == "preview" and preview["message_id"] is None
    assert "Credits needed: 2 (1 per recipient)" in preview["note"] and "Credits left: 100." in preview["note"]
    assert sends(simulator) == 0


async def test_an_unknown_template_variable_is_an_error_and_nothing_is_sent(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", {**SEND, "message": "Hola {{nombre}} {{dni}}"}))
    assert "Unknown template variable(s) {{dni}}, {{nombre}}" in text and "{{expediente}}" in text
    assert sends(simulator) == 0


async def test_mensateks_own_placeholder_names_are_not_accepted_as_literals(settings, connect) -> None:
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", {**SEND, "subject": "Para {{Variable_1}}"}))
    assert "Unknown template variable(s) {{Variable_1}}" in text


async def test_more_than_ten_variables_are_refused(settings, connect, simulator) -> None:
    variables = {f"v{i}": str(i) for i in range(11)}
    args = {**SEND, "recipients": [{"email": "ana@example.es", "variables": variables}]}
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", args))
    assert "11 variables is more than the 10" in text
    assert sends(simulator) == 0


async def test_every_recipient_must_carry_the_same_variable_names(settings, connect) -> None:
    luis = {**LUIS, "variables": {"expedient": "EXP-2"}}
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", {**SEND, "recipients": [ANA, luis]}))
    assert "luis@example.es differs" in text and "missing: expediente" in text and "extra: expedient" in text


async def test_name_in_the_template_needs_a_name_for_every_recipient(settings, connect) -> None:
    nameless = {"email": "x@example.es", "variables": {"expediente": "E"}}
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", {**SEND, "recipients": [ANA, nameless]}))
    assert "no name: x@example.es" in text


# --- scheduling in Spanish time, acceptance ----------------------------------------------------------------------


@pytest.mark.parametrize(("when", "spanish"), [(WINTER, "2030-01-15 10:00"), (SUMMER, "2030-07-15 11:00"),
                                              ("2030-07-15T18:30:00-04:00", "2030-07-16 00:30")])
async def test_a_scheduled_time_is_sent_as_spanish_local_time(
        settings, connect, simulator, when: str, spanish: str) -> None:
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", {**SEND, "scheduled_at": when}))
        report = data(await client.call_tool("get_certified_email_report", {"message_id": sent["message_id"]}))
    assert sent["scheduled_for"] == spanish
    assert "Scheduled for " + spanish in sent["note"]
    assert report["scheduled_for"] == spanish and report["status_code"] == 900
    instant = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
    assert simulator.mensatek.messages[sent["message_id"]].send_at == instant


async def test_a_scheduled_time_without_a_zone_is_refused_clearly(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", {**SEND, "scheduled_at": "2030-01-15T10:00:00"}))
    assert "no time zone" in text and "+01:00" in text
    assert sends(simulator) == 0


async def test_a_scheduled_time_in_the_past_is_refused(settings, connect) -> None:
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", {**SEND, "scheduled_at": "2020-01-15T10:00Z"}))
    assert "in the past" in text


@pytest.mark.parametrize("days", [0, 31])
async def test_acceptance_days_outside_1_to_30_are_refused(settings, connect, simulator, days: int) -> None:
    args = {**SEND, "require_acceptance": True, "acceptance_days": days}
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", args))
    assert "acceptance_days" in text
    assert sends(simulator) == 0


@pytest.mark.parametrize("days", [1, 30])
async def test_acceptance_days_at_the_bounds_are_sent(settings, connect, simulator, days: int) -> None:
    args = {**SEND, "require_acceptance": True, "acceptance_days": days}
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", args))
    assert sent["require_acceptance"] is True and sent["acceptance_days"] == days
    assert simulator.mensatek.messages[sent["message_id"]].acceptance_days == days


# --- attachments ----------------------------------------------------------------------------------------------


async def test_attachments_come_from_the_allowed_folders_only(settings, connect, files: Path, tmp_path) -> None:
    letter = files / "resolucion.pdf"
    letter.write_bytes(b"%PDF-1.4 demo")
    outside = tmp_path / "secret.pdf"
    outside.write_bytes(b"x")
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", {**SEND, "attachments": [str(letter)]}))
        refused = error(await client.call_tool("send_certified_email", {**SEND, "attachments": [str(outside)]}))
    assert sent["attachments"] == [{"name": "resolucion.pdf", "size_bytes": 13}]
    assert "outside the allowed folders" in refused


# --- every known Res error, and an unknown one ---------------------------------------------------------------


def sandbox(make_settings: Callable[..., Settings], **mensatek: str) -> Settings:
    section = {"api_user": MENSATEK_API_USER, "api_token": MENSATEK_API_TOKEN, "sender": MENSATEK_SENDER,
               "base_url": SIM_BASE, **mensatek}
    return make_settings(environment="sandbox", mensatek=section)


async def test_wrong_credentials_are_res_minus_1_and_the_token_is_never_shown(
        make_settings, connect, simulator) -> None:
    settings = sandbox(make_settings, api_token="wrong-token-9z")
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", SEND))
    assert "Res -1: authentication failed" in text and "mensatek.api_token" in text
    assert "wrong-token-9z" not in text
    assert sends(simulator) == 0


async def test_running_out_of_credits_is_res_minus_2(settings, connect, simulator) -> None:
    simulator.mensatek.credits = 1
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", SEND))
    assert "Res -2: not enough credits" in text and "Buy Mensatek credits" in text
    assert sends(simulator) == 0


async def test_an_unvalidated_sender_is_res_minus_3_with_the_providers_detail(make_settings, connect) -> None:
    settings = sandbox(make_settings, sender="otro@example.es")
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", SEND))
    assert "Res -3: the request has wrong or missing data" in text and "no está validado" in text


async def test_an_executable_attachment_is_res_minus_4(settings, connect, files: Path) -> None:
    tool = files / "setup.exe"
    tool.write_bytes(b"MZ")
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", {**SEND, "attachments": [str(tool)]}))
    assert "Res -4: an attachment is not allowed" in text and "setup.exe" in text


async def test_res_minus_5_is_not_enough_credits_too(settings, connect, simulator) -> None:
    simulator.faults = FaultPlan([respond(mensatek_res(-5), "mensatek", "/EnviarEMAILCERTIFICADO", times=1)])
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", SEND))
    assert "Res -5: not enough credits" in text


async def test_an_unknown_res_code_is_reported_as_unknown_not_guessed(settings, connect, simulator) -> None:
    simulator.faults = FaultPlan([respond(mensatek_res(-77, "Cuenta suspendida"), "mensatek", times=1)])
    async with connect(settings) as client:
        text = error(await client.call_tool("send_certified_email", SEND))
    assert "Res -77, a code pec-mcp does not know (meaning unknown)" in text and "Cuenta suspendida" in text


async def test_a_failed_send_may_be_tried_again_with_the_same_key(settings, connect, simulator) -> None:
    simulator.faults = FaultPlan([respond(mensatek_res(-2), "mensatek", times=1)])
    async with connect(settings) as client:
        error(await client.call_tool("send_certified_email", {**SEND, "idempotency_key": "retry"}))
        sent = data(await client.call_tool("send_certified_email", {**SEND, "idempotency_key": "retry"}))
    assert sent["status"] == "sent" and sends(simulator) == 1


# --- never twice -------------------------------------------------------------------------------------------------


async def test_the_same_idempotency_key_returns_the_first_ids_and_sends_nothing(
        settings, connect, simulator) -> None:
    args = {**SEND, "idempotency_key": "notificacion-31"}
    async with connect(settings) as client:
        first = data(await client.call_tool("send_certified_email", args))
        again = data(await client.call_tool("send_certified_email", args))
    assert again["status"] == "duplicate" and "nothing was sent again" in again["note"]
    assert [r["message_id"] for r in again["recipients"]] == [r["message_id"] for r in first["recipients"]]
    assert sends(simulator) == 1 and simulator.stats.as_dict()["recipients"]["ana@example.es"] == 1
    store = Store(settings.store.path)
    rows = store.find_sendings(provider="mensatek")
    store.close()
    assert len(rows) == 1 and rows[0].message_id == first["message_id"] and rows[0].state == "sent"


class LosesSendAnswers(httpx.AsyncBaseTransport):
    """The network between us and Mensatek: the send reaches it, and its answer is lost."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/EnviarEMAILCERTIFICADO"):
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response


async def test_a_lost_answer_is_unknown_and_never_sent_again(settings, serve, simulator) -> None:
    args = {**SEND, "idempotency_key": "lost"}
    async with serve(settings, LosesSendAnswers(httpx.ASGITransport(app=simulator.app))) as (client, holder, _):
        first = data(await client.call_tool("send_certified_email", args))
        again = data(await client.call_tool("send_certified_email", args))
        row = holder.get().store.find_sendings(provider="mensatek")[0]
    assert first["status"] == "unknown" and "may or may not have been sent" in first["note"]
    assert again["status"] == "duplicate" and "unknown" in again["note"]
    assert row.state == "unknown" and sends(simulator) == 1


# --- report, cancel, reschedule, certificate, credits ------------------------------------------------------------


async def test_the_report_gives_a_normalised_status_and_the_providers_text(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", SEND))
        simulator.clock.advance(3)
        report = data(await client.call_tool("get_certified_email_report", {"message_id": sent["message_id"]}))
    assert report["status"] == "delivered" and report["status_code"] == 14
    assert report["provider_text"] == "Mensaje entregado y certificado"
    assert report["recipient"] == "ana@example.es" and report["known_locally"] is True


async def test_an_undocumented_status_code_is_classified_from_the_providers_text(settings, connect) -> None:
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", SEND))
        report = data(await client.call_tool("get_certified_email_report", {"message_id": sent["message_id"]}))
    assert report["status"] == "pending" and report["status_code"] == 901
    assert "classified from Mensatek's own text" in report["status_note"]
    assert "Enviado, pendiente de entrega" in report["status_note"]


async def test_a_recipient_that_was_not_delivered_is_reported_not_delivered(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", {
            **SEND, "recipients": [{**ANA, "email": "fail-ana@example.es"}]}))
        simulator.clock.advance(3)
        report = data(await client.call_tool("get_certified_email_report", {"message_id": sent["message_id"]}))
    assert report["status"] == "not_delivered" and report["status_code"] == 906


async def test_a_scheduled_message_can_be_cancelled_and_its_credit_comes_back(settings, serve) -> None:
    async with serve(settings) as (client, holder, _):
        sent = data(await client.call_tool("send_certified_email", {**SEND, "scheduled_at": SUMMER}))
        cancelled = data(await client.call_tool("cancel_certified_email", {"message_id": sent["message_id"]}))
        audit = [(a.action, a.outcome) for a in holder.get().store.audit_log()]
    assert cancelled["cancelled"] is True and cancelled["credits_left"] == 99
    assert ("cancel_certified_email", "cancelled") in audit
    assert any(action == "send_certified_email" and outcome.startswith("sent") for action, outcome in audit)


async def test_a_cancel_after_the_message_went_is_refused_with_the_providers_reason(settings, serve) -> None:
    async with serve(settings) as (client, holder, _):
        sent = data(await client.call_tool("send_certified_email", SEND))
        text = error(await client.call_tool("cancel_certified_email", {"message_id": sent["message_id"]}))
        audit = [(a.action, a.outcome) for a in holder.get().store.audit_log()]
    assert f"Mensatek refused to cancel message {sent['message_id']}" in text
    assert "ya ha sido enviado" in text and "Only a scheduled message" in text
    assert audit[0][0] == "cancel_certified_email" and audit[0][1].startswith("refused")


async def test_a_scheduled_message_can_be_rescheduled_in_spanish_time(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        sent = data(await client.call_tool("send_certified_email", {**SEND, "scheduled_at": WINTER}))
        moved = data(await client.call_tool("reschedule_certified_email",
                                            {"message_id": sent["message_id"], "scheduled_at": SUMMER}))
    assert "unverified" in (tools["reschedule_certified_email"].description or "")
    assert moved["scheduled_for"] == "2030-07-15 11:00:00" and "unverified" in moved["note"]
    assert simulator.mensatek.messages[sent["message_id"]].send_at == datetime(2030, 7, 15, 9, tzinfo=UTC).timestamp()


async def test_a_message_that_went_cannot_be_rescheduled(settings, connect) -> None:
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", SEND))
        text = error(await client.call_tool("reschedule_certified_email",
                                            {"message_id": sent["message_id"], "scheduled_at": SUMMER}))
    assert "ya ha sido enviado" in text


async def test_the_certificate_is_saved_in_an_allowed_folder_and_its_files_listed(
        settings, connect, simulator, files: Path) -> None:
    async with connect(settings) as client:
        sent = data(await client.call_tool("send_certified_email", SEND))
        early = error(await client.call_tool("download_certified_email_certificate",
                                             {"message_id": sent["message_id"], "save_to": str(files)}))
        simulator.clock.advance(3)
        saved = data(await client.call_tool("download_certified_email_certificate",
                                             {"message_id": sent["message_id"], "save_to": str(files)}))
        again = error(await client.call_tool("download_certified_email_certificate",
                                             {"message_id": sent["message_id"], "save_to": saved["saved_to"]}))
    assert "aún no está disponible" in early
    path = anyio.Path(saved["saved_to"])
    assert path == await anyio.Path(files).resolve() / "certificado_108366478.zip"
    assert (await path.stat()).st_size == saved["size_bytes"]
    assert [f["name"] for f in saved["files"]] == ["certificado_108366478.pdf", "resultado_108366478.csv"]
    assert "already exists" in again


async def test_a_certificate_outside_the_allowed_folders_is_refused_before_any_call(
        settings, connect, simulator, tmp_path: Path) -> None:
    async with connect(settings) as client:
        text = error(await client.call_tool("download_certified_email_certificate",
                                            {"message_id": "108366478", "save_to": str(tmp_path / "c.zip")}))
    assert "outside the allowed folders" in text
    assert not (tmp_path / "c.zip").exists()
    assert "mensatek_certificate" not in simulator.stats.as_dict()["accepted"]


async def test_credits_are_read_and_go_down_with_a_send(settings, connect) -> None:
    async with connect(settings) as client:
        before = data(await client.call_tool("get_certified_email_credits", {}))
        data(await client.call_tool("send_certified_email", SEND))
        after = data(await client.call_tool("get_certified_email_credits", {}))
    assert before["credits"] == 100 and after["credits"] == 98 and before["environment"] == "offline"


# --- webhooks --------------------------------------------------------------------------------------------------

REPORT = {"Servicio": "EMAILCERTIFICADO", "Resultado": "14", "Remitente": MENSATEK_SENDER,
          "Destinatario": "ana@example.es", "Fecha": "2026-03-10 10:00:05", "Asunto": "Expediente EXP-1",
          "idMensaje": "108366478", "Referencia": "k1", "CSV": "ABC123"}


async def test_the_webhook_refuses_a_missing_or_wrong_token(hooked, serve) -> None:
    async with serve(hooked) as (client, _, webhooks):
        missing = await webhooks.post("/webhooks/mensatek", json=REPORT)
        wrong = await webhooks.post("/webhooks/mensatek", params={"token": "nope"}, json=REPORT)
        events = data(await client.call_tool("list_certified_email_events", {}))
    assert missing.status_code == 401 and wrong.status_code == 401
    assert events["events"] == []


async def test_the_webhook_refuses_bad_json_and_oversized_bodies(hooked, serve) -> None:
    async with serve(hooked) as (client, _, webhooks):
        bad = await webhooks.post("/webhooks/mensatek", params={"token": HOOK_TOKEN}, content=b"{not json",
                                  headers={"content-type": "application/json"})
        huge = await webhooks.post("/webhooks/mensatek", params={"token": HOOK_TOKEN},
                                   json={**REPORT, "Asunto": "x" * (MAX_WEBHOOK_BYTES + 1)})
        events = data(await client.call_tool("list_certified_email_events", {}))
    assert bad.status_code == 400 and huge.status_code == 413
    assert events["events"] == []


async def test_a_replayed_report_is_stored_once(hooked, serve) -> None:
    async with serve(hooked) as (client, _, webhooks):
        first = await webhooks.post("/webhooks/mensatek", params={"token": HOOK_TOKEN}, json=REPORT)
        replay = await webhooks.post("/webhooks/mensatek", params={"token": HOOK_TOKEN}, data=REPORT)
        events = data(await client.call_tool("list_certified_email_events", {"message_id": "108366478"}))
    assert first.json() == {"success": True, "stored": True, "message": "stored"}
    assert replay.status_code == 200 and replay.json()["stored"] is False
    assert len(events["events"]) == 1
    event = events["events"][0]
    assert event["status"] == "delivered" and event["status_code"] == 14 and event["csv"] == "ABC123"
    assert event["recipient"] == "ana@example.es" and event["reported_at"] == "2026-03-10 10:00:05"


async def test_a_report_without_idmensaje_is_answered_but_not_stored(hooked, serve) -> None:
    report = {k: v for k, v in REPORT.items() if k != "idMensaje"}
    async with serve(hooked) as (client, _, webhooks):
        answer = await webhooks.post("/webhooks/mensatek", params={"token": HOOK_TOKEN}, data=report)
        events = data(await client.call_tool("list_certified_email_events", {}))
    assert answer.status_code == 200 and answer.json()["stored"] is False
    assert "idMensaje" in answer.json()["message"] and events["events"] == []


async def test_the_simulators_report_callbacks_reach_the_events_through_the_http_route(
        hooked, serve, simulator) -> None:
    async with serve(hooked) as (client, _, webhooks):

        async def post(url: str, fields: dict[str, str], fmt: str) -> None:
            response = await (webhooks.post(url, json=fields) if fmt == "json" else webhooks.post(url, data=fields))
            assert response.status_code == 200

        simulator.mensatek.report_url = f"http://pec-mcp/webhooks/mensatek?token={HOOK_TOKEN}"
        simulator.mensatek.report_sender = post
        sent = data(await client.call_tool("send_certified_email", {**SEND, "idempotency_key": "hooked"}))
        simulator.clock.advance(3)
        await simulator.mensatek.flush_reports()
        await simulator.mensatek.flush_reports()  # nothing new is due: nothing is sent again
        simulator.mensatek.report_format = "json"
        for callback in simulator.mensatek.callbacks:  # the provider retrying every report: stored once
            await post(callback.url, callback.fields, "json")
        events = data(await client.call_tool("list_certified_email_events", {"message_id": sent["message_id"]}))
        resource = await client.read_resource(f"certified://messages/{sent['message_id']}")
    assert [(e["status_code"], e["status"]) for e in events["events"]] == [(14, "delivered"), (901, "unknown")]
    assert "get_certified_email_report" in events["events"][1]["status_note"]
    assert all(e["reference"] == "hooked" for e in events["events"])
    assert len(simulator.mensatek.callbacks) == 4
    body = json.loads(resource.contents[0].text)
    assert body["report"]["status"] == "delivered" and body["report"]["webhook_events"] == 2
    assert [e["status_code"] for e in body["events"]] == [14, 901]


async def test_offline_the_simulators_reports_go_straight_to_the_handler(settings: Settings) -> None:
    built = build(settings)  # no transport: the server starts its own simulator, as `pec-mcp serve` offline does
    async with Client(built.mcp, elicitation_callback=_accept) as client:
        sent = data(await client.call_tool("send_certified_email", SEND))
        own = built.holder.get().simulator
        own.clock.advance(settings.simulator.delivery_delay + 1)
        await own.mensatek.flush_reports()
        events = data(await client.call_tool("list_certified_email_events", {}))
    delivered = {e["message_id"] for e in events["events"] if e["status"] == "delivered"}
    assert delivered == {r["message_id"] for r in sent["recipients"]}


async def test_an_unknown_message_resource_is_an_error(settings, connect) -> None:
    from mcp import MCPError

    async with connect(settings) as client:
        with pytest.raises(MCPError):
            await client.read_resource("certified://messages/not an id")


async def test_a_webhook_code_in_no_table_is_classified_once_mensatek_gave_its_text(hooked, serve, simulator) -> None:
    async with serve(hooked) as (client, _, webhooks):

        async def post(url: str, fields: dict[str, str], fmt: str) -> None:
            assert (await webhooks.post(url, data=fields)).status_code == 200

        simulator.mensatek.report_url = f"http://pec-mcp/webhooks/mensatek?token={HOOK_TOKEN}"
        simulator.mensatek.report_sender = post
        sent = data(await client.call_tool("send_certified_email", {
            **SEND, "recipients": [{**ANA, "email": "fail-ana@example.es"}]}))
        simulator.clock.advance(3)
        await simulator.mensatek.flush_reports()
        only = {"message_id": sent["message_id"]}
        before = data(await client.call_tool("list_certified_email_events", only))["events"][0]
        data(await client.call_tool("get_certified_email_report", only))
        after = data(await client.call_tool("list_certified_email_events", only))["events"][0]
    assert (before["status_code"], before["status"]) == (906, "unknown")
    assert (after["status_code"], after["status"]) == (906, "not_delivered")
    assert "classified from Mensatek's own text" in after["status_note"] and "earlier report" in after["status_note"]


def test_two_simulators_start_their_mensatek_ids_apart() -> None:
    from pec_mcp.simulator import create_simulator

    firsts = {next(create_simulator().mensatek._ids) for _ in range(20)}
    assert len(firsts) == 20 and all(len(str(i)) == 10 for i in firsts)


async def test_the_same_mensatek_id_from_two_environments_keeps_both_rows(make_settings) -> None:
    from pec_mcp.certified import message_by_id
    from pec_mcp.simulator import create_simulator

    offline = make_settings()
    first = build(offline)  # its own in-process simulator, as `pec-mcp serve` offline
    async with Client(first.mcp, elicitation_callback=_accept) as client:
        one = data(await client.call_tool("send_certified_email", SEND))
    ids = [r["message_id"] for r in one["recipients"]]
    # The worst case: a sandbox simulator that hands out exactly the same ids.
    other = create_simulator(mensatek_first_id=int(ids[0]))
    sandbox = make_settings(environment="sandbox", mensatek={
        "api_user": MENSATEK_API_USER, "api_token": MENSATEK_API_TOKEN, "sender": MENSATEK_SENDER,
        "base_url": other.base_url("mensatek")})
    second = build(sandbox, transport=httpx.ASGITransport(app=other.app))
    async with Client(second.mcp, elicitation_callback=_accept) as client:
        two = data(await client.call_tool("send_certified_email", {**SEND, "subject": "Otro {{expediente}}"}))
    assert [r["message_id"] for r in two["recipients"]] == ids
    store = Store(offline.store.path)
    try:
        kept = {(env, i): message_by_id(store, env, i) for env in ("offline", "sandbox") for i in ids}
    finally:
        store.close()
    assert all(kept.values()), kept
    assert len({m.sending_id for m in kept.values() if m is not None}) == 2
