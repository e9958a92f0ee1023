"""PEC Massiva (ws.pecmassiva.com) as a stateful fake: one mailbox account, its sendings, receipts and INBOX.

Faithful to the OAS "PEC Massiva 1.0" and the provider's examples:

- every call needs ``Authorization: Bearer <token>``; GET/DELETE calls also ``x-username``/``x-password``,
  POST ``/send`` carries ``username``/``password`` in its JSON body; any failure is 401
  ``{"success": false, "message": "Authorization is not valid or empty"}``;
- POST ``/send`` answers 201 with ``sent`` and a ``message_id`` made of the Rome time and a sequence number;
- receipts land in the account's INBOX over time, each subject ending with the sending code.

Order of checks on POST ``/send``: Bearer token, then the rate limit, then the body (JSON, mailbox
credentials, parameters). The rate limit belongs to the API gateway, which knows the token but neither the
mailbox credentials nor the body rules, so a request with a valid token counts against the rate even if the
backend then refuses it. Only ``/send`` is rate limited ("this endpoint can handle up to 1 request/second").

Time comes from ``sim.clock``; receipts are planned at send time and moved into the INBOX on each request once
due, so nothing runs in the background and tests move time with ``clock.advance``.

Recipient local parts steer outcomes (case-insensitive prefixes):

==============  ========================================================================================
``fail-``       AVVISO DI MANCATA CONSEGNA after ``delivery_delay`` (5.1.1 utente inesistente;
                5.2.2 casella piena when the local part also contains ``full``)
``virus-``      the whole message is refused: AVVISO DI NON ACCETTAZIONE PER VIRUS at once, nothing delivered
``timeout-``    AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO after 12 hours, never a CONSEGNA
``slow-``       CONSEGNA after 10 × ``delivery_delay``
anything else   CONSEGNA after ``delivery_delay`` (plus the POSTA CERTIFICATA envelope when sent to oneself)
==============  ========================================================================================

Faults (a 429 burst, a 502 HTML page, a lost connection, an envelope of the provider's own) come from the
simulator's fault plan (``pec_mcp.simulator.faults``), which answers in front of this app.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import hmac
import json
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pec_mcp.simulator.credentials import PECMASSIVA_PASSWORD, PECMASSIVA_TOKEN, PECMASSIVA_USERNAME
from pec_mcp.simulator.ratelimit import RateGate

if TYPE_CHECKING:
    from pec_mcp.simulator.app import Simulator

Handler = Callable[[Request], Awaitable[Response]]

ROME = ZoneInfo("Europe/Rome")
GATEWAY = "posta-certificata@pecmassiva.com"
PAGE_SIZE = 25
MAX_RECIPIENTS = 50
MAX_REQUEST_BYTES = 30 * 1024 * 1024  # recipients × message size, DM 2/11/2005 art. 12
QUOTA_LIMIT_KIB = 1_048_576  # the OAS example's limit: 1 GiB expressed in KiB
TIMEOUT_SECONDS = 12 * 3600  # the "SUP. TEMPO MASSIMO" notice comes 12 hours after sending
SLOW_FACTOR = 10
# Headers, daticert.xml and smime.p7s: what every stored PEC message weighs besides its text.
MESSAGE_OVERHEAD = 4096

REASON_UNKNOWN_USER = "5.1.1 - pecmassiva.com - utente inesistente"
REASON_MAILBOX_FULL = "5.2.2 - pecmassiva.com - casella piena"
REASON_TIMEOUT = "5.4.1 - pecmassiva.com - tempo massimo superato"
VIRUS_NAME = "Win.Test.EICAR_HDB-1"

ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
DATA_URI = re.compile(r"^data:[^;,]*(?:;[^;,]+)*;base64,(?P<payload>.*)$", re.DOTALL)
DIGITS = re.compile(r"^[0-9]+$")

MSG_UNAUTHORIZED = "Authorization is not valid or empty"
MSG_INVALID = "Post parameter is not valid"


# --- state --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """A message planned for the INBOX, not yet arrived: it gets its id when it becomes due."""

    at: float
    sender: str
    recipient: str
    subject: str
    body: str
    size: int
    code: str | None = None  # the sending it belongs to, for receipts and self-sent envelopes


@dataclass(frozen=True)
class InboxMessage:
    """One message in the account's INBOX, as ``/inbox`` lists it."""

    id: int
    at: float
    sender: str
    recipient: str
    subject: str
    body: str
    size: int
    code: str | None = None


@dataclass(frozen=True)
class Incoming:
    """An inbound PEC for :meth:`PecMassivaSim.add_incoming`.

    With ``envelope`` (the default) it arrives as another provider delivers it: subject
    ``POSTA CERTIFICATA: <subject>`` from ``"Per conto di: <sender>"``. Without, sender and subject are
    stored as given (a receipt, an anomaly envelope).
    """

    sender: str
    subject: str
    body: str = ""
    at: float | None = None  # Unix time; None is "now"
    attachment_bytes: int = 0
    envelope: bool = True


@dataclass
class Sending:
    """One accepted POST /send: what was sent and the code the receipts carry."""

    code: str
    opec_id: str
    sender: str
    recipients: list[str]
    subject: str  # as it travelled: the caller's subject with the code appended
    body: str
    attachment_bytes: int
    sent_at: float
    deleted: bool = False


class Mailbox:
    """The INBOX of the account: arrived messages by id, plus drafts waiting for their time."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: dict[int, InboxMessage] = {}
        self._pending: list[tuple[float, int, Draft]] = []  # a heap by due time
        self._next_id = 1  # ids are never reused, even after a delete
        self._order = 0

    def schedule(self, draft: Draft) -> None:
        # The order number keeps drafts due at the same instant in the order they were planned.
        self._order += 1
        heapq.heappush(self._pending, (draft.at, self._order, draft))

    def deliver_due(self, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, _, draft = heapq.heappop(self._pending)
            self.store(draft)

    def store(self, draft: Draft) -> InboxMessage:
        message = InboxMessage(id=self._next_id, **asdict(draft))
        self._next_id += 1
        self.messages[message.id] = message
        return message

    def newest_first(self) -> list[InboxMessage]:
        return sorted(self.messages.values(), key=lambda m: (m.at, m.id), reverse=True)

    def of_sending(self, code: str) -> list[InboxMessage]:
        return sorted((m for m in self.messages.values() if m.code == code), key=lambda m: (m.at, m.id))

    def has_pending(self, code: str) -> bool:
        return any(draft.code == code for _, _, draft in self._pending)

    def forget_sending(self, code: str) -> None:
        for message in self.of_sending(code):
            del self.messages[message.id]
        self._pending = [entry for entry in self._pending if entry[2].code != code]
        heapq.heapify(self._pending)

    def usage_kib(self) -> int:
        return math.ceil(sum(m.size for m in self.messages.values()) / 1024)


# --- dates and receipt texts --------------------------------------------------------------------------------


def rome(at: float) -> datetime:
    return datetime.fromtimestamp(int(at), ROME)


def rfc2822(at: float) -> str:
    """The date form of the API's answers: ``Wed, 26 Aug 2020 10:00:35 +0200``."""
    return format_datetime(rome(at))


def _stamp(at: float, verb: str) -> str:
    moment = rome(at)
    return f"Il giorno {moment:%d/%m/%Y} alle ore {moment:%H:%M:%S} ({moment:%z}) {verb}"


def acceptance_text(sending: Sending) -> str:
    return "\n".join(
        [
            "Ricevuta di accettazione",
            _stamp(sending.sent_at, "il messaggio"),
            f'"{sending.subject}" proveniente da "{sending.sender}"',
            "ed indirizzato a:",
            *(f'{recipient} ("posta certificata")' for recipient in sending.recipients),
            "è stato accettato dal sistema ed inoltrato.",
            f"Identificativo messaggio: {sending.opec_id}",
        ]
    )


def delivery_text(sending: Sending, recipient: str, at: float) -> str:
    return "\n".join(
        [
            "Ricevuta di avvenuta consegna",
            _stamp(at, "il messaggio"),
            f'"{sending.subject}" proveniente da "{sending.sender}"',
            f'ed indirizzato a "{recipient}"',
            "è stato consegnato nella casella di destinazione.",
            f"Identificativo messaggio: {sending.opec_id}",
        ]
    )


def non_delivery_text(sending: Sending, recipient: str, at: float, reason: str) -> str:
    return "\n".join(
        [
            "Avviso di mancata consegna",
            _stamp(at, "nel messaggio"),
            f'"{sending.subject}" proveniente da "{sending.sender}"',
            "ed indirizzato a:",
            recipient,
            f"è stato rilevato un problema che ne impedisce la consegna a causa di: {reason}",
            f"Identificativo messaggio: {sending.opec_id}",
        ]
    )


def virus_text(sending: Sending) -> str:
    return "\n".join(
        [
            "Avviso di non accettazione per virus",
            _stamp(sending.sent_at, "nel messaggio"),
            f'"{sending.subject}" proveniente da "{sending.sender}"',
            f"è stato rilevato un virus ({VIRUS_NAME}) e il messaggio non è stato accettato.",
            f"Identificativo messaggio: {sending.opec_id}",
        ]
    )


def _local_part(address: str) -> str:
    return address.partition("@")[0].lower()


def plan_receipts(sending: Sending, mailbox: str, delivery_delay: float) -> list[Draft]:
    """Every message the sending will bring into the sender's INBOX, each at its time."""
    original_size = len(sending.body.encode()) + sending.attachment_bytes

    def receipt(at: float, prefix: str, body: str, extra: int = 0) -> Draft:
        return Draft(
            at=at,
            sender=GATEWAY,
            recipient=mailbox,
            subject=f"{prefix}: {sending.subject}",
            body=body,
            size=MESSAGE_OVERHEAD + len(body.encode()) + extra,
            code=sending.code,
        )

    start = sending.sent_at
    if any(_local_part(r).startswith("virus-") for r in sending.recipients):
        return [receipt(start, "AVVISO DI NON ACCETTAZIONE PER VIRUS", virus_text(sending))]
    drafts = [receipt(start, "ACCETTAZIONE", acceptance_text(sending))]
    for recipient in sending.recipients:
        local = _local_part(recipient)
        if local.startswith("fail-"):
            at = start + delivery_delay
            reason = REASON_MAILBOX_FULL if "full" in local else REASON_UNKNOWN_USER
            text = non_delivery_text(sending, recipient, at, reason)
            drafts.append(receipt(at, "AVVISO DI MANCATA CONSEGNA", text))
        elif local.startswith("timeout-"):
            at = start + TIMEOUT_SECONDS
            text = non_delivery_text(sending, recipient, at, REASON_TIMEOUT)
            drafts.append(receipt(at, "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO", text))
        else:
            at = start + delivery_delay * (SLOW_FACTOR if local.startswith("slow-") else 1)
            if recipient.lower() == mailbox.lower():
                drafts.append(_envelope(sending, mailbox, at))
            # A "ricevuta completa" carries the original message, so it weighs as much in the quota.
            text = delivery_text(sending, recipient, at)
            drafts.append(receipt(at, "CONSEGNA", text, extra=original_size))
    return drafts


def _envelope(sending: Sending, mailbox: str, at: float) -> Draft:
    return Draft(
        at=at,
        sender=f'"Per conto di: {sending.sender}" ',
        recipient=f'"{mailbox}" ',
        subject=f"POSTA CERTIFICATA: {sending.subject}",
        body=sending.body,
        size=MESSAGE_OVERHEAD + len(sending.body.encode()) + sending.attachment_bytes,
        code=sending.code,
    )


def _incoming_draft(incoming: Incoming, mailbox: str, now: float) -> Draft:
    at = now if incoming.at is None else incoming.at
    size = MESSAGE_OVERHEAD + len(incoming.body.encode()) + incoming.attachment_bytes
    if not incoming.envelope:
        return Draft(at, incoming.sender, mailbox, incoming.subject, incoming.body, size)
    return Draft(
        at=at,
        sender=f'"Per conto di: {incoming.sender}" ',
        recipient=f'"{mailbox}" ',
        subject=f"POSTA CERTIFICATA: {incoming.subject}",
        body=incoming.body,
        size=size,
    )


SEED = (
    (
        3 * 86400,
        "protocollo@pec.comune.esempio.it",
        "Comunicazione di avvio del procedimento prot. n. 4521/2024",
        "<p>Gentile utente,</p><p>si comunica l'avvio del procedimento amministrativo n. 4521/2024 "
        "ai sensi degli artt. 7 e 8 della L. 241/1990.</p><p>Ufficio Protocollo</p>",
    ),
    (
        86400,
        "amministrazione@pec.fornitore-esempio.it",
        "Avviso di emissione fattura n. 2024/118",
        "<p>Buongiorno,</p><p>vi informiamo che la fattura n. 2024/118 è stata trasmessa al Sistema di "
        "Interscambio. Scadenza pagamento: 30 giorni data fattura.</p><p>Ufficio amministrativo</p>",
    ),
    (
        2 * 3600,
        "tribunale.esempio@civile.ptel.giustiziacert.it",
        "Biglietto di cancelleria - R.G. n. 1234/2024",
        "<p>Si comunica che nel procedimento R.G. n. 1234/2024 è stato depositato il provvedimento "
        "del giudice. Il testo è consultabile sul Portale dei Servizi Telematici.</p>",
    ),
)


# --- POST /send validation ----------------------------------------------------------------------------------


class Invalid(Exception):
    """A POST /send parameter the real API would refuse with 400; the text names which."""


@dataclass(frozen=True)
class SendRequest:
    sender: str
    recipients: list[str]
    subject: str
    body: str
    attachment_bytes: int


def parse_send(payload: dict[str, Any], mailbox: str) -> SendRequest:
    """The validated POST /send body, or Invalid."""
    sender = payload.get("sender")
    if not isinstance(sender, str) or not sender.strip():
        raise Invalid("sender")
    if not ADDRESS.match(sender.strip()) or sender.strip().lower() != mailbox.lower():
        raise Invalid("sender must be the mailbox of the account")
    recipients = _recipients(payload.get("recipient"))
    subject = payload.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        raise Invalid("subject")
    body = payload.get("body", "")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise Invalid("body")
    attachment_bytes = sum(_attachment_size(item) for item in _attachments(payload.get("attachments")))
    message_bytes = len(subject.encode()) + len(body.encode()) + attachment_bytes
    if message_bytes * len(recipients) > MAX_REQUEST_BYTES:
        raise Invalid("recipients × message size exceeds 30 MB")
    return SendRequest(sender.strip(), recipients, subject, body, attachment_bytes)


def _recipients(value: object) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise Invalid("recipient")
    if len(items) > MAX_RECIPIENTS:
        raise Invalid(f"recipient (more than {MAX_RECIPIENTS})")
    recipients = []
    for item in items:
        if not isinstance(item, str) or not ADDRESS.match(item.strip()):
            raise Invalid("recipient")
        recipients.append(item.strip())
    return recipients


def _attachments(value: object) -> list[object]:
    # The OAS schema types `attachments` as one object while its example sends an array: both are accepted.
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise Invalid("attachments")


def _attachment_size(item: object) -> int:
    if not isinstance(item, dict):
        raise Invalid("attachments")
    name, file = item.get("name"), item.get("file")
    if not isinstance(name, str) or not name.strip() or not isinstance(file, str):
        raise Invalid("attachments")
    match = DATA_URI.match(file)
    # Some clients send the bare base64 text instead of a data URI; the service takes it as well.
    payload = match.group("payload") if match else file
    try:
        content = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid("attachments (file is not base64)") from exc
    if not content:
        raise Invalid("attachments (empty file)")
    return len(content)


# --- the app ------------------------------------------------------------------------------------------------


def envelope(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "message": message}, status_code=status, headers=headers)


def _secret_matches(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


class PecMassivaSim:
    """The PEC Massiva API for one mailbox account (``credentials.PECMASSIVA_*``), as a Starlette app."""

    def __init__(self, sim: Simulator) -> None:
        self.clock = sim.clock
        self.stats = sim.stats
        self.delivery_delay = sim.options.delivery_delay
        self.gate = RateGate(sim.options.rate, sim.clock)
        self.mailbox = Mailbox(PECMASSIVA_USERNAME)
        self.sendings: dict[str, Sending] = {}
        self._sequence = 0
        if sim.options.seed_inbox:
            now = self.clock.now()
            self.add_incoming(
                Incoming(sender, subject, body, at=now - ago) for ago, sender, subject, body in SEED
            )
        self.app = Starlette(
            routes=[
                Route("/send", self._guarded(self._send, mailbox_headers=False), methods=["POST"]),
                Route("/send/{code}", self._guarded(self._sending), methods=["GET"]),
                Route("/send/{code}", self._guarded(self._delete_sending), methods=["DELETE"]),
                Route("/inbox", self._guarded(self._inbox), methods=["GET"]),
                Route("/inbox/{id}", self._guarded(self._message), methods=["GET"]),
                Route("/inbox/{id}", self._guarded(self._delete_message), methods=["DELETE"]),
                Route("/quota/{mailbox}", self._guarded(self._quota), methods=["GET"]),
            ],
            exception_handlers={HTTPException: self._http_error},
        )

    def add_incoming(self, messages: Iterable[Incoming]) -> list[int]:
        """Put inbound PEC messages straight into the INBOX (seeding, benchmarks); returns their ids."""
        now = self.clock.now()
        return [self.mailbox.store(_incoming_draft(m, self.mailbox.address, now)).id for m in messages]

    # --- the common path of every endpoint

    def _guarded(self, handler: Handler, *, mailbox_headers: bool = True) -> Handler:
        async def endpoint(request: Request) -> Response:
            if not self._bearer_ok(request):
                return envelope(MSG_UNAUTHORIZED, 401)
            if mailbox_headers and not self._mailbox_ok(
                request.headers.get("x-username"), request.headers.get("x-password")
            ):
                return envelope(MSG_UNAUTHORIZED, 401)
            self.mailbox.deliver_due(self.clock.now())
            return await handler(request)

        return endpoint

    def _bearer_ok(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and _secret_matches(token.strip(), PECMASSIVA_TOKEN)

    def _mailbox_ok(self, username: object, password: object) -> bool:
        return _secret_matches(username, PECMASSIVA_USERNAME) and _secret_matches(
            password, PECMASSIVA_PASSWORD
        )

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = exc.detail if isinstance(exc, HTTPException) else "Internal Server Error"
        return envelope(message, status)

    # --- POST /send

    async def _send(self, request: Request) -> Response:
        wait = self.gate.admit()
        if wait is not None:
            self.stats.rate_limited += 1
            return envelope("Too many requests", 429, {"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return envelope(MSG_INVALID, 400)
        if not isinstance(payload, dict):
            return envelope(MSG_INVALID, 400)
        if not self._mailbox_ok(payload.get("username"), payload.get("password")):
            return envelope(MSG_UNAUTHORIZED, 401)
        try:
            send = parse_send(payload, self.mailbox.address)
        except Invalid as exc:
            return envelope(f"{MSG_INVALID}: {exc}", 400)
        sending = self._accept(send)
        return JSONResponse(
            {"success": True, "sent": len(send.recipients), "message": "", "message_id": sending.code},
            status_code=201,
        )

    def _accept(self, send: SendRequest) -> Sending:
        now = self.clock.now()
        self._sequence += 1
        stamp = f"{rome(now):%Y%m%d%H%M%S}"
        code = f"{stamp}{self._sequence}"
        sending = Sending(
            code=code,
            opec_id=f"opec2101.{stamp}.{self._sequence:05d}.01.1.1@pecmassiva.com",
            sender=send.sender,
            recipients=send.recipients,
            subject=f"{send.subject} {code}",
            body=send.body,
            attachment_bytes=send.attachment_bytes,
            sent_at=now,
        )
        self.sendings[code] = sending
        for draft in plan_receipts(sending, self.mailbox.address, self.delivery_delay):
            self.mailbox.schedule(draft)
        self.mailbox.deliver_due(now)
        self.stats.count_accepted("pecmassiva_send", send.recipients)
        return sending

    # --- /send/{code}

    async def _sending(self, request: Request) -> Response:
        messages = self.mailbox.of_sending(request.path_params["code"])
        if not messages:
            return envelope("Result empty", 404)
        data = [
            {
                "sender": m.sender,
                "recipient": m.recipient,
                "data": rfc2822(m.at),
                "object": m.subject,
                "message": m.body,
            }
            for m in messages
        ]
        return JSONResponse({"data": data, "success": True, "message": ""})

    async def _delete_sending(self, request: Request) -> Response:
        code = request.path_params["code"]
        sending = self.sendings.get(code)
        if sending is None or sending.deleted:
            return envelope("Email not found", 404)
        if not self.mailbox.of_sending(code) and not self.mailbox.has_pending(code):
            return envelope("Email not found", 404)
        # Receipts not yet due go too: a deleted sending must not come back later.
        self.mailbox.forget_sending(code)
        sending.deleted = True
        self.stats.count_accepted("pecmassiva_delete_receipts")
        return JSONResponse({"success": True, "message": "Operation succefull"})

    # --- /inbox

    async def _inbox(self, request: Request) -> Response:
        page_text = request.query_params.get("page", "").strip() or "1"
        if not DIGITS.match(page_text) or int(page_text) < 1:
            return envelope(MSG_INVALID, 400)
        page = int(page_text)
        query = request.query_params.get("q", "").strip().lower()
        messages = self.mailbox.newest_first()
        if query:
            messages = [
                m
                for m in messages
                if query in m.subject.lower() or query in m.sender.lower() or query in m.body.lower()
            ]
        chunk = messages[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        data = [
            {
                "sender": m.sender,
                "recipient": m.recipient,
                "date": rfc2822(m.at),
                "object": m.subject,
                "id": m.id,
            }
            for m in chunk
        ]
        return JSONResponse(
            {
                "data": data,
                "success": True,
                "message": "",
                "page": page,
                "total": len(messages),
                "n_of_pages": math.ceil(len(messages) / PAGE_SIZE),
            }
        )

    def _find(self, request: Request) -> InboxMessage | None:
        text = request.path_params["id"]
        return self.mailbox.messages.get(int(text)) if DIGITS.match(text) else None

    async def _message(self, request: Request) -> Response:
        message = self._find(request)
        if message is None:
            return envelope("Message not found", 404)
        data = {
            "sender": message.sender,
            "recipient": message.recipient,
            "date": rfc2822(message.at),
            "object": message.subject,
            "body": urllib.parse.quote_plus(message.body),
        }
        return JSONResponse({"data": data, "success": True, "message": ""})

    async def _delete_message(self, request: Request) -> Response:
        message = self._find(request)
        if message is None:
            return envelope("Message not found", 404)
        del self.mailbox.messages[message.id]
        self.stats.count_accepted("pecmassiva_delete_message")
        return JSONResponse({"success": True, "message": "Message deleted"})

    # --- /quota/{mailbox}

    async def _quota(self, request: Request) -> Response:
        if request.path_params["mailbox"].upper() != "INBOX":
            return envelope("An error occured: the requested mailbox might be unavailable", 400)
        data = {"usage": self.mailbox.usage_kib(), "limit": QUOTA_LIMIT_KIB}
        return JSONResponse({"data": data, "success": True, "message": ""})
