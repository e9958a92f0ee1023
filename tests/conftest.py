"""Shared fixtures: every async test runs on asyncio; servers talk to a real simulator on a frozen clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import mcp.types as t
import pytest
from mcp import Client

from pec_mcp.config import Settings, load_settings
from pec_mcp.server import build_server
from pec_mcp.simulator import Simulator, create_simulator
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.mensatek import FIRST_MESSAGE_ID
from tests.postgres import Cluster
from tests.postgres import Unavailable as PgUnavailable
from tests.postgres import cluster as pg_cluster
from tests.tool_models import derived_once

# A Tuesday morning in Rome; any fixed moment works, this one reads well in receipts.
FROZEN_AT = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC).timestamp()

ElicitationCallback = Callable[[Any, t.ElicitRequestFormParams], Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def tool_models_derived_once() -> Iterator[None]:
    """Servers built in this process share what the SDK derives from each tool's signature (tests/tool_models.py)."""
    with derived_once():
        yield


@pytest.fixture
def clock() -> Clock:
    return Clock(frozen_at=FROZEN_AT)


@pytest.fixture
def simulator(clock: Clock) -> Simulator:
    """All three providers on the frozen clock, with no send rate limit.

    On a frozen clock every send arrives at the same instant, so any finite rate would refuse the second one.
    """
    return create_simulator(clock=clock, rate=float("inf"), delivery_delay=2.0, mensatek_first_id=FIRST_MESSAGE_ID)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """The one folder attachments may come from (attachments.allowed_dirs)."""
    folder = tmp_path / "allowed"
    folder.mkdir()
    return folder


@pytest.fixture
def make_settings(tmp_path: Path, files: Path) -> Callable[..., Settings]:
    """Offline settings with a fresh store and the ``files`` folder allowed; keyword sections override."""

    def make(**sections: Any) -> Settings:
        base: dict[str, Any] = {
            "environment": "offline",
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "attachments": {"allowed_dirs": [str(files)]},
            "sending": {"requests_per_second": 1000.0},
        }
        for key, value in sections.items():
            base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
        return load_settings(environ={}, **base)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


async def accept(context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
    """A user who says yes to every question."""
    return t.ElicitResult(action="accept", content={"confirm": True})


class Asked:
    """A user who says yes to every question, and the questions they were asked."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    async def __call__(self, context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
        self.questions.append(params.message)
        return t.ElicitResult(action="accept", content={"confirm": True})


async def decline(context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
    return t.ElicitResult(action="decline")


@pytest.fixture
def connect(simulator: Simulator) -> Callable[..., Any]:
    """``async with connect(settings, elicitation=accept) as client``: an in-memory MCP client on a real server."""

    @asynccontextmanager
    async def open_client(
        settings: Settings, *, elicitation: ElicitationCallback | None = accept, mode: str = "auto"
    ) -> AsyncIterator[Client]:
        server = build_server(settings, transport=httpx.ASGITransport(app=simulator.app))
        async with Client(server, elicitation_callback=elicitation, mode=mode) as client:  # type: ignore[arg-type]
            yield client

    return open_client


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """One PostgreSQL 15 cluster for the whole run, started at the first test that needs it.

    Skipped only where PostgreSQL cannot start at all; under CI=true that is a failure.
    """
    try:
        with pg_cluster() as running:
            yield running
    except PgUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL must run in CI: {exc}")
        pytest.skip(f"PostgreSQL is not available here: {exc}")


@pytest.fixture
def pg_url(postgres: Cluster) -> Iterator[str]:
    """A fresh, empty database of its own for one test."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, once for each backend: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    url: str = request.getfixturevalue("pg_url")
    return url
