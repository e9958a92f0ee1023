"""What the mailbox tools return: compact, plain-English models built from the openapi.it PEC client's models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from pec_mcp.providers.openapi_pec import BusinessRegisterFiling, Mailbox
from pec_mcp.server.pec.models import ENV_FIELD, Environment

MAILBOX_STATES: dict[str, str] = {
    "registrata": "registered and paid; waiting for the signed activation form and an identity document "
                  "(download_mailbox_form, sign it, then activate_mailbox)",
    "in_evasione": "documents received; openapi.it is activating the mailbox (check again with get_mailbox)",
    "evasa": "active: the mailbox sends and receives PEC",
    "revocata": "revoked: it no longer receives PEC; renew_mailbox re-activates it (paid)",
    "chiusa": "closed",
    "documenti_errati": "openapi.it refused the activation documents: upload them again with activate_mailbox",
    "registrazione_annullata": "the registration was cancelled",
}

FILING_STATES: dict[str, str] = {
    "codice_in_richiesta": "the business register is preparing the request; check again shortly",
    "in_attesa_di_documenti": "waiting for the signed power of attorney: download_business_register_proxy, sign "
                              "it digitally (.p7m), then upload_business_register_documents",
    "documenti_caricati": "documents uploaded; the business register is processing the filing",
    "comunicazione_evasa": "done: the PEC address is filed with the business register",
}


class MailboxInfo(BaseModel):
    mailbox_id: str = Field(description="24-character id used by every other mailbox tool")
    address: str = Field(description="The PEC address")
    mailbox_type: str = Field(description="STANDARD, BRONZE, SILVER, GOLD, DOMICILIODIGITALE or PECMASSIVA")
    state: str = Field(description="openapi.it state: registrata, in_evasione, evasa (active), revocata, ...")
    state_meaning: str = Field(description="What the state means and what to do next")
    registered_at: datetime | None = Field(None, description="When it was registered (UTC)")
    activated_at: datetime | None = Field(None, description="When openapi.it finished activating it (UTC)")
    expires_on: date | None = Field(None, description="Last day of the paid period")
    revoked_at: datetime | None = Field(None, description="When it was revoked (UTC)")
    auto_renew: bool | None = Field(None, description="Renewed from the openapi.it wallet when it expires")
    disk_space_mb: int | None = Field(None, description="Mailbox space in MB")
    archive_space_mb: int | None = Field(None, description="Security archive space in MB")
    conservation_enabled: bool | None = Field(None, description="Whether legal conservation is active")
    conservation_space_mb: int | None = Field(None, description="Legal conservation space in MB")
    activation_documents: int = Field(0, description="How many activation documents openapi.it holds")
    users: int = Field(0, description="Extra users of the mailbox")


class CallbackEvent(BaseModel):
    state: str = Field(description="The state openapi.it reported")
    received_at: str = Field(description="When pec-mcp received the callback (UTC)")


class MailboxResult(MailboxInfo):
    callbacks: list[CallbackEvent] = Field(default_factory=list, description="State changes openapi.it reported "
                                           "to pec-mcp's callback receiver, newest first")
    environment: Environment = ENV_FIELD
    note: str = Field("", description="What happened and what to do next")


class MailboxListResult(BaseModel):
    mailboxes: list[MailboxInfo]
    environment: Environment = ENV_FIELD
    note: str


class MailboxActionResult(BaseModel):
    status: Literal["done", "preview"] = Field(
        description="done: openapi.it did it; preview: dry run, nothing was done or paid"
    )
    action: str = Field(description="What was (or would be) done, in one line")
    address: str = Field(description="The PEC address concerned")
    mailbox: MailboxInfo | None = Field(None, description="The mailbox after the action (None in a preview of a "
                                        "registration)")
    estimated_cost_eur: float = Field(description="Computed by the server from its list prices; openapi.it "
                                      "charges the contract's price to the wallet")
    environment: Environment = ENV_FIELD
    note: str = Field(description="What this means and what to do next")


class AddressCheckResult(BaseModel):
    address: str
    available: bool = Field(description="true: the address can still be registered with register_mailbox")
    environment: Environment = ENV_FIELD
    note: str


class DomainCheckResult(BaseModel):
    domain: str
    is_pec_domain: bool = Field(description="true if openapi.it knows the domain as a PEC domain")
    provider_message: str = Field(description="openapi.it's own words (data from the provider)")
    environment: Environment = ENV_FIELD


class SavedFileResult(BaseModel):
    what: str = Field(description="Which document was saved")
    path: str = Field(description="Where it was saved")
    size_bytes: int
    environment: Environment = ENV_FIELD
    note: str = Field(description="What to do with it")


class FilingInfo(BaseModel):
    filing_id: str = Field(description="24-character id used by the other business-register tools")
    address: str = Field(description="The PEC address being filed")
    state: str = Field(description="codice_in_richiesta, in_attesa_di_documenti, documenti_caricati, "
                       "comunicazione_evasa")
    state_meaning: str = Field(description="What the state means and what to do next")
    changed_at: datetime | None = Field(None, description="Last change (UTC)")
    company_name: str | None = None
    company_tax_id: str | None = None
    documents: int = Field(0, description="How many documents openapi.it holds for it")


class FilingResult(FilingInfo):
    environment: Environment = ENV_FIELD
    note: str = ""


class FilingListResult(BaseModel):
    filings: list[FilingInfo]
    environment: Environment = ENV_FIELD
    note: str


class FilingActionResult(BaseModel):
    status: Literal["done", "preview"] = Field(description="done: filed; preview: dry run, nothing was done or paid")
    address: str
    filing: FilingInfo | None = Field(None, description="The filing (None in a preview)")
    estimated_cost_eur: float = Field(description="Computed by the server from its list prices")
    environment: Environment = ENV_FIELD
    note: str


def mailbox_info(box: Mailbox) -> MailboxInfo:
    return MailboxInfo(**_mailbox_fields(box))


def _mailbox_fields(box: Mailbox) -> dict[str, Any]:
    return dict(
        mailbox_id=box.mailbox_id, address=box.address, mailbox_type=box.mailbox_type, state=box.state,
        state_meaning=MAILBOX_STATES.get(box.state, "a state pec-mcp does not know"),
        registered_at=box.registered_at, activated_at=box.activated_at, expires_on=box.expires_on,
        revoked_at=box.revoked_at, auto_renew=box.auto_renew, disk_space_mb=box.disk_space_mb,
        archive_space_mb=box.archive_space_mb, conservation_enabled=box.conservation_enabled,
        conservation_space_mb=box.conservation_space_mb, activation_documents=len(box.activation_documents),
        users=len(box.users),
    )


def mailbox_result(box: Mailbox, *, environment: Environment, callbacks: list[dict[str, Any]],
                   note: str = "") -> MailboxResult:
    events = [CallbackEvent(state=e["kind"], received_at=e["received_at"]) for e in callbacks]
    return MailboxResult(**_mailbox_fields(box), callbacks=events, environment=environment, note=note)


def filing_info(filing: BusinessRegisterFiling) -> FilingInfo:
    return FilingInfo(**_filing_fields(filing))


def _filing_fields(filing: BusinessRegisterFiling) -> dict[str, Any]:
    return dict(
        filing_id=filing.filing_id, address=filing.address, state=filing.state,
        state_meaning=FILING_STATES.get(filing.state, "a state pec-mcp does not know"),
        changed_at=filing.changed_at, company_name=filing.company_name, company_tax_id=filing.company_tax_id,
        documents=len(filing.documents),
    )


def filing_result(filing: BusinessRegisterFiling, *, environment: Environment, note: str = "") -> FilingResult:
    return FilingResult(**_filing_fields(filing), environment=environment, note=note)
