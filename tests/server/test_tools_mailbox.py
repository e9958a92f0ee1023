"""The mailbox toolset through the in-memory MCP client, on the openapi.it PEC simulator with a frozen clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import httpx
import mcp.types as t
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.providers.openapi_pec import ApplicantRole, CustomerSubtype, CustomerType, MailboxType
from pec_mcp.server.app import build
from pec_mcp.server.http.app import build_http_app
from pec_mcp.server.http.webhooks import in_process_sender
from pec_mcp.server.mailbox.prices import LIST_PRICES_EUR
from pec_mcp.server.mailbox.tools import (
    ApplicantRoleName,
    CustomerSubtypeName,
    CustomerTypeName,
    MailboxTypeName,
)
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.openapi_pec import ACTIVATION_DELAY, FILING_DELAY, PRICES, START_WALLET, make_pdf
from pec_mcp.store import Store
from tests.conftest import Asked, accept, decline

pytestmark = pytest.mark.anyio

ADDRESS = "studio.rossi@testcert.legalmail.it"
REGISTRATION: dict[str, Any] = {
    "address": ADDRESS, "mailbox_type": "BRONZE", "customer_type": "professional", "customer_subtype": "lawyer",
    "applicant_first_name": "Mario", "applicant_last_name": "Rossi", "applicant_tax_code": "RSSMRA82D11H501X",
    "applicant_birth_date": "11/04/1982", "applicant_gender": "M", "applicant_email": "mario@example.com",
    "applicant_phone": "0612345678", "holder_address": "via Verdi 20", "holder_city": "Roma",
    "holder_postal_code": "00100", "holder_province": "RM",
}
FILING: dict[str, Any] = {
    "address": "amministrazione@pec.bianchi-srl.it", "company_name": "Bianchi Srl", "company_tax_id": "01234567890",
    "company_city": "Milano", "company_province": "MI", "applicant_first_name": "Anna",
    "applicant_last_name": "Bianchi", "applicant_tax_code": "BNCNNA80A41F205X", "applicant_role": "director",
    "applicant_email": "anna@bianchi-srl.it", "applicant_mobile": "3331234567",
}
P7M = b"\x30\x82\x01\x00signed power of attorney"


def data(result: t.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text if result.content else result
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: t.CallToolResult) -> str:
    assert result.is_error, result.structured_content
    content = result.content[0]
    assert isinstance(content, t.TextContent)
    return content.text


def pdf(folder: Path, name: str) -> str:
    path = folder / name
    path.write_bytes(make_pdf([name]))
    return str(path)


def is_pdf_of_size(path: Path, size: int) -> bool:
    content = path.read_bytes()
    return content.startswith(b"%PDF") and len(content) == size


def registrations(simulator: Simulator) -> int:
    return simulator.stats.as_dict()["accepted"].get("openapi_pec_register", 0)


async def register(client: Client, **changes: Any) -> dict[str, Any]:
    return data(await client.call_tool("register_mailbox", {**REGISTRATION, **changes}))


async def active_mailbox(client: Client, simulator: Simulator, files: Path, **changes: Any) -> str:
    mailbox_id: str = (await register(client, **changes))["mailbox"]["mailbox_id"]
    documents = [pdf(files, f"form-{mailbox_id}.pdf"), pdf(files, f"id-{mailbox_id}.pdf")]
    data(await client.call_tool("activate_mailbox", {"mailbox_id": mailbox_id, "documents": documents}))
    simulator.clock.advance(ACTIVATION_DELAY + 1)
    assert data(await client.call_tool("get_mailbox", {"mailbox_id": mailbox_id}))["state"] == "evasa"
    return mailbox_id


# ------------------------------------------------------------------------------------------- the happy path


async def test_a_new_customer_goes_from_checking_an_address_to_revoking_the_mailbox(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        check = data(await client.call_tool("check_pec_address", {"address": ADDRESS}))
        assert (check["available"], check["environment"]) == (True, "offline")

        registered = await register(client)
        box = registered["mailbox"]
        assert (registered["status"], box["state"], registered["estimated_cost_eur"]) == ("done", "registrata", 10.0)
        assert simulator.openapi_pec.wallet == START_WALLET - PRICES["BRONZE"]
        mailbox_id = box["mailbox_id"]

        form = data(await client.call_tool("download_mailbox_form", {"mailbox_id": mailbox_id,
                                                                     "form": "activation", "save_to": str(files)}))
        saved = Path(form["path"])
        assert str(saved).startswith(str(files)) and is_pdf_of_size(saved, form["size_bytes"])

        activated = data(await client.call_tool("activate_mailbox", {
            "mailbox_id": mailbox_id, "documents": [str(saved), pdf(files, "carta-identita.pdf")]}))
        assert (activated["state"], activated["activation_documents"]) == ("in_evasione", 2)

        simulator.clock.advance(ACTIVATION_DELAY + 1)
        active = data(await client.call_tool("get_mailbox", {"mailbox_id": mailbox_id}))
        assert active["state"] == "evasa" and active["expires_on"] is not None

        renewed = data(await client.call_tool("renew_mailbox", {"mailbox_id": mailbox_id, "years": 2}))
        assert renewed["estimated_cost_eur"] == 20.0
        assert renewed["mailbox"]["expires_on"] > active["expires_on"]

        revoked = data(await client.call_tool("revoke_mailbox", {"mailbox_id": mailbox_id}))
        assert (revoked["status"], revoked["mailbox"]["state"]) == ("done", "revocata")

        listed = data(await client.call_tool("list_mailboxes", {}))
        assert [(b["address"], b["state"]) for b in listed["mailboxes"]] == [(ADDRESS, "revocata")]
    assert simulator.openapi_pec.wallet == START_WALLET - 3 * PRICES["BRONZE"]


async def test_paid_and_destructive_actions_are_written_to_the_audit_trail(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        data(await client.call_tool("renew_mailbox", {"mailbox_id": mailbox_id}))
        data(await client.call_tool("revoke_mailbox", {"mailbox_id": mailbox_id}))
        ledger = json.loads((await client.read_resource("pec://ledger")).contents[0].text)  # type: ignore[union-attr]
    audit = [(a["action"], a["outcome"], a["ref"]) for a in reversed(ledger["audit"])]
    assert audit == [("register_mailbox", "done (user_confirmed)", mailbox_id),
                     ("renew_mailbox", "done (user_confirmed)", mailbox_id),
                     ("revoke_mailbox", "done (user_confirmed)", mailbox_id)]


async def test_a_taken_address_is_reported_unavailable(settings: Settings, connect: Callable[..., Any]) -> None:
    async with connect(settings) as client:
        check = data(await client.call_tool("check_pec_address", {"address": "taken@testcert.legalmail.it"}))
    assert check["available"] is False


async def test_a_pec_domain_is_told_from_an_ordinary_one(settings: Settings, connect: Callable[..., Any]) -> None:
    async with connect(settings) as client:
        pec = data(await client.call_tool("check_pec_domain", {"domain": "legalmail.it"}))
        plain = data(await client.call_tool("check_pec_domain", {"domain": "example.com"}))
    assert (pec["is_pec_domain"], plain["is_pec_domain"]) == (True, False)


async def test_an_account_without_mailboxes_lists_none(settings: Settings, connect: Callable[..., Any]) -> None:
    async with connect(settings) as client:
        listed = data(await client.call_tool("list_mailboxes", {}))
    assert listed["mailboxes"] == [] and listed["environment"] == "offline"


async def test_the_mailbox_resource_shows_its_state(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        resource = await client.read_resource(f"pec://mailboxes/{mailbox_id}")
    shown = json.loads(resource.contents[0].text)  # type: ignore[union-attr]
    assert (shown["address"], shown["state"], shown["environment"]) == (ADDRESS, "evasa", "offline")


# ---------------------------------------------------------------------------------------------- upgrades


async def test_a_type_upgrade_is_priced_as_the_difference_and_applied(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        preview = data(await client.call_tool("upgrade_mailbox_type", {"mailbox_id": mailbox_id,
                                                                       "mailbox_type": "GOLD", "dry_run": True}))
        done = data(await client.call_tool("upgrade_mailbox_type", {"mailbox_id": mailbox_id, "mailbox_type": "GOLD"}))
    assert preview["status"] == "preview" and preview["estimated_cost_eur"] == 20.0
    assert (done["status"], done["mailbox"]["mailbox_type"]) == ("done", "GOLD")
    assert simulator.openapi_pec.wallet == START_WALLET - PRICES["GOLD"]


async def test_a_downgrade_is_refused_without_asking_the_user(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        refused = error_text(await client.call_tool("upgrade_mailbox_type", {"mailbox_id": mailbox_id,
                                                                             "mailbox_type": "STANDARD"}))
    assert "downgrade" in refused and "BRONZE" in refused
    assert asked.questions == []


async def test_space_is_added_in_steps_of_1024_mb_and_priced_per_step(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        odd = error_text(await client.call_tool("upgrade_mailbox_space", {"mailbox_id": mailbox_id,
                                                                          "disk_space_mb": 1500}))
        smaller = error_text(await client.call_tool("upgrade_mailbox_space", {"mailbox_id": mailbox_id,
                                                                              "archive_space_mb": 1024}))
        done = data(await client.call_tool("upgrade_mailbox_space", {"mailbox_id": mailbox_id, "disk_space_mb": 3072}))
    assert "multiple of 1024" in odd
    assert "downgrade" in smaller
    assert (done["mailbox"]["disk_space_mb"], done["estimated_cost_eur"]) == (3072, 4.0)
    assert simulator.openapi_pec.wallet == START_WALLET - PRICES["BRONZE"] - 2 * PRICES["space_1024"]


async def test_legal_conservation_is_enabled_with_its_signed_form(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        form = data(await client.call_tool("download_mailbox_form", {
            "mailbox_id": mailbox_id, "form": "conservation", "save_to": str(files / "conservazione.pdf")}))
        done = data(await client.call_tool("enable_mailbox_conservation", {
            "mailbox_id": mailbox_id, "documents": [form["path"]], "space_mb": 1024}))
        again = error_text(await client.call_tool("enable_mailbox_conservation", {
            "mailbox_id": mailbox_id, "documents": [form["path"]]}))
    box = done["mailbox"]
    assert (box["conservation_enabled"], box["conservation_space_mb"], done["estimated_cost_eur"]) == (True, 1024, 10.0)
    assert "already active" in again


# ------------------------------------------------------------------------------- the API's rules, refused


async def test_revoking_twice_is_refused(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        data(await client.call_tool("revoke_mailbox", {"mailbox_id": mailbox_id}))
        again = error_text(await client.call_tool("revoke_mailbox", {"mailbox_id": mailbox_id}))
    assert "already been revoked" in again


async def test_a_mailbox_not_yet_active_cannot_be_revoked_or_renewed(
    settings: Settings, connect: Callable[..., Any]
) -> None:
    async with connect(settings) as client:
        mailbox_id = (await register(client))["mailbox"]["mailbox_id"]
        revoke = error_text(await client.call_tool("revoke_mailbox", {"mailbox_id": mailbox_id}))
        renew = error_text(await client.call_tool("renew_mailbox", {"mailbox_id": mailbox_id}))
    assert "only an active mailbox" in revoke and "registrata" in revoke
    assert "cannot be renewed" in renew


async def test_the_providers_own_refusals_reach_the_model_with_its_reason(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        activate_again = error_text(await client.call_tool("activate_mailbox", {
            "mailbox_id": mailbox_id, "documents": [pdf(files, "again.pdf")]}))
        fresh_id = (await register(client, address="altro@testcert.legalmail.it"))["mailbox"]["mailbox_id"]
        early_form = error_text(await client.call_tool("download_mailbox_form", {
            "mailbox_id": fresh_id, "form": "conservation", "save_to": str(files)}))
    assert "openapi.it PEC refused the request (HTTP 428)" in activate_again
    assert "only when it is in the 'registrata|documenti_errati' state" in activate_again
    assert "you cannot activate conservation if you do not first activate a pec" in early_form


async def test_a_document_that_is_not_a_pdf_is_refused_and_nothing_is_uploaded(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    text = files / "carta-identita.txt"
    text.write_text("not a PDF")
    async with connect(settings) as client:
        mailbox_id = (await register(client))["mailbox"]["mailbox_id"]
        refused = error_text(await client.call_tool("activate_mailbox", {
            "mailbox_id": mailbox_id, "documents": [pdf(files, "modulo.pdf"), str(text)]}))
        box = data(await client.call_tool("get_mailbox", {"mailbox_id": mailbox_id}))
    assert "carta-identita.txt is not a PDF" in refused
    assert box["state"] == "registrata"
    assert simulator.stats.as_dict()["accepted"].get("openapi_pec_activate", 0) == 0


async def test_an_empty_wallet_refuses_the_registration_and_the_audit_trail_says_so(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.openapi_pec.wallet = Decimal("1.00")
    async with connect(settings) as client:
        refused = error_text(await client.call_tool("register_mailbox", REGISTRATION))
        ledger = json.loads((await client.read_resource("pec://ledger")).contents[0].text)  # type: ignore[union-attr]
    assert "Insufficient Credit in Wallet: 1.00" in refused and "Top up" in refused
    assert simulator.openapi_pec.boxes == {}
    assert ledger["audit"][0]["action"] == "register_mailbox"
    assert ledger["audit"][0]["outcome"].startswith("refused")


async def test_an_unknown_mailbox_id_is_reported_as_not_found(
    settings: Settings, connect: Callable[..., Any]
) -> None:
    async with connect(settings) as client:
        unknown = error_text(await client.call_tool("get_mailbox", {"mailbox_id": "0" * 24}))
        malformed = error_text(await client.call_tool("renew_mailbox", {"mailbox_id": "not-an-id"}))
    assert "no such id" in unknown and "no pec found" in unknown
    assert "no such id" in malformed


async def test_a_form_is_never_saved_outside_the_allowed_folders(
    settings: Settings, connect: Callable[..., Any], tmp_path: Path
) -> None:
    async with connect(settings) as client:
        mailbox_id = (await register(client))["mailbox"]["mailbox_id"]
        refused = error_text(await client.call_tool("download_mailbox_form", {
            "mailbox_id": mailbox_id, "form": "activation", "save_to": str(tmp_path / "modulo.pdf")}))
    assert "outside the allowed folders" in refused
    assert not (tmp_path / "modulo.pdf").exists()


async def test_registration_data_are_checked_and_the_wrong_arguments_named(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator
) -> None:
    async with connect(settings) as client:
        bad_date = error_text(await client.call_tool("register_mailbox", {**REGISTRATION,
                                                                          "applicant_birth_date": "31/02/1982"}))
        bad_email = error_text(await client.call_tool("register_mailbox", {**REGISTRATION,
                                                                           "applicant_email": "mario"}))
        bad_subtype = error_text(await client.call_tool("register_mailbox", {**REGISTRATION,
                                                                             "customer_subtype": "municipality"}))
        bad_type = error_text(await client.call_tool("register_mailbox", {**REGISTRATION,
                                                                          "mailbox_type": "PLATINUM"}))
    assert "applicant_birth_date" in bad_date and "dd/mm/yyyy" in bad_date
    assert "applicant_email" in bad_email
    assert "customer_subtype 'municipality' does not fit customer_type 'professional'" in bad_subtype
    assert "mailbox_type" in bad_type
    assert simulator.openapi_pec.boxes == {}


def test_the_argument_enums_name_every_value_the_provider_knows() -> None:
    assert set(get_args(MailboxTypeName)) == {m.value for m in MailboxType}
    assert {n.upper() for n in get_args(CustomerTypeName)} == set(CustomerType.__members__)
    assert {n.upper() for n in get_args(CustomerSubtypeName)} == set(CustomerSubtype.__members__)
    assert {n.upper() for n in get_args(ApplicantRoleName)} == set(ApplicantRole.__members__)


def test_the_price_table_is_the_one_the_simulator_charges() -> None:
    assert {k: v for k, v in PRICES.items() if k in LIST_PRICES_EUR} == LIST_PRICES_EUR


# ------------------------------------------------------------------------------------------------- the gate


async def test_a_dry_run_registers_nothing_and_shows_the_price_and_environment(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator
) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        preview = data(await client.call_tool("register_mailbox", {**REGISTRATION, "dry_run": True}))
    assert (preview["status"], preview["mailbox"], preview["estimated_cost_eur"]) == ("preview", None, 10.0)
    assert "offline" in preview["note"] and ADDRESS in preview["note"] and "estimated" in preview["note"]
    assert asked.questions == [] and simulator.openapi_pec.boxes == {} and registrations(simulator) == 0


async def test_the_question_names_the_address_type_price_and_environment(
    settings: Settings, connect: Callable[..., Any]
) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        await register(client)
    [question] = asked.questions
    assert ADDRESS in question and "BRONZE" in question and "€10.00" in question
    assert "estimated" in question and "offline" in question


async def test_a_declined_registration_registers_nothing(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator
) -> None:
    async with connect(settings, elicitation=decline) as client:
        refused = error_text(await client.call_tool("register_mailbox", REGISTRATION))
    assert "declined" in refused
    assert simulator.openapi_pec.boxes == {} and simulator.openapi_pec.wallet == START_WALLET


async def test_a_client_that_cannot_ask_must_pass_confirm_after_the_user_said_yes(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator
) -> None:
    async with connect(settings, elicitation=None) as client:
        refused = error_text(await client.call_tool("register_mailbox", REGISTRATION))
        assert simulator.openapi_pec.boxes == {}
        done = data(await client.call_tool("register_mailbox", {**REGISTRATION, "confirm": True}))
    assert "Ask the user exactly this" in refused and "€10.00" in refused
    assert done["status"] == "done"


async def test_a_taken_address_is_refused_before_the_user_is_asked(
    settings: Settings, connect: Callable[..., Any]
) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        refused = error_text(await client.call_tool("register_mailbox", {**REGISTRATION,
                                                                         "address": "taken@testcert.legalmail.it"}))
    assert "not available" in refused and asked.questions == []


async def test_revoking_asks_even_when_only_bulk_actions_need_a_yes(
    make_settings: Callable[..., Settings], connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    settings = make_settings(sending={"confirm": "bulk"})
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        data(await client.call_tool("revoke_mailbox", {"mailbox_id": mailbox_id}))
    assert len(asked.questions) == 1 and asked.questions[0].startswith("Revoke the PEC mailbox")


# ------------------------------------------------------------------------------------- business register


async def test_a_pec_address_is_filed_with_the_business_register(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    signed = files / "procura.pdf.p7m"
    signed.write_bytes(P7M)
    async with connect(settings) as client:
        started = data(await client.call_tool("file_pec_with_business_register", FILING))
        filing_id = started["filing"]["filing_id"]
        assert (started["filing"]["state"], started["estimated_cost_eur"]) == ("codice_in_richiesta", 10.0)
        simulator.clock.advance(FILING_DELAY + 1)
        proxy = data(await client.call_tool("download_business_register_proxy", {"filing_id": filing_id,
                                                                                 "save_to": str(files)}))
        assert is_pdf_of_size(Path(proxy["path"]), proxy["size_bytes"])
        not_signed = error_text(await client.call_tool("upload_business_register_documents", {
            "filing_id": filing_id, "documents": [proxy["path"]]}))
        uploaded = data(await client.call_tool("upload_business_register_documents", {
            "filing_id": filing_id, "documents": [str(signed)]}))
        simulator.clock.advance(FILING_DELAY + 1)
        done = data(await client.call_tool("get_business_register_filing", {"filing_id": filing_id}))
        listed = data(await client.call_tool("list_business_register_filings", {}))
    assert "not a digitally signed .p7m" in not_signed
    assert uploaded["state"] == "documenti_caricati"
    assert done["state"] == "comunicazione_evasa"
    assert [f["filing_id"] for f in listed["filings"]] == [filing_id]
    assert simulator.openapi_pec.wallet == START_WALLET - PRICES["filing"]


async def test_a_filing_dry_run_files_nothing(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator
) -> None:
    async with connect(settings) as client:
        preview = data(await client.call_tool("file_pec_with_business_register", {**FILING, "dry_run": True}))
    assert (preview["status"], preview["estimated_cost_eur"]) == ("preview", 10.0)
    assert simulator.openapi_pec.filings == {}


# -------------------------------------------------------------------------------------- callbacks (events)


@asynccontextmanager
async def with_callbacks(settings: Settings, simulator: Simulator) -> AsyncIterator[Client]:
    """A server whose simulator calls back into its own openapi handler, as the offline environment does."""
    built = build(settings, transport=httpx.ASGITransport(app=simulator.app))
    simulator.openapi_pec.send_callback = in_process_sender(built.holder.get)
    async with Client(built.mcp, elicitation_callback=accept) as client:
        yield client


async def test_state_changes_reported_by_callback_are_shown_with_the_mailbox(
    make_settings: Callable[..., Settings], simulator: Simulator, files: Path
) -> None:
    settings = make_settings(openapi_pec={"callback_url": "https://pec-mcp.example/webhooks/openapi"},
                             http={"webhook_token": "hook-secret"})
    async with with_callbacks(settings, simulator) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        box = data(await client.call_tool("get_mailbox", {"mailbox_id": mailbox_id}))
    assert [c["state"] for c in box["callbacks"]] == ["evasa", "in_evasione"]
    [registered] = simulator.openapi_pec.boxes.values()
    callback = registered.record["callback"]
    assert callback["method"] == "JSON"
    assert callback["url"] == "https://pec-mcp.example/webhooks/openapi?token=hook-secret"


async def test_the_offline_server_wires_its_own_simulator_callbacks(
    make_settings: Callable[..., Settings], files: Path
) -> None:
    built = build(make_settings())
    async with Client(built.mcp, elicitation_callback=accept) as client:
        mailbox_id: str = (await register(client))["mailbox"]["mailbox_id"]
        await client.call_tool("activate_mailbox", {"mailbox_id": mailbox_id, "documents": [pdf(files, "f.pdf")]})
        own = built.holder.get().simulator
        assert own is not None
        own.clock.advance(ACTIVATION_DELAY + 1)
        box = data(await client.call_tool("get_mailbox", {"mailbox_id": mailbox_id}))
    assert box["state"] == "evasa"
    assert [c["state"] for c in box["callbacks"]] == ["evasa", "in_evasione"]


def _mcp_app(app: Any) -> Any:
    # build_http_app wraps the Starlette app in middleware objects that each keep it as ``.app``.
    while not hasattr(app, "router"):
        app = app.app
    return app


async def test_the_openapi_webhook_needs_the_token_and_stores_a_replay_once(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(http={"webhook_token": "hook-secret"})
    app = build_http_app(settings, host="127.0.0.1")
    inner = _mcp_app(app)
    document = {"id": "a" * 24, "casella_pec": ADDRESS, "stato": "evasa", "tipo_casella": "BRONZE",
                "timestamp": {"registrazione": 1, "ultima_modifica": 2}, "codice_fiscale_richiedente": "RSS"}
    form = {"data": json.dumps(document)}
    async with inner.router.lifespan_context(inner), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        none = await http.post("/webhooks/openapi", data=form)
        wrong = await http.post("/webhooks/openapi?token=nope", data=form)
        first = await http.post("/webhooks/openapi?token=hook-secret", data=form)
        replay = await http.post("/webhooks/openapi?token=hook-secret", data=form)
        as_json = await http.post("/webhooks/openapi?token=hook-secret", json=document)
        stray = await http.post("/webhooks/openapi?token=hook-secret", json={"hello": "world"})
    stored = _stored_events(settings)
    assert (none.status_code, wrong.status_code) == (401, 401)
    assert first.json()["stored"] is True
    assert replay.json()["stored"] is False and as_json.json()["stored"] is False
    assert stray.json()["stored"] is False
    assert [(e["message_id"], e["kind"]) for e in stored] == [("a" * 24, "evasa")]
    assert "codice_fiscale_richiedente" not in stored[0]["payload"]


def _stored_events(settings: Settings) -> list[dict[str, Any]]:
    store = Store(settings.store.path)
    try:
        return store.events(provider="openapi_pec", environment="offline")
    finally:
        store.close()


# ------------------------------------------------------------------------------------- users (multiutenza)

USER = {"first_name": "Luca", "last_name": "Bianchi", "description": "segreteria", "password_email": "luca@example.com"}


async def test_a_user_is_added_to_an_active_mailbox_after_a_priced_confirmation(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        mailbox_id = await active_mailbox(client, simulator, files)
        wallet = simulator.openapi_pec.wallet
        preview = data(await client.call_tool("add_mailbox_user", {"mailbox_id": mailbox_id, **USER, "dry_run": True}))
        assert simulator.openapi_pec.wallet == wallet and preview["status"] == "preview"
        asked.questions.clear()
        added = data(await client.call_tool("add_mailbox_user", {"mailbox_id": mailbox_id, **USER}))
        shown = data(await client.call_tool("get_mailbox", {"mailbox_id": mailbox_id}))
        ledger = json.loads((await client.read_resource("pec://ledger")).contents[0].text)  # type: ignore[union-attr]
    assert preview["estimated_cost_eur"] == float(LIST_PRICES_EUR["user"])
    assert len(asked.questions) == 1 and "Luca Bianchi" in asked.questions[0] and "€1.00" in asked.questions[0]
    assert added["status"] == "done" and added["mailbox"]["users"] == 1 and shown["users"] == 1
    assert "luca@example.com" in added["note"] and "login is MA" in added["note"]
    assert simulator.openapi_pec.wallet == wallet - PRICES["user"]
    assert simulator.openapi_pec.boxes[mailbox_id].users[0]["id_utenza"] == f"{mailbox_id}_0"
    assert ("add_mailbox_user", "done (user_confirmed)", mailbox_id) in [
        (a["action"], a["outcome"], a["ref"]) for a in ledger["audit"]]


async def test_a_user_cannot_be_added_to_a_mailbox_that_is_not_active_or_is_declined(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        registered = (await register(client))["mailbox"]["mailbox_id"]
        refused = error_text(await client.call_tool("add_mailbox_user", {"mailbox_id": registered, **USER}))
        bad_email = error_text(await client.call_tool("add_mailbox_user", {
            "mailbox_id": registered, **USER, "password_email": "not an address"}))

    async def no_to_new_users(context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
        return t.ElicitResult(action="decline") if "Add the user" in params.message else await accept(context, params)

    async with connect(settings, elicitation=no_to_new_users) as client:
        mailbox_id = await active_mailbox(client, simulator, files, address="altro@testcert.legalmail.it")
        declined = error_text(await client.call_tool("add_mailbox_user", {"mailbox_id": mailbox_id, **USER}))
    assert "only on an active mailbox" in refused and "get_mailbox" in refused
    assert "not a valid email address" in bad_email
    assert "declined" in declined and simulator.openapi_pec.boxes[mailbox_id].users == []
