"""Fixtures for the reliability tests: a server on the faulty simulator with short timeouts and no real waits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import mcp.types as t
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.http import ClientOptions, RetryPolicy
from pec_mcp.server import build_server
from pec_mcp.server.errors import UNEXPECTED
from pec_mcp.simulator import Simulator
from tests.conftest import accept

# The part of the generic "unexpected problem" text that does not depend on the exception's name.
UNEXPLAINED = UNEXPECTED.split("(")[0]
DEADLINE = 0.2  # seconds one attempt may take; the simulator's slow answers take longer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Waits:
    """A retry sleep that does not wait, and remembers how long it was asked to."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def serve(simulator: Simulator, waits: Waits) -> Callable[..., Any]:
    """``async with serve(settings) as client``: like ``connect``, with a short deadline and injected waits."""

    @asynccontextmanager
    async def open_client(settings: Settings, *, elicitation: Any = accept) -> AsyncIterator[Client]:
        options = ClientOptions(deadline=DEADLINE, retry=RetryPolicy(attempts=4), sleep=waits)
        server = build_server(settings, transport=httpx.ASGITransport(app=simulator.app), client_options=options)
        with anyio.fail_after(20):
            async with Client(server, elicitation_callback=elicitation) as client:  # type: ignore[arg-type]
                yield client

    return open_client


def text_of(result: t.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, t.TextContent))


def assert_explained(result: t.CallToolResult) -> None:
    """An error result a model can act on: not the generic internal-error text, no traceback."""
    text = text_of(result)
    assert UNEXPLAINED not in text, text
    assert "Traceback" not in text, text
    # The SDK's text for a crash is the bare prefix; an explained error has its reason after the colon.
    assert not re.fullmatch(r"Error executing tool [\w-]+:?\s*", text), text
