"""openapi.it PEC (pec.openapi.it): availability checks and the whole life of a Legalmail PEC mailbox.

One keyword-only async method per endpoint of ``pec.openapi.json``. Requests are built from models that refuse
unknown fields; answers are read through wire models that keep the provider's Italian names (aliases) and
ignore fields they do not know, then returned as plain-English models. Every failure is a ``pec_mcp.errors``:

- ``InputError``            the arguments were checked here and are wrong; nothing was sent;
- ``AuthenticationFailed``  401/403: the Bearer token is wrong, expired or lacks the scope;
- ``NotFound``              404, or 400 "Wrong id": the mailbox or filing id is unknown or malformed;
- ``Rejected``              406/428 (a rule of the API: downgrade, wrong state, not a PDF...), other 4xx,
                            and ``success:false`` with HTTP 200;
- ``InsufficientCredit``    402: the openapi.it wallet cannot pay for this;
- ``RateLimited``           429;
- ``ProviderUnavailable``   5xx (503 "service temporarily unavailable"), HTML error pages, no connection;
- ``BadResponse``           an answer that cannot be read;
- ``OutcomeUnknown``        a paid or state-changing request went out and its answer was lost.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pec_mcp.errors import (
    AuthenticationFailed,
    BadResponse,
    InputError,
    InsufficientCredit,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    Rejected,
)
from pec_mcp.http import NO_RETRY, retry_after_seconds
from pec_mcp.providers import wire
from pec_mcp.providers.openapi_pec_models import (
    ADDRESS_PATTERN,
    DATE_FORMAT,
    DOMAIN_PATTERN,
    FIXED_TYPES,
    SUBTYPES_OF,
    UPGRADABLE_TYPES,
    ApplicantRole,
    BusinessRegisterFilingRequest,
    Callback,
    CallbackMethod,
    CustomerSubtype,
    CustomerType,
    FilingState,
    Gender,
    IdDocumentType,
    MailboxRegistration,
    MailboxState,
    MailboxType,
    NewMailboxUser,
)

PROVIDER = "openapi.it PEC"

# Spaces are megabytes; the API only moves them in these steps (PATCH /pec/{id}/modifica, /conservazione).
SPACE_STEP_MB = 1024
CONSERVATION_STEP_MB = 512
MAX_USERS = 25

# The client, its answers and its error mapping; and the request models and enums, which live in
# openapi_pec_models and stay importable from here.
__all__ = [
    "CONSERVATION_STEP_MB",
    "FIXED_TYPES",
    "MAX_USERS",
    "PROVIDER",
    "SPACE_STEP_MB",
    "SUBTYPES_OF",
    "UPGRADABLE_TYPES",
    "AddressAvailability",
    "ApplicantRole",
    "BusinessRegisterFiling",
    "BusinessRegisterFilingRequest",
    "Callback",
    "CallbackMethod",
    "CustomerSubtype",
    "CustomerType",
    "DomainCheck",
    "FilingState",
    "Gender",
    "IdDocumentType",
    "Mailbox",
    "MailboxRegistration",
    "MailboxState",
    "MailboxType",
    "MailboxUser",
    "NewMailboxUser",
    "OpenapiPecClient",
    "SpaceChange",
    "provider_error",
]


# ------------------------------------------------------------------------------------------- wire models


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _WireTimestamps(_Wire):
    registrazione: int | None = None
    ultima_modifica: int | None = None
    evasione: int | None = None
    scadenza: int | None = None
    revoca: int | None = None


class _WireUser(_Wire):
    id_utenza: str | None = None
    userid: str | None = None
    nome: str = ""
    cognome: str = ""
    descrizione: str = ""
    email_gestione_password: str = ""
    timestamp: dict[str, int | None] | None = None


class _WireMailbox(_Wire):
    id: str
    casella_pec: str
    tipo_casella: str = ""
    stato: str = ""
    owner: str | None = None
    dominio: str | None = None
    data_scadenza: str | None = None
    data_attivazione: str | None = None
    timestamp: _WireTimestamps = Field(default_factory=_WireTimestamps)
    spazio_disco: int | None = None
    spazio_storico: int | None = None
    spazio_conservazione: int | None = None
    conservazione: bool | None = None
    storico: bool | None = None
    autorinnovo: bool | None = None
    documenti_attivazione: list[str] = Field(default_factory=list)
    documenti_conservazione: list[str] = Field(default_factory=list)
    multiutenza: list[_WireUser] = Field(default_factory=list)


class _WireFiling(_Wire):
    id: str
    casella_pec: str
    stato: str = ""
    owner: str | None = None
    timestamp: int | None = None
    codice_registro_imprese: str | None = None
    documenti_registro_imprese: list[str] = Field(default_factory=list)
    ragione_sociale: str | None = None
    cf_piva: str | None = None


# ---------------------------------------------------------------------------------------- return models


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class AddressAvailability(_Result):
    address: str = Field(description="the PEC address that was checked")
    available: bool = Field(description="true if it can still be registered")


class DomainCheck(_Result):
    domain: str
    is_pec_domain: bool = Field(description="true if the provider knows the domain as a PEC domain")
    message: str = Field("", description="the provider's note, e.g. 'legalmail.it found!'")
    details: list[str] = Field(default_factory=list, description="extra data the provider returned")


class MailboxUser(_Result):
    user_id: str | None = Field(None, description="the provider's id of this user")
    login: str | None = Field(None, description="the user's login name")
    first_name: str
    last_name: str
    description: str
    password_email: str
    activated_at: datetime | None = None


class Mailbox(_Result):
    mailbox_id: str = Field(description="24-character id used by every other mailbox call")
    address: str
    mailbox_type: str = Field(description="STANDARD, BRONZE, SILVER, GOLD, DOMICILIODIGITALE or PECMASSIVA")
    state: str = Field(description="registrata, in_evasione, evasa (active), revocata, chiusa, ...")
    owner: str | None = Field(None, description="the openapi.it account that owns it")
    domain: str | None = None
    registered_at: datetime | None = None
    activated_at: datetime | None = Field(None, description="when the provider finished activating it")
    expires_at: datetime | None = None
    expires_on: date | None = Field(None, description="last day of the paid period")
    revoked_at: datetime | None = None
    changed_at: datetime | None = None
    disk_space_mb: int | None = None
    archive_space_mb: int | None = Field(None, description="security archive (storico) space")
    conservation_space_mb: int | None = Field(None, description="legal conservation space")
    conservation_enabled: bool | None = None
    archive_enabled: bool | None = None
    auto_renew: bool | None = None
    activation_documents: list[str] = Field(default_factory=list)
    conservation_documents: list[str] = Field(default_factory=list)
    users: list[MailboxUser] = Field(default_factory=list)


class BusinessRegisterFiling(_Result):
    filing_id: str
    address: str = Field(description="the PEC address being filed")
    state: str = Field(description="codice_in_richiesta, in_attesa_di_documenti, documenti_caricati, "
                                   "comunicazione_evasa")
    owner: str | None = None
    changed_at: datetime | None = None
    register_code: str | None = Field(None, description="codice_registro_imprese")
    documents: list[str] = Field(default_factory=list)
    company_name: str | None = None
    company_tax_id: str | None = None


def _when(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def _day(text: str | None) -> date | None:
    # Tolerant: the provider sends "" before activation; an unreadable date is no reason to fail a read.
    if not text:
        return None
    try:
        return datetime.strptime(text, DATE_FORMAT).date()
    except ValueError:
        return None


def _mailbox(raw: _WireMailbox) -> Mailbox:
    stamps = raw.timestamp
    return Mailbox(
        mailbox_id=raw.id, address=raw.casella_pec, mailbox_type=raw.tipo_casella.upper(), state=raw.stato,
        owner=raw.owner, domain=raw.dominio, registered_at=_when(stamps.registrazione),
        activated_at=_when(stamps.evasione), expires_at=_when(stamps.scadenza),
        expires_on=_day(raw.data_scadenza), revoked_at=_when(stamps.revoca),
        changed_at=_when(stamps.ultima_modifica), disk_space_mb=raw.spazio_disco,
        archive_space_mb=raw.spazio_storico, conservation_space_mb=raw.spazio_conservazione,
        conservation_enabled=raw.conservazione, archive_enabled=raw.storico, auto_renew=raw.autorinnovo,
        activation_documents=raw.documenti_attivazione, conservation_documents=raw.documenti_conservazione,
        users=[
            MailboxUser(user_id=u.id_utenza, login=u.userid, first_name=u.nome, last_name=u.cognome,
                        description=u.descrizione, password_email=u.email_gestione_password,
                        activated_at=_when((u.timestamp or {}).get("attivazione")))
            for u in raw.multiutenza
        ],
    )


def _filing(raw: _WireFiling) -> BusinessRegisterFiling:
    return BusinessRegisterFiling(
        filing_id=raw.id, address=raw.casella_pec, state=raw.stato, owner=raw.owner,
        changed_at=_when(raw.timestamp), register_code=raw.codice_registro_imprese,
        documents=raw.documenti_registro_imprese, company_name=raw.ragione_sociale,
        company_tax_id=raw.cf_piva,
    )


# ---------------------------------------------------------------------------------------- error mapping


def provider_error(status: int, data: Any, *, text: str = "") -> ProviderError:
    """The one translation of an openapi.it PEC failure into the error tree.

    ``data`` is the decoded envelope ``{success:false, message, error, data:null}`` (or None); ``text`` is the
    body of a text/plain failure (the PDF downloads). The provider's numeric ``error`` becomes ``code``.
    """
    message = wire.message_of(data) if data is not None else text.strip()[:300]
    code = data.get("error") if isinstance(data, dict) else None
    kwargs: dict[str, Any] = {"provider": PROVIDER, "status": status,
                              "code": None if code is None else str(code)}
    said = f": {message}" if message else ""
    if status in (401, 403):
        # openapi.it authenticates with the Bearer token alone: no username or password is involved.
        return AuthenticationFailed(f"{PROVIDER} refused the token (HTTP {status}){said}", **kwargs,
                                    hint="Check openapi_pec.token (or PEC_MCP_OPENAPI_PEC__TOKEN): it must be a "
                                    "token with the PEC scopes, made for this environment (a sandbox token works "
                                    "only on the sandbox host).")
    if status == 402:
        return InsufficientCredit(f"{PROVIDER} wallet cannot pay for this{said}", **kwargs)
    if status == 404 or (status == 400 and re.search(r"(wrong|invalid) id", message, re.IGNORECASE)):
        return NotFound(f"{PROVIDER} knows no such id{said}", **kwargs,
                        hint="Ids are 24 hexadecimal characters; list the mailboxes or filings to find the "
                             "right one.")
    if status == 429:
        return RateLimited(f"{PROVIDER} is rate limiting{said}", **kwargs)
    if status >= 500:
        return ProviderUnavailable(f"{PROVIDER} is unavailable (HTTP {status}){said}", **kwargs)
    return Rejected(f"{PROVIDER} refused the request (HTTP {status}){said or ' without a reason'}", **kwargs)


def _raise_for_answer(response: httpx.Response) -> Any:
    """The decoded JSON of a successful answer; any failure (status, or ``success:false``) raised."""
    if response.status_code >= 400:
        raise _error_of(response)
    data = wire.read_json(response, PROVIDER)
    if isinstance(data, dict) and data.get("success") is False:
        raise provider_error(response.status_code, data)
    return data


def _error_of(response: httpx.Response) -> ProviderError:
    if response.status_code == 429:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        error = provider_error(429, _json_or_none(response), text=response.text)
        return RateLimited(error.message, retry_after=retry_after, provider=PROVIDER, status=429,
                           code=error.code)
    content_type = response.headers.get("content-type", "")
    if "json" in content_type or response.content.lstrip()[:1] in (b"{", b'"'):
        return provider_error(response.status_code, _json_or_none(response), text=response.text)
    if "html" in content_type or response.content.lstrip()[:1] == b"<":
        # A proxy's error page: never pass its markup on.
        return provider_error(response.status_code, None, text="the answer was an HTML error page")
    return provider_error(response.status_code, None, text=response.text)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return wire.read_json(response, PROVIDER)
    except (BadResponse, ProviderUnavailable):
        return None


Model = TypeVar("Model", bound=BaseModel)
_T = TypeVar("_T")


def _parse(model: type[Model], payload: Any) -> Model:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise BadResponse(
            f"{PROVIDER} answered with data of an unexpected shape ({exc.error_count()} problems)",
            provider=PROVIDER,
        ) from None


def _read_filing(payload: Any) -> BusinessRegisterFiling:
    return _filing(_parse(_WireFiling, _data(payload)))


def _data(payload: Any) -> Any:
    if not isinstance(payload, dict) or "data" not in payload:
        raise BadResponse(f"{PROVIDER} answered without a data field", provider=PROVIDER)
    return payload["data"]


# ----------------------------------------------------------------------------------------- local checks


def _segment(value: str, what: str = "mailbox_id") -> str:
    """An id as one URL path segment. Its format is the provider's to judge (400 "Wrong id" -> NotFound)."""
    value = value.strip()
    if not value:
        raise InputError(f"{what} is empty", hint="List the mailboxes or filings to find the right id.")
    return quote(value, safe="")


def _encode_documents(documents: Sequence[bytes], *, kind: str) -> list[str]:
    """Base64 of each document, after checking each is what the API accepts (PDF or signed p7m)."""
    if not documents:
        raise InputError("No documents were given", hint=f"Pass at least one {kind} document.")
    for number, content in enumerate(documents, start=1):
        if kind == "PDF" and not content.startswith(b"%PDF"):
            raise InputError(f"Document {number} is not a PDF file (it does not start with %PDF)",
                             hint="Send the signed form and the identity document as PDF files.")
        # A CAdES .p7m is DER (an ASN.1 SEQUENCE, first byte 0x30) or, less often, PEM.
        if kind == "p7m" and not content.startswith((b"\x30", b"-----BEGIN")):
            raise InputError(f"Document {number} is not a signed .p7m file",
                             hint="Sign the power of attorney digitally (CAdES) and send the .p7m file.")
    return [base64.b64encode(content).decode("ascii") for content in documents]


SpaceChange = int | str


def _space_value(name: str, value: SpaceChange, step: int) -> SpaceChange:
    """A number sets the space; a "+N" string adds N. Both must be positive multiples of ``step`` MB."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number of MB or a '+N' string, not {value!r}")
    adds = isinstance(value, str) and value.strip().startswith("+")
    digits = value.strip().lstrip("+") if isinstance(value, str) else str(value)
    if not digits.isdigit():
        raise InputError(f"{name} must be a number of MB (sets the space) or '+N' (adds N MB), not {value!r}")
    amount = int(digits)
    if amount <= 0 or amount % step:
        raise InputError(f"{name} must be a positive multiple of {step} MB, not {amount}",
                         hint=f"Use {step}, {2 * step}, {3 * step}... (or '+{step}' to add {step} MB).")
    return f"+{amount}" if adds else amount


# ------------------------------------------------------------------------------------------------ client


class OpenapiPecClient:
    """The openapi.it PEC API. ``http`` must carry the base URL and the ``Authorization: Bearer`` header.

    Every method raises the errors listed in this module's docstring; none returns a raw envelope.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
        changes: str | None = None, extensions: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one request. ``changes`` names what a state-changing request does, for OutcomeUnknown."""
        try:
            return await wire.call(PROVIDER, is_send=changes is not None, request=lambda: self._http.request(
                method, path, json=json, params=params, extensions=extensions))
        except OutcomeUnknown as exc:
            raise OutcomeUnknown(
                f"The request to {changes} went out to {PROVIDER} but its answer was lost: it may or may not "
                "have happened", provider=PROVIDER,
                hint="Look at the mailbox (get_mailbox or list_mailboxes) before trying again.",
            ) from exc

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return _raise_for_answer(await self._request(method, path, **kwargs))

    async def _mailbox_call(self, method: str, path: str, **kwargs: Any) -> Mailbox:
        def read(payload: Any) -> Mailbox:
            return _mailbox(_parse(_WireMailbox, _data(payload)))

        if kwargs.get("changes") is not None:
            return await self._change(method, path, read, **kwargs)
        return read(await self._json(method, path, **kwargs))

    async def _change(self, method: str, path: str, read: Callable[[Any], _T], *, changes: str, **kwargs: Any
                      ) -> _T:
        """A state-changing call. An answer that cannot be read (a 2xx that is garbled, empty or of the wrong
        shape, a proxy's 5xx page) may hide a change that was carried out, and paid: OutcomeUnknown, never an
        error that invites a retry."""
        response = await self._request(method, path, changes=changes, **kwargs)
        try:
            return read(_raise_for_answer(response))
        except (BadResponse, ProviderUnavailable) as exc:
            if not (response.is_success or (response.status_code >= 500 and _json_or_none(response) is None)):
                raise
            raise OutcomeUnknown(
                f"The request to {changes} reached {PROVIDER}, but its answer could not be read ({exc.message}): "
                "it may or may not have happened", provider=PROVIDER,
                hint="Look at the current state (get_mailbox, list_mailboxes, list_business_register_filings) "
                "before trying again.",
            ) from exc

    async def _pdf(self, path: str) -> bytes:
        response = await self._request("GET", path)
        if response.status_code >= 400:
            raise _error_of(response)
        if not response.content.startswith(b"%PDF"):
            # A 200 that is not a PDF is usually the JSON envelope of a failure.
            data = _json_or_none(response)
            if isinstance(data, dict) and data.get("success") is False:
                raise provider_error(response.status_code, data)
            raise BadResponse(f"{PROVIDER} answered with something that is not a PDF", provider=PROVIDER,
                              status=response.status_code)
        return response.content

    # ---------------------------------------------------------------- checks

    async def check_address(self, *, address: str) -> AddressAvailability:
        """GET /verifica_pec/{pec}: can this PEC address still be registered?

        The provider answers a taken address with an error whose message says "not available": that is
        ``available=False`` here, not an exception.
        """
        address = address.strip().lower()
        if not ADDRESS_PATTERN.match(address):
            raise InputError(f"{address!r} is not an email address")
        response = await self._request("GET", f"/verifica_pec/{quote(address, safe='@')}")
        envelope = _json_or_none(response)
        if isinstance(envelope, dict) and "not available" in wire.message_of(envelope).lower():
            return AddressAvailability(address=address, available=False)
        data = _data(_raise_for_answer(response))
        available = data.get("available") if isinstance(data, dict) else None
        if not isinstance(available, bool):
            raise BadResponse(f"{PROVIDER} did not say whether {address} is available", provider=PROVIDER)
        return AddressAvailability(address=address, available=available)

    async def check_domain(self, *, domain: str) -> DomainCheck:
        """GET /domini_pec/{dominio}: is this a PEC domain? 204 No Content is a normal "no"."""
        domain = domain.strip().lower().lstrip("@")
        if not DOMAIN_PATTERN.match(domain):
            raise InputError(f"{domain!r} is not a domain name",
                             hint="Give the part after the @ of an address, e.g. legalmail.it.")
        response = await self._request("GET", f"/domini_pec/{quote(domain, safe='')}")
        payload = _raise_for_answer(response)
        if payload is None:
            return DomainCheck(domain=domain, is_pec_domain=False, message="not a known PEC domain")
        details = payload.get("data") if isinstance(payload, dict) else None
        return DomainCheck(domain=domain, is_pec_domain=True, message=wire.message_of(payload),
                           details=[str(item) for item in details] if isinstance(details, list) else [])

    # ---------------------------------------------------------------- mailboxes

    async def list_mailboxes(self) -> list[Mailbox]:
        """GET /pec: every mailbox of the account; an account with none gets an empty list (not NotFound)."""
        try:
            payload = await self._json("GET", "/pec")
        except NotFound:
            return []  # 404 error 200 "no pec linked to this account" is the API's way of saying "none"
        items = _data(payload)
        if not isinstance(items, list):
            raise BadResponse(f"{PROVIDER} answered a list request without a list", provider=PROVIDER)
        return [_mailbox(_parse(_WireMailbox, item)) for item in items]

    async def register_mailbox(self, *, registration: MailboxRegistration) -> Mailbox:
        """POST /pec: register (and pay for) a new mailbox; it starts in state ``registrata``."""
        return await self._mailbox_call("POST", "/pec", json=registration.to_wire(),
                                        changes=f"register {registration.address}")

    async def get_mailbox(self, *, mailbox_id: str) -> Mailbox:
        """GET /pec/{id}: one mailbox with its state, dates and spaces."""
        return await self._mailbox_call("GET", f"/pec/{_segment(mailbox_id)}")

    async def revoke_mailbox(self, *, mailbox_id: str) -> Mailbox:
        """DELETE /pec/{id}: revoke an active mailbox (it stops receiving PEC)."""
        return await self._mailbox_call("DELETE", f"/pec/{_segment(mailbox_id)}",
                                        changes=f"revoke mailbox {mailbox_id}")

    async def activate_mailbox(self, *, mailbox_id: str, documents: Sequence[bytes]) -> Mailbox:
        """PATCH /pec/{id}/attivazione: upload the signed activation form and the ID document (PDF bytes).

        DOMICILIODIGITALE and PECMASSIVA boxes want both in one single PDF.
        """
        body = {"documenti": _encode_documents(documents, kind="PDF")}
        return await self._mailbox_call("PATCH", f"/pec/{_segment(mailbox_id)}/attivazione", json=body,
                                        changes=f"activate mailbox {mailbox_id}")

    async def modify_mailbox(
        self,
        *,
        mailbox_id: str,
        disk_space: SpaceChange | None = None,
        archive_space: SpaceChange | None = None,
        conservation_space: SpaceChange | None = None,
    ) -> Mailbox:
        """PATCH /pec/{id}/modifica: more space (paid; upgrades only). A number sets MB, "+N" adds N MB.

        Disk and archive move in steps of 1024 MB, conservation in steps of 512 MB.
        """
        body: dict[str, SpaceChange] = {}
        for wire_name, label, value, step in (
            ("spazio_disco", "disk_space", disk_space, SPACE_STEP_MB),
            ("spazio_storico", "archive_space", archive_space, SPACE_STEP_MB),
            ("spazio_conservazione", "conservation_space", conservation_space, CONSERVATION_STEP_MB),
        ):
            if value is not None:
                body[wire_name] = _space_value(label, value, step)
        if not body:
            raise InputError("No space change was given",
                             hint="Pass disk_space, archive_space or conservation_space.")
        return await self._mailbox_call("PATCH", f"/pec/{_segment(mailbox_id)}/modifica", json=body,
                                        changes=f"change the space of mailbox {mailbox_id}")

    async def enable_conservation(
        self, *, mailbox_id: str, documents: Sequence[bytes], space_mb: int | None = None
    ) -> Mailbox:
        """PATCH /pec/{id}/conservazione: turn on legal conservation (paid); documents are the signed form.

        ``space_mb`` defaults to the provider's 512 MB; it must be a multiple of 512.
        """
        body: dict[str, Any] = {"documenti": _encode_documents(documents, kind="PDF")}
        if space_mb is not None:
            body["spazio_conservazione"] = _space_value("space_mb", space_mb, CONSERVATION_STEP_MB)
        return await self._mailbox_call("PATCH", f"/pec/{_segment(mailbox_id)}/conservazione", json=body,
                                         changes=f"enable conservation on mailbox {mailbox_id}")

    async def transform_mailbox(self, *, mailbox_id: str, mailbox_type: MailboxType | str) -> Mailbox:
        """PATCH /pec/{id}/trasformazione: upgrade the type (STANDARD < BRONZE < SILVER < GOLD; paid)."""
        try:
            target = MailboxType(str(mailbox_type).upper())
        except ValueError:
            target = None
        if target not in UPGRADABLE_TYPES:
            raise InputError(f"A mailbox can only be changed to STANDARD, BRONZE, SILVER or GOLD, not "
                             f"{mailbox_type!r}")
        return await self._mailbox_call("PATCH", f"/pec/{_segment(mailbox_id)}/trasformazione",
                                        json={"tipo_casella": str(target)},
                                        changes=f"change the type of mailbox {mailbox_id}")

    async def renew_mailbox(self, *, mailbox_id: str, years: int = 1) -> Mailbox:
        """GET /pec/{id}/rinnovo?anni=: renew (or re-activate a revoked box) for ``years`` years. Paid.

        A GET that spends money: it is marked so that the transport never repeats it.
        """
        if isinstance(years, bool) or not isinstance(years, int) or years < 1:
            raise InputError(f"years must be a whole number of at least 1, not {years!r}")
        return await self._mailbox_call("GET", f"/pec/{_segment(mailbox_id)}/rinnovo", params={"anni": years},
                                        extensions={NO_RETRY: True},
                                        changes=f"renew mailbox {mailbox_id}")

    async def add_user(self, *, mailbox_id: str, user: NewMailboxUser) -> Mailbox:
        """POST /pec/{id}/multiutenza: one more user (at most 25; not for DOMICILIODIGITALE/PECMASSIVA)."""
        return await self._mailbox_call("POST", f"/pec/{_segment(mailbox_id)}/multiutenza",
                                        json=user.to_wire(), changes=f"add a user to mailbox {mailbox_id}")

    async def download_activation_form(self, *, mailbox_id: str) -> bytes:
        """GET /pec/{id}/modulo_attivazione: the PDF form to sign and upload with activate_mailbox."""
        return await self._pdf(f"/pec/{_segment(mailbox_id)}/modulo_attivazione")

    async def download_conservation_form(self, *, mailbox_id: str) -> bytes:
        """GET /pec/{id}/modulo_conservazione: the PDF form to sign for enable_conservation."""
        return await self._pdf(f"/pec/{_segment(mailbox_id)}/modulo_conservazione")

    # ---------------------------------------------------------------- business register (comunica_pec)

    async def list_filings(self) -> list[BusinessRegisterFiling]:
        """GET /comunica_pec: every filing of the account; none is an empty list."""
        try:
            payload = await self._json("GET", "/comunica_pec")
        except NotFound:
            return []  # 404 error 332 "no request linked to this account"
        items = _data(payload)
        if not isinstance(items, list):
            raise BadResponse(f"{PROVIDER} answered a list request without a list", provider=PROVIDER)
        return [_filing(_parse(_WireFiling, item)) for item in items]

    async def create_filing(self, *, filing: BusinessRegisterFilingRequest) -> BusinessRegisterFiling:
        """POST /comunica_pec: start filing a PEC address with the business register (paid)."""
        return await self._change("POST", "/comunica_pec", _read_filing, json=filing.to_wire(),
                                  changes=f"file {filing.address} with the business register")

    async def get_filing(self, *, filing_id: str) -> BusinessRegisterFiling:
        """GET /comunica_pec/{id}: one filing and its state."""
        payload = await self._json("GET", f"/comunica_pec/{_segment(filing_id, 'filing_id')}")
        return _filing(_parse(_WireFiling, _data(payload)))

    async def upload_filing_documents(
        self, *, filing_id: str, documents: Sequence[bytes]
    ) -> BusinessRegisterFiling:
        """PATCH /comunica_pec/{id}: upload the digitally signed power of attorney (.p7m bytes)."""
        body = {"documenti": _encode_documents(documents, kind="p7m")}
        return await self._change("PATCH", f"/comunica_pec/{_segment(filing_id, 'filing_id')}", _read_filing,
                                  json=body, changes=f"upload documents to filing {filing_id}")

    async def download_filing_proxy(self, *, filing_id: str) -> bytes:
        """GET /comunica_pec/{id}/procura_registro_imprese: the power of attorney PDF to sign."""
        return await self._pdf(f"/comunica_pec/{_segment(filing_id, 'filing_id')}/procura_registro_imprese")
