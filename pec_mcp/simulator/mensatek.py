"""Mensatek API v7 certified email, faked with state: credits, sends, schedules, reports, certificates, hooks.

Faithful to the provider's v7 doc page and to what integrators report (``reference/pec-domain.md`` §3):

- every function is ``POST /<Function>``; parameters come as a form (urlencoded or multipart) or a JSON
  object, names case-insensitive; ``Destinatarios`` and ``Adjuntos`` are JSON (a JSON string in a form);
- HTTP Basic auth with the API user and token; a failure is HTTP 200 with ``Res -1``, as the real API answers.
  ``Resp`` in the query string also gets ``Res -1``: one integrator saw exactly that;
- answers are a one-element JSON list of strings (``"Res": "1"``, ``"Cred": "12000"``) written as the doc's
  examples write them (the client also reads Spanish-formatted numbers, "14.970,00", seen from integrators);
  ``Resp=TXT`` gets ``key=value`` lines, ``XML`` a small document, no
  ``Resp`` the legacy answer (the bare ``Res``);
- ``Res`` is negative on failure: -1 auth, -2 not enough credits, -3 wrong data (with ``Error``), -4
  attachment refused (executables). Unknown functions get HTTP 404 with ``Res -3``.

Each recipient gets its own ``idMensaje`` and costs one credit (refunded if cancelled). Statuses move on
lazily with ``sim.clock`` from the time the message goes out (``Fecha``, Spanish local time, or at once);
``d`` is the simulator's ``delivery_delay``. Codes 11 and 14 are the only ones Mensatek documents (the v7 doc
page); 900-906 are this simulator's OWN codes, chosen outside any documented range because Mensatek publishes no
table for the other states. Their texts are written as Mensatek writes its own, so that the client classifies them
from the text (``pec_mcp.providers.mensatek.status_from_text``), as it must for any real code it cannot source:

=====================  =====  ===================================================================
when                   code   txtEstado
=====================  =====  ===================================================================
before it goes         900    Programado, pendiente de envío (may be cancelled or rescheduled)
from the send time     901    Enviado, pendiente de entrega
+ d                    14     Mensaje entregado y certificado (the certificate ZIP exists from here)
+ d, ``fail-``         906    No entregado (no certificate)
+ 2d, ``read-``        11     Mensaje entregado, abierto, leído y certificado
with Aceptacion=SI:
+ 2d                   902    Notificación aceptada por el destinatario
+ 2d, ``reject-``      903    Notificación rechazada por el destinatario
+ N days, ``ignore-``  904    Notificación caducada sin respuesta (N = Caducidadaceptacion)
cancelled              905    Envío cancelado
=====================  =====  ===================================================================

(``fail-``, ``read-``, ``reject-``, ``ignore-``: prefixes of the recipient's local part.)

Report webhooks: with ``Report=1`` and ``report_url`` set, every status change is POSTed (form fields, or JSON
when ``report_format == "json"``) through the injectable ``report_sender`` and recorded in ``callbacks``. They
are sent by :meth:`MensatekSim.flush_reports`, which every request calls first, so tests advance the clock and
then flush. Faults (a given ``Res``, a proxy's page, a lost answer) come from the simulator's fault plan
(``pec_mcp.simulator.faults``), which answers in front of this app.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
import itertools
import json
import re
import secrets
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pec_mcp.simulator.credentials import MENSATEK_API_TOKEN, MENSATEK_API_USER, MENSATEK_SENDER

if TYPE_CHECKING:
    from pec_mcp.simulator.app import Simulator

ReportSender = Callable[[str, dict[str, str], str], Awaitable[None]]  # (url, fields, "form" | "json")
Handler = Callable[[dict[str, Any]], Awaitable[Response]]

MADRID = ZoneInfo("Europe/Madrid")
SERVICE = "EMAILCERTIFICADO"
COST_PER_RECIPIENT = 1.0
FIRST_MESSAGE_ID = 108366478  # the doc example's idMensaje (tests start here, to read like the doc)
# Without a given first id, ids start at a random 10-digit number: two simulators (an offline server restarted, the
# offline and a sandbox simulator sharing one store) then never hand out the same ids to different messages.
RANDOM_IDS = (1_000_000_000, 9_000_000_000)
BLOCKED_EXTENSIONS = frozenset({"exe", "bat", "cmd", "com", "scr", "js", "vbs", "msi", "jar", "ps1"})
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

SCHEDULED, SENT, DELIVERED, READ = 900, 901, 14, 11
ACCEPTED, REJECTED, EXPIRED, CANCELLED, FAILED = 902, 903, 904, 905, 906
TEXTS = {
    SCHEDULED: "Programado, pendiente de envío",
    SENT: "Enviado, pendiente de entrega",
    DELIVERED: "Mensaje entregado y certificado",
    READ: "Mensaje entregado, abierto, leído y certificado",
    ACCEPTED: "Notificación aceptada por el destinatario",
    REJECTED: "Notificación rechazada por el destinatario",
    EXPIRED: "Notificación caducada sin respuesta del destinatario",
    CANCELLED: "Envío cancelado",
    FAILED: "No entregado: el servidor de destino rechazó el mensaje",
}
CERTIFIED = frozenset({DELIVERED, READ, ACCEPTED, REJECTED, EXPIRED})


class Refusal(Exception):
    """A request the API answers with a negative Res."""

    def __init__(self, res: int, error: str = "", status: int = 200) -> None:
        super().__init__(error)
        self.res = res
        self.error = error
        self.status = status


@dataclass
class SimMessage:
    """One recipient's copy of a certified email."""

    message_id: str
    sender: str
    email: str
    subject: str
    reference: str
    created_at: float
    send_at: float
    acceptance_days: int | None
    report: bool
    cancelled_at: float | None = None
    callbacks_sent: int = 0

    def events(self, delay: float) -> list[tuple[float, int]]:
        """Every (time, code) this message goes through, in order; the current one is the last that is due."""
        events = [(self.created_at, SCHEDULED)] if self.send_at > self.created_at else []
        if self.cancelled_at is not None:
            return [*events, (self.cancelled_at, CANCELLED)]
        local = self.email.split("@", 1)[0].lower()
        events.append((self.send_at, SENT))
        if local.startswith("fail-"):
            return [*events, (self.send_at + delay, FAILED)]
        events.append((self.send_at + delay, DELIVERED))
        if self.acceptance_days is not None:
            if local.startswith("ignore-"):
                events.append((self.send_at + self.acceptance_days * 86400, EXPIRED))
            else:
                answer = REJECTED if local.startswith("reject-") else ACCEPTED
                events.append((self.send_at + 2 * delay, answer))
        elif local.startswith("read-"):
            events.append((self.send_at + 2 * delay, READ))
        return events

    def status_at(self, now: float, delay: float) -> tuple[float, int]:
        due = [event for event in self.events(delay) if event[0] <= now]
        return due[-1] if due else (self.created_at, SCHEDULED)


@dataclass
class Callback:
    """One report webhook, as sent (or tried)."""

    url: str
    fields: dict[str, str]
    format: str
    error: str | None = None


class MensatekSim:
    """The Mensatek account behind ``MENSATEK_API_USER``: its credits, messages and report webhooks."""

    def __init__(self, sim: Simulator, *, credits: float = 100.0, report_url: str | None = None,
                 report_format: Literal["form", "json"] = "form", report_sender: ReportSender | None = None,
                 first_message_id: int | None = None) -> None:
        self.sim = sim
        self.credits = credits
        self.report_url = report_url
        self.report_format = report_format
        self.report_sender = report_sender or _post_report
        self.callbacks: list[Callback] = []
        # The doc examples wrap each JSON answer in a one-element list; False answers the bare object instead.
        self.list_answers = True
        self.messages: dict[str, SimMessage] = {}
        if first_message_id is None:
            first_message_id = RANDOM_IDS[0] + secrets.randbelow(RANDOM_IDS[1] - RANDOM_IDS[0])
        self._ids = itertools.count(first_message_id)
        # Public so that a test can remove one, as the real API would lack a function whose name was guessed.
        self.functions: dict[str, tuple[str, Handler]] = {
            "EnviarEMAILCERTIFICADO": ("mensatek_send", self._send),
            "GetReportEMAILCERTIFICADO": ("mensatek_report", self._report),
            "CancelarEMAILCERTIFICADO": ("mensatek_cancel", self._cancel),
            "ReprogramarEMAILCERTIFICADO": ("mensatek_reschedule", self._reschedule),
            "GetCertificadoEMAILCERTIFICADO": ("mensatek_certificate", self._certificate),
            "GetCreditos": ("mensatek_credits", self._credits),
        }
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        self.app = Starlette(routes=[Route("/{function}", self._dispatch, methods=methods)])

    async def flush_reports(self) -> list[Callback]:
        """Send the report webhooks of every status change due by now; returns the ones sent by this call."""
        if not self.report_url:
            return []
        now, sent = self.sim.clock.now(), []
        for message in self.messages.values():
            if not message.report:
                continue
            due = [event for event in message.events(self.delay) if event[0] <= now]
            for at, code in due[message.callbacks_sent:]:
                sent.append(await self._deliver(self.report_url, self._report_fields(message, at, code)))
            message.callbacks_sent = max(message.callbacks_sent, len(due))
        return sent

    @property
    def delay(self) -> float:
        return self.sim.options.delivery_delay

    # --- the HTTP face --------------------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        await self.flush_reports()
        name = request.path_params["function"]
        try:
            params = await _params(request)
        except Refusal as refusal:
            return self._answer({}, _refused(refusal), refusal.status)
        query = {k.lower(): v for k, v in request.query_params.items()}
        if "resp" in query:
            # An integrator saw Resp in the query string break authentication (answered in that format).
            return self._answer(query, {"Res": "-1"})
        if not self._authenticated(request):
            return self._answer(params, {"Res": "-1"})
        if name not in self.functions:
            return self._answer(params, {"Res": "-3", "Error": f"La función {name} no existe"}, 404)
        if request.method != "POST":
            return self._answer(params, {"Res": "-3", "Error": "Las peticiones deben hacerse por POST"}, 405)
        endpoint, handler = self.functions[name]
        try:
            response = await handler(params)
        except Refusal as refusal:
            return self._answer(params, _refused(refusal), refusal.status)
        if endpoint != "mensatek_send":  # the send counts itself, with its recipients
            self.sim.stats.count_accepted(endpoint, [])
        return response

    def _authenticated(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, token = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # compare_digest refuses non-ASCII str, so compare bytes.
        return (hmac.compare_digest(user.encode(), MENSATEK_API_USER.encode())
                and hmac.compare_digest(token.encode(), MENSATEK_API_TOKEN.encode()))

    # --- functions ------------------------------------------------------------------------------------------

    async def _send(self, params: dict[str, Any]) -> Response:
        sender = _required(params, "remitente")
        if sender.lower() != MENSATEK_SENDER.lower():
            raise Refusal(-3, f"El remitente {sender} no está validado en el panel de usuario")
        subject, _ = _required(params, "asunto"), _required(params, "mensaje")
        recipients, duplicates = _unique(_recipients(params.get("destinatarios")))
        acceptance_days = _acceptance(params)
        _check_attachments(params.get("adjuntos"))
        now = self.sim.clock.now()
        send_at = max(now, _madrid_time(params.get("fecha"))) if params.get("fecha") else now
        cost = COST_PER_RECIPIENT * len(recipients)
        if cost > self.credits:
            raise Refusal(-2)
        self.credits -= cost
        answered = []
        for recipient in recipients:
            message = SimMessage(
                message_id=str(next(self._ids)), sender=sender, email=recipient["Email"],
                subject=_render(subject, recipient), reference=str(params.get("referenciausuario", "")),
                created_at=now, send_at=send_at, acceptance_days=acceptance_days,
                report=str(params.get("report", "0")).strip() == "1",
            )
            self.messages[message.message_id] = message
            answered.append({**recipient, "IDMENSAJE": message.message_id})
        self.sim.stats.count_accepted("mensatek_send", [r["Email"] for r in recipients])
        return self._answer(params, {
            "Res": str(len(recipients)),
            "Destinatarios": json.dumps(answered, ensure_ascii=False),
            "Cred": plain_number(self.credits),
            "Enviados": str(len(recipients)),
            "NoEnviados": "0",
            "Duplicados": str(duplicates),
            "CreditosUsados": str(int(cost)),
        })

    async def _report(self, params: dict[str, Any]) -> Response:
        message = self._message(params)
        _, code = message.status_at(self.sim.clock.now(), self.delay)
        return self._answer(params, {
            "Res": "1",
            "Programado": _madrid_text(message.send_at),
            "Remitente": message.sender,
            "Destinatario": message.email,
            "Cred": plain_number(self.credits),
            "Estado": str(code),
            "txtEstado": TEXTS[code],
        })

    async def _cancel(self, params: dict[str, Any]) -> Response:
        message = self._pending(params, "cancelar")
        message.cancelled_at = self.sim.clock.now()
        self.credits += COST_PER_RECIPIENT
        return self._answer(params, {"Res": "1", "Cred": plain_number(self.credits)})

    async def _reschedule(self, params: dict[str, Any]) -> Response:
        message = self._pending(params, "reprogramar")
        message.send_at = max(self.sim.clock.now(), _madrid_time(_required(params, "fecha")))
        return self._answer(params, {"Res": "1", "Cred": plain_number(self.credits)})

    async def _certificate(self, params: dict[str, Any]) -> Response:
        message = self._message(params)
        at, code = message.status_at(self.sim.clock.now(), self.delay)
        if code not in CERTIFIED:
            raise Refusal(-3, "El certificado aún no está disponible: el mensaje no ha sido entregado")
        name = f"certificado_{message.message_id}.zip"
        return Response(_certificate_zip(message, at, code), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def _credits(self, params: dict[str, Any]) -> Response:
        return self._answer(params, {"Res": "1", "Cred": plain_number(self.credits)})

    def _message(self, params: dict[str, Any]) -> SimMessage:
        message_id = _required(params, "idmensaje").strip()
        message = self.messages.get(message_id)
        if message is None:
            raise Refusal(-3, f"No existe ningún mensaje con Idmensaje {message_id}")
        return message

    def _pending(self, params: dict[str, Any], verb: str) -> SimMessage:
        message = self._message(params)
        if message.cancelled_at is not None:
            raise Refusal(-3, f"No se puede {verb}: el mensaje ya fue cancelado")
        if message.send_at <= self.sim.clock.now():
            raise Refusal(-3, f"No se puede {verb}: el mensaje ya ha sido enviado")
        return message

    def _answer(self, params: dict[str, Any], fields: dict[str, str], status: int = 200) -> Response:
        return _answer(params, fields, status, as_list=self.list_answers)

    # --- webhooks -------------------------------------------------------------------------------------------

    def _report_fields(self, message: SimMessage, at: float, code: int) -> dict[str, str]:
        fields = {
            "Servicio": SERVICE,
            "Resultado": str(code),
            "Remitente": message.sender,
            "Destinatario": message.email,
            "Fecha": _madrid_text(at, seconds=True),
            "Asunto": message.subject,
            "idMensaje": message.message_id,
            "Referencia": message.reference,
        }
        if code in CERTIFIED:
            fields["CSV"] = _csv_code(message.message_id)
        return fields

    async def _deliver(self, url: str, fields: dict[str, str]) -> Callback:
        callback = Callback(url=url, fields=fields, format=self.report_format)
        try:
            await self.report_sender(url, fields, self.report_format)
        except httpx.HTTPError as exc:  # a receiver that is down must not break the API it reports on
            callback.error = type(exc).__name__
        self.callbacks.append(callback)
        return callback


async def _post_report(url: str, fields: dict[str, str], fmt: str) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        if fmt == "json":
            await client.post(url, json=fields)
        else:
            await client.post(url, data=fields)


# --- reading requests ---------------------------------------------------------------------------------------


async def _params(request: Request) -> dict[str, Any]:
    """The body's parameters with lower-case names (the API treats names case-insensitively)."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/json"):
        try:
            data = json.loads(await request.body() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refusal(-3, "El cuerpo de la petición no es JSON válido") from None
        if not isinstance(data, dict):
            raise Refusal(-3, "El cuerpo de la petición debe ser un objeto JSON")
        return {str(k).lower(): v for k, v in data.items()}
    async with request.form() as form:
        return {k.lower(): v for k, v in form.items() if isinstance(v, str)}


def _required(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or not str(value).strip():
        raise Refusal(-3, f"Falta parámetro obligatorio: {name.capitalize()}")
    return str(value)


def _json_param(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise Refusal(-3, f"{name} no es un JSON válido") from None
    return value


def _recipients(value: Any) -> list[dict[str, str]]:
    if value is None or value == "":
        raise Refusal(-3, "Falta parámetro obligatorio: Destinatarios")
    data = _json_param(value, "Destinatarios")
    if not isinstance(data, list) or not data:
        raise Refusal(-3, "Destinatarios debe ser una lista JSON con al menos un destinatario")
    recipients = []
    for position, entry in enumerate(data, start=1):
        if not isinstance(entry, dict) or not str(entry.get("Email", "")).strip():
            raise Refusal(-3, f"Falta el Email del destinatario {position}")
        email = str(entry["Email"]).strip()
        if not EMAIL.fullmatch(email):
            raise Refusal(-3, f"El Email del destinatario {position} no es válido: {email}")
        recipients.append({str(k): str(v) for k, v in entry.items()} | {"Email": email})
    return recipients


def _unique(recipients: list[dict[str, str]]) -> tuple[list[dict[str, str]], int]:
    seen: set[str] = set()
    unique = []
    for recipient in recipients:
        key = recipient["Email"].lower()
        if key not in seen:
            seen.add(key)
            unique.append(recipient)
    return unique, len(recipients) - len(unique)


def _acceptance(params: dict[str, Any]) -> int | None:
    if str(params.get("aceptacion", "NO")).strip().upper() != "SI":
        return None
    raw = str(params.get("caducidadaceptacion", "")).strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 30:
        raise Refusal(-3, "Caducidadaceptacion es obligatorio con Aceptacion=SI: de 1 a 30 días")
    return int(raw)


def _check_attachments(value: Any) -> None:
    if value in (None, "", "[]"):
        return
    files = _json_param(value, "Adjuntos")
    if not isinstance(files, list):
        raise Refusal(-3, "Adjuntos debe ser una lista JSON")
    for entry in files:
        if not isinstance(entry, dict) or not entry.get("Nombre") or not entry.get("Contenido"):
            raise Refusal(-3, "Cada adjunto necesita Nombre y Contenido")
        name = str(entry["Nombre"])
        if name.rsplit(".", 1)[-1].lower() in BLOCKED_EXTENSIONS:
            raise Refusal(-4, f"Adjunto no permitido: {name}")
        try:
            base64.b64decode(str(entry["Contenido"]), validate=True)
        except binascii.Error:
            raise Refusal(-3, f"El Contenido del adjunto {name} no es base64 válido") from None


def _madrid_time(text: Any) -> float:
    for pattern in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(str(text).strip(), pattern).replace(tzinfo=MADRID).timestamp()
        except ValueError:
            continue
    raise Refusal(-3, f"Fecha no válida: {text} (formato AAAA-MM-DD HH:MM)")


def _render(template: str, recipient: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: recipient.get(m.group(1), m.group(0)), template)


# --- writing answers ----------------------------------------------------------------------------------------


def plain_number(value: float) -> str:
    """``12000.0`` -> ``"12000"``, ``99.5`` -> ``"99.5"``: numbers as the doc's examples write them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _madrid_text(timestamp: float, *, seconds: bool = False) -> str:
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return datetime.fromtimestamp(timestamp, MADRID).strftime(pattern)


def _refused(refusal: Refusal) -> dict[str, str]:
    fields = {"Res": str(refusal.res)}
    if refusal.error:
        fields["Error"] = refusal.error
    return fields


def _answer(params: dict[str, Any], fields: dict[str, str], status: int = 200, *, as_list: bool = True
            ) -> Response:
    """The answer in the format ``Resp`` asks for."""
    resp = str(params.get("resp", "")).strip().upper()
    if resp == "JSON":
        return JSONResponse([fields] if as_list else fields, status_code=status)
    if resp == "TXT":
        return PlainTextResponse("\n".join(f"{k}={v}" for k, v in fields.items()), status_code=status)
    if resp == "XML":
        root = ElementTree.Element("respuesta")
        for key, value in fields.items():
            ElementTree.SubElement(root, key).text = value
        return Response(ElementTree.tostring(root, encoding="unicode"), status_code=status,
                        media_type="application/xml")
    # No Resp: the legacy answer of older API versions, which carried little more than the code.
    return PlainTextResponse(fields["Res"], status_code=status)


def _csv_code(message_id: str) -> str:
    """A stable Secure Verification Code (CSV) for a message's certificate."""
    return base64.b32encode(hashlib.sha256(message_id.encode()).digest()).decode("ascii")[:19]


def _certificate_zip(message: SimMessage, at: float, code: int) -> bytes:
    """A ZIP as the real one: a PDF certificate per recipient and a CSV of results."""
    table = io.StringIO()
    writer = csv.writer(table, delimiter=";")
    writer.writerow(["idMensaje", "Destinatario", "Estado", "Descripcion", "Fecha", "CSV"])
    writer.writerow([message.message_id, message.email, code, TEXTS[code], _madrid_text(at, seconds=True),
                     _csv_code(message.message_id)])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"certificado_{message.message_id}.pdf", _pdf(message, code))
        archive.writestr(f"resultado_{message.message_id}.csv", table.getvalue())
    return buffer.getvalue()


def _pdf(message: SimMessage, code: int) -> bytes:
    """A one-page PDF that readers open: the certificate's text, with a valid cross-reference table."""
    text = f"Certificado {message.message_id} - {message.email} - {TEXTS[code]}"
    text = text.encode("latin-1", "replace").decode("latin-1").replace("(", "[").replace(")", "]")
    stream = f"BT /F1 11 Tf 40 780 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
