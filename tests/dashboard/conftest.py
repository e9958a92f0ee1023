"""Fixtures for the dashboard: a ledger filled by a real server through the simulator, and a browser-less client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from pec_mcp.config import Settings
from pec_mcp.dashboard import Dashboard
from pec_mcp.server.state import StateHolder, open_state
from pec_mcp.simulator import Simulator

TOKEN = "dashboard-token-for-tests-41c9"
PLANTED = "<script>alert('x')</script>"


@dataclass
class Seeded:
    """What the seeding sent: message ids by name."""

    message_ids: dict[str, str]


async def send(client: Any, recipients: list[str], subject: str, key: str) -> str:
    result = await client.call_tool("send_pec", {"recipients": recipients, "subject": subject,
                                                 "body": "Gentile cliente", "idempotency_key": key, "confirm": True})
    assert not result.is_error, result.content
    return str(result.structured_content["message_id"])


@pytest.fixture
def dashboard_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(http={"auth_token": TOKEN})


@pytest.fixture
async def seeded(dashboard_settings: Settings, connect: Callable[..., Any], simulator: Simulator) -> Seeded:
    """Three sendings through a real server: one delivered, one failed with a planted script, one to two people."""
    ids: dict[str, str] = {}
    async with connect(dashboard_settings) as client:
        ids["delivered"] = await send(client, ["mario.rossi@pec.example.it"], "Fattura 114 marzo", "k1")
        ids["failed"] = await send(client, ["fail-anna@pec.example.it"], f"Sollecito {PLANTED}", "k2")
        ids["two"] = await send(client, ["a@pec.example.it", "b@pec.other.it"], "Convocazione assemblea", "k3")
        simulator.clock.advance(10)
        for message_id in ids.values():
            result = await client.call_tool("get_pec_receipts", {"message_id": message_id})
            assert not result.is_error, result.content
    return Seeded(ids)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def session_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def browserless(dashboard_settings: Settings, session_clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the dashboard of a running state (same store file as the seeding server)."""
    holder = StateHolder()
    async with open_state(dashboard_settings) as state:
        holder.set(state)
        dashboard = Dashboard(dashboard_settings, holder, clock=session_clock, failed_signin_pause=0)
        app = Starlette(routes=dashboard.routes())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:8000") as client:
            yield client


async def sign_in(client: httpx.AsyncClient, token: str = TOKEN) -> httpx.Response:
    form = await client.get("/dashboard/signin")
    csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return await client.post("/dashboard/signin", data={"csrf": csrf, "token": token},
                             headers={"origin": "https://127.0.0.1:8000"})
