"""Plans and approvals of the paid and destructive mailbox tools: the resolvers that run before a tool body."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from mcp.server.mcpserver import Context, Elicit, Resolve
from pydantic import BaseModel, ValidationError

from pec_mcp.config import environment_label
from pec_mcp.errors import InputError
from pec_mcp.mailbox_rules import registration_problem, rules_for
from pec_mcp.paths import allowed_files
from pec_mcp.providers.openapi_pec import (
    SUBTYPES_OF,
    ApplicantRole,
    BusinessRegisterFilingRequest,
    Callback,
    CallbackMethod,
    CustomerSubtype,
    CustomerType,
    IdDocumentType,
    Mailbox,
    MailboxRegistration,
    NewMailboxUser,
)
from pec_mcp.sending import Action, normalise_address
from pec_mcp.server.errors import tool_errors
from pec_mcp.server.gate import Approval, Confirmation, gate, state_of
from pec_mcp.server.mailbox.prices import (
    PRICE_NOTE,
    check_revocable,
    conservation_cost,
    filing_cost,
    registration_cost,
    renewal_cost,
    space_plan,
    type_change_cost,
    user_cost,
)
from pec_mcp.server.state import AppState

# The in-process simulator hands callbacks straight to the webhook handler; this address is never dialled.
IN_PROCESS_CALLBACK_URL = "http://pec-mcp.offline/webhooks/openapi"


def _fits() -> str:
    return "; ".join(f"{kind.name.lower()}: {', '.join(sorted(s.name.lower() for s in subtypes))}"
                     for kind, subtypes in SUBTYPES_OF.items())


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
    user: NewMailboxUser | None = None
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
        problem = registration_problem(registration.address, str(registration.mailbox_type),
                                       rules_for(app.settings))
        if problem is not None:
            raise InputError(problem[0].upper() + problem[1:], hint="Choose an address under one of those domains "
                             "and check it with check_pec_address.")
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


async def _user_plan(ctx: Context[Any], mailbox_id: str, first_name: str, last_name: str, description: str,
                     password_email: str) -> Plan:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        values = dict(first_name=first_name.strip(), last_name=last_name.strip(), description=description.strip(),
                      password_email=normalise_address(password_email))
        try:
            user = NewMailboxUser.model_validate(values)
        except ValidationError as exc:
            raise _invalid(exc, NewMailboxUser, {}, "new user") from None
        box = await app.openapi_pec().get_mailbox(mailbox_id=mailbox_id)
        cost = user_cost(box)
        summary = (f"Add the user {user.first_name} {user.last_name} (\"{user.description}\") to the PEC mailbox "
                   f"{box.address}; openapi.it sends the password to {user.password_email}")
        return _plan(app, "add_mailbox_user", summary, box.address, cost, mailbox=box, user=user)


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


async def _approve_user(ctx: Context[Any], plan: Annotated[Plan, Resolve(_user_plan)], dry_run: bool,
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
