"""The PEC Massiva part of the simulator, driven over HTTP like the real ws.pecmassiva.com."""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from pec_mcp.simulator import Simulator, create_simulator
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.credentials import PECMASSIVA_PASSWORD, PECMASSIVA_TOKEN, PECMASSIVA_USERNAME
from pec_mcp.simulator.faults import FaultPlan, Reply, respond
from pec_mcp.simulator.pecmassiva import Incoming

pytestmark = pytest.mark.anyio

BEARER = {"Authorization": f"Bearer {PECMASSIVA_TOKEN}"}
HEADERS = BEARER | {"x-username": PECMASSIVA_USERNAME, "x-password": PECMASSIVA_PASSWORD}
DELAY = 2.0
MARIO = "mario.rossi@pec.example.it"
UNAUTHORIZED = {"success": False, "message": "Authorization is not valid or empty"}


def message(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "sender": PECMASSIVA_USERNAME,
        "recipient": [MARIO],
        "subject": "Diffida ad adempiere",
        "body": "<p>Gentile cliente, <b>la invitiamo</b> a provvedere.</p>",
        "username": PECMASSIVA_USERNAME,
        "password": PECMASSIVA_PASSWORD,
    }
    payload.update(changes)
    return payload


def data_uri(content: bytes, mime: str = "application/pdf") -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode()}"


@asynccontextmanager
async def connect(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator/pecmassiva") as client:
        yield client


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator as configured by default: 1 send per second, a seeded inbox."""
    async with connect(sim) as client:
        yield client


@pytest.fixture
def quiet(clock: Clock) -> Simulator:
    """No rate limit and an empty inbox, for tests that send several times at one frozen instant."""
    return create_simulator(clock=clock, rate=float("inf"), seed_inbox=False, delivery_delay=DELAY)


@pytest.fixture
async def quiet_api(quiet: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(quiet) as client:
        yield client


async def send(api: httpx.AsyncClient, **changes: Any) -> str:
    response = await api.post("/send", json=message(**changes), headers=BEARER)
    assert response.status_code == 201, response.text
    code: str = response.json()["message_id"]
    return code


async def receipts(api: httpx.AsyncClient, code: str) -> list[dict[str, Any]]:
    response = await api.get(f"/send/{code}", headers=HEADERS)
    if response.status_code == 404:
        assert response.json() == {"success": False, "message": "Result empty"}
        return []
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def subjects(api: httpx.AsyncClient, code: str) -> list[str]:
    return [item["object"] for item in await receipts(api, code)]


# --- authentication


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/inbox"),
        ("GET", "/inbox/1"),
        ("DELETE", "/inbox/1"),
        ("GET", "/send/2020082610003492"),
        ("DELETE", "/send/2020082610003492"),
        ("GET", "/quota/INBOX"),
    ],
)
async def test_every_mailbox_call_without_a_bearer_token_is_refused_with_401(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    mailbox_only = {k: v for k, v in HEADERS.items() if k != "Authorization"}
    response = await api.request(method, path, headers=mailbox_only)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_a_send_without_a_bearer_token_is_refused_and_nothing_is_sent(
    api: httpx.AsyncClient, sim: Simulator
) -> None:
    response = await api.post("/send", json=message())
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert sim.stats.accepted == {}


async def test_a_wrong_bearer_token_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.get("/inbox", headers=HEADERS | {"Authorization": "Bearer not-the-token"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_a_wrong_x_password_is_refused_without_echoing_it(api: httpx.AsyncClient) -> None:
    response = await api.get("/inbox", headers=HEADERS | {"x-password": "guessed-password"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert "guessed-password" not in response.text


async def test_missing_mailbox_headers_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.get("/quota/INBOX", headers=BEARER)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_a_send_with_a_wrong_body_password_is_refused_and_nothing_is_sent(
    quiet_api: httpx.AsyncClient, quiet: Simulator
) -> None:
    response = await quiet_api.post("/send", json=message(password="wrong"), headers=BEARER)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert quiet.stats.accepted == {}


async def test_a_send_without_body_credentials_is_refused(quiet_api: httpx.AsyncClient) -> None:
    payload = message()
    del payload["username"], payload["password"]
    response = await quiet_api.post("/send", json=payload, headers=BEARER)
    assert response.status_code == 401


# --- POST /send validation


def _without(field: str) -> dict[str, Any]:
    payload = message()
    del payload[field]
    return payload


INVALID_SENDS = {
    "missing sender": _without("sender"),
    "empty sender": message(sender=""),
    "sender not the account's mailbox": message(sender="someone-else@pecmassiva.com"),
    "missing recipient": _without("recipient"),
    "empty recipient string": message(recipient=""),
    "empty recipient list": message(recipient=[]),
    "malformed recipient": message(recipient=["mario.rossi.pec.example.it"]),
    "recipient without domain": message(recipient="mario@"),
    "recipient that is not a string": message(recipient=[42]),
    "more than 50 recipients": message(recipient=[f"dest{i}@pec.example.it" for i in range(51)]),
    "missing subject": _without("subject"),
    "blank subject": message(subject="   "),
    "body that is not a string": message(body={"html": "x"}),
    "attachment file not base64": message(
        attachments=[{"name": "a.pdf", "file": "data:application/pdf;base64,@@"}]
    ),
    "attachment without name": message(attachments=[{"file": data_uri(b"%PDF-1.4")}]),
    "attachment with empty file": message(
        attachments=[{"name": "a.pdf", "file": "data:application/pdf;base64,"}]
    ),
    "attachments as a string": message(attachments="a.pdf"),
    "over 30 MB of recipients x size": message(
        recipient=[f"dest{i}@pec.example.it" for i in range(50)],
        attachments=[{"name": "big.pdf", "file": data_uri(b"x" * 700_000)}],
    ),
}


@pytest.mark.parametrize("payload", list(INVALID_SENDS.values()), ids=list(INVALID_SENDS))
async def test_an_invalid_send_is_refused_with_400_and_nothing_is_sent(
    quiet_api: httpx.AsyncClient, quiet: Simulator, payload: dict[str, Any]
) -> None:
    response = await quiet_api.post("/send", json=payload, headers=BEARER)
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["message"].startswith("Post parameter is not valid")
    assert quiet.stats.accepted == {}
    assert quiet.pecmassiva.mailbox.messages == {}


@pytest.mark.parametrize("content", [b"{not json", b"", b'["a list"]'])
async def test_a_body_that_is_not_a_json_object_is_refused_with_400(
    quiet_api: httpx.AsyncClient, content: bytes
) -> None:
    response = await quiet_api.post(
        "/send", content=content, headers=BEARER | {"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"success": False, "message": "Post parameter is not valid"}


async def test_a_send_accepts_a_recipient_string_a_single_attachment_object_and_raw_base64(
    quiet_api: httpx.AsyncClient,
) -> None:
    single = message(recipient=MARIO, attachments={"name": "a.pdf", "file": data_uri(b"%PDF-1.4")})
    raw = message(attachments=[{"name": "b.txt", "file": base64.b64encode(b"ciao").decode()}])
    for payload in (single, raw):
        response = await quiet_api.post("/send", json=payload, headers=BEARER)
        assert response.status_code == 201, response.text


async def test_a_send_answers_201_with_the_number_sent_and_a_code_from_the_rome_time(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/send", json=message(recipient=[MARIO, "anna@pec.example.it"]), headers=BEARER)
    assert response.status_code == 201
    body = response.json()
    assert body == {"success": True, "sent": 2, "message": "", "message_id": body["message_id"]}
    # 08:00:34 UTC is 10:00:34 in Rome in August; a sequence number follows.
    assert re.fullmatch(r"20200826100034\d+", body["message_id"])


async def test_sending_codes_are_unique_within_one_second(quiet_api: httpx.AsyncClient) -> None:
    codes = [await send(quiet_api) for _ in range(12)]
    assert len(set(codes)) == 12


async def test_an_accepted_send_is_counted_once_per_recipient(
    quiet_api: httpx.AsyncClient, quiet: Simulator
) -> None:
    await send(quiet_api, recipient=[MARIO, "Anna@PEC.example.it"])
    assert quiet.stats.accepted == {"pecmassiva_send": 1}
    assert quiet.stats.recipients == {MARIO: 1, "anna@pec.example.it": 1}


# --- rate limit


async def test_a_second_send_within_a_second_gets_429_with_retry_after(
    api: httpx.AsyncClient, sim: Simulator, clock: Clock
) -> None:
    await send(api)
    refused = await api.post("/send", json=message(), headers=BEARER)
    assert refused.status_code == 429
    assert refused.json() == {"success": False, "message": "Too many requests"}
    assert refused.headers["Retry-After"] == "1"
    assert sim.stats.rate_limited == 1
    assert sim.stats.accepted == {"pecmassiva_send": 1}

    clock.advance(1.0)
    await send(api)
    assert sim.stats.accepted == {"pecmassiva_send": 2}


async def test_reads_are_not_rate_limited(api: httpx.AsyncClient, sim: Simulator) -> None:
    for _ in range(5):
        assert (await api.get("/inbox", headers=HEADERS)).status_code == 200
    assert sim.stats.rate_limited == 0


# --- receipts over time


async def test_acceptance_arrives_at_once_and_delivery_only_after_the_delay(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api)
    assert await subjects(quiet_api, code) == [f"ACCETTAZIONE: Diffida ad adempiere {code}"]

    clock.advance(DELAY - 0.1)
    assert len(await subjects(quiet_api, code)) == 1

    clock.advance(0.1)
    items = await receipts(quiet_api, code)
    assert [item["object"] for item in items] == [
        f"ACCETTAZIONE: Diffida ad adempiere {code}",
        f"CONSEGNA: Diffida ad adempiere {code}",
    ]
    assert items[0] == {
        "sender": "posta-certificata@pecmassiva.com",
        "recipient": PECMASSIVA_USERNAME,
        "data": "Wed, 26 Aug 2020 10:00:34 +0200",
        "object": f"ACCETTAZIONE: Diffida ad adempiere {code}",
        "message": items[0]["message"],
    }
    assert items[1]["data"] == "Wed, 26 Aug 2020 10:00:36 +0200"


async def test_the_acceptance_receipt_lists_every_recipient(quiet_api: httpx.AsyncClient) -> None:
    code = await send(quiet_api, recipient=[MARIO, "anna@pec.example.it"])
    [acceptance] = await receipts(quiet_api, code)
    assert acceptance["message"].split("\n") == [
        "Ricevuta di accettazione",
        "Il giorno 26/08/2020 alle ore 10:00:34 (+0200) il messaggio",
        f'"Diffida ad adempiere {code}" proveniente da "{PECMASSIVA_USERNAME}"',
        "ed indirizzato a:",
        f'{MARIO} ("posta certificata")',
        'anna@pec.example.it ("posta certificata")',
        "è stato accettato dal sistema ed inoltrato.",
        acceptance["message"].split("\n")[-1],
    ]
    assert re.fullmatch(
        r"Identificativo messaggio: opec\S+@pecmassiva\.com", acceptance["message"].split("\n")[-1]
    )


async def test_each_recipient_gets_its_own_delivery_receipt_naming_it(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api, recipient=[MARIO, "anna@pec.example.it"])
    clock.advance(DELAY)
    deliveries = [item for item in await receipts(quiet_api, code) if item["object"].startswith("CONSEGNA:")]
    assert len(deliveries) == 2
    lines = deliveries[0]["message"].split("\n")
    assert lines[0] == "Ricevuta di avvenuta consegna"
    assert lines[1] == "Il giorno 26/08/2020 alle ore 10:00:36 (+0200) il messaggio"
    assert lines[3] == f'ed indirizzato a "{MARIO}"'
    assert lines[4] == "è stato consegnato nella casella di destinazione."
    assert 'ed indirizzato a "anna@pec.example.it"' in deliveries[1]["message"]


async def test_a_send_to_the_own_mailbox_brings_the_certified_envelope_with_the_original_body(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    original = message()["body"]
    code = await send(quiet_api, recipient=[PECMASSIVA_USERNAME])
    clock.advance(DELAY)
    items = await receipts(quiet_api, code)
    assert [item["object"].split(":")[0] for item in items] == [
        "ACCETTAZIONE",
        "POSTA CERTIFICATA",
        "CONSEGNA",
    ]
    envelope = items[1]
    assert envelope["object"] == f"POSTA CERTIFICATA: Diffida ad adempiere {code}"
    assert envelope["sender"] == f'"Per conto di: {PECMASSIVA_USERNAME}" '
    assert envelope["message"] == original


async def test_an_unknown_sending_code_is_result_empty(api: httpx.AsyncClient) -> None:
    response = await api.get("/send/2020082610003492", headers=HEADERS)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Result empty"}


# --- steering by recipient


async def test_a_fail_recipient_gets_a_non_delivery_notice_for_an_unknown_user(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api, recipient=["Fail-Nobody@pec.example.it"])
    clock.advance(DELAY)
    items = await receipts(quiet_api, code)
    assert [item["object"] for item in items] == [
        f"ACCETTAZIONE: Diffida ad adempiere {code}",
        f"AVVISO DI MANCATA CONSEGNA: Diffida ad adempiere {code}",
    ]
    lines = items[1]["message"].split("\n")
    assert lines[0] == "Avviso di mancata consegna"
    assert lines[1].endswith("nel messaggio")
    assert lines[3:5] == ["ed indirizzato a:", "Fail-Nobody@pec.example.it"]
    assert lines[5] == (
        "è stato rilevato un problema che ne impedisce la consegna a causa di: "
        "5.1.1 - pecmassiva.com - utente inesistente"
    )


async def test_a_fail_recipient_with_full_in_its_name_finds_the_mailbox_full(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api, recipient=["fail-mailbox-full@pec.example.it"])
    clock.advance(DELAY)
    notice = (await receipts(quiet_api, code))[-1]["message"]
    assert notice.split("\n")[5].endswith("a causa di: 5.2.2 - pecmassiva.com - casella piena")


async def test_a_virus_recipient_refuses_the_whole_message_at_once(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api, recipient=[MARIO, "virus-test@pec.example.it"])
    clock.advance(12 * 3600)
    items = await receipts(quiet_api, code)
    assert [item["object"] for item in items] == [
        f"AVVISO DI NON ACCETTAZIONE PER VIRUS: Diffida ad adempiere {code}"
    ]
    lines = items[0]["message"].split("\n")
    assert lines[0] == "Avviso di non accettazione per virus"
    assert lines[3].startswith("è stato rilevato un virus")
    assert lines[-1].startswith("Identificativo messaggio: ")


async def test_a_timeout_recipient_gets_the_maximum_time_notice_after_twelve_hours_and_no_delivery(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api, recipient=["timeout-slowpoke@pec.example.it"])
    clock.advance(12 * 3600 - 1)
    assert await subjects(quiet_api, code) == [f"ACCETTAZIONE: Diffida ad adempiere {code}"]
    clock.advance(1)
    items = await receipts(quiet_api, code)
    assert (
        items[-1]["object"]
        == f"AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: Diffida ad adempiere {code}"
    )
    assert (
        items[-1]["message"]
        .split("\n")[5]
        .endswith("a causa di: 5.4.1 - pecmassiva.com - tempo massimo superato")
    )
    clock.advance(24 * 3600)
    assert not any(subject.startswith("CONSEGNA:") for subject in await subjects(quiet_api, code))


async def test_a_slow_recipient_is_delivered_after_ten_times_the_delay(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api, recipient=["slow-tortoise@pec.example.it"])
    clock.advance(DELAY * 10 - 0.5)
    assert len(await subjects(quiet_api, code)) == 1
    clock.advance(0.5)
    assert (await subjects(quiet_api, code))[-1] == f"CONSEGNA: Diffida ad adempiere {code}"


# --- inbox


async def test_the_seeded_inbox_holds_three_incoming_certified_messages(api: httpx.AsyncClient) -> None:
    response = await api.get("/inbox", headers=HEADERS)
    body = response.json()
    assert (body["total"], body["page"], body["n_of_pages"], body["success"]) == (3, 1, 1, True)
    assert all(item["object"].startswith("POSTA CERTIFICATA: ") for item in body["data"])
    assert all(item["sender"].startswith('"Per conto di: ') for item in body["data"])
    assert [item["id"] for item in body["data"]] == [3, 2, 1]


async def test_sixty_messages_fill_three_pages_newest_first(
    quiet_api: httpx.AsyncClient, quiet: Simulator, clock: Clock
) -> None:
    an_hour_ago = clock.now() - 3600
    quiet.pecmassiva.add_incoming(
        Incoming(sender=f"ente{i}@pec.example.it", subject=f"Comunicazione {i}", at=an_hour_ago + i)
        for i in range(60)
    )
    pages = [
        (await quiet_api.get("/inbox", params={"page": p}, headers=HEADERS)).json() for p in (1, 2, 3, 4)
    ]
    assert [len(page["data"]) for page in pages] == [25, 25, 10, 0]
    assert all((page["total"], page["n_of_pages"], page["success"]) == (60, 3, True) for page in pages)
    assert [page["page"] for page in pages] == [1, 2, 3, 4]
    assert pages[0]["data"][0]["object"] == "POSTA CERTIFICATA: Comunicazione 59"
    assert pages[2]["data"][-1]["object"] == "POSTA CERTIFICATA: Comunicazione 0"
    assert pages[0]["data"][0]["date"] == "Wed, 26 Aug 2020 09:01:33 +0200"
    default = (await quiet_api.get("/inbox", headers=HEADERS)).json()
    assert default["data"] == pages[0]["data"]


@pytest.mark.parametrize("page", ["two", "0", "-1", "1.5"])
async def test_a_page_that_is_not_a_positive_number_is_refused_with_400(
    quiet_api: httpx.AsyncClient, page: str
) -> None:
    response = await quiet_api.get("/inbox", params={"page": page}, headers=HEADERS)
    assert response.status_code == 400
    assert response.json()["success"] is False


async def test_q_matches_subject_sender_or_body_case_insensitively(
    quiet_api: httpx.AsyncClient, quiet: Simulator
) -> None:
    quiet.pecmassiva.add_incoming(
        [
            Incoming(sender="protocollo@pec.comune.example.it", subject="Avvio procedimento"),
            Incoming(sender="fatture@pec.fornitore.example.it", subject="Fattura 118"),
            Incoming(
                sender="tribunale@pec.example.it", subject="Notifica", body="Udienza fissata in TRIBUNALE"
            ),
        ]
    )

    async def found(q: str) -> list[str]:
        body = (await quiet_api.get("/inbox", params={"q": q}, headers=HEADERS)).json()
        assert body["total"] == len(body["data"])
        return [item["object"] for item in body["data"]]

    assert await found("FATTURA") == ["POSTA CERTIFICATA: Fattura 118"]
    assert await found("comune.example") == ["POSTA CERTIFICATA: Avvio procedimento"]
    assert await found("udienza") == ["POSTA CERTIFICATA: Notifica"]
    assert await found("nothing-like-this") == []


async def test_a_message_body_comes_url_encoded_and_decodes_to_the_original(
    quiet_api: httpx.AsyncClient, quiet: Simulator
) -> None:
    original = '<p>Caffè & tè: 100% "sì"?</p>\nA presto + saluti'
    [message_id] = quiet.pecmassiva.add_incoming([Incoming(sender=MARIO, subject="Prova", body=original)])
    response = await quiet_api.get(f"/inbox/{message_id}", headers=HEADERS)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert set(data) == {"sender", "recipient", "date", "object", "body"}
    assert data["body"] != original
    assert urllib.parse.unquote_plus(data["body"]) == original


@pytest.mark.parametrize("message_id", ["999", "abc"])
async def test_an_unknown_or_non_numeric_message_id_is_not_found(
    api: httpx.AsyncClient, message_id: str
) -> None:
    for method in ("GET", "DELETE"):
        response = await api.request(method, f"/inbox/{message_id}", headers=HEADERS)
        assert response.status_code == 404
        assert response.json() == {"success": False, "message": "Message not found"}


async def test_a_deleted_message_is_gone_and_its_id_is_never_reused(
    quiet_api: httpx.AsyncClient, quiet: Simulator
) -> None:
    [first] = quiet.pecmassiva.add_incoming([Incoming(sender=MARIO, subject="Uno")])
    response = await quiet_api.delete(f"/inbox/{first}", headers=HEADERS)
    assert response.json() == {"success": True, "message": "Message deleted"}
    assert (await quiet_api.get(f"/inbox/{first}", headers=HEADERS)).status_code == 404
    assert (await quiet_api.delete(f"/inbox/{first}", headers=HEADERS)).status_code == 404
    [second] = quiet.pecmassiva.add_incoming([Incoming(sender=MARIO, subject="Due")])
    assert second > first


async def test_deleting_a_sending_removes_its_receipts_and_later_ones_never_arrive(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    code = await send(quiet_api, recipient=[PECMASSIVA_USERNAME])
    kept = await send(quiet_api, subject="Altro invio")
    response = await quiet_api.delete(f"/send/{code}", headers=HEADERS)
    assert response.status_code == 200
    assert response.json() == {"success": True, "message": "Operation succefull"}

    clock.advance(DELAY * 20)
    assert await subjects(quiet_api, code) == []
    inbox = (await quiet_api.get("/inbox", params={"q": code}, headers=HEADERS)).json()
    assert inbox["total"] == 0
    assert len(await subjects(quiet_api, kept)) == 2
    again = await quiet_api.delete(f"/send/{code}", headers=HEADERS)
    assert again.status_code == 404


async def test_deleting_an_unknown_sending_is_email_not_found(api: httpx.AsyncClient) -> None:
    response = await api.delete("/send/2020082610003492", headers=HEADERS)
    assert response.status_code == 404
    assert response.json() == {"success": False, "message": "Email not found"}


# --- quota


async def test_the_inbox_quota_grows_with_stored_messages_and_attachments(
    quiet_api: httpx.AsyncClient, clock: Clock
) -> None:
    async def usage() -> int:
        response = await quiet_api.get("/quota/inbox", headers=HEADERS)
        body = response.json()
        assert (response.status_code, body["success"], body["data"]["limit"]) == (200, True, 1_048_576)
        value: int = body["data"]["usage"]
        return value

    assert await usage() == 0
    attachment = {"name": "atto.pdf", "file": data_uri(b"%" * 200 * 1024)}
    await send(quiet_api, recipient=[PECMASSIVA_USERNAME], attachments=[attachment])
    after_acceptance = await usage()
    assert after_acceptance > 0
    clock.advance(DELAY)
    # The envelope and the full delivery receipt each carry the 200 KiB attachment.
    assert await usage() >= after_acceptance + 400


async def test_the_quota_of_another_mailbox_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.get("/quota/Archivio", headers=HEADERS)
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "An error occured: the requested mailbox might be unavailable",
    }


# --- edges


async def test_an_unknown_route_answers_a_json_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/outbox", headers=HEADERS)
    assert response.status_code == 404
    assert response.json()["success"] is False


async def test_a_respond_fault_answers_instead_of_the_api(api: httpx.AsyncClient, sim: Simulator) -> None:
    page = Reply.text(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
    sim.faults = FaultPlan([respond(page, "pecmassiva", method="POST")])
    answered = await api.post("/send", json=message(), headers=BEARER)
    assert (answered.status_code, answered.headers["content-type"]) == (502, "text/html")
    assert answered.text == "<html><body><h1>502 Bad Gateway</h1></body></html>"
    assert (await api.get("/inbox", headers=HEADERS)).status_code == 200
    assert sim.stats.accepted == {}


# --- through the whole simulator app


async def test_the_whole_app_counts_sends_and_rate_limits_in_its_stats(app_client: httpx.AsyncClient) -> None:
    for _ in range(2):
        await app_client.post(
            "/pecmassiva/send", json=message(recipient=[MARIO, MARIO.upper()]), headers=BEARER
        )
    stats = (await app_client.get("/__simulator__/stats")).json()
    assert stats == {"accepted": {"pecmassiva_send": 1}, "rate_limited": 1, "recipients": {MARIO: 2}}


async def test_advancing_the_whole_app_clock_brings_the_delivery_receipt(
    app_client: httpx.AsyncClient,
) -> None:
    sent = await app_client.post("/pecmassiva/send", json=message(), headers=BEARER)
    code = sent.json()["message_id"]
    advanced = await app_client.post("/__simulator__/advance", params={"seconds": DELAY})
    assert advanced.json()["success"] is True
    status = (await app_client.get(f"/pecmassiva/send/{code}", headers=HEADERS)).json()
    assert [item["object"].split(":")[0] for item in status["data"]] == ["ACCETTAZIONE", "CONSEGNA"]
