"""The Mensatek client against its simulator: sends, reports, errors, scheduling, certificates, webhooks."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from pec_mcp.errors import (
    AuthenticationFailed,
    InputError,
    InsufficientCredit,
    NotFound,
    ProviderError,
    Rejected,
)
from pec_mcp.http import build_client
from pec_mcp.providers.mensatek import (
    ESTADOS,
    RES_ERRORS,
    UNVERIFIED_FUNCTIONS,
    Attachment,
    MensatekClient,
    Recipient,
    normalise_status,
    parse_number,
    scheduled_time_to_madrid,
    status_from_text,
)
from pec_mcp.simulator import Simulator, create_simulator
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.credentials import MENSATEK_API_TOKEN, MENSATEK_API_USER, MENSATEK_SENDER
from pec_mcp.simulator.faults import FaultPlan, respond
from pec_mcp.simulator.mensatek import FIRST_MESSAGE_ID
from tests.faults import mensatek_res

pytestmark = pytest.mark.anyio

BASE_URL = "http://simulator/mensatek/v7"
START = datetime(2025, 1, 15, 9, 0, tzinfo=UTC).timestamp()
DELAY = 60.0  # longer than the client's 10-second report cache, so each step of a progression is a fresh call


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sim() -> Simulator:
    return create_simulator(delivery_delay=DELAY, clock=Clock(frozen_at=START), seed_inbox=False,
                            mensatek_first_id=FIRST_MESSAGE_ID)


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    client = build_client(provider="mensatek", base_url=BASE_URL, transport=httpx.ASGITransport(app=sim.app))
    client.auth = httpx.BasicAuth(MENSATEK_API_USER, MENSATEK_API_TOKEN)
    async with client:
        yield client


@pytest.fixture
def mensatek(http: httpx.AsyncClient, sim: Simulator) -> MensatekClient:
    # The cache runs on the simulator's clock, so advancing time in a test also ages cached answers.
    return MensatekClient(http, clock=sim.clock.now)


async def send_one(mensatek: MensatekClient, email: str = "ana@example.es", **kwargs: object) -> str:
    result = await mensatek.send(sender=MENSATEK_SENDER, recipients=[Recipient(email=email, name="Ana")],
                                 subject="Notificación para {{Nombre}}", message_html="<p>Hola</p>",
                                 **kwargs)  # type: ignore[arg-type]
    message_id = result.recipients[0].message_id
    assert message_id is not None
    return message_id


# --- sending ------------------------------------------------------------------------------------------------


async def test_send_returns_one_message_id_per_recipient_and_the_credits_left(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    result = await mensatek.send(
        sender=MENSATEK_SENDER,
        recipients=[Recipient(email="ana@example.es", name="Ana", variables=("exp. 12",)),
                    Recipient(email="luis@example.es", name="Luis"),
                    Recipient(email="ANA@example.es", name="Ana again")],
        subject="Aviso {{Variable_1}}", message_html="<p>Hola {{Nombre}}</p>",
    )

    assert [r.email for r in result.recipients] == ["ana@example.es", "luis@example.es"]
    assert len({r.message_id for r in result.recipients}) == 2
    assert (result.sent, result.not_sent, result.duplicates) == (2, 0, 1)
    assert result.credits_used == 2.0
    assert result.credits_left == 98.0
    assert sim.stats.accepted["mensatek_send"] == 1
    assert sim.stats.recipients["ana@example.es"] == 1


async def test_send_puts_resp_json_in_the_body_and_never_in_the_query(
    http: httpx.AsyncClient, mensatek: MensatekClient
) -> None:
    seen: list[httpx.Request] = []

    async def remember(request: httpx.Request) -> None:
        seen.append(request)

    http.event_hooks["request"].append(remember)
    await send_one(mensatek, attachments=[Attachment(name="aviso.pdf", content=b"%PDF-1.4")])

    request = seen[0]
    assert request.method == "POST"
    assert "resp" not in {key.lower() for key in request.url.params}
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form["Resp"] == "JSON"
    assert json.loads(form["Destinatarios"]) == [{"Nombre": "Ana", "Email": "ana@example.es"}]
    assert json.loads(form["Adjuntos"]) == [{"Nombre": "aviso.pdf", "Contenido": "JVBERi0xLjQ="}]
    assert form["Report"] == "1"
    assert form["Aceptacion"] == "NO"


async def test_resp_in_the_query_string_is_refused_as_bad_authentication(http: httpx.AsyncClient) -> None:
    response = await http.post("GetCreditos", params={"Resp": "JSON"})

    assert response.status_code == 200
    assert response.json() == [{"Res": "-1"}]


async def test_acceptance_sends_the_number_of_days_and_invalid_days_are_refused_before_any_call(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    with pytest.raises(InputError):
        await send_one(mensatek, require_acceptance=True, acceptance_days=31)
    assert sim.stats.accepted["mensatek_send"] == 0

    await send_one(mensatek, require_acceptance=True, acceptance_days=5)
    message = next(iter(sim.mensatek.messages.values()))
    assert message.acceptance_days == 5


# --- reports ------------------------------------------------------------------------------------------------


async def test_report_follows_the_message_from_sent_to_delivered_to_read(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    message_id = await send_one(mensatek, "read-ana@example.es")

    sent = await mensatek.report(message_id=message_id)
    sim.clock.advance(DELAY)
    delivered = await mensatek.report(message_id=message_id)
    sim.clock.advance(DELAY)
    read = await mensatek.report(message_id=message_id)

    assert (sent.status, sent.status_code) == ("pending", 901)
    assert sent.provider_text == "Enviado, pendiente de entrega"
    assert "classified from Mensatek's own text" in sent.status_note
    assert "is documented" in delivered.status_note and "is documented" in read.status_note
    assert (delivered.status, delivered.status_code) == ("delivered", 14)
    assert (read.status, read.status_code) == ("read", 11)
    assert read.provider_text == "Mensaje entregado, abierto, leído y certificado"
    assert read.recipient == "read-ana@example.es"
    assert read.sender == MENSATEK_SENDER


async def test_acceptance_ends_accepted_or_rejected_or_expired_with_the_provider_text_kept(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    ids = {local: await send_one(mensatek, f"{local}@example.es", require_acceptance=True, acceptance_days=3)
           for local in ("ana", "reject-luis", "ignore-eva")}
    sim.clock.advance(2 * DELAY)
    accepted = await mensatek.report(message_id=ids["ana"])
    rejected = await mensatek.report(message_id=ids["reject-luis"])
    waiting = await mensatek.report(message_id=ids["ignore-eva"])
    sim.clock.advance(3 * 86400)
    expired = await mensatek.report(message_id=ids["ignore-eva"])

    assert accepted.provider_text == "Notificación aceptada por el destinatario"
    assert rejected.provider_text == "Notificación rechazada por el destinatario"
    assert waiting.status == "delivered"
    assert expired.provider_text.startswith("Notificación caducada")
    # These codes are on no published table: the client classifies them from Mensatek's text, and says so.
    assert (accepted.status, rejected.status, expired.status) == ("accepted", "rejected", "expired")
    assert all("classified from Mensatek's own text" in r.status_note for r in (accepted, rejected, expired))


async def test_a_failed_delivery_is_reported_with_the_providers_text(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    message_id = await send_one(mensatek, "fail-ana@example.es")
    sim.clock.advance(DELAY)

    report = await mensatek.report(message_id=message_id)

    assert report.status == "not_delivered"
    assert report.provider_text.startswith("No entregado")
    assert "classified from Mensatek's own text" in report.status_note


async def test_report_of_an_unknown_message_id_is_rejected_with_the_providers_detail(
    mensatek: MensatekClient,
) -> None:
    with pytest.raises(Rejected, match="No existe ningún mensaje"):
        await mensatek.report(message_id="1")


async def test_reports_are_cached_for_ten_seconds_per_message(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    first = await send_one(mensatek, "ana@example.es")
    second = await send_one(mensatek, "luis@example.es")

    await mensatek.report(message_id=first)
    await mensatek.report(message_id=first)
    await mensatek.report(message_id=second)
    assert sim.stats.accepted["mensatek_report"] == 2

    sim.clock.advance(10)
    await mensatek.report(message_id=first)
    assert sim.stats.accepted["mensatek_report"] == 3


def test_documented_codes_are_read_from_the_table_and_the_others_from_the_providers_text() -> None:
    assert normalise_status(14)[0] == "delivered" and "is documented" in normalise_status(14)[1]
    assert normalise_status(11)[0] == "read"
    # The table wins over the text: a documented code keeps its meaning whatever words come with it.
    assert normalise_status(14, "Mensaje no entregado")[0] == "delivered"
    status, note = normalise_status(55, "Texto del proveedor")
    assert status == "unknown"
    assert "55 is in no published table" in note and "Texto del proveedor" in note
    assert set(ESTADOS) == {11, 14}


@pytest.mark.parametrize(("text", "expected"), [
    ("Mensaje no entregado", "not_delivered"),
    ("No entregado: buzón inexistente", "not_delivered"),
    ("Mensaje entregado y certificado", "delivered"),
    ("Mensaje entregado, abierto, leído y certificado", "read"),
    ("Notificación rechazada por el destinatario", "rejected"),
    ("Notificación aceptada por el destinatario", "accepted"),
    ("Notificación caducada sin respuesta", "expired"),
    ("Envío cancelado", "cancelled"),
    ("Programado, pendiente de envío", "pending"),
    ("Enviado, pendiente de entrega", "pending"),
    ("Texto del proveedor", None),
])
def test_a_status_text_is_classified_by_its_words(text: str, expected: str | None) -> None:
    assert status_from_text(text) == expected
    status, note = normalise_status(990, text)
    assert status == (expected or "unknown")
    if expected:
        assert f"'{expected}' was classified from Mensatek's own text" in note


# --- errors -------------------------------------------------------------------------------------------------


async def test_a_wrong_token_is_res_minus_1_with_http_200_and_becomes_authentication_failed(
    http: httpx.AsyncClient, sim: Simulator
) -> None:
    http.auth = httpx.BasicAuth(MENSATEK_API_USER, "wrong-token")

    with pytest.raises(AuthenticationFailed) as caught:
        await MensatekClient(http).credits()

    assert caught.value.code == "-1"
    assert caught.value.status == 200
    assert "wrong-token" not in caught.value.explain()
    assert MENSATEK_API_TOKEN not in caught.value.explain()


async def test_running_out_of_credits_is_res_minus_2_and_nothing_is_sent(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    sim.mensatek.credits = 1.0

    with pytest.raises(InsufficientCredit) as caught:
        await mensatek.send(sender=MENSATEK_SENDER, subject="s", message_html="m",
                            recipients=[Recipient(email="a@example.es"), Recipient(email="b@example.es")])

    assert caught.value.code == "-2"
    assert sim.mensatek.messages == {}
    assert sim.mensatek.credits == 1.0


async def test_res_minus_5_is_also_insufficient_credit(mensatek: MensatekClient, sim: Simulator) -> None:
    sim.faults = FaultPlan([respond(mensatek_res(-5), "mensatek", times=1)])

    with pytest.raises(InsufficientCredit) as caught:
        await mensatek.credits()

    assert caught.value.code == "-5"


async def test_an_unvalidated_sender_is_res_minus_3_and_the_error_carries_the_providers_detail(
    mensatek: MensatekClient,
) -> None:
    with pytest.raises(Rejected) as caught:
        await mensatek.send(sender="otro@example.es", recipients=[Recipient(email="a@example.es")],
                            subject="s", message_html="m")

    assert caught.value.code == "-3"
    assert "no está validado" in caught.value.message


async def test_an_invalid_recipient_address_is_res_minus_3(mensatek: MensatekClient) -> None:
    with pytest.raises(Rejected, match="no es válido: not-an-address"):
        await send_one(mensatek, "not-an-address")


async def test_an_executable_attachment_is_res_minus_4(mensatek: MensatekClient, sim: Simulator) -> None:
    with pytest.raises(Rejected) as caught:
        await send_one(mensatek, attachments=[Attachment(name="factura.exe", content=b"MZ")])

    assert caught.value.code == "-4"
    assert "attachment" in caught.value.message
    assert sim.mensatek.messages == {}


async def test_an_unknown_res_code_is_a_provider_error_that_says_it_is_unknown(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    sim.faults = FaultPlan([respond(mensatek_res(-42, "Algo raro"), "mensatek", times=1)])

    with pytest.raises(ProviderError) as caught:
        await mensatek.credits()

    assert type(caught.value) is ProviderError
    assert caught.value.code == "-42"
    assert "does not know" in caught.value.message and "Algo raro" in caught.value.message
    assert -42 not in RES_ERRORS


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"Destinatarios": "[{not json"}, "no es un JSON válido"),
        ({"Destinatarios": json.dumps([{"Nombre": "Ana"}])}, "Falta el Email"),
        ({"Destinatarios": "[]"}, "al menos un destinatario"),
    ],
)
async def test_the_simulator_refuses_malformed_recipients_with_res_minus_3(
    http: httpx.AsyncClient, body: dict[str, str], detail: str
) -> None:
    form = {"Remitente": MENSATEK_SENDER, "Asunto": "s", "Mensaje": "m", "Resp": "JSON", **body}

    response = await http.post("EnviarEMAILCERTIFICADO", data=form)

    [answer] = response.json()
    assert answer["Res"] == "-3"
    assert detail in answer["Error"]


async def test_the_simulator_reads_multipart_bodies_and_answers_txt_when_asked(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("GetCreditos", data={"resp": "TXT"}, files={"unused": ("a.txt", b"x")})

    assert response.text.splitlines() == ["Res=1", "Cred=100"]  # written as the doc writes "12000"


async def test_the_simulator_takes_a_json_body_with_recipients_as_a_real_array(
    http: httpx.AsyncClient, sim: Simulator
) -> None:
    body = {"remitente": MENSATEK_SENDER, "asunto": "Hola {{Nombre}}", "mensaje": "m", "resp": "JSON",
            "destinatarios": [{"Nombre": "Ana", "Email": "ana@example.es"}]}

    response = await http.post("EnviarEMAILCERTIFICADO", json=body)

    [answer] = response.json()
    assert answer["Res"] == "1"
    assert json.loads(answer["Destinatarios"])[0]["IDMENSAJE"] == "108366478"
    assert sim.stats.accepted["mensatek_send"] == 1


async def test_a_non_ascii_password_is_refused_as_bad_authentication(http: httpx.AsyncClient) -> None:
    http.auth = httpx.BasicAuth(MENSATEK_API_USER, "contraseña")

    response = await http.post("GetCreditos", data={"Resp": "JSON"})

    assert response.json() == [{"Res": "-1"}]


async def test_an_unknown_function_gets_a_provider_shaped_404(http: httpx.AsyncClient) -> None:
    response = await http.post("EnviarSMS", data={"Resp": "JSON"})

    assert response.status_code == 404
    assert response.json()[0]["Res"] == "-3"


async def test_answers_are_read_whether_wrapped_in_a_list_or_not(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    sim.mensatek.list_answers = False

    result = await mensatek.send(sender=MENSATEK_SENDER, recipients=[Recipient(email="a@example.es")],
                                 subject="s", message_html="m")

    assert result.credits_left == 99.0
    assert result.recipients[0].message_id


async def test_a_guessed_function_name_the_api_lacks_is_reported_as_unverified(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    message_id = await send_one(mensatek, scheduled_at=datetime.fromtimestamp(START + 600, UTC))
    del sim.mensatek.functions[UNVERIFIED_FUNCTIONS["reschedule"]]

    with pytest.raises(NotFound, match="unverified"):
        await mensatek.reschedule(message_id=message_id, when=datetime.fromtimestamp(START + 1200, UTC))


# --- numbers and time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("14.970,00", 14970.0), ("99,00", 99.0), ("12000", 12000.0), (12000, 12000.0), (99.5, 99.5),
     ("100.5", 100.5), ("14.970", 14970.0), ("1.234.567", 1234567.0), ("1,234.50", 1234.5), ("", None),
     (None, None)],
)
def test_numbers_are_read_in_spanish_or_plain_format(raw: object, expected: float | None) -> None:
    assert parse_number(raw) == expected


async def test_credits_in_the_thousands_arrive_as_the_doc_writes_them_and_are_parsed(
    mensatek: MensatekClient, sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.mensatek.credits = 14971.0

    result = await mensatek.send(sender=MENSATEK_SENDER, recipients=[Recipient(email="a@example.es")],
                                 subject="s", message_html="m")
    raw = (await http.post("GetCreditos", data={"Resp": "JSON"})).json()[0]

    assert result.credits_left == 14970.0
    assert raw["Cred"] == "14970"  # as the doc's examples: "Cred": "12000", never "14.970,00"


@pytest.mark.parametrize(
    ("moment", "madrid"),
    [
        (datetime(2025, 1, 15, 9, 30, tzinfo=UTC), "2025-01-15 10:30"),  # CET, UTC+1
        (datetime(2025, 7, 15, 9, 30, tzinfo=UTC), "2025-07-15 11:30"),  # CEST, UTC+2
        (datetime(2025, 7, 15, 3, 30, tzinfo=ZoneInfo("America/New_York")), "2025-07-15 09:30"),
    ],
)
def test_scheduled_times_are_written_in_madrid_local_time(moment: datetime, madrid: str) -> None:
    assert scheduled_time_to_madrid(moment) == madrid


def test_a_naive_scheduled_time_is_refused() -> None:
    with pytest.raises(InputError, match="no time zone"):
        scheduled_time_to_madrid(datetime(2025, 1, 15, 10, 0))


# --- scheduling ---------------------------------------------------------------------------------------------


async def test_a_scheduled_message_can_be_cancelled_before_it_goes_and_credits_come_back(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    in_two_hours = datetime.fromtimestamp(START, UTC) + timedelta(hours=2)
    message_id = await send_one(mensatek, scheduled_at=in_two_hours)
    scheduled = await mensatek.report(message_id=message_id)

    cancelled = await mensatek.cancel(message_id=message_id)
    after = await mensatek.report(message_id=message_id)

    assert scheduled.scheduled_for == "2025-01-15 12:00"
    assert scheduled.provider_text.startswith("Programado")
    assert cancelled.credits_left == 100.0
    assert after.provider_text == "Envío cancelado"  # the cancel dropped the cached report
    assert sim.stats.accepted["mensatek_cancel"] == 1


async def test_cancelling_a_message_that_already_went_is_rejected(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    message_id = await send_one(mensatek, scheduled_at=datetime.fromtimestamp(START + 600, UTC))
    sim.clock.advance(600)

    with pytest.raises(Rejected, match="ya ha sido enviado"):
        await mensatek.cancel(message_id=message_id)


async def test_rescheduling_moves_the_sending_time_until_the_message_goes(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    message_id = await send_one(mensatek, scheduled_at=datetime.fromtimestamp(START + 600, UTC))
    later = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)

    result = await mensatek.reschedule(message_id=message_id, when=later)
    sim.clock.advance(600)
    report = await mensatek.report(message_id=message_id)

    assert result.scheduled_for == "2025-01-15 13:00:00"
    assert report.scheduled_for == "2025-01-15 13:00"
    assert report.provider_text.startswith("Programado")
    assert sim.stats.accepted["mensatek_reschedule"] == 1
    assert UNVERIFIED_FUNCTIONS["reschedule"] == "ReprogramarEMAILCERTIFICADO"

    sim.clock.advance(later.timestamp() - sim.clock.now())
    with pytest.raises(Rejected, match="ya ha sido enviado"):
        await mensatek.reschedule(message_id=message_id, when=later + timedelta(hours=1))


# --- certificates and credits -------------------------------------------------------------------------------


async def test_the_certificate_is_an_error_before_delivery_and_a_zip_with_pdf_and_csv_after(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    message_id = await send_one(mensatek)

    with pytest.raises(Rejected, match="no está disponible"):
        await mensatek.certificate(message_id=message_id)
    sim.clock.advance(DELAY)
    archive = zipfile.ZipFile(io.BytesIO(await mensatek.certificate(message_id=message_id)))

    names = archive.namelist()
    assert f"certificado_{message_id}.pdf" in names
    assert archive.read(f"certificado_{message_id}.pdf").startswith(b"%PDF-")
    csv_text = archive.read(f"resultado_{message_id}.csv").decode()
    assert message_id in csv_text and "ana@example.es" in csv_text


async def test_credits_are_asked_once_and_reused_for_thirty_seconds(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    assert await mensatek.credits() == 100.0
    assert await mensatek.credits() == 100.0
    assert sim.stats.accepted["mensatek_credits"] == 1

    sim.clock.advance(30)
    await mensatek.credits()
    assert sim.stats.accepted["mensatek_credits"] == 2


async def test_a_send_refreshes_the_cached_credits_from_its_own_answer(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    await mensatek.credits()
    await send_one(mensatek)

    assert await mensatek.credits() == 99.0
    assert sim.stats.accepted["mensatek_credits"] == 1


# --- report webhooks ----------------------------------------------------------------------------------------


async def test_every_status_change_is_posted_to_the_report_url_and_recorded(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    received: list[tuple[str, dict[str, str], str]] = []

    async def receiver(url: str, fields: dict[str, str], fmt: str) -> None:
        received.append((url, fields, fmt))

    sim.mensatek.report_url = "https://example.es/webhooks/mensatek?token=t"
    sim.mensatek.report_sender = receiver
    message_id = await send_one(mensatek, reference="expediente-7")
    await send_one(mensatek, "luis@example.es", report=False)
    sim.clock.advance(DELAY)
    await sim.mensatek.flush_reports()

    assert [fields["Resultado"] for _, fields, _ in received] == ["901", "14"]
    url, delivered, fmt = received[-1]
    assert url == "https://example.es/webhooks/mensatek?token=t" and fmt == "form"
    assert delivered["Servicio"] == "EMAILCERTIFICADO"
    assert delivered["idMensaje"] == message_id
    assert delivered["Referencia"] == "expediente-7"
    assert delivered["Remitente"] == MENSATEK_SENDER
    assert delivered["Destinatario"] == "ana@example.es"
    assert delivered["Asunto"] == "Notificación para Ana"
    assert delivered["Fecha"] == "2025-01-15 10:01:00"
    assert delivered["CSV"]
    assert [c.fields for c in sim.mensatek.callbacks] == [fields for _, fields, _ in received]
    assert await sim.mensatek.flush_reports() == []  # each change is reported once


async def test_report_webhooks_can_be_json_and_a_cancelled_message_reports_its_cancellation(
    mensatek: MensatekClient, sim: Simulator
) -> None:
    received: list[tuple[dict[str, str], str]] = []

    async def receiver(url: str, fields: dict[str, str], fmt: str) -> None:
        received.append((fields, fmt))

    sim.mensatek.report_url, sim.mensatek.report_format = "https://example.es/hook", "json"
    sim.mensatek.report_sender = receiver
    message_id = await send_one(mensatek, scheduled_at=datetime.fromtimestamp(START + 3600, UTC))
    await mensatek.cancel(message_id=message_id)
    sim.clock.advance(2 * 3600)
    await sim.mensatek.flush_reports()

    assert [(fields["Resultado"], fmt) for fields, fmt in received] == [("900", "json"), ("905", "json")]
