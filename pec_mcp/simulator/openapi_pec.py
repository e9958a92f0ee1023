"""The openapi.it PEC simulator: mailboxes and business-register filings, their states, a wallet, callbacks.

Faithful to ``pec.openapi.json``: Bearer auth, the error envelope ``{success:false, message, error,
data:null}`` with the provider's HTTP statuses and numeric codes (from the spec's examples where it has them;
codes the spec does not show are this simulator's own), text/plain errors on the PDF downloads, 204 from
``domini_pec`` for an unknown domain.

Lifecycle (time is ``sim.clock``; states are brought up to date lazily, whenever a request reads them)::

    registrata --PATCH attivazione (PDFs)--> in_evasione --ACTIVATION_DELAY--> evasa --DELETE--> revocata
    revocata --GET rinnovo--> evasa
    codice_in_richiesta --FILING_DELAY--> in_attesa_di_documenti --PATCH (p7m)--> documenti_caricati
        --FILING_DELAY--> comunicazione_evasa

Sandbox addresses: STANDARD..GOLD end with ``@testcert.legalmail.it``, DOMICILIODIGITALE with
``@test.domiciliodigitale.com``, PECMASSIVA with ``@pecmassiva.com``. ``RESERVED_ADDRESSES`` and every
registered address are "not available".

Wallet: ``START_WALLET`` EUR, and ``PRICES`` (list prices chosen for the simulator, per year where it counts).
Callbacks: a mailbox or filing registered with a callback is POSTed to its URL on every state change, through
``send_callback`` (replaceable, e.g. by tests) and recorded in ``callbacks``.
Faults (a proxy's HTML 502, a 503, ``success:false`` with 200...) come from the simulator's fault plan
(``pec_mcp.simulator.faults``), which answers in front of this app.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pec_mcp.simulator.credentials import OPENAPI_PEC_TOKEN

if TYPE_CHECKING:
    from pec_mcp.simulator.app import Simulator

ACTIVATION_DELAY = 60.0  # seconds from the activation documents to "evasa"
FILING_DELAY = 60.0  # seconds for each step the business register takes on its own
START_WALLET = Decimal("100.00")
YEAR = 365 * 24 * 3600
MAX_USERS = 25

# List prices in EUR, chosen for the simulator (the real ones depend on the contract).
PRICES: dict[str, Decimal] = {
    "STANDARD": Decimal("5.00"),  # per year, also for renewals
    "BRONZE": Decimal("10.00"),
    "SILVER": Decimal("20.00"),
    "GOLD": Decimal("30.00"),
    "DOMICILIODIGITALE": Decimal("5.00"),
    "PECMASSIVA": Decimal("99.00"),
    "space_1024": Decimal("2.00"),  # each 1024 MB of disk or archive space added
    "conservation_512": Decimal("5.00"),  # each 512 MB of legal conservation
    "user": Decimal("1.00"),  # each extra user (multiutenza)
    "filing": Decimal("10.00"),  # each business-register filing (comunica_pec)
}

UPGRADE_ORDER = ["STANDARD", "BRONZE", "SILVER", "GOLD"]
FIXED_TYPES = {"DOMICILIODIGITALE", "PECMASSIVA"}
FIXED_TYPES_REFUSAL = "this service cannot be activated on these boxes: DOMICILIODIGITALE|PECMASSIVA"
SANDBOX_DOMAINS = {
    **dict.fromkeys(UPGRADE_ORDER, "testcert.legalmail.it"),
    "DOMICILIODIGITALE": "test.domiciliodigitale.com",
    "PECMASSIVA": "pecmassiva.com",
}
# (disk, archive) MB a type comes with once active.
DEFAULT_SPACE = {
    "STANDARD": (1024, 0), "BRONZE": (1024, 1024), "SILVER": (2048, 4096), "GOLD": (3072, 13312),
    "DOMICILIODIGITALE": (1024, 0), "PECMASSIVA": (1024, 0),
}
PEC_DOMAINS = {"legalmail.it", "pec.it", "pecmassiva.com", "domiciliodigitale.com", "testcert.legalmail.it",
               "test.domiciliodigitale.com", "postacert.it", "arubapec.it", "pec.aruba.it", "legalmail.eu"}
RESERVED_ADDRESSES = {"info@testcert.legalmail.it", "admin@testcert.legalmail.it",
                      "postmaster@testcert.legalmail.it", "taken@testcert.legalmail.it",
                      "info@test.domiciliodigitale.com", "info@pecmassiva.com"}

CUSTOMER_TYPES = {"IM", "PS", "PL", "PC", "A", "PV", "X"}
CUSTOMER_SUBTYPES = {"SI", "IN", "CM", "TE", "ES", "ME", "AL", "CF", "ED", "TM", "MA", "AR", "TL", "FI", "X",
                     "PC", "PR", "PN", "PT", "PA", "PL", "LR", "LP", "LC", "LM", "LA", "LI"}
ROLES = {"AMMINISTRATORE", "COMMISSARIO_GIUDIZIARIO", "CURATORE_FALLIMENTARE", "LEGALE_RAPPRESENTANTE",
         "LIQUIDATORE", "SOCIO", "TITOLARE"}
REGISTRATION_REQUIRED = ["casella_pec", "tipo_casella", "tipo_cliente", "nome_richiedente",
                         "cognome_richiedente", "email", "telefono", "codice_fiscale_richiedente",
                         "data_nascita_richiedente",
                         "sesso_richiedente", "nazione_nascita_richiedente", "indirizzo_titolare",
                         "comune_titolare", "cap_titolare", "nazione_titolare", "provincia_titolare"]
FILING_REQUIRED = ["casella_pec", "cf", "nome", "cognome", "qualifica", "email", "cellulare",
                   "ragione_sociale", "cf_piva", "comune", "provincia"]
REGISTRATION_OPTIONAL = ["sottotipo_cliente", "sottotipo_cliente_altro", "cellulare",
                         "comune_nascita_richiedente",
                         "provincia_nascita_richiedente", "denominazione_titolare", "cf_piva_titolare",
                         "autorinnovo", "tipo_documento", "numero_documento", "data_scadenza_documento",
                         "documento_rilasciato_da", "data_rilascio_documento"]
REGISTRATION_DATES = ["data_nascita_richiedente", "data_scadenza_documento", "data_rilascio_documento"]

_ID = re.compile(r"^[0-9a-f]{24}$")
_ADDRESS = re.compile(r"^[a-z0-9._+-]+@[a-z0-9.-]+\.[a-z]{2,}$")
_DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")

CallbackSender = Callable[[httpx.Request], Awaitable[object]]


class ApiError(Exception):
    """A refusal in the provider's shape; ``plain`` for the text/plain errors of the PDF downloads."""

    def __init__(self, status: int, code: int | None, message: str, *, plain: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.plain = status, code, message, plain

    def response(self) -> Response:
        if self.plain:
            return PlainTextResponse(self.message, status_code=self.status)
        return JSONResponse({"success": False, "message": self.message, "error": self.code, "data": None},
                            status_code=self.status)


@dataclass
class CallbackRecord:
    """One callback the simulator made (or tried to make)."""

    url: str
    method: str  # POST (form field) or JSON (raw body)
    field: str
    payload: dict[str, Any]
    delivered: bool
    error: str | None = None


@dataclass
class _Box:
    id: str
    record: dict[str, Any]  # the registration fields as the API stores them
    stato: str = "registrata"
    registered: int = 0
    changed: int = 0
    activation_requested: float | None = None
    evasione: int | None = None
    scadenza: int | None = None
    revoca: int | None = None
    disk: int = 0
    archive: int = 0
    conservation: int = 0
    conservation_on: bool = False
    activation_docs: list[str] = field(default_factory=list)
    conservation_docs: list[str] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tipo(self) -> str:
        return str(self.record["tipo_casella"])


@dataclass
class _Filing:
    id: str
    record: dict[str, Any]
    stato: str = "codice_in_richiesta"
    changed: int = 0
    step_started: float = 0.0
    documents: list[str] = field(default_factory=list)


def _day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%d/%m/%Y")


def _valid_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%d/%m/%Y")
    except ValueError:
        return False
    return True


def make_pdf(lines: list[str]) -> bytes:
    """A minimal valid PDF 1.4: one A4 page with the given text lines, and a correct xref table."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    text = "\n".join(f"({escape(line)}) Tj 0 -18 Td" for line in lines)
    stream = f"BT /F1 12 Tf 56 780 Td\n{text}\nET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def send_with_httpx(request: httpx.Request) -> httpx.Response:
    """The default callback sender: a short-lived client, so the simulator holds no connection open."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.send(request)


class OpenapiPecSim:
    """State of one openapi.it PEC account and the Starlette app that serves its API."""

    def __init__(self, sim: Simulator, *, send_callback: CallbackSender = send_with_httpx) -> None:
        self.sim = sim
        self.wallet = START_WALLET
        self.boxes: dict[str, _Box] = {}
        self.filings: dict[str, _Filing] = {}
        self.send_callback = send_callback
        self.callbacks: list[CallbackRecord] = []
        self.activation_delay = ACTIVATION_DELAY
        self.filing_delay = FILING_DELAY
        self.owner = "demo@openapi.example"
        routes = [
            ("/domini_pec/{dominio}", "GET", self._check_domain, "check_domain"),
            ("/verifica_pec/{pec}", "GET", self._check_address, "check_address"),
            ("/pec", "GET", self._list_boxes, "list_mailboxes"),
            ("/pec", "POST", self._register, "register"),
            ("/pec/{id}", "GET", self._get_box, "get_mailbox"),
            ("/pec/{id}", "DELETE", self._revoke, "revoke"),
            ("/pec/{id}/attivazione", "PATCH", self._activate, "activate"),
            ("/pec/{id}/modifica", "PATCH", self._modify, "modify"),
            ("/pec/{id}/conservazione", "PATCH", self._conservation, "conservation"),
            ("/pec/{id}/trasformazione", "PATCH", self._transform, "transform"),
            ("/pec/{id}/rinnovo", "GET", self._renew, "renew"),
            ("/pec/{id}/multiutenza", "POST", self._add_user, "add_user"),
            ("/pec/{id}/modulo_attivazione", "GET", self._activation_form, "activation_form"),
            ("/pec/{id}/modulo_conservazione", "GET", self._conservation_form, "conservation_form"),
            ("/comunica_pec", "GET", self._list_filings, "list_filings"),
            ("/comunica_pec", "POST", self._create_filing, "create_filing"),
            ("/comunica_pec/{id}", "GET", self._get_filing, "get_filing"),
            ("/comunica_pec/{id}", "PATCH", self._upload_filing, "upload_filing_documents"),
            ("/comunica_pec/{id}/procura_registro_imprese", "GET", self._filing_proxy, "filing_proxy"),
        ]
        self.app = Starlette(routes=[Route(path, self._endpoint(handler, operation), methods=[method])
                                     for path, method, handler, operation in routes])

    # ------------------------------------------------------------------ test hooks

    async def settle(self) -> None:
        """Bring every mailbox and filing up to the clock (states move lazily otherwise), with callbacks."""
        for box in list(self.boxes.values()):
            await self._refresh_box(box)
        for filing in list(self.filings.values()):
            await self._refresh_filing(filing)

    # ------------------------------------------------------------------ plumbing

    def _endpoint(self, handler: Callable[[Request], Awaitable[Response]],
                  operation: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if request.headers.get("authorization", "") != f"Bearer {OPENAPI_PEC_TOKEN}":
                return ApiError(401, None, "Unauthorized: the Bearer token is missing, invalid or expired",
                                ).response()
            try:
                response = await handler(request)
            except ApiError as exc:
                return exc.response()
            self.sim.stats.count_accepted(f"openapi_pec_{operation}")
            return response
        return endpoint

    def _now(self) -> float:
        return self.sim.clock.now()

    @staticmethod
    def _ok(data: Any) -> JSONResponse:
        return JSONResponse({"data": data, "success": True, "message": "", "error": None})

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, 100, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, 100, "the request body must be a JSON object")
        return body

    def _charge(self, amount: Decimal, code: int) -> None:
        if amount > self.wallet:
            raise ApiError(402, code, f"Insufficient Credit in Wallet: {self.wallet:.2f}")
        self.wallet -= amount

    async def _box(self, request: Request, bad: int, missing: int, *, plain: bool = False) -> _Box:
        box_id = request.path_params["id"]
        if not _ID.match(box_id):
            raise ApiError(400, bad, "Invalid id" if plain else "Wrong id", plain=plain)
        box = self.boxes.get(box_id)
        if box is None:
            raise ApiError(404, missing, f"no request matches this id: {box_id}" if plain else "no pec found",
                           plain=plain)
        await self._refresh_box(box)
        return box

    async def _filing(self, request: Request, bad: int, missing: int, *, plain: bool = False) -> _Filing:
        filing_id = request.path_params["id"]
        if not _ID.match(filing_id):
            raise ApiError(400, bad, "Invalid id" if plain else "Wrong id", plain=plain)
        filing = self.filings.get(filing_id)
        if filing is None:
            raise ApiError(404, missing, f"no request matches this id: {filing_id}" if plain
                           else "no request found", plain=plain)
        await self._refresh_filing(filing)
        return filing

    @staticmethod
    def _documents(body: dict[str, Any], *, kind: str, missing: int, wrong: int) -> list[bytes]:
        raw = body.get("documenti")
        items = [raw] if isinstance(raw, str) else raw
        if not items or not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ApiError(428, missing, "documenti required")
        decoded = []
        for item in items:
            try:
                content = base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError):
                content = b""
            is_pdf = content.startswith(b"%PDF")
            if (kind == "pdf" and not is_pdf) or (kind == "p7m" and not content.startswith(b"\x30")):
                raise ApiError(406, wrong, f"wrong file format, {kind} required")
            decoded.append(content)
        return decoded

    # ------------------------------------------------------------------ state and callbacks

    def _set_box_state(self, box: _Box, stato: str, at: float) -> None:
        box.stato = stato
        box.changed = int(at)

    async def _refresh_box(self, box: _Box) -> None:
        if box.stato == "in_evasione" and box.activation_requested is not None:
            done = box.activation_requested + self.activation_delay
            if self._now() >= done:
                box.evasione = int(done)
                box.scadenza = int(done) + YEAR
                box.disk, box.archive = DEFAULT_SPACE[box.tipo]
                self._set_box_state(box, "evasa", done)
                await self._notify(box.record.get("callback"), self._box_wire(box))

    async def _refresh_filing(self, filing: _Filing) -> None:
        for before, after in (("codice_in_richiesta", "in_attesa_di_documenti"),
                              ("documenti_caricati", "comunicazione_evasa")):
            done = filing.step_started + self.filing_delay
            if filing.stato == before and self._now() >= done:
                filing.stato, filing.changed, filing.step_started = after, int(done), done
                await self._notify(filing.record.get("callback"), self._filing_wire(filing))

    async def _notify(self, callback: dict[str, Any] | None, payload: dict[str, Any]) -> None:
        """POST the new state to the callback URL: a form field holding the JSON, or the JSON itself."""
        if not callback or not callback.get("url"):
            return
        method, name = callback["method"], callback["field"]
        document = json.dumps(payload)
        if method == "JSON":
            request = httpx.Request("POST", callback["url"], content=document,
                                    headers={"Content-Type": "application/json"})
        else:
            request = httpx.Request("POST", callback["url"], data={name: document})
        record = CallbackRecord(url=callback["url"], method=method, field=name, payload=payload,
                                delivered=True)
        try:
            await self.send_callback(request)
        except httpx.HTTPError as exc:
            # A receiver that is down must not break the API call that changed the state.
            record.delivered, record.error = False, type(exc).__name__
        self.callbacks.append(record)

    def _box_wire(self, box: _Box) -> dict[str, Any]:
        stamps: dict[str, int] = {"registrazione": box.registered, "ultima_modifica": box.changed}
        for name, value in (("evasione", box.evasione), ("scadenza", box.scadenza), ("revoca", box.revoca)):
            if value is not None:
                stamps[name] = value
        return {
            **box.record,
            "dominio": box.record["casella_pec"].split("@", 1)[1],
            "owner": self.owner,
            "timestamp": stamps,
            "cod_attivazione": str(10_000_000 + int(box.id[-6:], 16) % 9_000_000),
            "uid": f"MA{int(box.id[-5:], 16) % 1_000_000:06d}",
            "conservazione": box.conservation_on,
            "data_attivazione": _day(box.evasione) if box.evasione else "",
            "data_scadenza": _day(box.scadenza) if box.scadenza else "",
            "descrizione": box.record["casella_pec"],
            "sms": False,
            "spazio_conservazione": box.conservation,
            "spazio_disco": box.disk,
            "spazio_storico": box.archive,
            "stato": box.stato,
            "storico": box.archive > 0,
            "documenti_attivazione": box.activation_docs,
            "documenti_conservazione": box.conservation_docs,
            "multiutenza": box.users,
            "id": box.id,
        }

    def _box_summary(self, box: _Box) -> dict[str, Any]:
        wire = self._box_wire(box)
        return {key: wire[key] for key in ("id", "casella_pec", "tipo_casella", "stato", "data_scadenza",
                                           "timestamp", "owner")}

    def _filing_wire(self, filing: _Filing) -> dict[str, Any]:
        return {**filing.record, "stato": filing.stato, "codice_registro_imprese": "openapi",
                "documenti_registro_imprese": filing.documents, "owner": self.owner,
                "timestamp": filing.changed, "id": filing.id}

    def _taken(self, address: str) -> bool:
        registered = (box.record["casella_pec"] for box in self.boxes.values())
        return address in RESERVED_ADDRESSES or address in registered

    # ------------------------------------------------------------------ checks

    async def _check_domain(self, request: Request) -> Response:
        domain = request.path_params["dominio"].strip().lower()
        if not domain:
            raise ApiError(428, 400, "domain required")
        if not _DOMAIN.match(domain):
            raise ApiError(406, 401, "domain not valid")
        if domain not in PEC_DOMAINS:
            return Response(status_code=204)
        return JSONResponse({"data": [], "success": True, "message": f"{domain} found!", "error": None})

    async def _check_address(self, request: Request) -> Response:
        address = request.path_params["pec"].strip().lower()
        if not address:
            raise ApiError(428, 207, "casella_pec required")
        if not _ADDRESS.match(address):
            raise ApiError(406, 208, "invalid casella_pec")
        if self._taken(address):
            raise ApiError(406, 209, f"casella_pec {address} not available")
        return self._ok({"available": True})

    # ------------------------------------------------------------------ mailboxes

    async def _list_boxes(self, request: Request) -> Response:
        if not self.boxes:
            raise ApiError(404, 200, "no pec linked to this account")
        for box in list(self.boxes.values()):
            await self._refresh_box(box)
        return self._ok([self._box_summary(box) for box in self.boxes.values()])

    async def _register(self, request: Request) -> Response:
        body = await self._body(request)
        for number, name in enumerate(REGISTRATION_REQUIRED):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise ApiError(428, 224 if name == "tipo_casella" else 221 + number, f"{name} required")
        # Like the real API, unknown fields are dropped rather than echoed back.
        known = {*REGISTRATION_REQUIRED, *REGISTRATION_OPTIONAL}
        record = {key: value for key, value in body.items() if key in known}
        tipo = str(body["tipo_casella"]).upper()  # the spec's own example sends "bronze"
        address = body["casella_pec"].strip().lower()
        if tipo not in SANDBOX_DOMAINS:
            raise ApiError(406, 225, "tipo_casella not valid: " + "|".join(SANDBOX_DOMAINS))
        if str(body["tipo_cliente"]).upper() not in CUSTOMER_TYPES:
            raise ApiError(406, 227, "tipo_cliente not valid: IM|PS|PL|PC|A|PV|X")
        subtype = str(body.get("sottotipo_cliente") or "").upper()
        if subtype and subtype not in CUSTOMER_SUBTYPES:
            raise ApiError(406, 228, "sottotipo_cliente not valid")
        if str(body["sesso_richiedente"]).upper() not in {"M", "F"}:
            raise ApiError(406, 243, "sesso_richiedente not valid: M|F")
        for name in REGISTRATION_DATES:
            if body.get(name) and not _valid_date(str(body[name])):
                raise ApiError(406, 242, f"{name} not valid, accepted format: dd/mm/yyyy")
        if not _ADDRESS.match(address):
            raise ApiError(406, 208, "invalid casella_pec")
        domain = address.split("@", 1)[1]
        if domain not in SANDBOX_DOMAINS.values():
            raise ApiError(404, 326, f"the domain {domain} is non-existent in the system or belongs to "
                                     "someone else")
        if domain != SANDBOX_DOMAINS[tipo]:
            raise ApiError(406, 208, f"invalid casella_pec: a {tipo} mailbox must end with "
                                     f"@{SANDBOX_DOMAINS[tipo]}")
        if self._taken(address):
            raise ApiError(406, 209, f"casella_pec {address} not available")
        callback = self._callback(body.get("callback"))
        self._charge(PRICES[tipo], 262)
        now = int(self._now())
        record.update(casella_pec=address, tipo_casella=tipo, tipo_cliente=str(body["tipo_cliente"]).upper(),
                      sottotipo_cliente=subtype, callback=callback or {},
                      autorinnovo=bool(body.get("autorinnovo", False)))
        for key in ("nazione_nascita_richiedente", "nazione_titolare"):
            record[key] = str(record[key]).upper()
        box = _Box(id=secrets.token_hex(12), record=record, registered=now, changed=now)
        self.boxes[box.id] = box
        return self._ok(self._box_wire(box))

    @staticmethod
    def _callback(raw: Any) -> dict[str, Any] | None:
        if raw in (None, {}, [], ""):
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("url"), str) or not raw["url"]:
            raise ApiError(428, 230, "callback url required")
        method = str(raw.get("method") or "POST").upper()
        if method not in {"POST", "JSON"}:
            raise ApiError(406, 231, "callback method not valid: POST|JSON")
        data = raw.get("data") or {}
        if not isinstance(data, dict):
            raise ApiError(406, 232, "callback data must be an object")
        return {"url": raw["url"], "field": str(raw.get("field") or "data"), "method": method, "data": data}

    async def _get_box(self, request: Request) -> Response:
        return self._ok(self._box_wire(await self._box(request, 201, 202)))

    async def _revoke(self, request: Request) -> Response:
        box = await self._box(request, 301, 302)
        if box.stato == "revocata":
            raise ApiError(406, 303, "your pec has already been revoked")
        if box.stato != "evasa":
            raise ApiError(428, 304, "you can revoke the pec only if it is active")
        now = self._now()
        box.revoca = int(now)
        self._set_box_state(box, "revocata", now)
        await self._notify(box.record.get("callback"), self._box_wire(box))
        return self._ok(self._box_wire(box))

    async def _activate(self, request: Request) -> Response:
        box = await self._box(request, 265, 266)
        if box.stato not in {"registrata", "documenti_errati"}:
            raise ApiError(428, 267, "you can activate the pec only when it is in the "
                                     "'registrata|documenti_errati' state")
        documents = self._documents(await self._body(request), kind="pdf", missing=268, wrong=296)
        now = self._now()
        box.activation_docs = [f"{box.id}_{n}_attivazione.pdf" for n in range(len(documents))]
        box.activation_requested = now
        self._set_box_state(box, "in_evasione", now)
        await self._notify(box.record.get("callback"), self._box_wire(box))
        return self._ok(self._box_wire(box))

    def _require_active_full_box(self, box: _Box, action: str, code: int) -> None:
        if box.tipo in FIXED_TYPES:
            raise ApiError(428, 390, FIXED_TYPES_REFUSAL)
        if box.stato != "evasa":
            raise ApiError(428, code, f"you can {action} your certified mail only if it has been processed")

    @staticmethod
    def _space(name: str, raw: Any, current: int, step: int) -> int:
        """The new space for a "+N" (add) or N (set) value; the provider's refusals for the rest."""
        adds = isinstance(raw, str) and raw.strip().startswith("+")
        digits = raw.strip().lstrip("+") if isinstance(raw, str) else raw
        number = isinstance(digits, int) or (isinstance(digits, str) and digits.isdigit())
        if isinstance(digits, bool) or not number:
            raise ApiError(406, 324, f"{name} not valid")
        amount = int(digits)
        if amount <= 0 or amount % step:
            raise ApiError(406, 325, f"the system only takes into account multiples of {step}")
        target = current + amount if adds else amount
        if target <= current:
            raise ApiError(406, 323, f"a downgrade of the '{name}' is not allowed: it is {current} MB now, "
                                     f"ask for more than that (or '+{step}')")
        return target

    async def _modify(self, request: Request) -> Response:
        box = await self._box(request, 265, 266)
        self._require_active_full_box(box, "modify", 281)
        body = await self._body(request)
        if not any(k in body for k in ("spazio_disco", "spazio_storico", "spazio_conservazione")):
            raise ApiError(428, 283, "spazio_disco, spazio_storico or spazio_conservazione required")
        disk, archive, conservation = box.disk, box.archive, box.conservation
        if "spazio_disco" in body:
            disk = self._space("spazio_disco", body["spazio_disco"], box.disk, 1024)
        if "spazio_storico" in body:
            archive = self._space("spazio_storico", body["spazio_storico"], box.archive, 1024)
        if "spazio_conservazione" in body:
            if not box.conservation_on:
                raise ApiError(428, 282, "you must first activate the 'conservazione' service")
            conservation = self._space("spazio_conservazione", body["spazio_conservazione"],
                                       box.conservation, 512)
        cost = (PRICES["space_1024"] * ((disk - box.disk + archive - box.archive) // 1024)
                + PRICES["conservation_512"] * ((conservation - box.conservation) // 512))
        self._charge(cost, 290)
        box.disk, box.archive, box.conservation = disk, archive, conservation
        box.changed = int(self._now())
        return self._ok(self._box_wire(box))

    async def _conservation(self, request: Request) -> Response:
        box = await self._box(request, 265, 266)
        self._require_active_full_box(box, "activate conservation on", 295)
        if box.conservation_on:
            raise ApiError(406, 293, "conservazione service is already active")
        body = await self._body(request)
        space = self._space("spazio_conservazione", body.get("spazio_conservazione", 512), 0, 512)
        documents = self._documents(body, kind="pdf", missing=294, wrong=296)
        self._charge(PRICES["conservation_512"] * (space // 512), 297)
        box.conservation_on, box.conservation = True, space
        box.conservation_docs = [f"{box.id}_{n}_conservazione.pdf" for n in range(len(documents))]
        box.changed = int(self._now())
        return self._ok(self._box_wire(box))

    async def _transform(self, request: Request) -> Response:
        box = await self._box(request, 265, 266)
        self._require_active_full_box(box, "trasform", 272)
        target = str((await self._body(request)).get("tipo_casella") or "").upper()
        if not target:
            raise ApiError(428, 273, "tipo_casella required")
        higher = UPGRADE_ORDER[UPGRADE_ORDER.index(box.tipo) + 1:]
        if target not in higher:
            allowed = " or ".join(higher) if higher else "nothing (GOLD is the highest)"
            raise ApiError(406, 276, f"a downgrade of the 'tipo_casella' is not allowed; only {allowed} "
                                     "allowed")
        self._charge(PRICES[target] - PRICES[box.tipo], 279)
        box.record["tipo_casella"] = target
        disk, archive = DEFAULT_SPACE[target]
        box.disk, box.archive = max(box.disk, disk), max(box.archive, archive)
        box.changed = int(self._now())
        return self._ok(self._box_wire(box))

    async def _renew(self, request: Request) -> Response:
        box = await self._box(request, 201, 202)
        raw = request.query_params.get("anni", "1")
        if not raw.isdigit() or int(raw) < 1:
            raise ApiError(406, 204, "anni not valid: a whole number of years, at least 1")
        years = int(raw)
        if box.stato not in {"evasa", "revocata"}:
            raise ApiError(428, 203, "you can renew only evaded or revoked pec")
        self._charge(PRICES[box.tipo] * years, 403)
        now = self._now()
        box.scadenza = int(max(now, box.scadenza or now)) + years * YEAR
        if box.stato == "revocata":
            box.revoca = None
            self._set_box_state(box, "evasa", now)
            await self._notify(box.record.get("callback"), self._box_wire(box))
        box.changed = int(now)
        return self._ok(self._box_wire(box))

    async def _add_user(self, request: Request) -> Response:
        box = await self._box(request, 212, 213)
        if box.tipo in FIXED_TYPES:
            raise ApiError(428, 390, FIXED_TYPES_REFUSAL)
        if box.stato != "evasa":
            raise ApiError(428, 214, "you can add users only to an active pec")
        body = await self._body(request)
        for number, name in enumerate(("nome", "cognome", "descrizione", "email_gestione_password")):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise ApiError(428, 215 + number if number < 2 else 218 + number, f"{name} required")
        if len(box.users) >= MAX_USERS:
            raise ApiError(406, 217, f"maximum number of users reached: {MAX_USERS}")
        self._charge(PRICES["user"], 220)
        now = int(self._now())
        box.users.append({
            "nome": body["nome"], "cognome": body["cognome"], "descrizione": body["descrizione"],
            "email_gestione_password": body["email_gestione_password"],
            # As in the spec's example: "<box id>_<n>" and a login of two letters and six digits ("MA177993").
            "id_utenza": f"{box.id}_{len(box.users)}",
            "timestamp": {"attivazione": now}, "userid": f"MA{secrets.randbelow(900_000) + 100_000}",
        })
        box.changed = now
        return self._ok(self._box_wire(box))

    async def _activation_form(self, request: Request) -> Response:
        box = await self._box(request, 0, 0, plain=True)
        pdf = self._form_pdf("Modulo di attivazione casella PEC", box)
        return Response(pdf, media_type="application/pdf")

    async def _conservation_form(self, request: Request) -> Response:
        box = await self._box(request, 0, 0, plain=True)
        if box.stato != "evasa" or box.tipo in FIXED_TYPES:
            raise ApiError(406, None, "you cannot activate conservation if you do not first activate a pec",
                           plain=True)
        return Response(self._form_pdf("Modulo di attivazione conservazione a norma", box),
                        media_type="application/pdf")

    @staticmethod
    def _form_pdf(title: str, box: _Box) -> bytes:
        record = box.record
        holder = f"{record.get('nome_richiedente', '')} {record.get('cognome_richiedente', '')}".strip()
        return make_pdf([title, f"Casella: {record['casella_pec']} ({box.tipo})", f"Richiedente: {holder}",
                         f"Id: {box.id}", "Firmare e caricare con PATCH /pec/{id}/attivazione."])

    # ------------------------------------------------------------------ business register (comunica_pec)

    async def _list_filings(self, request: Request) -> Response:
        if not self.filings:
            raise ApiError(404, 332, "no request linked to this account")
        for filing in list(self.filings.values()):
            await self._refresh_filing(filing)
        return self._ok([{"id": f.id, "casella_pec": f.record["casella_pec"], "stato": f.stato,
                          "timestamp": f.changed, "owner": self.owner} for f in self.filings.values()])

    async def _create_filing(self, request: Request) -> Response:
        body = await self._body(request)
        for number, name in enumerate(FILING_REQUIRED):
            if not isinstance(body.get(name), str) or not body[name].strip():
                raise ApiError(428, 344 if name == "cf_piva" else 337 + number, f"{name} required")
        address = body["casella_pec"].strip().lower()
        if not _ADDRESS.match(address):
            raise ApiError(406, 336, "invalid casella_pec")
        if str(body["qualifica"]).upper() not in ROLES:
            raise ApiError(406, 349, "qualifica not valid: " + "|".join(sorted(ROLES)))
        callback = self._callback(body.get("callback"))
        self._charge(PRICES["filing"], 351)
        now = self._now()
        record = {key: value for key, value in body.items() if key not in {"callback", "pec_amministratore"}}
        record.update(casella_pec=address, qualifica=str(body["qualifica"]).upper(),
                      callback=callback or False)
        filing = _Filing(id=secrets.token_hex(12), record=record, changed=int(now), step_started=now)
        self.filings[filing.id] = filing
        return self._ok(self._filing_wire(filing))

    async def _get_filing(self, request: Request) -> Response:
        return self._ok(self._filing_wire(await self._filing(request, 333, 334)))

    async def _upload_filing(self, request: Request) -> Response:
        filing = await self._filing(request, 353, 354)
        if filing.stato != "in_attesa_di_documenti":
            raise ApiError(406, 355, "you can only upload documents when stato is 'in_attesa_di_documenti'")
        documents = self._documents(await self._body(request), kind="p7m", missing=356, wrong=357)
        now = self._now()
        filing.documents = [f"{filing.id}_{n}_registro_imprese.p7m" for n in range(len(documents))]
        filing.stato, filing.changed, filing.step_started = "documenti_caricati", int(now), now
        await self._notify(filing.record.get("callback") or None, self._filing_wire(filing))
        return self._ok(self._filing_wire(filing))

    async def _filing_proxy(self, request: Request) -> Response:
        filing = await self._filing(request, 0, 0, plain=True)
        if filing.stato == "codice_in_richiesta":
            raise ApiError(406, None, "you cannot download this module, it doesn't exist yet", plain=True)
        record = filing.record
        pdf = make_pdf(["Procura speciale per la comunicazione PEC al Registro Imprese",
                        f"Impresa: {record.get('ragione_sociale', '')} ({record.get('cf_piva', '')})",
                        f"Casella PEC: {record['casella_pec']}",
                        f"Delegante: {record.get('nome', '')} {record.get('cognome', '')}",
                        "Firmare digitalmente (p7m) e caricare con PATCH /comunica_pec/{id}."])
        return Response(pdf, media_type="application/pdf")
