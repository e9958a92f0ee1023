"""Mensatek certified email (Spain), API v7: send, report, cancel, reschedule, certificate ZIP, credits.

What is known about the API, and how sure we are: ``reference/pec-domain.md`` §3 and the provider's doc
page (``specs/provider-docs/004_*.txt``). In short: every function is ``POST <base>/<Function>`` with HTTP
Basic auth (``api_user:api_token``, set on the injected client), a form body that always carries
``Resp=JSON`` (never in the query string: there it breaks authentication), JSON-encoded strings for
``Destinatarios`` and ``Adjuntos``, and an answer whose ``Res`` is negative on failure even with HTTP 200.
Numbers may come Spanish-formatted ("14.970,00").

The provider warns that repeated "empty" calls (credits, the same report) get a client blocked, so this client
keeps a short cache of both, on an injectable clock.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

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
from pec_mcp.http import READ_ONLY, retry_after_seconds
from pec_mcp.providers.wire import call, read_json

PROVIDER = "mensatek"
MADRID = ZoneInfo("Europe/Madrid")  # the doc: "The time reference is CET/CEST (Spain time zone)"

# Function names as the public integrations spell them (pec-domain.md §3, [S]); the doc page's own casing
# ("EnviarEMAILCertificado") is not what working code uses.
FUNCTIONS: dict[str, str] = {
    "send": "EnviarEMAILCERTIFICADO",
    "report": "GetReportEMAILCERTIFICADO",
    "cancel": "CancelarEMAILCERTIFICADO",
    "certificate": "GetCertificadoEMAILCERTIFICADO",
    "credits": "GetCreditos",
}
# [unverified] Every name below is a guess: the doc page describes the function, but its name was seen in
# no source. Keep all such names here, so that a confirmation (or a 404 from the real API) changes one line.
UNVERIFIED_FUNCTIONS: dict[str, str] = {
    "reschedule": "ReprogramarEMAILCERTIFICADO",  # [unverified] the pattern of CancelarEMAILCERTIFICADO
}

READS: dict[str, Any] = {READ_ONLY: True}  # request extensions of the functions that change nothing
CREDITS_TTL = 30.0  # seconds a credits answer is reused
REPORT_TTL = 10.0  # seconds a report answer is reused, per message id
MAX_VARIABLES = 10  # Variable_1 .. Variable_10
ZIP_MAGIC = b"PK\x03\x04"

# ------------------------------------------------------------------------------------------------------------
# Res codes -> the error tree. Source: integrators' maps (pec-domain.md §3, [S]); no official list is public.
# Codes absent from this table are reported as unknown, never guessed.
# ------------------------------------------------------------------------------------------------------------
RES_ERRORS: dict[int, tuple[type[ProviderError], str, str]] = {
    -1: (AuthenticationFailed, "authentication failed (wrong API user or token)",
         "Check mensatek.api_user and mensatek.api_token (panel: Tus Datos -> Configurar Cuenta). Mensatek "
         "blocks clients that keep failing, so do not retry in a loop."),
    -2: (InsufficientCredit, "not enough credits", "Buy Mensatek credits, then call again."),
    -3: (Rejected, "the request has wrong or missing data", "Fix the request as the provider's detail says."),
    -4: (Rejected, "an attachment is not allowed",
         "Remove or change the attachment (executable files are refused)."),
    -5: (InsufficientCredit, "not enough credits", "Buy Mensatek credits, then call again."),
}

# ------------------------------------------------------------------------------------------------------------
# Report Estado / webhook Resultado codes for EMAILCERTIFICADO.
#
# Mensatek publishes no complete table that could be found: the v7 doc page (specs/provider-docs/004_*.txt, the
# same as mensatek.com/api-envio-email-certificado.html) announces "The possible statuses are:" for the webhook's
# Resultado, but its table did not survive in any copy; the public integrations seen (a Laravel service, Deno
# proxies) keep Estado and txtEstado as they come and map nothing. The SMS table of the wp-sms plugin is for
# another service and its codes collide with these, so it is not borrowed. Every code that can be sourced is
# below, with its source; any other code is classified from Mensatek's own status text (txtEstado, Spanish) by
# the rules of STATUS_WORDS, and the note then says the classification came from the text.
# ------------------------------------------------------------------------------------------------------------
NormalisedStatus = Literal["pending", "delivered", "read", "accepted", "rejected", "expired", "not_delivered",
                           "cancelled", "unknown"]
ESTADOS: dict[int, tuple[NormalisedStatus, str]] = {
    # code: (normalised status, where the code is documented)
    11: ("read", "the v7 doc page, GetReportEMAILCERTIFICADO example: Estado 11, 'Mensaje entregado, abierto, "
                 "leído y certificado'; the webhook example carries Resultado 11 too"),
    14: ("delivered", "the v7 doc page, GetCertificadoEMAILCERTIFICADO: 'result 14 -delivered and certified- in "
                      "Certified EMAIL'"),
}
# Words of Mensatek's status texts, most specific first: the first rule whose pattern is in the text decides.
# "no entregado" must win over "entregado", "leído"/"abierto" over "entregado", and so on.
STATUS_WORDS: tuple[tuple[str, NormalisedStatus], ...] = (
    (r"\bno\s+entregad|\bnot\s+delivered|\berror\b|\bfallid|\brebotad|\bdevuelt", "not_delivered"),
    (r"\bcancelad|\banulad|\bcancell?ed", "cancelled"),
    (r"\bcaducad|\bexpirad|\bexpired", "expired"),
    (r"\brechazad|\brejected", "rejected"),
    (r"\baceptad|\baccepted", "accepted"),
    (r"\bleíd|\bleid|\babiert|\bread\b|\bopened", "read"),
    (r"\bentregad|\bdelivered", "delivered"),
    (r"\bpendiente|\bprogramad|\benviad|\ben\s+curso|\bpending|\bscheduled|\bsent\b", "pending"),
)


def status_from_text(text: str) -> NormalisedStatus | None:
    """The status a Mensatek status text states, by the rules of :data:`STATUS_WORDS`; None if it says none."""
    lowered = text.strip().lower()
    for pattern, status in STATUS_WORDS:
        if re.search(pattern, lowered):
            return status
    return None


def normalise_status(code: int | None, provider_text: str = "") -> tuple[NormalisedStatus, str]:
    """The normalised status of an Estado/Resultado code, and a note saying where the meaning comes from.

    A documented code is read from :data:`ESTADOS`; any other is classified from the provider's own text.
    """
    if code is not None and code in ESTADOS:
        status, source = ESTADOS[code]
        return status, f"Mensatek status {code} is documented ({source})."
    shown = "missing" if code is None else str(code)
    from_text = status_from_text(provider_text) if provider_text else None
    if from_text is not None:
        return from_text, (
            f"Mensatek status code {shown} is in no published table; '{from_text}' was classified from Mensatek's "
            f"own text for it: {provider_text}"
        )
    return "unknown", (
        f"Mensatek status code {shown} is in no published table and its text does not say the outcome, so it is "
        f"not interpreted; the provider's own text is: {provider_text or '(none)'}"
    )


def parse_number(value: object) -> float | None:
    """A number from Mensatek, Spanish format tolerated: "14.970,00", "99,00", "12000", 12000; "" -> None.

    Rules: with both separators, the last one is the decimal mark; a lone comma is decimal; a lone dot
    followed by exactly three digits separates thousands (Spanish style, "14.970"), else it is decimal.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().replace(" ", "").replace("\u00a0", "")
    if not text:
        return None
    if not re.fullmatch(r"[+-]?[\d.,]+", text):
        raise ValueError(f"not a number: {text[:30]!r}")
    if "," in text and "." in text:
        decimal = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        text = text.replace(thousands, "").replace(decimal, ".")
    elif "," in text:
        text = text.replace(",", ".") if text.count(",") == 1 else text.replace(",", "")
    elif text.count(".") > 1 or re.fullmatch(r"[+-]?\d{1,3}\.\d{3}", text):
        text = text.replace(".", "")
    return float(text)


def scheduled_time_to_madrid(dt: datetime) -> str:
    """An aware datetime as Spanish local time, "YYYY-MM-DD HH:MM", the format of the ``Fecha`` parameter."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InputError(
            "The scheduled time has no time zone, so it is ambiguous",
            hint="Give the time with an offset or zone, e.g. 2025-03-01T10:00:00+01:00.",
        )
    return dt.astimezone(MADRID).strftime("%Y-%m-%d %H:%M")


# --- wire models --------------------------------------------------------------------------------------------


class _Wire(BaseModel):
    """A Mensatek answer, its names matched case-insensitively (the API says they are)."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _match_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        wanted = {(f.alias or name).lower(): f.alias or name for name, f in cls.model_fields.items()}
        return {wanted.get(str(k).lower(), k): v for k, v in data.items()}


# A number that may arrive as 12000, "12000" or "14.970,00".
SpanishNumber = Annotated[float | None, BeforeValidator(parse_number)]


class WireRecipient(_Wire):
    email: str = Field("", alias="Email")
    name: str = Field("", alias="Nombre")
    message_id: str | None = Field(None, alias="idMensaje")

    @field_validator("message_id", mode="before")
    @classmethod
    def _id_text(cls, value: object) -> str | None:
        return None if value in (None, "") else str(value)


class WireSendResponse(_Wire):
    res: int = Field(alias="Res")
    error: str | None = Field(None, alias="Error")
    recipients: list[WireRecipient] = Field(default_factory=list, alias="Destinatarios")
    credits: SpanishNumber = Field(None, alias="Cred")
    sent: SpanishNumber = Field(None, alias="Enviados")
    not_sent: SpanishNumber = Field(None, alias="NoEnviados")
    duplicates: SpanishNumber = Field(None, alias="Duplicados")
    credits_used: SpanishNumber = Field(None, alias="CreditosUsados")

    @field_validator("recipients", mode="before")
    @classmethod
    def _recipients_json(cls, value: object) -> object:
        # The example answer carries Destinatarios as a JSON-encoded string, with IDMENSAJE in capitals.
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else []
        return value or []


class WireReport(_Wire):
    res: int = Field(alias="Res")
    scheduled: str | None = Field(None, alias="Programado")
    sender: str | None = Field(None, alias="Remitente")
    recipient: str | None = Field(None, alias="Destinatario")
    credits: SpanishNumber = Field(None, alias="Cred")
    estado: int | None = Field(None, alias="Estado")
    estado_text: str = Field("", alias="txtEstado")

    @field_validator("estado", mode="before")
    @classmethod
    def _estado(cls, value: object) -> int | None:
        number = parse_number(value)
        return None if number is None else int(number)


class WireCredits(_Wire):
    res: int = Field(alias="Res")
    credits: SpanishNumber = Field(None, alias="Cred")


# --- what callers get ---------------------------------------------------------------------------------------


class Recipient(BaseModel):
    """One recipient of a certified email."""

    model_config = ConfigDict(frozen=True)

    email: str = Field(description="The recipient's email address.")
    name: str = Field("", description="The recipient's name ({{Nombre}} in the subject and message).")
    variables: tuple[str, ...] = Field((), description="Values for {{Variable_1}} .. {{Variable_10}}.")


class Attachment(BaseModel):
    """One file attached to a certified email."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The file name the recipient sees.")
    content: bytes = Field(description="The file's bytes (encoded to base64 on the wire).")


class SentRecipient(BaseModel):
    email: str = Field(description="The recipient's address.")
    name: str = Field("", description="The recipient's name.")
    message_id: str | None = Field(description="Mensatek's id for this recipient's message (report, cancel).")


class SendResult(BaseModel):
    """What Mensatek says about one send request."""

    result_code: int = Field(description="Mensatek's Res (positive on success).")
    recipients: list[SentRecipient] = Field(description="One entry per recipient, with its message id.")
    sent: int = Field(description="Messages actually sent (or scheduled).")
    not_sent: int = Field(description="Recipients Mensatek refused.")
    duplicates: int = Field(description="Recipients left out because they appeared twice.")
    credits_used: SpanishNumber = Field(description="Credits this send cost.")
    credits_left: float | None = Field(description="Credits left in the account after the send.")


class Report(BaseModel):
    """The state of one certified email, as Mensatek reports it."""

    message_id: str = Field(description="The message id asked about.")
    status: NormalisedStatus = Field(description="Normalised status: from the code when it is documented, else "
                                     "from Mensatek's text; 'unknown' when neither says.")
    status_code: int | None = Field(description="Mensatek's own Estado code.")
    provider_text: str = Field(description="Mensatek's own description of the status (txtEstado), Spanish.")
    status_note: str = Field(description="How the status was interpreted, or why it was not.")
    scheduled_for: str | None = Field(description="When it was or will be sent, Spanish time (Programado).")
    sender: str | None = Field(description="The sender address.")
    recipient: str | None = Field(description="The recipient address.")
    credits_left: float | None = Field(description="Credits left in the account.")


class CancelResult(BaseModel):
    message_id: str = Field(description="The cancelled message id.")
    credits_left: float | None = Field(description="Credits left in the account after the cancellation.")


class RescheduleResult(BaseModel):
    message_id: str = Field(description="The rescheduled message id.")
    scheduled_for: str = Field(description="The new sending time as sent to Mensatek, Spanish local time.")
    credits_left: float | None = Field(description="Credits left in the account.")


# --- the error table, in one place --------------------------------------------------------------------------


def raise_for_res(data: Mapping[str, Any], *, function: str, status: int | None = None) -> int:
    """The positive Res of an answer, or the matching error from :data:`RES_ERRORS` (unknown codes say so)."""
    res = _res_of(data, function=function, status=status)
    if res > 0:
        return res
    detail = _detail_of(data)
    if res in RES_ERRORS:
        error_class, meaning, hint = RES_ERRORS[res]
        message = f"Mensatek {function} failed with Res {res}: {meaning}"
        if detail:
            message += f" ({detail})"
        raise error_class(message, provider=PROVIDER, status=status, code=str(res), hint=hint)
    message = f"Mensatek {function} failed with Res {res}, a code pec-mcp does not know (meaning unknown)"
    if detail:
        message += f" (provider detail: {detail})"
    raise ProviderError(message, provider=PROVIDER, status=status, code=str(res),
                        hint="Ask Mensatek support what the code means before retrying.")


def _res_of(data: Mapping[str, Any], *, function: str, status: int | None) -> int:
    raw = next((v for k, v in data.items() if str(k).lower() == "res"), None)
    try:
        number = parse_number(raw)
    except ValueError:
        number = None
    if number is None:
        raise BadResponse(f"Mensatek {function} answered without a Res code", provider=PROVIDER,
                          status=status)
    return int(number)


def _detail_of(data: Mapping[str, Any]) -> str:
    detail = next((v for k, v in data.items() if str(k).lower() == "error"), None)
    return str(detail)[:300] if detail else ""


def _envelope(response: httpx.Response, function: str) -> dict[str, Any]:
    """The answer's object: the doc shows it wrapped in a one-element list; a bare object is accepted too."""
    if response.status_code == 404:
        raise _missing_function(function)
    if response.status_code == 429:
        # Refused at the gate, before Mensatek handled anything: whatever the body says, nothing was done.
        raise RateLimited(f"Mensatek {function} answered HTTP 429: too many requests", provider=PROVIDER, status=429,
                          retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    data = read_json(response, PROVIDER)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict):
        return data
    if response.status_code >= 500:
        raise ProviderUnavailable(f"Mensatek {function} answered HTTP {response.status_code}",
                                  provider=PROVIDER, status=response.status_code)
    raise BadResponse(f"Mensatek {function} answered HTTP {response.status_code} with an unexpected shape",
                      provider=PROVIDER, status=response.status_code)


def _missing_function(function: str) -> ProviderError:
    guessed = function in UNVERIFIED_FUNCTIONS.values()
    reason = " (its name is unverified and may be wrong)" if guessed else ""
    return NotFound(f"Mensatek has no function {function}{reason}", provider=PROVIDER, status=404,
                    hint="This feature cannot be used until the function name is confirmed with Mensatek."
                    if guessed else None)


class _TtlCache:
    """Values remembered for a fixed time on an injectable clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is None or item[0] <= self._clock():
            return None
        return item[1]

    def put(self, key: str, value: Any, ttl: float) -> None:
        self._items[key] = (self._clock() + ttl, value)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)


# --- the client ---------------------------------------------------------------------------------------------


class MensatekClient:
    """Mensatek API v7 for certified email; the injected client carries the base URL (…/v7) and Basic auth.

    Every method raises, from ``pec_mcp.errors``: AuthenticationFailed (Res -1), InsufficientCredit
    (Res -2/-5), Rejected (Res -3 with Mensatek's detail, Res -4 attachment refused), ProviderError (an
    unknown Res code), NotFound (a function the API does not have), BadResponse / ProviderUnavailable
    (unreadable answers, outages). ``send`` raises OutcomeUnknown when its answer was lost; invalid
    arguments raise InputError before any call.
    """

    def __init__(self, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.http = http
        self._cache = _TtlCache(clock)

    async def send(
        self,
        *,
        sender: str,
        recipients: Sequence[Recipient],
        subject: str,
        message_html: str,
        scheduled_at: datetime | None = None,
        require_acceptance: bool = False,
        acceptance_days: int = 10,
        attachments: Sequence[Attachment] = (),
        reference: str | None = None,
        report: bool = True,
    ) -> SendResult:
        """Send (or schedule) one certified email to one or more recipients (EnviarEMAILCERTIFICADO). Paid."""
        form = _send_form(sender=sender, recipients=recipients, subject=subject, message_html=message_html,
                          scheduled_at=scheduled_at, require_acceptance=require_acceptance,
                          acceptance_days=acceptance_days, attachments=attachments, reference=reference,
                          report=report)
        data, status = await self._post(FUNCTIONS["send"], form, is_send=True)
        try:
            wire = _validate(WireSendResponse, data, FUNCTIONS["send"], status)
        except BadResponse as exc:
            # Res was positive, so the emails went out: whoever reads this must not send them again.
            raise BadResponse(
                f"Mensatek accepted the send (Res {_res_of(data, function='send', status=status)}) but the "
                "rest of its answer (message ids, counts) could not be read", provider=PROVIDER,
                status=status, retryable=False,
                hint="Do not send again: the message was sent. Look up its ids in the Mensatek panel.",
            ) from exc
        self._remember_credits(wire.credits)
        return SendResult(
            result_code=wire.res,
            recipients=[SentRecipient(email=r.email, name=r.name, message_id=r.message_id)
                        for r in wire.recipients],
            sent=int(wire.sent or 0),
            not_sent=int(wire.not_sent or 0),
            duplicates=int(wire.duplicates or 0),
            credits_used=wire.credits_used,
            credits_left=wire.credits,
        )

    async def report(self, *, message_id: str) -> Report:
        """The status of one message (GetReportEMAILCERTIFICADO); answers are reused for 10 seconds."""
        key = f"report:{message_id}"
        cached = self._cache.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        data, status = await self._post(FUNCTIONS["report"], {"Idmensaje": str(message_id)}, read_only=True)
        wire = _validate(WireReport, data, FUNCTIONS["report"], status)
        normalised, note = normalise_status(wire.estado, wire.estado_text)
        result = Report(message_id=str(message_id), status=normalised, status_code=wire.estado,
                        provider_text=wire.estado_text, status_note=note, scheduled_for=wire.scheduled,
                        sender=wire.sender, recipient=wire.recipient, credits_left=wire.credits)
        self._cache.put(key, result, REPORT_TTL)
        return result

    async def cancel(self, *, message_id: str) -> CancelResult:
        """Cancel a scheduled message that has not gone out yet (CancelarEMAILCERTIFICADO)."""
        data, status = await self._post(FUNCTIONS["cancel"], {"Idmensaje": str(message_id)})
        wire = _validate(WireCredits, data, FUNCTIONS["cancel"], status)
        self._forget(message_id, credits_left=wire.credits)
        return CancelResult(message_id=str(message_id), credits_left=wire.credits)

    async def reschedule(self, *, message_id: str, when: datetime) -> RescheduleResult:
        """Move a scheduled message to a new time (function name unverified, see UNVERIFIED_FUNCTIONS)."""
        # This function's doc example carries seconds ("2022-12-03 11:14:24"), unlike the send's Fecha.
        fecha = scheduled_time_to_madrid(when) + when.astimezone(MADRID).strftime(":%S")
        function = UNVERIFIED_FUNCTIONS["reschedule"]
        data, status = await self._post(function, {"Idmensaje": str(message_id), "Fecha": fecha})
        wire = _validate(WireCredits, data, function, status)
        self._forget(message_id, credits_left=wire.credits)
        return RescheduleResult(message_id=str(message_id), scheduled_for=fecha, credits_left=wire.credits)

    async def certificate(self, *, message_id: str) -> bytes:
        """The certificate ZIP (PDF certificates and a CSV of results) of a delivered message, as bytes."""
        function = FUNCTIONS["certificate"]
        response = await call(PROVIDER, is_send=False, request=lambda: self.http.post(
            function, data={"Idmensaje": str(message_id), "Resp": "JSON"}, extensions=READS))
        content_type = response.headers.get("content-type", "").lower()
        if response.content.startswith(ZIP_MAGIC):
            return response.content
        if "zip" in content_type or "octet-stream" in content_type:
            raise BadResponse(f"Mensatek {function} sent {content_type} that is not a ZIP archive",
                              provider=PROVIDER, status=response.status_code)
        data = _envelope(response, function)
        raise_for_res(data, function=function, status=response.status_code)
        raise BadResponse(f"Mensatek {function} answered success but sent no ZIP archive",
                          provider=PROVIDER, status=response.status_code)

    async def credits(self) -> float:
        """Credits left in the account (GetCreditos); answers are reused for 30 seconds."""
        cached = self._cache.get("credits")
        if cached is not None:
            return float(cached)
        data, status = await self._post(FUNCTIONS["credits"], {}, read_only=True)
        wire = _validate(WireCredits, data, FUNCTIONS["credits"], status)
        if wire.credits is None:
            raise BadResponse("Mensatek GetCreditos answered without Cred", provider=PROVIDER, status=status)
        self._remember_credits(wire.credits)
        return wire.credits

    def known_credits(self) -> float | None:
        """The credits from a recent answer (send, cancel, credits...), without a call; None when none is fresh."""
        cached = self._cache.get("credits")
        return None if cached is None else float(cached)

    async def _post(self, function: str, form: dict[str, str], *, is_send: bool = False, read_only: bool = False
                    ) -> tuple[dict[str, Any], int]:
        # Resp goes in the body: in the query string it breaks authentication (Res -1), per one integrator.
        body = {**form, "Resp": "JSON"}
        # Every function is a POST; those that only read may be retried by the transport like a GET.
        extensions = READS if read_only else None
        response = await call(PROVIDER, is_send=is_send, request=lambda: self.http.post(
            function, data=body, extensions=extensions))
        try:
            data = _envelope(response, function)
        except (BadResponse, ProviderUnavailable) as exc:
            if not is_send or not (response.is_success or response.status_code >= 500):
                raise
            # Not Mensatek's own answer (a proxy's page, a garbled body): the send may have happened behind it.
            raise OutcomeUnknown(
                f"{exc.message.rstrip('.')}, not its own answer: the request may have been processed behind it, "
                "so the email may or may not have been sent", provider=PROVIDER,
            ) from exc
        raise_for_res(data, function=function, status=response.status_code)
        return data, response.status_code

    def _forget(self, message_id: str, *, credits_left: float | None) -> None:
        # The message changed, so its cached report is stale; an answer's Cred refreshes the credits for free.
        self._cache.drop(f"report:{message_id}")
        self._remember_credits(credits_left)

    def _remember_credits(self, credits_left: float | None) -> None:
        if credits_left is None:
            self._cache.drop("credits")
        else:
            self._cache.put("credits", credits_left, CREDITS_TTL)


W = TypeVar("W", bound=_Wire)


def _validate(model: type[W], data: dict[str, Any], function: str, status: int) -> W:
    try:
        return model.model_validate(data)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError; so is bad inner JSON
        raise BadResponse(f"Mensatek {function} sent an answer of an unexpected shape", provider=PROVIDER,
                          status=status) from exc


def _send_form(
    *,
    sender: str,
    recipients: Sequence[Recipient],
    subject: str,
    message_html: str,
    scheduled_at: datetime | None,
    require_acceptance: bool,
    acceptance_days: int,
    attachments: Sequence[Attachment],
    reference: str | None,
    report: bool,
) -> dict[str, str]:
    """The EnviarEMAILCERTIFICADO form; arguments are checked here so that nothing invalid is paid for."""
    if not recipients:
        raise InputError("A certified email needs at least one recipient")
    if require_acceptance and not 1 <= acceptance_days <= 30:
        raise InputError(f"acceptance_days must be between 1 and 30 (got {acceptance_days})")
    form = {
        "Remitente": sender,
        "Destinatarios": json.dumps([_recipient_wire(r) for r in recipients], ensure_ascii=False),
        "Asunto": subject,
        "Mensaje": message_html,
        "Aceptacion": "SI" if require_acceptance else "NO",
        "Report": "1" if report else "0",
    }
    if require_acceptance:
        form["Caducidadaceptacion"] = str(acceptance_days)
    if scheduled_at is not None:
        form["Fecha"] = scheduled_time_to_madrid(scheduled_at)
    if attachments:
        files = [{"Nombre": a.name, "Contenido": base64.b64encode(a.content).decode("ascii")}
                 for a in attachments]
        form["Adjuntos"] = json.dumps(files, ensure_ascii=False)
    if reference:
        form["Referenciausuario"] = reference
    return form


def _recipient_wire(recipient: Recipient) -> dict[str, str]:
    if len(recipient.variables) > MAX_VARIABLES:
        raise InputError(f"A recipient may carry at most {MAX_VARIABLES} variables ({recipient.email} has "
                         f"{len(recipient.variables)})")
    entry = {"Nombre": recipient.name, "Email": recipient.email}
    entry.update({f"Variable_{i}": value for i, value in enumerate(recipient.variables, start=1)})
    return entry
