"""openapi.it PEC request models and enums: what we send (registrations, filings, users, callbacks), checked here."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DATE_FORMAT = "%d/%m/%Y"
ADDRESS_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A host name: labels of letters, digits and inner hyphens, and a top-level domain of letters.
DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


# --------------------------------------------------------------------------------------------------- enums


class MailboxType(StrEnum):
    """``tipo_casella``: the Legalmail product; the order is the upgrade path of the first four."""

    STANDARD = "STANDARD"
    BRONZE = "BRONZE"
    SILVER = "SILVER"
    GOLD = "GOLD"
    DOMICILIODIGITALE = "DOMICILIODIGITALE"
    PECMASSIVA = "PECMASSIVA"


UPGRADABLE_TYPES = (MailboxType.STANDARD, MailboxType.BRONZE, MailboxType.SILVER, MailboxType.GOLD)
# Space changes, type changes, conservation and extra users are refused on these boxes.
FIXED_TYPES = (MailboxType.DOMICILIODIGITALE, MailboxType.PECMASSIVA)


class CustomerType(StrEnum):
    """``tipo_cliente``."""

    BUSINESS = "IM"  # Impresa
    PROFESSIONAL = "PS"  # Professionista
    LOCAL_PUBLIC_ADMINISTRATION = "PL"
    CENTRAL_PUBLIC_ADMINISTRATION = "PC"
    ASSOCIATION = "A"
    PRIVATE_PERSON = "PV"
    OTHER = "X"


class CustomerSubtype(StrEnum):
    """``sottotipo_cliente``: a business's sector, a profession, or a kind of local administration."""

    BUSINESS_SERVICES = "SI"
    IT = "IN"
    RETAIL = "CM"
    TELECOMMUNICATIONS = "TE"
    PUBLISHING = "ES"
    MECHANICAL_ELECTRICAL = "ME"
    FOOD = "AL"
    CHEMICAL_PHARMACEUTICAL = "CF"
    CONSTRUCTION = "ED"
    TEXTILE_FASHION = "TM"
    FURNITURE = "MA"
    HOTELS_RESTAURANTS = "AR"
    TRANSPORT_LOGISTICS = "TL"
    FINANCE = "FI"
    OTHER = "X"
    ACCOUNTANT = "PC"
    BOOKKEEPER = "PR"
    NOTARY = "PN"
    TAX_ADVISER = "PT"
    LAWYER = "PA"
    LABOUR_CONSULTANT = "PL"
    REGION = "LR"
    PROVINCE = "LP"
    MUNICIPALITY = "LC"
    MOUNTAIN_COMMUNITY = "LM"
    HEALTH_AUTHORITY = "LA"
    CHAMBER_OF_COMMERCE = "LI"


S = CustomerSubtype
# From the spec's TipologieCliente: which subtypes each customer type may carry (others carry none).
SUBTYPES_OF: dict[CustomerType, frozenset[CustomerSubtype]] = {
    CustomerType.BUSINESS: frozenset({S.BUSINESS_SERVICES, S.IT, S.RETAIL, S.TELECOMMUNICATIONS,
                                      S.PUBLISHING, S.MECHANICAL_ELECTRICAL, S.FOOD,
                                      S.CHEMICAL_PHARMACEUTICAL, S.CONSTRUCTION, S.TEXTILE_FASHION,
                                      S.FURNITURE, S.HOTELS_RESTAURANTS,
                                      S.TRANSPORT_LOGISTICS, S.FINANCE, S.OTHER}),
    CustomerType.PROFESSIONAL: frozenset({S.ACCOUNTANT, S.BOOKKEEPER, S.NOTARY, S.TAX_ADVISER, S.LAWYER,
                                          S.LABOUR_CONSULTANT, S.OTHER}),
    CustomerType.LOCAL_PUBLIC_ADMINISTRATION: frozenset({S.REGION, S.PROVINCE, S.MUNICIPALITY,
                                                         S.MOUNTAIN_COMMUNITY, S.HEALTH_AUTHORITY,
                                                         S.CHAMBER_OF_COMMERCE, S.OTHER}),
}
del S


class Gender(StrEnum):
    MALE = "M"
    FEMALE = "F"


class IdDocumentType(StrEnum):
    IDENTITY_CARD = "CARTA_D_IDENTITA"
    DRIVING_LICENCE = "PATENTE"
    PASSPORT = "PASSAPORTO"


class CallbackMethod(StrEnum):
    """``POST``: form field (``field``, default ``data``) holding the JSON; ``JSON``: the JSON as the body."""

    FORM = "POST"
    JSON = "JSON"


class ApplicantRole(StrEnum):
    """``qualifica`` of whoever files a PEC address with the business register."""

    DIRECTOR = "AMMINISTRATORE"
    JUDICIAL_COMMISSIONER = "COMMISSARIO_GIUDIZIARIO"
    BANKRUPTCY_TRUSTEE = "CURATORE_FALLIMENTARE"
    LEGAL_REPRESENTATIVE = "LEGALE_RAPPRESENTANTE"
    LIQUIDATOR = "LIQUIDATORE"
    PARTNER = "SOCIO"
    OWNER = "TITOLARE"


class MailboxState(StrEnum):
    """``stato`` of a mailbox, in the order a mailbox normally goes through them."""

    REGISTERED = "registrata"  # waiting for the signed activation form and ID document
    PROCESSING = "in_evasione"  # documents received, the provider is activating it
    ACTIVE = "evasa"
    REVOKED = "revocata"
    CLOSED = "chiusa"
    WRONG_DOCUMENTS = "documenti_errati"  # upload the activation documents again
    REGISTRATION_CANCELLED = "registrazione_annullata"


class FilingState(StrEnum):
    """``stato`` of a business-register filing (comunica_pec)."""

    CODE_REQUESTED = "codice_in_richiesta"
    AWAITING_DOCUMENTS = "in_attesa_di_documenti"  # sign the power of attorney (p7m) and upload it
    DOCUMENTS_UPLOADED = "documenti_caricati"
    FILED = "comunicazione_evasa"


# ---------------------------------------------------------------------------------------- request models


class _Request(BaseModel):
    # Requests we build are strict: a misspelt field is a bug here, not something to send.
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True, use_enum_values=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _italian_date(value: object) -> object:
    """Accept a ``date`` or a ``dd/mm/yyyy`` string that is a real day; always keep the string form."""
    if isinstance(value, date):
        return value.strftime(DATE_FORMAT)
    if isinstance(value, str):
        try:
            datetime.strptime(value, DATE_FORMAT)
        except ValueError:
            raise ValueError(f"{value!r} is not a date in the form dd/mm/yyyy") from None
    return value


class Callback(_Request):
    """Where openapi.it calls back when the mailbox or filing changes state."""

    url: str = Field(description="HTTPS address the provider calls")
    method: CallbackMethod = Field(CallbackMethod.FORM, description="POST: a form field; JSON: a raw body")
    field: str = Field("data", description="form field that holds the JSON when method is POST")
    data: dict[str, Any] = Field(default_factory=dict, description="your own data, echoed back in the call")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("the callback url must start with https:// or http://")
        return value


class MailboxRegistration(_Request):
    """The body of POST /pec: the new address, its product, the applicant and the holder.

    Building it raises ``pydantic.ValidationError`` for a missing field, a value outside the enums, a subtype
    that does not belong to the customer type, or a date that is not ``dd/mm/yyyy``.
    """

    address: str = Field(alias="casella_pec", description="the new PEC address")
    mailbox_type: MailboxType = Field(alias="tipo_casella")
    customer_type: CustomerType = Field(alias="tipo_cliente")
    customer_subtype: CustomerSubtype | None = Field(None, alias="sottotipo_cliente")
    customer_subtype_other: str | None = Field(None, alias="sottotipo_cliente_altro")
    applicant_first_name: str = Field(alias="nome_richiedente", min_length=1)
    applicant_last_name: str = Field(alias="cognome_richiedente", min_length=1)
    email: str = Field(alias="email", description="ordinary email of the applicant")
    phone: str = Field(alias="telefono", min_length=1)
    mobile: str | None = Field(None, alias="cellulare")
    applicant_tax_code: str = Field(alias="codice_fiscale_richiedente", min_length=1)
    applicant_birth_date: str = Field(alias="data_nascita_richiedente", description="dd/mm/yyyy")
    applicant_gender: Gender = Field(alias="sesso_richiedente")
    applicant_birth_country: str = Field(alias="nazione_nascita_richiedente", min_length=2, max_length=2)
    applicant_birth_city: str | None = Field(None, alias="comune_nascita_richiedente")
    applicant_birth_province: str | None = Field(None, alias="provincia_nascita_richiedente")
    holder_name: str | None = Field(None, alias="denominazione_titolare", description="company name, if any")
    holder_tax_id: str | None = Field(None, alias="cf_piva_titolare")
    holder_address: str = Field(alias="indirizzo_titolare", min_length=1)
    holder_city: str = Field(alias="comune_titolare", min_length=1)
    holder_postal_code: str = Field(alias="cap_titolare", min_length=1)
    holder_country: str = Field(alias="nazione_titolare", min_length=2, max_length=2)
    holder_province: str = Field(alias="provincia_titolare", min_length=1)
    callback: Callback | None = None
    auto_renew: bool = Field(False, alias="autorinnovo", description="renew from the wallet when it expires")
    id_document_type: IdDocumentType | None = Field(None, alias="tipo_documento")
    id_document_number: str | None = Field(None, alias="numero_documento")
    id_document_expiry: str | None = Field(None, alias="data_scadenza_documento", description="dd/mm/yyyy")
    id_document_issuer: str | None = Field(None, alias="documento_rilasciato_da")
    id_document_issue_date: str | None = Field(None, alias="data_rilascio_documento",
                                               description="dd/mm/yyyy")

    @field_validator("applicant_birth_date", "id_document_expiry", "id_document_issue_date", mode="before")
    @classmethod
    def _dates(cls, value: object) -> object:
        return _italian_date(value)

    @field_validator("address", "email")
    @classmethod
    def _looks_like_address(cls, value: str) -> str:
        if not ADDRESS_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value.strip().lower()

    @model_validator(mode="after")
    def _subtype_fits(self) -> MailboxRegistration:
        allowed = SUBTYPES_OF.get(CustomerType(self.customer_type), frozenset())
        if self.customer_subtype is not None and CustomerSubtype(self.customer_subtype) not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"customer subtype {self.customer_subtype} does not fit customer type "
                             f"{self.customer_type} (allowed: {names})")
        return self


class NewMailboxUser(_Request):
    """One more user of a mailbox (multiutenza)."""

    first_name: str = Field(alias="nome", min_length=1)
    last_name: str = Field(alias="cognome", min_length=1)
    description: str = Field(alias="descrizione", min_length=1)
    password_email: str = Field(alias="email_gestione_password", description="where the password is sent")


class BusinessRegisterFilingRequest(_Request):
    """The body of POST /comunica_pec: file a PEC address with the Italian business register."""

    address: str = Field(alias="casella_pec")
    applicant_tax_code: str = Field(alias="cf", min_length=1)
    applicant_first_name: str = Field(alias="nome", min_length=1)
    applicant_last_name: str = Field(alias="cognome", min_length=1)
    applicant_role: ApplicantRole = Field(alias="qualifica")
    email: str = Field(alias="email")
    mobile: str = Field(alias="cellulare", min_length=1)
    company_name: str = Field(alias="ragione_sociale", min_length=1)
    company_tax_id: str = Field(alias="cf_piva", min_length=1)
    company_city: str = Field(alias="comune", min_length=1)
    company_province: str = Field(alias="provincia", min_length=1)
    administrator_pec: bool = Field(False, alias="pec_amministratore")
    callback: Callback | None = None
