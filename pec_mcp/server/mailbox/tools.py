"""The ``mailbox`` toolset: the life of a Legalmail PEC mailbox through openapi.it, and business-register filings.

A new customer goes: check_pec_address -> register_mailbox (paid) -> download_mailbox_form -> sign ->
activate_mailbox -> get_mailbox (registrata, in_evasione, evasa) -> renew / upgrade (paid) -> revoke_mailbox.
Paid and destructive actions are planned first (read the mailbox, check the API's rules, price them from
``mailbox_prices``), then pass the confirmation gate, then are written to the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar, cast

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer, Resolve
from pydantic import Field

from pec_mcp.errors import OutcomeUnknown, ProviderError
from pec_mcp.mailbox_rules import address_problem, rules_for
from pec_mcp.paths import allowed_target, write_new_file
from pec_mcp.providers.openapi_pec import BusinessRegisterFiling, Mailbox
from pec_mcp.server.annotations import CHANGE, DELETE, READ, SEND
from pec_mcp.server.errors import resource_errors, tool_errors
from pec_mcp.server.gate import Confirmation, actor_of, require_yes, state_of
from pec_mcp.server.mailbox.models import (
    AddressCheckResult,
    DomainCheckResult,
    FilingActionResult,
    FilingListResult,
    FilingResult,
    MailboxActionResult,
    MailboxListResult,
    MailboxResult,
    SavedFileResult,
    filing_info,
    filing_result,
    mailbox_info,
    mailbox_result,
)

# The plans and approvals are named inside the tools' Annotated[..., Resolve(...)] parameters, which the SDK
# resolves against this module's globals: every one of them must be imported here.
from pec_mcp.server.mailbox.plans import (
    Plan,
    _approve_conservation,
    _approve_filing,
    _approve_register,
    _approve_renew,
    _approve_revoke,
    _approve_space,
    _approve_type,
    _approve_user,
    _conservation_plan,
    _filing_plan,
    _fits,
    _read_documents,
    _register_plan,
    _renew_plan,
    _revoke_plan,
    _space_plan,
    _type_plan,
    _user_plan,
)
from pec_mcp.server.pec.models import Environment
from pec_mcp.server.state import AppState, StateHolder

MailboxTypeName = Literal["STANDARD", "BRONZE", "SILVER", "GOLD", "DOMICILIODIGITALE", "PECMASSIVA"]
UpgradeTypeName = Literal["STANDARD", "BRONZE", "SILVER", "GOLD"]
CustomerTypeName = Literal["business", "professional", "local_public_administration",
                           "central_public_administration", "association", "private_person", "other"]
CustomerSubtypeName = Literal[
    "business_services", "it", "retail", "telecommunications", "publishing", "mechanical_electrical", "food",
    "chemical_pharmaceutical", "construction", "textile_fashion", "furniture", "hotels_restaurants",
    "transport_logistics", "finance", "other", "accountant", "bookkeeper", "notary", "tax_adviser", "lawyer",
    "labour_consultant", "region", "province", "municipality", "mountain_community", "health_authority",
    "chamber_of_commerce",
]
IdDocumentName = Literal["identity_card", "driving_licence", "passport"]
ApplicantRoleName = Literal["director", "judicial_commissioner", "bankruptcy_trustee", "legal_representative",
                            "liquidator", "partner", "owner"]

ItalianDate = r"^\d{2}/\d{2}/\d{4}$"


def _text(description: str, *, max_length: int = 200) -> Any:
    return Field(min_length=1, max_length=max_length, description=description)


MailboxId = Annotated[str, Field(min_length=1, max_length=64, description="The mailbox_id (24 hexadecimal "
                                 "characters) from register_mailbox or list_mailboxes")]
FilingId = Annotated[str, Field(min_length=1, max_length=64, description="The filing_id (24 hexadecimal "
                                "characters) from file_pec_with_business_register or list_business_register_filings")]
DryRun = Annotated[bool, Field(description="true: check everything and return a preview with the estimated cost; "
                               "nothing is done or paid")]
Confirm = Annotated[bool, Field(description="Only for clients that cannot show a confirmation prompt: set true ONLY "
                                "after the user explicitly said yes to this exact action in the conversation")]
SaveTo = Annotated[str, Field(min_length=1, max_length=4096, description="Full path of the PDF file to create, or "
                              "of a folder to save it in, inside attachments.allowed_dirs; never overwrites")]
T = TypeVar("T")


def _env(app: AppState) -> Environment:
    return cast(Environment, app.environment)


async def _audited(ctx: Context[Any], plan: Plan, via: str, call: Awaitable[T], ref: str | None = None) -> T:
    """Run a paid or destructive call and write its outcome to the audit trail (who asked, how approved)."""
    app, actor = state_of(ctx), actor_of(ctx, via)
    summary = f"{plan.summary}; estimated €{plan.cost:.2f}"

    def record(outcome: str, reference: str | None) -> None:
        app.store.record_audit(action=plan.action, actor=actor, environment=app.environment, summary=summary,
                               outcome=outcome, ref=reference)

    try:
        result = await call
    except OutcomeUnknown:
        record("unknown", ref)
        raise
    except ProviderError as exc:
        record(f"refused: {exc.message}"[:300], ref)
        raise
    if isinstance(result, Mailbox):
        ref = result.mailbox_id
    elif isinstance(result, BusinessRegisterFiling):
        ref = result.filing_id
    record(f"done ({via})", ref)
    return result


def _preview(app: AppState, plan: Plan) -> MailboxActionResult:
    return MailboxActionResult(
        status="preview", action=plan.summary, address=plan.address,
        mailbox=mailbox_info(plan.mailbox) if plan.mailbox else None, estimated_cost_eur=float(plan.cost),
        environment=_env(app), note="Preview only: nothing was done or paid. " + plan.question,
    )


def _done(app: AppState, plan: Plan, box: Mailbox, note: str) -> MailboxActionResult:
    return MailboxActionResult(status="done", action=plan.summary, address=box.address, mailbox=mailbox_info(box),
                               estimated_cost_eur=float(plan.cost), environment=_env(app), note=note)


def _mailbox_view(app: AppState, box: Mailbox, note: str = "") -> MailboxResult:
    events = app.store.events(provider="openapi_pec", environment=app.environment, message_id=box.mailbox_id,
                              limit=20)
    return mailbox_result(box, environment=_env(app), callbacks=events, note=note or MAILBOX_NEXT.get(box.state, ""))


MAILBOX_NEXT = {
    "registrata": "Next: download_mailbox_form(form='activation'), have it signed, then activate_mailbox with the "
                  "signed form and an identity document (PDF).",
    "in_evasione": "openapi.it is activating it; check again later with get_mailbox.",
    "evasa": "Active.",
    "revocata": "Revoked; renew_mailbox re-activates it (paid).",
    "documenti_errati": "The documents were refused: upload them again with activate_mailbox.",
}


def register(mcp: MCPServer[Any], holder: StateHolder) -> None:
    """Add the mailbox tools and the ``pec://mailboxes/{mailbox_id}`` resource to the server."""
    _register_checks_and_reads(mcp)
    _register_lifecycle(mcp)
    _register_upgrades(mcp)
    _register_business_register(mcp)

    @mcp.resource("pec://mailboxes/{mailbox_id}", mime_type="application/json", title="A PEC mailbox")
    async def mailbox_resource(mailbox_id: str, ctx: Context[Any]) -> str:
        """One openapi.it PEC mailbox: state, dates, spaces, and the state changes its callbacks reported."""
        app = state_of(ctx)
        with resource_errors(app.redactor):
            box = await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id)
            return json.dumps(_mailbox_view(app, box).model_dump(mode="json"), ensure_ascii=False, indent=2)


def _register_checks_and_reads(mcp: MCPServer[Any]) -> None:
    @mcp.tool(title="Is this PEC address free?", annotations=READ)
    async def check_pec_address(
        ctx: Context[Any],
        address: Annotated[str, _text("The PEC address to check, e.g. studio.rossi@legalmail.it", max_length=254)],
    ) -> AddressCheckResult:
        """Check with openapi.it whether a new PEC address can still be registered. Free. Use it before
        register_mailbox."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            problem = address_problem(address, rules_for(app.settings))
            if problem is not None:  # no call: openapi.it could never register it, free or not
                return AddressCheckResult(address=address.strip().lower(), available=False, environment=_env(app),
                                          note=problem[0].upper() + problem[1:] + ".")
            check = await app.openapi_pec().check_address(address=address)
            note = ("Available: register_mailbox can register it (paid)." if check.available
                    else "Already taken: choose another address.")
            return AddressCheckResult(address=check.address, available=check.available, environment=_env(app),
                                      note=note)

    @mcp.tool(title="Is this a PEC domain?", annotations=READ)
    async def check_pec_domain(
        ctx: Context[Any], domain: Annotated[str, _text("A domain, e.g. legalmail.it", max_length=253)],
    ) -> DomainCheckResult:
        """Check with openapi.it whether a domain is a known PEC (certified email) domain, e.g. to tell whether
        an address can receive PEC at all. Free."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            check = await app.openapi_pec().check_domain(domain=domain)
            return DomainCheckResult(domain=check.domain, is_pec_domain=check.is_pec_domain,
                                     provider_message=check.message, environment=_env(app))

    @mcp.tool(title="List PEC mailboxes", annotations=READ)
    async def list_mailboxes(ctx: Context[Any]) -> MailboxListResult:
        """List every PEC mailbox of the openapi.it account with its state and expiry. Free."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            boxes = await app.openapi_pec().list_mailboxes()
            note = f"{len(boxes)} mailbox(es). get_mailbox gives the details of one." if boxes else "No mailbox yet."
            return MailboxListResult(mailboxes=[mailbox_info(b) for b in boxes], environment=_env(app), note=note)

    @mcp.tool(title="A PEC mailbox", annotations=READ)
    async def get_mailbox(ctx: Context[Any], mailbox_id: MailboxId) -> MailboxResult:
        """One PEC mailbox: its state (registrata -> in_evasione -> evasa = active; revocata), dates, spaces, the
        state changes openapi.it reported by callback, and what to do next. Free."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            return _mailbox_view(app, await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id))

    @mcp.tool(title="Download a mailbox form", annotations=CHANGE)
    async def download_mailbox_form(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        save_to: SaveTo,
        form: Annotated[Literal["activation", "conservation"], Field(description="activation: the form to sign for "
                        "activate_mailbox; conservation: the form to sign for enable_mailbox_conservation")] =
        "activation",
    ) -> SavedFileResult:
        """Save the PDF form openapi.it pre-fills for a mailbox, to be signed: the activation form (after
        register_mailbox) or the legal-conservation form (active mailboxes). Free. Never overwrites a file."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            target = allowed_target(save_to, app.settings.attachments.resolved_dirs(),
                                    default_name=f"pec-{form}-form-{mailbox_id}.pdf")
            client = app.openapi_pec()
            if form == "activation":
                content = await client.download_activation_form(mailbox_id=mailbox_id)
                use = "activate_mailbox, with an identity document (PDF)"
            else:
                content = await client.download_conservation_form(mailbox_id=mailbox_id)
                use = "enable_mailbox_conservation"
            write_new_file(target, content)
            return SavedFileResult(what=f"{form} form of mailbox {mailbox_id}", path=str(target),
                                   size_bytes=len(content), environment=_env(app),
                                   note=f"Have it signed (by hand and scanned to PDF, or digitally), then pass it to "
                                        f"{use}.")


def _register_lifecycle(mcp: MCPServer[Any]) -> None:
    @mcp.tool(title="Register a new PEC mailbox", annotations=SEND)
    async def register_mailbox(
        ctx: Context[Any],
        address: Annotated[str, _text("The new PEC address. Production: ...@legalmail.it (STANDARD..GOLD), "
                                      "...@domiciliodigitale.com, ...@pecmassiva.com; sandbox and offline: "
                                      "...@testcert.legalmail.it (STANDARD..GOLD) or @test.domiciliodigitale.com",
                                      max_length=254)],
        mailbox_type: Annotated[MailboxTypeName, Field(description="Legalmail product: STANDARD < BRONZE < SILVER < "
                                "GOLD (more space and archive), DOMICILIODIGITALE (private persons' digital "
                                "domicile), PECMASSIVA (bulk sending)")],
        customer_type: Annotated[CustomerTypeName, Field(description="Who the holder is")],
        applicant_first_name: Annotated[str, _text("First name of the person applying")],
        applicant_last_name: Annotated[str, _text("Last name of the person applying")],
        applicant_tax_code: Annotated[str, _text("Italian tax code (codice fiscale) of the applicant", max_length=32)],
        applicant_birth_date: Annotated[str, Field(pattern=ItalianDate, description="Birth date, dd/mm/yyyy")],
        applicant_gender: Annotated[Literal["M", "F"], Field(description="M or F, as on the tax code")],
        applicant_email: Annotated[str, _text("Ordinary email of the applicant (not PEC)", max_length=254)],
        applicant_phone: Annotated[str, _text("Phone number of the applicant", max_length=32)],
        holder_address: Annotated[str, _text("Street and number of the holder (company seat or residence)")],
        holder_city: Annotated[str, _text("City (comune) of the holder")],
        holder_postal_code: Annotated[str, _text("Postal code (CAP) of the holder", max_length=16)],
        holder_province: Annotated[str, _text("Province code of the holder, e.g. RM", max_length=8)],
        plan: Annotated[Plan, Resolve(_register_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_register)],
        customer_subtype: Annotated[CustomerSubtypeName | None, Field(description="Sector or profession; only for "
                                    f"these customer types: {_fits()}")] = None,
        customer_subtype_other: Annotated[str | None, Field(max_length=200, description="Free text when "
                                          "customer_subtype is 'other'")] = None,
        applicant_birth_country: Annotated[str, Field(min_length=2, max_length=2, description="Country of birth, "
                                           "ISO 3166 two letters")] = "IT",
        applicant_birth_city: Annotated[str | None, Field(max_length=200, description="City of birth")] = None,
        applicant_birth_province: Annotated[str | None, Field(max_length=8, description="Province of birth, e.g. "
                                            "RM (Italy only)")] = None,
        applicant_mobile: Annotated[str | None, Field(max_length=32, description="Mobile number")] = None,
        holder_name: Annotated[str | None, Field(max_length=200, description="Company or organisation name, when "
                               "the holder is not the applicant as a person")] = None,
        holder_tax_id: Annotated[str | None, Field(max_length=32, description="Tax code or VAT number of the "
                                 "holder")] = None,
        holder_country: Annotated[str, Field(min_length=2, max_length=2, description="Country of the holder, ISO "
                                  "3166 two letters")] = "IT",
        id_document_type: Annotated[IdDocumentName | None, Field(description="Identity document of the "
                                    "applicant")] = None,
        id_document_number: Annotated[str | None, Field(max_length=64, description="Its number")] = None,
        id_document_expiry: Annotated[str | None, Field(pattern=ItalianDate, description="Its expiry date, "
                                      "dd/mm/yyyy")] = None,
        id_document_issuer: Annotated[str | None, Field(max_length=200, description="Who issued it, e.g. Comune "
                                      "di Roma")] = None,
        id_document_issue_date: Annotated[str | None, Field(pattern=ItalianDate, description="Its issue date, "
                                          "dd/mm/yyyy")] = None,
        auto_renew: Annotated[bool, Field(description="Renew automatically from the openapi.it wallet when it "
                              "expires")] = False,
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> MailboxActionResult:
        """Register (and pay for) a new Legalmail PEC mailbox through openapi.it. Costs its first year, charged
        to the openapi.it wallet (the estimated price is shown first). Check the address with check_pec_address,
        preview with dry_run=true; the user is then asked to confirm (a client that cannot ask: ask them and pass
        confirm=true only after they said yes). The mailbox starts as 'registrata': then download_mailbox_form,
        sign it, and activate_mailbox with the signed form and an identity document."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return _preview(app, plan)
            via = require_yes(approval)
            assert plan.registration is not None
            box = await _audited(ctx, plan, via, app.openapi_pec().register_mailbox(registration=plan.registration))
            return _done(app, plan, box, "Registered and paid. " + MAILBOX_NEXT["registrata"])

    @mcp.tool(title="Activate a PEC mailbox", annotations=CHANGE)
    async def activate_mailbox(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        documents: Annotated[list[str], Field(min_length=1, max_length=10, description="Full paths of PDF files "
                             "inside attachments.allowed_dirs: the signed activation form and the applicant's "
                             "identity document (DOMICILIODIGITALE and PECMASSIVA: both in one single PDF)")],
    ) -> MailboxResult:
        """Send openapi.it the signed activation form and the identity document of a registered mailbox; it
        then moves to 'in_evasione' and, once openapi.it has checked them, to 'evasa' (active). Free."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            contents = _read_documents(app, documents, "pdf")
            box = await app.openapi_pec().activate_mailbox(mailbox_id=mailbox_id, documents=contents)
            return _mailbox_view(app, box, "Documents sent. " + MAILBOX_NEXT["in_evasione"])

    @mcp.tool(title="Renew a PEC mailbox", annotations=SEND)
    async def renew_mailbox(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        plan: Annotated[Plan, Resolve(_renew_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_renew)],
        years: Annotated[int, Field(ge=1, le=10, description="How many years to add")] = 1,
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> MailboxActionResult:
        """Renew an active mailbox, or re-activate a revoked one, for some years. Costs the type's yearly price
        per year, charged to the openapi.it wallet (estimated price shown first). Needs the user's yes, like
        register_mailbox."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return _preview(app, plan)
            via = require_yes(approval)
            call = app.openapi_pec().renew_mailbox(mailbox_id=mailbox_id, years=years)
            box = await _audited(ctx, plan, via, call, ref=mailbox_id)
            return _done(app, plan, box, f"Renewed; paid until {box.expires_on or 'the date openapi.it shows'}.")

    @mcp.tool(title="Revoke a PEC mailbox", annotations=DELETE)
    async def revoke_mailbox(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        plan: Annotated[Plan, Resolve(_revoke_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_revoke)],
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> MailboxActionResult:
        """Revoke an active PEC mailbox: it stops receiving certified mail at once and the paid period is not
        refunded; only a paid renew_mailbox brings it back. Only when the user asked for it; needs their yes."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return _preview(app, plan)
            via = require_yes(approval)
            box = await _audited(ctx, plan, via, app.openapi_pec().revoke_mailbox(mailbox_id=mailbox_id),
                                 ref=mailbox_id)
            return _done(app, plan, box, "Revoked. " + MAILBOX_NEXT["revocata"])

    @mcp.tool(title="Add a user to a PEC mailbox", annotations=SEND)
    async def add_mailbox_user(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        first_name: Annotated[str, Field(min_length=1, max_length=100, description="The new user's first name")],
        last_name: Annotated[str, Field(min_length=1, max_length=100, description="The new user's last name")],
        description: Annotated[str, Field(min_length=1, max_length=200, description="What the user is for, e.g. "
                                          "'segreteria' (shown in the mailbox's user list)")],
        password_email: Annotated[str, Field(min_length=3, max_length=254, description="Email address where "
                                             "openapi.it sends the new user's password")],
        plan: Annotated[Plan, Resolve(_user_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_user)],
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> MailboxActionResult:
        """Give one more person their own login to an active PEC mailbox (openapi.it 'multiutenza'): STANDARD,
        BRONZE, SILVER or GOLD only, at most 25 users. Paid (estimated price shown first), charged to the
        openapi.it wallet; needs the user's yes, like renew_mailbox. openapi.it emails the password to
        password_email; the result shows the new login."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return _preview(app, plan)
            via = require_yes(approval)
            assert plan.user is not None
            box = await _audited(ctx, plan, via, app.openapi_pec().add_user(mailbox_id=mailbox_id, user=plan.user),
                                 ref=mailbox_id)
            added = box.users[-1] if box.users else None
            login = f" Its login is {added.login}." if added is not None and added.login else ""
            return _done(app, plan, box, f"User added ({len(box.users)} in all).{login} The password was sent "
                         f"to {plan.user.password_email}.")


def _register_upgrades(mcp: MCPServer[Any]) -> None:
    @mcp.tool(title="Add space to a PEC mailbox", annotations=SEND)
    async def upgrade_mailbox_space(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        plan: Annotated[Plan, Resolve(_space_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_space)],
        disk_space_mb: Annotated[int | None, Field(ge=1, le=1_048_576, description="New total mailbox space in "
                                 "MB: a multiple of 1024, more than now")] = None,
        archive_space_mb: Annotated[int | None, Field(ge=1, le=1_048_576, description="New total security archive "
                                    "space in MB: a multiple of 1024, more than now")] = None,
        conservation_space_mb: Annotated[int | None, Field(ge=1, le=1_048_576, description="New total legal "
                                         "conservation space in MB: a multiple of 512, more than now (conservation "
                                         "must be enabled)")] = None,
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> MailboxActionResult:
        """Give an active mailbox more space, as new totals. Paid (estimated €2 per 1024 MB of disk or archive,
        €5 per 512 MB of conservation), charged to the openapi.it wallet; space can never be reduced afterwards.
        Needs the user's yes: preview with dry_run=true first."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return _preview(app, plan)
            via = require_yes(approval)
            call = app.openapi_pec().modify_mailbox(mailbox_id=mailbox_id, disk_space=disk_space_mb,
                                                    archive_space=archive_space_mb,
                                                    conservation_space=conservation_space_mb)
            box = await _audited(ctx, plan, via, call, ref=mailbox_id)
            return _done(app, plan, box, "Space added.")

    @mcp.tool(title="Upgrade the type of a PEC mailbox", annotations=SEND)
    async def upgrade_mailbox_type(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        mailbox_type: Annotated[UpgradeTypeName, Field(description="The higher type: STANDARD < BRONZE < SILVER < "
                                "GOLD")],
        plan: Annotated[Plan, Resolve(_type_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_type)],
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> MailboxActionResult:
        """Upgrade an active mailbox to a higher Legalmail type (more space and archive). Paid: the difference of
        the yearly prices (estimated), charged to the openapi.it wallet; types can never go down again. Needs the
        user's yes: preview with dry_run=true first."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return _preview(app, plan)
            via = require_yes(approval)
            call = app.openapi_pec().transform_mailbox(mailbox_id=mailbox_id, mailbox_type=mailbox_type)
            box = await _audited(ctx, plan, via, call, ref=mailbox_id)
            return _done(app, plan, box, f"Now {box.mailbox_type}.")

    @mcp.tool(title="Enable legal conservation on a PEC mailbox", annotations=SEND)
    async def enable_mailbox_conservation(
        ctx: Context[Any],
        mailbox_id: MailboxId,
        documents: Annotated[list[str], Field(min_length=1, max_length=10, description="Full paths of PDF files "
                             "inside attachments.allowed_dirs: the signed conservation form (download_mailbox_form "
                             "with form='conservation') and the identity document")],
        plan: Annotated[Plan, Resolve(_conservation_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_conservation)],
        space_mb: Annotated[int, Field(ge=512, le=1_048_576, description="Conservation space in MB, a multiple of "
                            "512")] = 512,
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> MailboxActionResult:
        """Turn on legal conservation (conservazione a norma: PEC kept with legal value over the years) for an
        active mailbox. Paid (estimated €5 per 512 MB), charged to the openapi.it wallet. Needs the user's yes:
        preview with dry_run=true first."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return _preview(app, plan)
            via = require_yes(approval)
            call = app.openapi_pec().enable_conservation(mailbox_id=mailbox_id, documents=plan.documents,
                                                         space_mb=space_mb)
            box = await _audited(ctx, plan, via, call, ref=mailbox_id)
            return _done(app, plan, box, "Legal conservation is on.")


def _register_business_register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(title="File a PEC address with the business register", annotations=SEND)
    async def file_pec_with_business_register(
        ctx: Context[Any],
        address: Annotated[str, _text("The company's PEC address to file", max_length=254)],
        company_name: Annotated[str, _text("Company name (ragione sociale)")],
        company_tax_id: Annotated[str, _text("Company tax code or VAT number", max_length=32)],
        company_city: Annotated[str, _text("City (comune) of the registered office")],
        company_province: Annotated[str, _text("Province code of the registered office, e.g. MI", max_length=8)],
        applicant_first_name: Annotated[str, _text("First name of the person filing")],
        applicant_last_name: Annotated[str, _text("Last name of the person filing")],
        applicant_tax_code: Annotated[str, _text("Italian tax code of the person filing", max_length=32)],
        applicant_role: Annotated[ApplicantRoleName, Field(description="Their role in the company")],
        applicant_email: Annotated[str, _text("Their ordinary email", max_length=254)],
        applicant_mobile: Annotated[str, _text("Their mobile number", max_length=32)],
        plan: Annotated[Plan, Resolve(_filing_plan)],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_filing)],
        administrator_pec: Annotated[bool, Field(description="true: the address is the director's own PEC, not the "
                                     "company's")] = False,
        dry_run: DryRun = False,
        confirm: Confirm = False,
    ) -> FilingActionResult:
        """Ask openapi.it to file a company's PEC address with the Italian business register (Registro Imprese,
        comunica_pec), as companies must. Paid (estimated €10), charged to the openapi.it wallet; needs the user's
        yes. Then: download_business_register_proxy, sign it digitally, upload_business_register_documents."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            if dry_run:
                return FilingActionResult(status="preview", address=plan.address, estimated_cost_eur=float(plan.cost),
                                          environment=_env(app), note="Preview only: nothing was done or paid. "
                                          + plan.question)
            via = require_yes(approval)
            assert plan.filing is not None
            filing = await _audited(ctx, plan, via, app.openapi_pec().create_filing(filing=plan.filing))
            return FilingActionResult(status="done", address=filing.address, filing=filing_info(filing),
                                      estimated_cost_eur=float(plan.cost), environment=_env(app),
                                      note="Filing started. " + filing_info(filing).state_meaning)

    @mcp.tool(title="List business-register filings", annotations=READ)
    async def list_business_register_filings(ctx: Context[Any]) -> FilingListResult:
        """Every business-register filing (comunica_pec) of the openapi.it account, with its state. Free."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            filings = await app.openapi_pec().list_filings()
            return FilingListResult(filings=[filing_info(f) for f in filings], environment=_env(app),
                                    note=f"{len(filings)} filing(s)." if filings else "No filing yet.")

    @mcp.tool(title="A business-register filing", annotations=READ)
    async def get_business_register_filing(ctx: Context[Any], filing_id: FilingId) -> FilingResult:
        """One business-register filing: its state and what to do next. Free."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            filing = await app.openapi_pec().get_filing(filing_id=filing_id)
            return filing_result(filing, environment=_env(app))

    @mcp.tool(title="Upload the signed business-register documents", annotations=CHANGE)
    async def upload_business_register_documents(
        ctx: Context[Any],
        filing_id: FilingId,
        documents: Annotated[list[str], Field(min_length=1, max_length=10, description="Full paths of digitally "
                             "signed .p7m files inside attachments.allowed_dirs: the power of attorney and the "
                             "identity document")],
    ) -> FilingResult:
        """Upload the digitally signed (.p7m) power of attorney and identity document of a filing waiting for
        them ('in_attesa_di_documenti'); the business register then completes it. Free."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            contents = _read_documents(app, documents, "p7m")
            filing = await app.openapi_pec().upload_filing_documents(filing_id=filing_id, documents=contents)
            return filing_result(filing, environment=_env(app), note="Documents uploaded.")

    @mcp.tool(title="Download the business-register power of attorney", annotations=CHANGE)
    async def download_business_register_proxy(ctx: Context[Any], filing_id: FilingId,
                                               save_to: SaveTo) -> SavedFileResult:
        """Save the power of attorney (procura) openapi.it prepared for a filing, to be signed digitally (.p7m)
        and uploaded with upload_business_register_documents. Free. Never overwrites a file."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            target = allowed_target(save_to, app.settings.attachments.resolved_dirs(),
                                    default_name=f"procura-registro-imprese-{filing_id}.pdf")
            content = await app.openapi_pec().download_filing_proxy(filing_id=filing_id)
            write_new_file(target, content)
            return SavedFileResult(what=f"power of attorney of filing {filing_id}", path=str(target),
                                   size_bytes=len(content), environment=_env(app),
                                   note="Sign it digitally (CAdES, .p7m), then upload_business_register_documents.")
