"""The pec toolset through a real MCP client: every tool, resource and prompt, on the simulator, in both eras."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError

from pec_mcp.config import Settings
from pec_mcp.server import build_server
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.faults import FaultPlan, respond
from pec_mcp.simulator.pecmassiva import Incoming
from tests.conftest import Asked, accept
from tests.faults import LostAnswerTransport, envelope, html, raw

pytestmark = pytest.mark.anyio

ERAS = ["auto", "legacy"]
SEND = {"recipients": ["mario.rossi@pec.it"], "subject": "Diffida ad adempiere", "body": "<p>Testo</p>"}
PEC_TOOLS = {"send_pec", "get_pec_receipts", "delete_pec_receipts", "list_pec_inbox", "read_pec_message",
             "delete_pec_message", "get_pec_quota", "find_pec_sendings"}


@pytest.fixture(params=ERAS)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def serve(
    settings: Settings, transport: httpx.AsyncBaseTransport, *, elicitation: Any = accept, mode: str = "auto"
) -> AsyncIterator[Client]:
    """Like the ``connect`` fixture, over any transport (one that loses answers, say)."""
    server = build_server(settings, transport=transport)
    with anyio.fail_after(10):
        async with Client(server, elicitation_callback=elicitation, mode=mode) as client:  # type: ignore[arg-type]
            yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    with anyio.fail_after(10):
        result = await client.call_tool(tool, args)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    return result.structured_content or {}


async def fails(client: Client, tool: str, args: dict[str, Any]) -> str:
    """Call a tool that must fail; the text of its error."""
    with anyio.fail_after(10):
        result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return str(result.content[0].text)  # type: ignore[union-attr]


async def read(client: Client, uri: str) -> Any:
    with anyio.fail_after(10):
        result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


def sends(simulator: Simulator) -> int:
    return int(simulator.stats.as_dict()["accepted"].get("pecmassiva_send", 0))


# -- the catalogue ---------------------------------------------------------------------------------------------------


async def test_the_pec_toolset_offers_its_tools_resources_and_prompts(settings, connect, mode: str) -> None:
    async with connect(settings, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        resources = {r.uri for r in (await client.list_resources()).resources}
        templates = {r.uri_template for r in (await client.list_resource_templates()).resource_templates}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert set(tools) >= PEC_TOOLS
    assert {"pec://inbox", "pec://ledger"} <= {str(u) for u in resources}
    assert {"pec://inbox/{inbox_id}", "pec://sendings/{message_id}"} <= templates
    assert {"draft_pec", "check_delivery"} <= prompts
    for name in PEC_TOOLS:
        assert tools[name].title and tools[name].description and tools[name].output_schema, name
    assert tools["send_pec"].annotations.idempotent_hint is False  # type: ignore[union-attr]
    assert tools["delete_pec_message"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert "approval" not in tools["send_pec"].input_schema["properties"]


# -- send_pec ------------------------------------------------------------------------------------------------------


async def test_a_dry_run_previews_the_cost_and_sends_nothing(settings, connect, simulator, mode: str) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked, mode=mode) as client:
        preview = await call(client, "send_pec", {**SEND, "recipients": ["a@pec.it", "b@pec.it"], "dry_run": True})
        found = await call(client, "find_pec_sendings", {})
    assert preview["status"] == "preview" and preview["message_id"] is None
    assert preview["estimated_cost_eur"] == 0.10 and preview["environment"] == "offline"
    assert "Preview only: nothing was sent" in preview["note"] and "2 recipients" in preview["note"]
    assert sends(simulator) == 0 and asked.questions == [] and found["sendings"] == []


async def test_a_confirmed_send_goes_out_once_and_is_delivered(settings, connect, simulator, clock, mode) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked, mode=mode) as client:
        sent = await call(client, "send_pec", {**SEND, "idempotency_key": "diffida-1"})
        accepted = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
        clock.advance(2.0)
        delivered = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
    assert sent["status"] == "sent" and sent["recipients"] == ["mario.rossi@pec.it"]
    assert len(asked.questions) == 1 and "€0.05" in asked.questions[0] and "offline" in asked.questions[0]
    assert accepted["status"] == "accepted" and [r["kind"] for r in accepted["receipts"]] == ["accepted"]
    assert delivered["status"] == "delivered" and delivered["summary"] == "delivered to 1 of 1"
    assert delivered["recipients"][0]["state"] == "delivered" and delivered["known_locally"] is True
    assert sends(simulator) == 1


async def test_the_same_idempotency_key_returns_the_first_message_id_and_sends_nothing(
    settings, connect, simulator, mode: str
) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked, mode=mode) as client:
        first = await call(client, "send_pec", {**SEND, "idempotency_key": "k-1"})
        second = await call(client, "send_pec", {**SEND, "idempotency_key": "k-1"})
    assert second["status"] == "duplicate" and second["message_id"] == first["message_id"]
    assert "nothing was sent again" in second["note"]
    assert sends(simulator) == 1 and len(asked.questions) == 1  # a repeat is not even asked about


async def test_a_reused_key_with_other_content_is_refused_showing_both_versions(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        first = await call(client, "send_pec", {**SEND, "idempotency_key": "k-2"})
        text = await fails(client, "send_pec", {**SEND, "recipients": ["someone.else@pec.it"], "subject": "Altro",
                                                "idempotency_key": "k-2"})
        again = await call(client, "send_pec", {**SEND, "idempotency_key": "k-2"})
    assert "'k-2' was used before for a different send" in text and "Nothing was sent" in text
    assert "recipients: first 1 (mario.rossi@pec.it), now 1 (someone.else@pec.it)" in text
    assert "subject: first 'Diffida ad adempiere', now 'Altro'" in text and "body" not in text
    assert again["status"] == "duplicate" and again["message_id"] == first["message_id"]
    assert f"it was sent, message_id {first['message_id']}" in again["note"]
    assert simulator.stats.as_dict()["recipients"] == {"mario.rossi@pec.it": 1}


async def test_two_simultaneous_calls_with_one_key_send_once(settings, connect, simulator, mode: str) -> None:
    results: list[dict[str, Any]] = []
    async with connect(settings, mode=mode) as client:

        async def one() -> None:
            results.append(await call(client, "send_pec", {**SEND, "idempotency_key": "race"}))

        async with anyio.create_task_group() as group:
            group.start_soon(one)
            group.start_soon(one)
    assert sorted(r["status"] for r in results) == ["duplicate", "sent"]
    assert sends(simulator) == 1


async def test_a_client_that_cannot_ask_sends_with_confirm_true(settings, connect, simulator, mode: str) -> None:
    async with connect(settings, elicitation=None, mode=mode) as client:
        refused = await fails(client, "send_pec", SEND)
        sent = await call(client, "send_pec", {**SEND, "confirm": True})
    assert "Ask the user exactly this" in refused and "Send a PEC" in refused
    assert sent["status"] == "sent" and sends(simulator) == 1


async def test_confirm_never_sends_without_asking(make_settings, connect, simulator) -> None:
    asked = Asked()
    async with connect(make_settings(sending={"confirm": "never"}), elicitation=asked) as client:
        assert (await call(client, "send_pec", SEND))["status"] == "sent"
    assert asked.questions == []


async def test_a_fail_recipient_ends_not_delivered_with_the_reason(settings, connect, clock, mode: str) -> None:
    async with connect(settings, mode=mode) as client:
        sent = await call(client, "send_pec", {**SEND, "recipients": ["fail-nobody@pec.it"]})
        clock.advance(2.0)
        receipts = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
    assert receipts["status"] == "not_delivered"
    (recipient,) = receipts["recipients"]
    assert recipient == {"address": "fail-nobody@pec.it", "state": "not_delivered", "reason": "utente inesistente",
                         "date": recipient["date"]}
    assert "must be notified again" in receipts["note"]


async def test_a_mixed_sending_reads_delivered_to_48_of_50_and_names_the_full_mailboxes(
    settings, connect, clock
) -> None:
    recipients = [f"socio{i}@pec.it" for i in range(48)] + ["fail-full-1@pec.it", "fail-full-2@pec.it"]
    async with connect(settings) as client:
        sent = await call(client, "send_pec", {**SEND, "recipients": recipients})
        clock.advance(2.0)
        receipts = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
        found = await call(client, "find_pec_sendings", {"recipient": "fail-full-1"})
    assert sent["estimated_cost_eur"] == 2.5
    assert receipts["status"] == "partially_delivered"
    assert receipts["summary"] == "delivered to 48 of 50; 2 not delivered (casella piena ×2)"
    failed = [r for r in receipts["recipients"] if r["state"] == "not_delivered"]
    assert [r["reason"] for r in failed] == ["casella piena", "casella piena"]
    assert found["sendings"][0]["delivery_summary"] == receipts["summary"]  # the ledger remembers the last status


async def test_a_virus_recipient_makes_the_whole_sending_not_accepted(settings, connect, mode: str) -> None:
    async with connect(settings, mode=mode) as client:
        sent = await call(client, "send_pec", {**SEND, "recipients": ["virus-x@pec.it", "ok@pec.it"]})
        receipts = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
    assert receipts["status"] == "not_accepted"
    assert {r["state"] for r in receipts["recipients"]} == {"not_accepted"}
    assert receipts["summary"].startswith("not accepted by the provider, nothing was sent")


async def test_a_timeout_recipient_is_not_delivered_only_after_twelve_hours(settings, connect, clock) -> None:
    async with connect(settings) as client:
        sent = await call(client, "send_pec", {**SEND, "recipients": ["timeout-x@pec.it"]})
        clock.advance(11 * 3600)
        waiting = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
        clock.advance(3600)
        expired = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
    assert waiting["status"] == "accepted"
    assert expired["status"] == "not_delivered"
    assert expired["recipients"][0]["reason"] == "tempo massimo superato"
    assert expired["receipts"][-1]["kind"] == "not_delivered_timeout"


# -- attachments -----------------------------------------------------------------------------------------------------


async def test_an_attachment_inside_the_allowed_folder_is_sent(settings, connect, simulator, files: Path) -> None:
    (files / "diffida.pdf").write_bytes(b"%PDF-1.4" + b"x" * 2000)
    async with connect(settings) as client:
        sent = await call(client, "send_pec", {**SEND, "attachments": [str(files / "diffida.pdf")]})
    assert sent["attachments"] == [{"name": "diffida.pdf", "size_bytes": 2008}]
    assert simulator.pecmassiva.sendings[sent["message_id"]].attachment_bytes == 2008


@pytest.mark.parametrize("case", ["outside", "symlink-out", "relative", "missing", "folder"])
async def test_an_attachment_outside_the_allowed_folders_is_refused_and_nothing_is_sent(
    settings, connect, simulator, files: Path, tmp_path: Path, case: str
) -> None:
    secret = tmp_path / "elsewhere" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("private")
    (files / "link.pdf").symlink_to(secret)
    (files / "sub").mkdir()
    path = {"outside": str(secret), "symlink-out": str(files / "link.pdf"), "relative": "allowed/link.pdf",
            "missing": str(files / "nope.pdf"), "folder": str(files / "sub")}[case]
    expected = {"outside": "outside the allowed folders", "symlink-out": "(a link to", "relative": "relative path",
                "missing": "does not exist", "folder": "not a regular file"}[case]
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        text = await fails(client, "send_pec", {**SEND, "attachments": [path], "idempotency_key": "a"})
        found = await call(client, "find_pec_sendings", {})
    assert expected in text
    assert sends(simulator) == 0 and asked.questions == [] and found["sendings"] == []


# -- limits ----------------------------------------------------------------------------------------------------------


async def test_more_recipients_than_one_request_carries_is_refused_with_a_pointer_to_bulk(
    settings, connect, simulator
) -> None:
    async with connect(settings) as client:
        text = await fails(client, "send_pec", {**SEND, "recipients": [f"r{i}@pec.it" for i in range(51)]})
    assert "51 recipients is more than one request may carry (50" in text and "start_bulk_pec" in text
    assert sends(simulator) == 0


async def test_more_megabytes_than_one_request_carries_is_refused_with_a_pointer_to_bulk(
    make_settings, connect, simulator, files: Path
) -> None:
    (files / "big.pdf").write_bytes(b"x" * 400_000)
    settings = make_settings(sending={"max_request_mb": 1})
    async with connect(settings) as client:
        args = {**SEND, "recipients": ["a@pec.it", "b@pec.it", "c@pec.it"], "attachments": [str(files / "big.pdf")]}
        text = await fails(client, "send_pec", args)
        assert (await call(client, "send_pec", {**args, "recipients": ["a@pec.it", "b@pec.it"]}))["status"] == "sent"
    assert "over the 1 MB one request may carry" in text and "start_bulk_pec" in text
    assert sends(simulator) == 1


async def test_a_recipient_outside_the_allowed_domains_is_refused(make_settings, connect, simulator) -> None:
    async with connect(make_settings(sending={"allowed_recipient_domains": ["pec.it"]})) as client:
        text = await fails(client, "send_pec", {**SEND, "recipients": ["a@pec.it", "b@gmail.com"]})
    assert "b@gmail.com" in text and "a@pec.it" not in text.split("allowed domains")[1]
    assert sends(simulator) == 0


async def test_invalid_addresses_are_named_and_nothing_is_sent(settings, connect, simulator) -> None:
    async with connect(settings) as client:
        text = await fails(client, "send_pec", {**SEND, "recipients": ["not-an-address", "ok@pec.it"]})
    assert "'not-an-address'" in text and sends(simulator) == 0


# -- provider failures -----------------------------------------------------------------------------------------------


async def test_success_false_with_http_200_is_a_clear_error_and_the_key_may_try_again(
    settings, connect, simulator
) -> None:
    suspended = envelope(200, "Mailbox temporarily suspended")
    simulator.faults = FaultPlan([respond(suspended, "pecmassiva", method="POST")])
    async with connect(settings) as client:
        text = await fails(client, "send_pec", {**SEND, "idempotency_key": "retry-me"})
        failed = (await call(client, "find_pec_sendings", {}))["sendings"]
        simulator.faults = FaultPlan()
        again = await call(client, "send_pec", {**SEND, "idempotency_key": "retry-me"})
        after = (await call(client, "find_pec_sendings", {}))["sendings"]
    assert "PEC Massiva said: Mailbox temporarily suspended" in text
    assert "Retrying the same call will not help" in text
    assert [s["state"] for s in failed] == ["failed"]
    assert again["status"] == "sent" and [s["state"] for s in after] == ["sent"]  # the same ledger row
    assert sends(simulator) == 1


async def test_the_providers_own_500_on_a_send_is_a_clear_error(settings, connect, simulator) -> None:
    simulator.faults = FaultPlan([respond(envelope(500, "MySQL Error 2006"), "pecmassiva", method="POST")])
    async with connect(settings) as client:
        text = await fails(client, "send_pec", SEND)
    assert "MySQL Error 2006" in text and "Retrying later may help" in text


async def test_a_proxy_html_page_on_a_read_is_a_clear_error(settings, connect, simulator) -> None:
    # Retry-After: 0 lets the server's read retries run without waiting.
    simulator.faults = FaultPlan([respond(html(502, retry_after="0"), "pecmassiva")])
    async with connect(settings) as client:
        text = await fails(client, "get_pec_quota", {})
    assert "PEC Massiva answered HTTP 502 with an HTML page" in text and "Retrying later may help" in text
    assert "<html" not in text.lower()


async def test_invalid_json_on_a_read_is_a_clear_error(settings, connect, simulator) -> None:
    simulator.faults = FaultPlan([respond(raw(200, '{"data": [', "application/json"), "pecmassiva")])
    async with connect(settings) as client:
        text = await fails(client, "list_pec_inbox", {})
    assert "PEC Massiva answered HTTP 200 with text that is not valid JSON" in text


async def test_a_proxy_html_page_on_a_send_has_an_unknown_outcome_and_is_never_resent(
    settings, connect, simulator
) -> None:
    simulator.faults = FaultPlan([respond(html(502), "pecmassiva", method="POST")])
    async with connect(settings) as client:
        first = await call(client, "send_pec", {**SEND, "idempotency_key": "proxy"})
        simulator.faults = FaultPlan()
        second = await call(client, "send_pec", {**SEND, "idempotency_key": "proxy"})
    assert first["status"] == "unknown" and "may or may not have been sent" in first["note"]
    assert second["status"] == "duplicate" and sends(simulator) == 0


async def test_a_lost_answer_records_unknown_and_the_same_key_does_not_resend(
    settings, simulator, mode: str
) -> None:
    lossy = LostAnswerTransport(httpx.ASGITransport(app=simulator.app))
    async with serve(settings, lossy, mode=mode) as client:
        first = await call(client, "send_pec", {**SEND, "idempotency_key": "lost-1"})
        ledger = await read(client, "pec://ledger")
        second = await call(client, "send_pec", {**SEND, "idempotency_key": "lost-1"})
    assert first["status"] == "unknown" and first["message_id"] is None
    assert "Do not send again blindly" in first["note"]
    (row,) = ledger["sendings"]
    assert row["state"] == "unknown" and "ReadTimeout" in row["error"]
    assert ledger["audit"][0]["outcome"].startswith("unknown")
    assert second["status"] == "duplicate" and "its outcome is unknown" in second["note"]
    assert sends(simulator) == 1 and lossy.lost == 1


async def test_credentials_refused_by_the_provider_are_explained_without_the_secret(
    make_settings, simulator
) -> None:
    secret = "sandbox-token-that-must-not-leak"
    settings = make_settings(environment="sandbox", pecmassiva={
        "token": secret, "username": "me@pecmassiva.com", "password": secret + "-pw",
        "base_url": "http://simulator/pecmassiva"})
    async with serve(settings, httpx.ASGITransport(app=simulator.app)) as client:
        text = await fails(client, "get_pec_quota", {})
        sent = await fails(client, "send_pec", {**SEND, "confirm": True})
    assert "credentials refused" in text and secret not in text and secret not in sent


async def test_a_sandbox_without_pec_massiva_credentials_names_the_missing_keys(make_settings, simulator) -> None:
    settings = make_settings(environment="sandbox", openapi_pec={"token": "x" * 10})
    async with serve(settings, httpx.ASGITransport(app=simulator.app)) as client:
        text = await fails(client, "get_pec_quota", {})
    assert "pecmassiva.token, pecmassiva.username, pecmassiva.password missing" in text


# -- receipts, inbox, quota ------------------------------------------------------------------------------------------


async def test_receipts_of_an_unknown_sending_are_not_found(settings, connect) -> None:
    async with connect(settings) as client:
        text = await fails(client, "get_pec_receipts", {"message_id": "2026031010000099"})
        bad = await fails(client, "get_pec_receipts", {"message_id": "not a code"})
    assert "No receipts found for sending 2026031010000099" in text and "find_pec_sendings" in text
    assert "not a PEC Massiva sending code" in bad


async def test_deleting_receipts_asks_first_is_audited_and_the_ledger_keeps_them(settings, connect, clock) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        sent = await call(client, "send_pec", SEND)
        clock.advance(2.0)
        deleted = await call(client, "delete_pec_receipts", {"message_id": sent["message_id"]})
        after = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
        ledger = await read(client, "pec://ledger")
    assert deleted["deleted"] is True and deleted["environment"] == "offline"
    assert "legal proof of delivery (CONSEGNA), sending (ACCETTAZIONE)" in asked.questions[-1]
    assert after["status"] == "delivered" and after["ledger_only"] == len(after["receipts"]) == 2
    assert all(r["at_provider"] is False and r["deleted_at"] for r in after["receipts"])
    assert "known only from the local ledger" in after["note"]
    assert ledger["audit"][0]["action"] == "delete_pec_receipts" and ledger["audit"][0]["ref"] == sent["message_id"]
    assert "kept in the ledger" in ledger["audit"][0]["outcome"]


async def test_the_inbox_lists_classified_receipts_with_their_sending_code(settings, connect, clock, mode) -> None:
    async with connect(settings, mode=mode) as client:
        sent = await call(client, "send_pec", SEND)
        clock.advance(2.0)
        page = await call(client, "list_pec_inbox", {})
        only = await call(client, "list_pec_inbox", {"query": sent["message_id"]})
    kinds = {m["kind"] for m in page["messages"]}
    assert {"accepted", "delivered", "envelope"} <= kinds
    assert page["total"] == 5 and page["pages"] == 1 and page["page"] == 1
    assert {(m["kind"], m["message_id"]) for m in only["messages"]} == {("accepted", sent["message_id"]),
                                                                       ("delivered", sent["message_id"])}
    incoming = [m for m in page["messages"] if m["kind"] == "envelope"]
    assert all(m["message_id"] is None for m in incoming)


async def test_the_inbox_pages_by_25(settings, connect, simulator) -> None:
    simulator.pecmassiva.add_incoming(Incoming(f"s{i}@pec.it", f"Avviso {i}") for i in range(30))
    async with connect(settings) as client:
        second = await call(client, "list_pec_inbox", {"page": 2})
    assert (second["page"], second["pages"], second["total"], len(second["messages"])) == (2, 2, 33, 8)


async def test_a_message_is_read_decoded_and_then_deleted(settings, connect, simulator) -> None:
    body = "<p>Saldo: 100% + interessi &amp; spese, entro il 30/04</p>"
    (inbox_id,) = simulator.pecmassiva.add_incoming([Incoming("studio@pec.avvocati.it", "Sollecito", body)])
    async with connect(settings) as client:
        message = await call(client, "read_pec_message", {"inbox_id": inbox_id})
        deleted = await call(client, "delete_pec_message", {"inbox_id": inbox_id})
        gone = await fails(client, "read_pec_message", {"inbox_id": inbox_id})
    assert message["body"] == body and message["kind"] == "envelope"
    assert message["subject"] == "POSTA CERTIFICATA: Sollecito"
    assert deleted["what"] == f"inbox message {inbox_id}: \"POSTA CERTIFICATA: Sollecito\""
    assert "Message not found" in gone


async def test_the_quota_is_reported_with_a_percentage(settings, connect) -> None:
    async with connect(settings) as client:
        quota = await call(client, "get_pec_quota", {})
        wrong = await fails(client, "get_pec_quota", {"mailbox": "Archivio"})
    assert quota["mailbox"] == "INBOX" and quota["limit"] == 1_048_576
    assert quota["percent_used"] == round(100 * quota["usage"] / quota["limit"], 1)
    assert "INBOX" in wrong


async def test_find_sendings_by_recipient_part_subject_words_and_date(settings, connect) -> None:
    async with connect(settings) as client:
        await call(client, "send_pec", {**SEND, "recipients": ["mario.rossi@pec.studio.it"], "subject": "Diffida"})
        await call(client, "send_pec", {**SEND, "recipients": ["ufficio@pec.comune.it"],
                                        "subject": "Richiesta accesso agli atti"})

        async def subjects(**args: Any) -> list[str]:
            return [s["subject"] for s in (await call(client, "find_pec_sendings", args))["sendings"]]

        today = datetime.now(UTC).date()
        assert await subjects(recipient="rossi") == ["Diffida"]
        assert await subjects(recipient="comune.it") == ["Richiesta accesso agli atti"]
        assert await subjects(query="accesso atti") == ["Richiesta accesso agli atti"]
        assert await subjects(since=today.isoformat()) == ["Richiesta accesso agli atti", "Diffida"]
        assert await subjects(since=(today + timedelta(days=1)).isoformat()) == []
        assert await subjects(limit=1) == ["Richiesta accesso agli atti"]
        nothing = await call(client, "find_pec_sendings", {"recipient": "nobody"})
    assert "Nothing found in the local ledger" in nothing["note"]


# -- resources -------------------------------------------------------------------------------------------------------


async def test_the_resources_show_the_inbox_a_message_a_sending_and_the_ledger(
    settings, connect, clock, mode: str
) -> None:
    async with connect(settings, mode=mode) as client:
        sent = await call(client, "send_pec", {**SEND, "idempotency_key": "res"})
        clock.advance(2.0)
        inbox = await read(client, "pec://inbox")
        first_id = inbox["messages"][0]["inbox_id"]
        message = await read(client, f"pec://inbox/{first_id}")
        sending = await read(client, f"pec://sendings/{sent['message_id']}")
        ledger = await read(client, "pec://ledger")
    assert inbox["environment"] == "offline" and inbox["total"] == 5
    assert message["inbox_id"] == first_id and "untrusted_body" in message
    assert sending["status"] == "delivered" and sending["known_locally"] is True
    assert sending["recipients"][0]["state"] == "delivered" and sending["receipts_received"] == 2
    assert ledger["sendings"][0]["message_id"] == sent["message_id"]
    assert ledger["audit"][0]["action"] == "send_pec" and ledger["audit"][0]["ref"] == sent["message_id"]


@pytest.mark.parametrize("uri", ["pec://inbox/999", "pec://inbox/abc", "pec://sendings/2026031010000099",
                                 "pec://sendings/not-a-code"])
async def test_an_unknown_inbox_message_is_a_resource_error(settings, connect, uri: str) -> None:
    async with connect(settings) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource(uri)
    assert "not" in raised.value.message.lower()


# -- prompts ---------------------------------------------------------------------------------------------------------


async def test_the_draft_prompt_asks_for_a_formal_pec_and_a_dry_run_before_sending(settings, connect, mode) -> None:
    async with connect(settings, mode=mode) as client:
        italian = await client.get_prompt("draft_pec", {"recipient": "Comune di Roma", "purpose": "accesso atti"})
        english = await client.get_prompt("draft_pec", {"recipient": "X", "purpose": "y", "language": "en"})
    text = italian.messages[0].content.text  # type: ignore[union-attr]
    assert "formal Italian" in text and "Comune di Roma" in text and "dry_run=true" in text
    assert "does not prove that the recipient read it" in text
    assert "formal English" in english.messages[0].content.text  # type: ignore[union-attr]


async def test_the_delivery_prompt_points_to_the_receipts_and_their_legal_meaning(settings, connect) -> None:
    async with connect(settings) as client:
        prompt = await client.get_prompt("check_delivery", {"message_id": "2026031010000001"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "get_pec_receipts" in text and "'2026031010000001'" in text and "CONSEGNA" in text
