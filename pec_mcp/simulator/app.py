"""The simulator app: each provider mounted under its own path, plus ``/__simulator__`` for tests.

Base URLs, as the offline environment and ``pec-mcp simulate`` use them::

    /pecmassiva        PEC Massiva (ws.pecmassiva.com)
    /openapi-pec       openapi.it PEC (pec.openapi.it)
    /mensatek/v7       Mensatek API v7 (api.mensatek.com/v7)
    /__simulator__     stats, time travel, faults (not part of any provider)

Faults (``pec_mcp.simulator.faults``) wrap the whole app: ``sim.faults`` is the plan in force.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.faults import FaultInjector, FaultPlan, FaultSpecError
from pec_mcp.simulator.mensatek import MensatekSim
from pec_mcp.simulator.openapi_pec import OpenapiPecSim
from pec_mcp.simulator.pecmassiva import GATEWAY, Incoming, PecMassivaSim
from pec_mcp.simulator.stats import Stats

MOUNTS = {
    "pecmassiva": "/pecmassiva",
    "openapi_pec": "/openapi-pec",
    "mensatek": "/mensatek/v7",
}


@dataclass(frozen=True)
class SimulatorOptions:
    delivery_delay: float = 2.0  # seconds from ACCETTAZIONE to CONSEGNA
    rate: float = 1.0  # PEC Massiva POST /send requests per second
    seed_inbox: bool = True  # a few incoming PEC messages, so an inbox is never empty on first look
    faults: str = ""  # a fault plan (pec_mcp.simulator.faults syntax); empty: no faults
    mensatek_first_id: int | None = None  # the first Mensatek idMensaje; None: a random 10-digit start


class Simulator:
    """All three providers' state, one clock, one set of counters, and the ASGI app that serves them."""

    def __init__(self, options: SimulatorOptions = SimulatorOptions(), *, clock: Clock | None = None) -> None:
        self.options = options
        self.clock = clock or Clock()
        self.stats = Stats()
        self.pecmassiva = PecMassivaSim(self)
        self.openapi_pec = OpenapiPecSim(self)
        self.mensatek = MensatekSim(self, first_message_id=options.mensatek_first_id)
        self.faults = FaultPlan.parse(options.faults)
        routes = Starlette(
            routes=[
                Mount(MOUNTS["pecmassiva"], app=self.pecmassiva.app),
                Mount(MOUNTS["openapi_pec"], app=self.openapi_pec.app),
                Mount(MOUNTS["mensatek"], app=self.mensatek.app),
                Route("/__simulator__/stats", self._stats, methods=["GET"]),
                Route("/__simulator__/advance", self._advance, methods=["POST"]),
                Route("/__simulator__/pecmassiva/seed", self._seed, methods=["POST"]),
                Route("/__simulator__/faults", self._faults, methods=["GET", "POST"]),
            ]
        )
        self.app = FaultInjector(routes, MOUNTS, lambda: self.faults, self.stats)

    def base_url(self, provider: str, origin: str = "http://simulator") -> str:
        return origin.rstrip("/") + MOUNTS[provider]

    async def _stats(self, request: Request) -> JSONResponse:
        return JSONResponse(self.stats.as_dict())

    async def _faults(self, request: Request) -> JSONResponse:
        """GET: the plan in force. POST ``{"faults": "<plan>"}`` (or the plan as plain text): replace it."""
        if request.method == "POST":
            raw = (await request.body()).decode("utf-8", "replace")
            try:
                self.faults = FaultPlan.parse(_plan_text(raw))
            except (FaultSpecError, ValueError) as exc:
                return JSONResponse({"success": False, "message": str(exc)}, status_code=400)
        return JSONResponse({"success": True, **self.faults.describe(), "injected": dict(self.stats.faults)})

    async def _seed(self, request: Request) -> JSONResponse:
        """Fill the PEC Massiva INBOX with ``count`` messages (benchmarks)."""
        try:
            count = int(request.query_params.get("count", "0"))
        except ValueError:
            count = -1
        if not 0 <= count <= 100_000:
            return JSONResponse({"success": False, "message": "count must be 0 to 100000"}, status_code=400)
        ids = self.pecmassiva.add_incoming(seed_messages(count, self.clock.now()))
        return JSONResponse({"success": True, "added": len(ids)})

    async def _advance(self, request: Request) -> JSONResponse:
        try:
            seconds = float(request.query_params.get("seconds", "0"))
            self.clock.advance(seconds)
        except ValueError as exc:
            return JSONResponse({"success": False, "message": str(exc)}, status_code=400)
        return JSONResponse({"success": True, "now": self.clock.now()})


def seed_messages(count: int, now: float) -> list[Incoming]:
    """``count`` inbox messages, one second apart, oldest first: receipt pairs of many sendings, and incoming PEC."""
    messages = []
    for number in range(count):
        at = now - (count - number)
        if number % 10 == 9:
            messages.append(Incoming("protocollo@pec.comune.esempio.it", f"Comunicazione prot. n. {number}",
                                     "<p>Comunicazione.</p>", at=at))
            continue
        code = f"2026010100{number // 2:06d}"
        prefix = "ACCETTAZIONE" if number % 2 == 0 else "CONSEGNA"
        messages.append(Incoming(GATEWAY, f"{prefix}: Avviso n. {number // 2} {code}", f"Ricevuta {code}", at=at,
                                 envelope=False))
    return messages


def create_simulator(
    *, delivery_delay: float = 2.0, rate: float = 1.0, clock: Clock | None = None, seed_inbox: bool = True,
    faults: str = "", mensatek_first_id: int | None = None,
) -> Simulator:
    options = SimulatorOptions(delivery_delay=delivery_delay, rate=rate, seed_inbox=seed_inbox, faults=faults,
                               mensatek_first_id=mensatek_first_id)
    return Simulator(options, clock=clock)


FAULTS_BODY = 'the body is {"faults": "<plan>"} ("" clears the plan), or the plan as plain text'


def _plan_text(raw: str) -> str:
    """The plan from a POST body; a JSON body with any other key is refused, so a typo never clears the plan."""
    if not raw.lstrip().startswith("{"):
        return raw
    body = json.loads(raw)
    unknown = sorted(set(body) - {"faults"})
    if unknown or "faults" not in body:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown)) or '(none given)'}: {FAULTS_BODY}")
    if not isinstance(body["faults"], str):
        raise ValueError(f"faults must be text: {FAULTS_BODY}")
    return body["faults"]
