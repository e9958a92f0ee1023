"""Fixtures for the simulator tests: a frozen clock, a simulator on it, and clients for its apps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from pec_mcp.simulator import Simulator, create_simulator
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.mensatek import FIRST_MESSAGE_ID

# 10:00:34 in Rome (+0200), the moment of the OAS examples.
FROZEN_AT = datetime(2020, 8, 26, 8, 0, 34, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(frozen_at=FROZEN_AT)


@pytest.fixture
def sim(clock: Clock) -> Simulator:
    return create_simulator(clock=clock, mensatek_first_id=FIRST_MESSAGE_ID)


@pytest.fixture
async def app_client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """The whole simulator app, at its root."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://simulator"
    ) as client:
        yield client
