"""The PEC Massiva client against the simulator: the seven endpoints, their quirks, and every way an answer fails."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pec_mcp.errors import (
    AuthenticationFailed,
    BadResponse,
    NotFound,
    OutcomeUnknown,
    ProviderUnavailable,
    RateLimited,
    Rejected,
)
from pec_mcp.http import ClientOptions, build_client
from pec_mcp.providers.pecmassiva import Attachment, Credentials, PecMassivaClient
from pec_mcp.simulator import Simulator, create_simulator
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.credentials import PECMASSIVA_PASSWORD, PECMASSIVA_TOKEN, PECMASSIVA_USERNAME
from pec_mcp.simulator.faults import FaultPlan, Reply, respond
from pec_mcp.simulator.pecmassiva import Incoming
from tests.faults import LostAnswerTransport, RecordingTransport, envelope, html, json_in_a_string, raw

pytestmark = pytest.mark.anyio

BASE_URL = "http://simulator/pecmassiva"
GOOD = Credentials(PECMASSIVA_TOKEN, PECMASSIVA_USERNAME, PECMASSIVA_PASSWORD)


async def _no_wait(seconds: float) -> None:
    return None


def _client(transport: httpx.AsyncBaseTransport, credentials: Credentials = GOOD) -> PecMassivaClient:
    http = build_client(provider="pecmassiva", base_url=BASE_URL, transport=transport,
                        options=ClientOptions(sleep=_no_wait))
    return PecMassivaClient(http, credentials)


@pytest.fixture
async def pec(simulator: Simulator) -> AsyncIterator[PecMassivaClient]:
    client = _client(httpx.ASGITransport(app=simulator.app))
    async with client._http:
        yield client


def _sends(simulator: Simulator) -> int:
    return int(simulator.stats.as_dict()["accepted"].get("pecmassiva_send", 0))


async def _send(pec: PecMassivaClient, recipients: list[str] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    return await pec.send(sender=PECMASSIVA_USERNAME, recipients=recipients or ["mario.rossi@pec.it"],
                          subject="Diffida", body="<p>Testo</p>", **kw)


def _answer(simulator: Simulator, reply: Reply, *, method: str | None = None) -> None:
    """Every PEC Massiva request (of ``method``) is answered with ``reply`` instead of the API."""
    simulator.faults = FaultPlan([respond(reply, "pecmassiva", method=method)])


@pytest.fixture
async def recorded(simulator: Simulator) -> AsyncIterator[tuple[PecMassivaClient, RecordingTransport]]:
    """A client whose requests are kept as they leave it."""
    recording = RecordingTransport(httpx.ASGITransport(app=simulator.app))
    client = _client(recording)
    async with client._http:
        yield client, recording


# -- POST /send ------------------------------------------------------------------------------------------------


async def test_a_send_answered_201_gives_the_sending_code_and_the_count(pec: PecMassivaClient, simulator) -> None:
    result = await _send(pec, ["a@pec.it", "b@pec.it"])
    assert result.sent == 2 and result.message_id in simulator.pecmassiva.sendings
    assert _sends(simulator) == 1


async def test_the_send_carries_the_mailbox_credentials_in_its_body_and_not_in_headers(recorded) -> None:
    pec, recording = recorded
    await _send(pec)
    request = recording.sent[0]
    assert request.headers["authorization"] == f"Bearer {PECMASSIVA_TOKEN}"
    assert "x-username" not in request.headers and "x-password" not in request.headers
    assert (request.json["username"], request.json["password"]) == (PECMASSIVA_USERNAME, PECMASSIVA_PASSWORD)
    assert request.json["recipient"] == ["mario.rossi@pec.it"]


async def test_attachments_travel_as_data_uris_with_their_mime_type(recorded, simulator, tmp_path: Path) -> None:
    pec, recording = recorded
    pdf = tmp_path / "diffida.pdf"
    pdf.write_bytes(b"%PDF-1.4 content")
    result = await _send(pec, attachments=[Attachment(path=pdf, name="diffida.pdf", size=16)])
    (item,) = recording.sent[0].json["attachments"]
    assert item["name"] == "diffida.pdf"
    assert item["file"] == "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 content").decode()
    assert simulator.pecmassiva.sendings[result.message_id].attachment_bytes == 16


async def test_the_dispatch_hook_runs_once_before_the_request_leaves(pec, simulator) -> None:
    calls: list[int] = []

    async def dispatching() -> None:
        calls.append(_sends(simulator))

    await _send(pec, on_dispatch=dispatching)
    assert calls == [0]


async def test_a_wrong_token_is_an_authentication_failure(simulator) -> None:
    pec = _client(httpx.ASGITransport(app=simulator.app), Credentials("wrong", PECMASSIVA_USERNAME, "x"))
    async with pec._http:
        with pytest.raises(AuthenticationFailed) as raised:
            await _send(pec)
        with pytest.raises(AuthenticationFailed):
            await pec.inbox()
    assert raised.value.status == 401 and "Authorization is not valid" in raised.value.message


async def test_a_parameter_the_provider_refuses_is_rejected_with_its_reason(pec, simulator) -> None:
    with pytest.raises(Rejected) as raised:
        await pec.send(sender="someone-else@pec.it", recipients=["a@pec.it"], subject="s", body="b")
    assert raised.value.status == 400 and "sender must be the mailbox" in raised.value.message
    assert "pecmassiva.sender" in raised.value.hint and "INBOX" not in raised.value.hint
    assert _sends(simulator) == 0


async def test_a_send_refused_for_a_reason_that_names_the_mailbox_gets_no_inbox_advice(pec, simulator) -> None:
    _answer(simulator, envelope(400, "mailbox of the account is over its sending quota"), method="POST")
    with pytest.raises(Rejected) as raised:
        await _send(pec)
    assert "INBOX" not in raised.value.explain() and "Nothing was sent" in raised.value.hint


async def test_a_send_refused_with_a_not_found_text_is_rejected_not_an_unknown_id(pec, simulator) -> None:
    _answer(simulator, envelope(400, "recipient domain not found"), method="POST")
    with pytest.raises(Rejected) as raised:
        await _send(pec)
    assert "id" not in raised.value.hint.split()


async def test_the_rate_limit_is_reported_with_its_wait(clock: Clock) -> None:
    slow = create_simulator(clock=clock, rate=1.0)
    pec = _client(httpx.ASGITransport(app=slow.app))
    async with pec._http:
        await _send(pec)
        with pytest.raises(RateLimited) as raised:
            await _send(pec)
    assert raised.value.retry_after == 1.0 and raised.value.retryable


async def test_success_false_with_http_200_is_an_error_not_a_send(pec, simulator) -> None:
    _answer(simulator, envelope(200, "Recipient domain not allowed"))
    with pytest.raises(Rejected, match="Recipient domain not allowed"):
        await _send(pec)


async def test_an_smtp_error_text_in_place_of_the_sending_code_is_an_error(pec, simulator) -> None:
    answer = Reply.json({"success": True, "sent": 1, "message": "",
                         "message_id": "error occurred connecting to SMTP: <abc@pecmassiva.com>"}, 201)
    _answer(simulator, answer)
    with pytest.raises(ProviderUnavailable) as raised:
        await _send(pec)
    assert "no sending code: error occurred connecting to SMTP" in raised.value.message
    assert "ACCETTAZIONE" in raised.value.hint


async def test_the_providers_own_500_envelope_means_not_sent(pec, simulator) -> None:
    _answer(simulator, envelope(500, "MySQL Error 1205"))
    with pytest.raises(ProviderUnavailable, match="MySQL Error 1205") as raised:
        await _send(pec)
    assert raised.value.status == 500


@pytest.mark.parametrize(
    "answer",
    [html(502), html(504), raw(502, ""), raw(500, "{not json"), raw(503, '{"error": "upstream"}'),
     raw(201, ""), raw(200, "<html>ok</html>", "text/html"), raw(201, "{}")],
    ids=["html-502", "html-504", "empty-502", "invalid-json-500", "foreign-json-503", "empty-201", "html-200",
         "empty-object-201"],
)
async def test_a_send_answered_by_something_other_than_the_provider_has_an_unknown_outcome(
    pec, simulator, answer: Reply
) -> None:
    _answer(simulator, answer)
    with pytest.raises(OutcomeUnknown, match="may or may not have been sent"):
        await _send(pec)


async def test_a_proxy_html_page_on_a_4xx_send_is_a_bad_response_not_an_unknown_outcome(pec, simulator) -> None:
    _answer(simulator, raw(413, "<html>Request Entity Too Large</html>", "text/html"))
    with pytest.raises(BadResponse, match="HTML page"):
        await _send(pec)


async def test_a_send_whose_answer_is_lost_after_it_left_has_an_unknown_outcome(simulator) -> None:
    lossy = LostAnswerTransport(httpx.ASGITransport(app=simulator.app))
    pec = _client(lossy)
    async with pec._http:
        with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
            await _send(pec)
    assert _sends(simulator) == 1 and lossy.lost == 1  # it did arrive, exactly once: never retried


async def test_a_send_that_cannot_connect_was_not_sent() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    pec = _client(httpx.MockTransport(refuse))
    async with pec._http:
        with pytest.raises(ProviderUnavailable, match="nothing was sent"):
            await _send(pec)


# -- GET/DELETE /send/{code} -------------------------------------------------------------------------------------


async def test_receipts_use_the_data_object_message_keys_and_arrive_over_time(pec, simulator, clock: Clock) -> None:
    result = await _send(pec, ["mario.rossi@pec.it", "fail-x@pec.it"])
    first = await pec.receipts(message_id=result.message_id)
    assert [r.subject.split(":")[0] for r in first] == ["ACCETTAZIONE"]
    assert first[0].subject.endswith(result.message_id) and first[0].date.endswith("+0100")
    assert "Ricevuta di accettazione" in first[0].body and first[0].sender == "posta-certificata@pecmassiva.com"
    clock.advance(2.0)
    later = await pec.receipts(message_id=result.message_id)
    assert sorted(r.subject.split(":")[0] for r in later) == ["ACCETTAZIONE", "AVVISO DI MANCATA CONSEGNA",
                                                            "CONSEGNA"]


async def test_receipts_written_with_date_subject_body_keys_are_read_too(pec, simulator) -> None:
    item = {"sender": "g@pecmassiva.com", "recipient": "me", "date": "d", "subject": "CONSEGNA: x", "body": "b"}
    _answer(simulator, Reply.json({"success": True, "data": [item]}))
    (receipt,) = await pec.receipts(message_id="2026031010000001")
    assert (receipt.date, receipt.subject, receipt.body) == ("d", "CONSEGNA: x", "b")


async def test_a_sending_without_receipts_yet_has_an_empty_list(pec) -> None:
    assert await pec.receipts(message_id="2026031010000099") == []


async def test_a_message_id_that_is_not_a_sending_code_is_refused_without_a_request(recorded) -> None:
    pec, recording = recorded
    with pytest.raises(NotFound, match="not a PEC Massiva sending code"):
        await pec.receipts(message_id="../inbox/1")
    await pec.receipts(message_id="2026031010000099")  # a well-formed code does leave, and is recorded
    assert [request.path for request in recording.sent] == ["/pecmassiva/send/2026031010000099"]


async def test_deleting_receipts_removes_them_and_a_second_delete_is_not_found(pec) -> None:
    result = await _send(pec)
    await pec.delete_receipts(message_id=result.message_id)
    assert await pec.receipts(message_id=result.message_id) == []
    with pytest.raises(NotFound, match="Email not found"):
        await pec.delete_receipts(message_id=result.message_id)


# -- /inbox ------------------------------------------------------------------------------------------------------


async def test_the_inbox_is_paged_25_at_a_time_with_total_and_page_count(pec, simulator) -> None:
    simulator.pecmassiva.add_incoming(Incoming(f"s{i}@pec.it", f"Messaggio {i}") for i in range(27))
    first = await pec.inbox()
    assert (first.page, first.total, first.pages, len(first.items)) == (1, 30, 2, 25)
    second = await pec.inbox(page=2)
    assert len(second.items) == 5 and {i.id for i in first.items}.isdisjoint(i.id for i in second.items)
    assert all(i.subject.startswith("POSTA CERTIFICATA: ") and i.date for i in first.items)


async def test_the_inbox_can_be_searched(pec) -> None:
    found = await pec.inbox(query="fattura")
    assert found.total == 1 and "fattura n. 2024/118" in found.items[0].subject


async def test_a_message_body_is_url_decoded(pec, simulator) -> None:
    body = "<p>Importo: 100% + IVA, scadenza è 30/04 & oltre</p>"
    (inbox_id,) = simulator.pecmassiva.add_incoming([Incoming("a@pec.it", "Sollecito", body)])
    message = await pec.message(inbox_id=inbox_id)
    assert message.body == body and message.subject == "POSTA CERTIFICATA: Sollecito"


async def test_a_deleted_message_is_gone(pec) -> None:
    await pec.delete_message(inbox_id=1)
    with pytest.raises(NotFound, match="Message not found"):
        await pec.message(inbox_id=1)
    with pytest.raises(NotFound):
        await pec.delete_message(inbox_id=1)


async def test_an_answer_that_is_json_inside_a_string_is_decoded(pec, simulator) -> None:
    data = {"success": True, "data": [], "page": 1, "total": 0, "n_of_pages": 0}
    _answer(simulator, json_in_a_string(200, data))
    assert (await pec.inbox()).total == 0


async def test_a_read_answered_with_invalid_json_is_a_bad_response(pec, simulator) -> None:
    _answer(simulator, raw(200, "{oops"))
    with pytest.raises(BadResponse, match="not valid JSON"):
        await pec.inbox()


async def test_a_read_answered_with_a_proxy_html_page_is_unavailable_after_its_retries(pec, simulator) -> None:
    _answer(simulator, html(502))
    with pytest.raises(ProviderUnavailable, match="HTML page") as raised:
        await pec.quota()
    assert raised.value.status == 502
    assert simulator.faults.seen == {"pecmassiva GET /quota/INBOX": 4}  # the first try and three retries


# -- /quota ------------------------------------------------------------------------------------------------------


async def test_the_quota_grows_with_receipts(pec, clock: Clock) -> None:
    before = await pec.quota()
    assert before.limit == 1_048_576
    await _send(pec)
    clock.advance(2.0)
    assert (await pec.quota(mailbox="INBOX")).usage > before.usage


async def test_an_unknown_mailbox_is_rejected_with_a_hint(pec) -> None:
    with pytest.raises(Rejected, match="mailbox might be unavailable") as raised:
        await pec.quota(mailbox="Archivio")
    assert "INBOX" in raised.value.hint


async def test_authentication_advice_names_the_pecmassiva_settings(simulator) -> None:
    pec = _client(httpx.ASGITransport(app=simulator.app), Credentials("wrong", PECMASSIVA_USERNAME, "x"))
    async with pec._http:
        with pytest.raises(AuthenticationFailed) as raised:
            await pec.inbox()
    assert "pecmassiva.token" in raised.value.hint


async def test_an_unknown_inbox_id_points_to_the_inbox_listing(pec) -> None:
    with pytest.raises(NotFound) as raised:
        await pec.message(inbox_id=987654)
    assert "list_pec_inbox" in raised.value.hint
