"""The openapi.it PEC client on the simulator: the mailbox lifecycle, the API's rules, quirks, callbacks."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import ValidationError

from pec_mcp.errors import (
    AuthenticationFailed,
    InputError,
    InsufficientCredit,
    NotFound,
    ProviderUnavailable,
    Rejected,
)
from pec_mcp.http import ClientOptions, build_client
from pec_mcp.providers.openapi_pec import (
    BusinessRegisterFilingRequest,
    Callback,
    CallbackMethod,
    MailboxRegistration,
    MailboxType,
    NewMailboxUser,
    OpenapiPecClient,
    provider_error,
)
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.credentials import OPENAPI_PEC_TOKEN
from pec_mcp.simulator.faults import FaultPlan, Reply, respond
from pec_mcp.simulator.openapi_pec import ACTIVATION_DELAY, FILING_DELAY, PRICES, START_WALLET

pytestmark = pytest.mark.anyio

BASE_URL = "http://simulator/openapi-pec"
P7M = b"\x30\x82\x01\x00" + b"signed power of attorney"


async def _no_wait(seconds: float) -> None:
    return None


@pytest.fixture
def sim() -> Simulator:
    return Simulator(clock=Clock(frozen_at=1_750_000_000.0))


def _http(sim: Simulator, token: str = OPENAPI_PEC_TOKEN) -> httpx.AsyncClient:
    return build_client(provider="openapi_pec", base_url=BASE_URL, transport=httpx.ASGITransport(app=sim.app),
                        headers={"Authorization": f"Bearer {token}"}, options=ClientOptions(sleep=_no_wait))


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with _http(sim) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> OpenapiPecClient:
    return OpenapiPecClient(http)


def registration(address: str = "mario.rossi@testcert.legalmail.it", mailbox_type: str = "BRONZE",
                 **extra: Any) -> MailboxRegistration:
    return MailboxRegistration.model_validate({
        "address": address, "mailbox_type": mailbox_type, "customer_type": "PV",
        "applicant_first_name": "Mario", "applicant_last_name": "Rossi", "email": "mario@example.com",
        "phone": "0548798569", "applicant_tax_code": "RSSMRA82D11H501X", "applicant_birth_date": "11/04/1982",
        "applicant_gender": "M", "applicant_birth_country": "IT", "holder_address": "via Verdi 20",
        "holder_city": "Roma", "holder_postal_code": "00042", "holder_country": "IT", "holder_province": "RM",
        **extra,
    })


async def active_mailbox(client: OpenapiPecClient, sim: Simulator, **kwargs: Any) -> str:
    box = await client.register_mailbox(registration=registration(**kwargs))
    form = await client.download_activation_form(mailbox_id=box.mailbox_id)
    await client.activate_mailbox(mailbox_id=box.mailbox_id, documents=[form, form])
    sim.clock.advance(ACTIVATION_DELAY + 1)
    assert (await client.get_mailbox(mailbox_id=box.mailbox_id)).state == "evasa"
    return box.mailbox_id


# ------------------------------------------------------------------------------------------ happy path


async def test_a_mailbox_goes_from_availability_check_to_revocation(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    address = "studio.bianchi@testcert.legalmail.it"
    assert (await client.check_address(address=address)).available is True

    box = await client.register_mailbox(registration=registration(address))
    assert (box.address, box.mailbox_type, box.state) == (address, "BRONZE", "registrata")
    assert re.fullmatch(r"[0-9a-f]{24}", box.mailbox_id)
    assert sim.openapi_pec.wallet == START_WALLET - PRICES["BRONZE"]

    form = await client.download_activation_form(mailbox_id=box.mailbox_id)
    assert form.startswith(b"%PDF-1.4") and form.rstrip().endswith(b"%%EOF")

    activated = await client.activate_mailbox(mailbox_id=box.mailbox_id, documents=[form, form])
    assert activated.state == "in_evasione"
    assert len(activated.activation_documents) == 2

    sim.clock.advance(ACTIVATION_DELAY - 1)
    assert (await client.get_mailbox(mailbox_id=box.mailbox_id)).state == "in_evasione"
    sim.clock.advance(2)
    active = await client.get_mailbox(mailbox_id=box.mailbox_id)
    assert active.state == "evasa"
    assert active.activated_at is not None and active.expires_on is not None
    assert active.disk_space_mb == 1024

    renewed = await client.renew_mailbox(mailbox_id=box.mailbox_id, years=2)
    assert renewed.expires_on is not None and renewed.expires_on.year == active.expires_on.year + 2
    assert sim.openapi_pec.wallet == START_WALLET - 3 * PRICES["BRONZE"]

    revoked = await client.revoke_mailbox(mailbox_id=box.mailbox_id)
    assert revoked.state == "revocata" and revoked.revoked_at is not None
    assert [m.state for m in await client.list_mailboxes()] == ["revocata"]
    accepted = sim.stats.accepted
    assert accepted["openapi_pec_register"] == 1 and accepted["openapi_pec_renew"] == 1
    assert accepted["openapi_pec_revoke"] == 1


async def test_the_activation_form_is_a_pdf_whose_xref_points_at_its_objects(
    client: OpenapiPecClient,
) -> None:
    box = await client.register_mailbox(registration=registration())
    pdf = await client.download_activation_form(mailbox_id=box.mailbox_id)
    assert len(pdf) < 2048
    startxref = int(re.search(rb"startxref\n(\d+)", pdf).group(1))  # type: ignore[union-attr]
    assert pdf[startxref:].startswith(b"xref")
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n", pdf)]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(b"%d 0 obj" % number)
    assert box.address.encode() in pdf


async def test_an_account_without_mailboxes_lists_none(client: OpenapiPecClient) -> None:
    assert await client.list_mailboxes() == []
    assert await client.list_filings() == []


async def test_space_type_conservation_and_users_can_be_added_to_an_active_mailbox(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    mailbox_id = await active_mailbox(client, sim, mailbox_type="STANDARD")
    upgraded = await client.transform_mailbox(mailbox_id=mailbox_id, mailbox_type=MailboxType.GOLD)
    assert upgraded.mailbox_type == "GOLD"
    more = await client.modify_mailbox(mailbox_id=mailbox_id, disk_space="+1024", archive_space=14336)
    assert (more.disk_space_mb, more.archive_space_mb) == (3072 + 1024, 14336)
    form = await client.download_conservation_form(mailbox_id=mailbox_id)
    kept = await client.enable_conservation(mailbox_id=mailbox_id, documents=[form], space_mb=1024)
    assert kept.conservation_enabled and kept.conservation_space_mb == 1024
    with_user = await client.add_user(mailbox_id=mailbox_id, user=NewMailboxUser(
        first_name="Luca", last_name="Bianchi", description="segreteria", password_email="luca@example.com"))
    assert [u.first_name for u in with_user.users] == ["Luca"]


async def test_a_business_register_filing_moves_through_its_states(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    request = BusinessRegisterFilingRequest(
        address="azienda@testcert.legalmail.it", applicant_tax_code="RSSMRA80A01L117D",
        applicant_first_name="Mario", applicant_last_name="Rossi", applicant_role="LEGALE_RAPPRESENTANTE",
        email="mario@example.com", mobile="3400000000", company_name="Azienda Test srl",
        company_tax_id="12345678910", company_city="Roma", company_province="RM")
    filing = await client.create_filing(filing=request)
    assert filing.state == "codice_in_richiesta"
    with pytest.raises(Rejected, match="doesn't exist yet"):
        await client.download_filing_proxy(filing_id=filing.filing_id)

    sim.clock.advance(FILING_DELAY)
    assert (await client.get_filing(filing_id=filing.filing_id)).state == "in_attesa_di_documenti"
    proxy = await client.download_filing_proxy(filing_id=filing.filing_id)
    assert proxy.startswith(b"%PDF")
    uploaded = await client.upload_filing_documents(filing_id=filing.filing_id, documents=[P7M])
    assert uploaded.state == "documenti_caricati" and uploaded.documents

    sim.clock.advance(FILING_DELAY)
    assert [f.state for f in await client.list_filings()] == ["comunicazione_evasa"]


# ------------------------------------------------------------------------------------------ the API's rules


async def test_an_address_already_taken_is_reported_not_available(client: OpenapiPecClient) -> None:
    box = await client.register_mailbox(registration=registration())
    assert (await client.check_address(address=box.address)).available is False
    assert (await client.check_address(address="info@testcert.legalmail.it")).available is False
    with pytest.raises(Rejected, match="not available"):
        await client.register_mailbox(registration=registration())


async def test_an_unknown_domain_is_a_204_meaning_not_a_pec_domain(client: OpenapiPecClient) -> None:
    unknown = await client.check_domain(domain="example.org")
    assert unknown.is_pec_domain is False
    known = await client.check_domain(domain="legalmail.it")
    assert known.is_pec_domain is True and "found" in known.message


async def test_an_address_outside_the_sandbox_domain_of_its_type_is_refused(client: OpenapiPecClient) -> None:
    with pytest.raises(Rejected, match=r"must end with @test\.domiciliodigitale\.com") as caught:
        await client.register_mailbox(registration=registration(mailbox_type="DOMICILIODIGITALE"))
    assert caught.value.status == 406 and caught.value.code == "208"


async def test_a_type_downgrade_is_refused_with_the_providers_reason(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    mailbox_id = await active_mailbox(client, sim, mailbox_type="SILVER")
    with pytest.raises(Rejected, match="downgrade of the 'tipo_casella' is not allowed; only GOLD") as caught:
        await client.transform_mailbox(mailbox_id=mailbox_id, mailbox_type="BRONZE")
    assert (caught.value.status, caught.value.code) == (406, "276")


async def test_a_space_downgrade_is_refused_by_the_provider(client: OpenapiPecClient, sim: Simulator) -> None:
    mailbox_id = await active_mailbox(client, sim, mailbox_type="SILVER")
    with pytest.raises(Rejected, match="downgrade of the 'spazio_disco'"):
        await client.modify_mailbox(mailbox_id=mailbox_id, disk_space=1024)


async def test_a_space_that_is_not_a_multiple_of_1024_is_refused_before_sending(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    mailbox_id = await active_mailbox(client, sim)
    before = dict(sim.stats.accepted)
    with pytest.raises(InputError, match="multiple of 1024"):
        await client.modify_mailbox(mailbox_id=mailbox_id, disk_space="+1000")
    with pytest.raises(InputError, match="multiple of 512"):
        await client.modify_mailbox(mailbox_id=mailbox_id, conservation_space=700)
    assert dict(sim.stats.accepted) == before


async def test_the_providers_own_multiple_of_1024_refusal_is_mapped(
    http: httpx.AsyncClient, client: OpenapiPecClient, sim: Simulator
) -> None:
    mailbox_id = await active_mailbox(client, sim)
    response = await http.patch(f"/pec/{mailbox_id}/modifica", json={"spazio_disco": "+1000"})
    error = provider_error(response.status_code, response.json())
    assert isinstance(error, Rejected)
    assert (error.status, error.code) == (406, "325") and "multiples of 1024" in error.message


async def test_revoking_twice_is_refused_as_already_revoked(client: OpenapiPecClient, sim: Simulator) -> None:
    mailbox_id = await active_mailbox(client, sim)
    await client.revoke_mailbox(mailbox_id=mailbox_id)
    with pytest.raises(Rejected, match="already been revoked") as caught:
        await client.revoke_mailbox(mailbox_id=mailbox_id)
    assert caught.value.code == "303"


async def test_revoking_a_mailbox_that_is_not_active_yet_is_refused(client: OpenapiPecClient) -> None:
    box = await client.register_mailbox(registration=registration())
    with pytest.raises(Rejected, match="only if it is active") as caught:
        await client.revoke_mailbox(mailbox_id=box.mailbox_id)
    assert (caught.value.status, caught.value.code) == (428, "304")


async def test_activation_documents_that_are_not_pdf_are_refused(
    http: httpx.AsyncClient, client: OpenapiPecClient
) -> None:
    box = await client.register_mailbox(registration=registration())
    with pytest.raises(InputError, match="Document 2 is not a PDF"):
        await client.activate_mailbox(mailbox_id=box.mailbox_id, documents=[b"%PDF-1.4 ok", b"GIF89a"])
    response = await http.patch(f"/pec/{box.mailbox_id}/attivazione",
                                json={"documenti": [base64.b64encode(b"GIF89a").decode()]})
    assert response.status_code == 406
    assert response.json() == {"success": False, "message": "wrong file format, pdf required", "error": 296,
                               "data": None}


async def test_an_empty_wallet_refuses_a_registration_with_its_balance(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    sim.openapi_pec.wallet = Decimal("3.50")
    with pytest.raises(InsufficientCredit, match=r"Insufficient Credit in Wallet: 3\.50") as caught:
        await client.register_mailbox(registration=registration())
    assert (caught.value.status, caught.value.code) == (402, "262")
    assert sim.stats.accepted["openapi_pec_register"] == 0


async def test_an_unknown_id_is_not_found_and_a_malformed_one_is_a_wrong_id(client: OpenapiPecClient) -> None:
    with pytest.raises(NotFound, match="no pec found") as unknown:
        await client.get_mailbox(mailbox_id="0123456789abcdef01234567")
    assert (unknown.value.status, unknown.value.code) == (404, "202")
    with pytest.raises(NotFound, match="Wrong id") as malformed:
        await client.get_mailbox(mailbox_id="not-an-id")
    assert (malformed.value.status, malformed.value.code) == (400, "201")


async def test_more_than_25_users_are_refused(client: OpenapiPecClient, sim: Simulator) -> None:
    mailbox_id = await active_mailbox(client, sim)
    for n in range(25):
        await client.add_user(mailbox_id=mailbox_id, user=NewMailboxUser(
            first_name=f"User{n}", last_name="Test", description="staff", password_email=f"u{n}@example.com"))
    with pytest.raises(Rejected, match="maximum number of users reached: 25") as caught:
        await client.add_user(mailbox_id=mailbox_id, user=NewMailboxUser(
            first_name="One", last_name="Toomany", description="staff", password_email="x@example.com"))
    assert caught.value.code == "217"


async def test_users_cannot_be_added_to_a_pecmassiva_box(client: OpenapiPecClient, sim: Simulator) -> None:
    mailbox_id = await active_mailbox(client, sim, address="invii@pecmassiva.com", mailbox_type="PECMASSIVA")
    with pytest.raises(Rejected, match=r"DOMICILIODIGITALE\|PECMASSIVA") as caught:
        await client.add_user(mailbox_id=mailbox_id, user=NewMailboxUser(
            first_name="Luca", last_name="Bianchi", description="staff", password_email="l@example.com"))
    assert (caught.value.status, caught.value.code) == (428, "390")


def test_a_registration_refuses_a_date_that_is_not_dd_mm_yyyy() -> None:
    with pytest.raises(ValidationError, match="dd/mm/yyyy"):
        registration(applicant_birth_date="1982-04-11")
    with pytest.raises(ValidationError, match="does not fit customer type"):
        registration(customer_subtype="PA")  # a lawyer's subtype on a private person


# ------------------------------------------------------------------------------------------ quirks


async def test_success_false_with_http_200_is_an_error(client: OpenapiPecClient, sim: Simulator) -> None:
    envelope = {"success": False, "message": "operation failed", "error": 999, "data": None}
    sim.faults = FaultPlan([respond(Reply.json(envelope), "openapi_pec", times=1)])
    with pytest.raises(Rejected, match="operation failed") as caught:
        await client.list_mailboxes()
    assert (caught.value.status, caught.value.code) == (200, "999")


async def test_a_json_answer_wrapped_in_a_string_is_read(client: OpenapiPecClient, sim: Simulator) -> None:
    # The simulator itself would call this address available: only the wrapped answer says it is not.
    inner = json.dumps({"data": {"available": False}, "success": True, "message": "", "error": None})
    sim.faults = FaultPlan([respond(Reply.json(inner), "openapi_pec", times=1)])
    assert (await client.check_address(address="nuovo@testcert.legalmail.it")).available is False
    assert (await client.check_address(address="nuovo@testcert.legalmail.it")).available is True


async def test_an_html_502_page_is_provider_unavailable_without_its_markup(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    page = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
    sim.faults = FaultPlan([respond(Reply.text(502, page, "text/html"), "openapi_pec", times=10)])
    with pytest.raises(ProviderUnavailable) as caught:
        await client.list_mailboxes()
    assert caught.value.status == 502 and "<" not in caught.value.message


async def test_a_paid_renewal_is_never_retried(client: OpenapiPecClient, sim: Simulator) -> None:
    mailbox_id = await active_mailbox(client, sim)
    wallet = sim.openapi_pec.wallet
    body = json.dumps({"success": False, "message": "service temporarily unavailable", "error": 402,
                       "data": None})
    sim.faults = FaultPlan([respond(Reply.text(503, body), "openapi_pec", "*/rinnovo*", times=1)])
    with pytest.raises(ProviderUnavailable, match="temporarily unavailable"):
        await client.renew_mailbox(mailbox_id=mailbox_id)
    assert sim.openapi_pec.wallet == wallet and sim.stats.accepted["openapi_pec_renew"] == 0


async def test_a_wrong_token_is_an_authentication_failure_that_hides_the_token(sim: Simulator) -> None:
    async with _http(sim, token="wrong-secret-token") as http:
        with pytest.raises(AuthenticationFailed) as caught:
            await OpenapiPecClient(http).list_mailboxes()
    assert caught.value.status == 401
    assert "wrong-secret-token" not in caught.value.explain()
    # openapi.it authenticates with the token alone: the advice names it, and no username or password.
    assert "openapi_pec.token" in caught.value.hint
    assert "username" not in caught.value.explain() and "password" not in caught.value.explain()


# ------------------------------------------------------------------------------------------ callbacks


class Receiver:
    """Captures the callback requests the simulator makes."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


async def test_a_form_callback_carries_each_state_change_as_json_in_the_named_field(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    receiver = Receiver()
    sim.openapi_pec.send_callback = receiver
    callback = Callback(url="https://example.com/hook", method=CallbackMethod.FORM, field="payload",
                        data={"ref": "A-1"})
    mailbox_id = await active_mailbox(client, sim, callback=callback)

    assert [r.url for r in receiver.requests] == ["https://example.com/hook"] * 2
    first = receiver.requests[0]
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    fields = parse_qs(first.content.decode())
    sent = json.loads(fields["payload"][0])
    assert (sent["id"], sent["stato"]) == (mailbox_id, "in_evasione")
    assert sent["callback"]["data"] == {"ref": "A-1"}
    assert [c.payload["stato"] for c in sim.openapi_pec.callbacks] == ["in_evasione", "evasa"]


async def test_a_json_callback_posts_the_raw_json_and_a_dead_receiver_breaks_nothing(
    client: OpenapiPecClient, sim: Simulator
) -> None:
    receiver = Receiver()
    sim.openapi_pec.send_callback = receiver
    mailbox_id = await active_mailbox(client, sim, callback=Callback(url="https://example.com/j",
                                                                     method=CallbackMethod.JSON))
    request = receiver.requests[-1]
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content)["stato"] == "evasa"

    async def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sim.openapi_pec.send_callback = down
    assert (await client.revoke_mailbox(mailbox_id=mailbox_id)).state == "revocata"
    assert sim.openapi_pec.callbacks[-1].delivered is False
