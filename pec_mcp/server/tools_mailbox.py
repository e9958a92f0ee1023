"""The ``mailbox`` toolset: the life of a Legalmail PEC mailbox through openapi.it, and business-register filings.

A new customer goes: check_pec_address -> register_mailbox (paid) -> download_mailbox_form -> sign ->
activate_mailbox -> get_mailbox (registrata, in_evasione, evasa) -> renew / upgrade (paid) -> revoke_mailbox.
Paid and destructive actions are planned first (read the mailbox, check the API's rules, price them from
``mailbox_prices``), then pass the confirmation gate, then are written to the audit trail.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar, cast
from urllib.parse import urlencode

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from pydantic import BaseModel, Field, ValidationError

from pec_mcp.errors import InputError, OutcomeUnknown, ProviderError
from pec_mcp.paths import allowed_files, allowed_target, write_new_file
from pec_mcp.providers.openapi_pec import (
    SUBTYPES_OF,
    ApplicantRole,
    BusinessRegisterFiling,
    BusinessRegisterFilingRequest,
    Callback,
    CallbackMethod,
    CustomerSubtype,
    CustomerType,
    IdDocumentType,
    Mailbox,
    MailboxRegistration,
)
from pec_mcp.sending import Action, environment_label
from pec_mcp.server.annotations import CHANGE, DELETE, READ, SEND
from pec_mcp.server.errors import resource_errors, tool_errors
from pec_mcp.server.gate import Approval, Confirmation, actor_of, gate, require_yes, state_of
from pec_mcp.server.mailbox_models import (
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
from pec_mcp.server.mailbox_prices import (
    PRICE_NOTE,
    check_revocable,
    conservation_cost,
    filing_cost,
    registration_cost,
    renewal_cost,
    space_plan,
    type_change_cost,
)
from pec_mcp.server.pec_models import Environment
from pec_mcp.server.state import AppState, StateHolder

# The in-process simulator hands callbacks straight to the webhook handler; this address is never dialled.
IN_PROCESS_CALLBACK_URL = "http://pec-mcp.offline/webhooks/openapi"

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


def _fits() -> str:
    return "; ".join(f"{kind.name.lower()}: {', '.join(sorted(s.name.lower() for s in subtypes))}"
                     for kind, subtypes in SUBTYPES_OF.items())


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


@dataclass(frozen=True)
class Plan:
    """A paid or destructive action, checked and priced before the user is asked; deterministic per request."""

    action: Action
    summary: str
    address: str
    cost: Decimal
    question: str
    mailbox: Mailbox | None = None
    registration: MailboxRegistration | None = None
    filing: BusinessRegisterFilingRequest | None = None
    documents: list[bytes] = field(default_factory=list)


def _plan(app: AppState, action: Action, summary: str, address: str, cost: Decimal, *, free_note: str = "",
          **extra: Any) -> Plan:
    price = f"Estimated cost: €{cost:.2f} ({PRICE_NOTE})." if cost else free_note
    question = f"{summary}. {price} Environment: {environment_label(app.environment)}."
    return Plan(action=action, summary=summary, address=address, cost=cost, question=question, **extra)


def _invalid(exc: ValidationError, model: type[BaseModel], renamed: dict[str, str], what: str) -> InputError:
    """A pydantic error on a request model, told with the tool's argument names."""
    by_alias = {info.alias: name for name, info in model.model_fields.items() if info.alias}
    problems = []
    for error in exc.errors():
        raw = str(error["loc"][0]) if error["loc"] else ""
        name = by_alias.get(raw, raw)
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{renamed.get(name, name)}: {message}" if name else message)
    return InputError(f"The {what} is not valid: " + "; ".join(problems), hint="Correct these arguments.")


def _callback(app: AppState) -> Callback | None:
    """Where openapi.it reports state changes: openapi_pec.callback_url (plus the webhook token), or in-process."""
    url = app.settings.openapi_pec.callback_url
    if not url:
        return Callback(url=IN_PROCESS_CALLBACK_URL, method=CallbackMethod.JSON) if app.simulator else None
    token = app.settings.http.webhook_token
    if token is not None and "token=" not in url:
        url += ("&" if "?" in url else "?") + urlencode({"token": token.get_secret_value()})
    return Callback(url=url, method=CallbackMethod.JSON)


def _read_documents(app: AppState, paths: list[str], kind: Literal["pdf", "p7m"]) -> list[bytes]:
    """The files' bytes, each inside the allowed folders and of the kind openapi.it accepts."""
    attachments = app.settings.attachments
    files = allowed_files(paths, attachments.resolved_dirs(), max_total_mb=attachments.max_total_mb)
    contents = []
    for path, _size in files:
        content = path.read_bytes()
        if kind == "pdf" and not content.startswith(b"%PDF"):
            raise InputError(f"{path.name} is not a PDF file (it does not start with %PDF): openapi.it refuses it "
                             "(wrong file format, pdf required)",
                             hint="Export or scan the signed form and the identity document as PDF files.")
        # A CAdES .p7m is DER (first byte 0x30) or, less often, PEM.
        if kind == "p7m" and not content.startswith((b"\x30", b"-----BEGIN")):
            raise InputError(f"{path.name} is not a digitally signed .p7m file: openapi.it refuses it "
                             "(wrong file format, p7m required)",
                             hint="Sign the documents digitally (CAdES) and pass the .p7m files.")
        contents.append(content)
    return contents


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


# -- plans (resolvers: they run before the tool body, possibly more than once) ---------------------------------


async def _register_plan(
    ctx: Context[Any], address: str, mailbox_type: str, customer_type: str, customer_subtype: str | None,
    customer_subtype_other: str | None, applicant_first_name: str, applicant_last_name: str,
    applicant_tax_code: str, applicant_birth_date: str, applicant_gender: str, applicant_birth_country: str,
    applicant_birth_city: str | None, applicant_birth_province: str | None, applicant_email: str,
    applicant_phone: str, applicant_mobile: str | None, holder_name: str | None, holder_tax_id: str | None,
    holder_address: str, holder_city: str, holder_postal_code: str, holder_province: str, holder_country: str,
    id_document_type: str | None, id_document_number: str | None, id_document_expiry: str | None,
    id_document_issuer: str | None, id_document_issue_date: str | None, auto_renew: bool,
) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        kind = CustomerType[customer_type.upper()]
        subtype = CustomerSubtype[customer_subtype.upper()] if customer_subtype else None
        if subtype is not None and subtype not in SUBTYPES_OF.get(kind, frozenset()):
            raise InputError(f"customer_subtype '{customer_subtype}' does not fit customer_type '{customer_type}'",
                             hint=f"Subtypes per customer type: {_fits()}; other customer types take none.")
        values = dict(
            address=address, mailbox_type=mailbox_type, customer_type=kind, customer_subtype=subtype,
            customer_subtype_other=customer_subtype_other, applicant_first_name=applicant_first_name,
            applicant_last_name=applicant_last_name, applicant_tax_code=applicant_tax_code,
            applicant_birth_date=applicant_birth_date, applicant_gender=applicant_gender,
            applicant_birth_country=applicant_birth_country.upper(), applicant_birth_city=applicant_birth_city,
            applicant_birth_province=applicant_birth_province, email=applicant_email, phone=applicant_phone,
            mobile=applicant_mobile, holder_name=holder_name, holder_tax_id=holder_tax_id,
            holder_address=holder_address, holder_city=holder_city, holder_postal_code=holder_postal_code,
            holder_province=holder_province, holder_country=holder_country.upper(), auto_renew=auto_renew,
            id_document_type=IdDocumentType[id_document_type.upper()] if id_document_type else None,
            id_document_number=id_document_number, id_document_expiry=id_document_expiry,
            id_document_issuer=id_document_issuer, id_document_issue_date=id_document_issue_date,
            callback=_callback(app),
        )
        try:
            registration = MailboxRegistration.model_validate(values)
        except ValidationError as exc:
            renamed = {"email": "applicant_email", "phone": "applicant_phone", "mobile": "applicant_mobile"}
            raise _invalid(exc, MailboxRegistration, renamed, "registration") from None
        check = await app.openapi_pec().check_address(address=registration.address)
        if not check.available:
            raise InputError(f"{registration.address} is not available: openapi.it says it is already taken",
                             hint="Choose another address and check it with check_pec_address.")
        holder = holder_name or f"{applicant_first_name} {applicant_last_name}"
        summary = (f"Register the PEC mailbox {registration.address} ({registration.mailbox_type}) for {holder}, "
                   f"auto-renewal {'on' if auto_renew else 'off'}; it is paid now, for its first year")
        return _plan(app, "register_mailbox", summary, registration.address,
                     registration_cost(str(registration.mailbox_type)), registration=registration)


async def _renew_plan(ctx: Context[Any], mailbox_id: str, years: int) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        box = await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id)
        cost = renewal_cost(box, years)
        again = " (this re-activates the revoked mailbox)" if box.state == "revocata" else ""
        summary = (f"Renew the PEC mailbox {box.address} ({box.mailbox_type}) for {years} year"
                   f"{'s' if years > 1 else ''}{again}")
        return _plan(app, "renew_mailbox", summary, box.address, cost, mailbox=box)


async def _revoke_plan(ctx: Context[Any], mailbox_id: str) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        box = await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id)
        check_revocable(box)
        until = f", paid until {box.expires_on:%d/%m/%Y}" if box.expires_on else ""
        summary = (f"Revoke the PEC mailbox {box.address} ({box.mailbox_type}{until}): it stops receiving PEC at "
                   "once, and only a paid renewal brings it back")
        return _plan(app, "revoke_mailbox", summary, box.address, Decimal(0), mailbox=box,
                     free_note="No charge, and no refund of the paid period.")


async def _space_plan(ctx: Context[Any], mailbox_id: str, disk_space_mb: int | None, archive_space_mb: int | None,
                      conservation_space_mb: int | None) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        box = await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id)
        planned = space_plan(box, disk_space_mb=disk_space_mb, archive_space_mb=archive_space_mb,
                             conservation_space_mb=conservation_space_mb)
        summary = f"Add space to the PEC mailbox {box.address}: {', '.join(planned.changes)} (cannot be reduced later)"
        return _plan(app, "upgrade_mailbox_space", summary, box.address, planned.cost, mailbox=box)


async def _type_plan(ctx: Context[Any], mailbox_id: str, mailbox_type: str) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        box = await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id)
        cost = type_change_cost(box, mailbox_type)
        summary = (f"Upgrade the PEC mailbox {box.address} from {box.mailbox_type} to {mailbox_type} "
                   "(cannot be downgraded later)")
        return _plan(app, "upgrade_mailbox_type", summary, box.address, cost, mailbox=box)


async def _conservation_plan(ctx: Context[Any], mailbox_id: str, documents: list[str], space_mb: int) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        contents = _read_documents(app, documents, "pdf")
        box = await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id)
        cost = conservation_cost(box, space_mb)
        summary = f"Enable legal conservation ({space_mb} MB) on the PEC mailbox {box.address}"
        return _plan(app, "enable_mailbox_conservation", summary, box.address, cost, mailbox=box,
                     documents=contents)


async def _filing_plan(
    ctx: Context[Any], address: str, company_name: str, company_tax_id: str, company_city: str,
    company_province: str, applicant_first_name: str, applicant_last_name: str, applicant_tax_code: str,
    applicant_role: str, applicant_email: str, applicant_mobile: str, administrator_pec: bool,
) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        values = dict(
            address=address.strip().lower(), company_name=company_name, company_tax_id=company_tax_id,
            company_city=company_city, company_province=company_province, applicant_first_name=applicant_first_name,
            applicant_last_name=applicant_last_name, applicant_tax_code=applicant_tax_code,
            applicant_role=ApplicantRole[applicant_role.upper()], email=applicant_email, mobile=applicant_mobile,
            administrator_pec=administrator_pec, callback=_callback(app),
        )
        try:
            request = BusinessRegisterFilingRequest.model_validate(values)
        except ValidationError as exc:
            renamed = {"email": "applicant_email", "mobile": "applicant_mobile"}
            raise _invalid(exc, BusinessRegisterFilingRequest, renamed, "filing") from None
        summary = (f"File the PEC address {request.address} of {company_name} ({company_tax_id}) with the Italian "
                   f"business register, on behalf of {applicant_first_name} {applicant_last_name} "
                   f"({applicant_role.replace('_', ' ')})")
        return _plan(app, "file_pec_with_business_register", summary, request.address, filing_cost(),
                     filing=request)


# -- approvals: one per gated tool (the resolver's dependency names its plan) ----------------------------------


async def _approve_register(ctx: Context[Any], plan: Annotated[Plan, Resolve(_register_plan)], dry_run: bool,
                            confirm: bool) -> Elicit[Confirmation] | Approval:
    return gate(ctx, plan.action, plan.question, recipients=1, dry_run=dry_run, confirm=confirm)


async def _approve_renew(ctx: Context[Any], plan: Annotated[Plan, Resolve(_renew_plan)], dry_run: bool,
                         confirm: bool) -> Elicit[Confirmation] | Approval:
    return gate(ctx, plan.action, plan.question, recipients=1, dry_run=dry_run, confirm=confirm)


async def _approve_revoke(ctx: Context[Any], plan: Annotated[Plan, Resolve(_revoke_plan)], dry_run: bool,
                          confirm: bool) -> Elicit[Confirmation] | Approval:
    return gate(ctx, plan.action, plan.question, recipients=1, dry_run=dry_run, confirm=confirm)


async def _approve_space(ctx: Context[Any], plan: Annotated[Plan, Resolve(_space_plan)], dry_run: bool,
                         confirm: bool) -> Elicit[Confirmation] | Approval:
    return gate(ctx, plan.action, plan.question, recipients=1, dry_run=dry_run, confirm=confirm)


async def _approve_type(ctx: Context[Any], plan: Annotated[Plan, Resolve(_type_plan)], dry_run: bool,
                        confirm: bool) -> Elicit[Confirmation] | Approval:
    return gate(ctx, plan.action, plan.question, recipients=1, dry_run=dry_run, confirm=confirm)


async def _approve_conservation(ctx: Context[Any], plan: Annotated[Plan, Resolve(_conservation_plan)],
                                dry_run: bool, confirm: bool) -> Elicit[Confirmation] | Approval:
    return gate(ctx, plan.action, plan.question, recipients=1, dry_run=dry_run, confirm=confirm)


async def _approve_filing(ctx: Context[Any], plan: Annotated[Plan, Resolve(_filing_plan)], dry_run: bool,
                          confirm: bool) -> Elicit[Confirmation] | Approval:
    return gate(ctx, plan.action, plan.question, recipients=1, dry_run=dry_run, confirm=confirm)


def _mailbox_view(app: AppState, box: Mailbox, note: str = "") -> MailboxResult:
    events = app.store.events(provider="openapi_pec", message_id=box.mailbox_id, limit=20)
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
