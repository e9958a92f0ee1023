"""Fixtures for bulk jobs: a runner on a virtual clock, driven step by step against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import httpx
import pytest

from pec_mcp.accounts import resolve_account
from pec_mcp.channels import PecMassivaChannel
from pec_mcp.config import Settings
from pec_mcp.http import LocalPacer, build_client
from pec_mcp.jobs import FollowUpPolicy, JobRunner, JobStore, RecipientRow, account_of, plan_bulk
from pec_mcp.providers.pecmassiva import Credentials, PecMassivaClient
from pec_mcp.sending import PecSender
from pec_mcp.simulator import Simulator
from pec_mcp.simulator import credentials as sim
from pec_mcp.simulator.clock import Clock
from pec_mcp.store import Store


class HookedPacer:
    """The send pacer, with a hook that runs while a request waits for its turn."""

    def __init__(self, inner: LocalPacer) -> None:
        self.inner = inner
        self.hook: Callable[[], Awaitable[None]] | None = None

    async def wait_turn(self) -> None:
        if self.hook is not None:
            await self.hook()
        await self.inner.wait_turn()

    async def until_moment(self) -> None:
        await self.inner.until_moment()

    async def dispatched(self) -> None:
        await self.inner.dispatched()

    async def give_back(self) -> None:
        await self.inner.give_back()

    async def pause(self, seconds: float) -> None:
        await self.inner.pause(seconds)


@dataclass
class Bench:
    """A job runner whose time is the simulator's clock: waiting moves the clock, nothing sleeps."""

    runner: JobRunner
    jobs: JobStore
    store: Store
    settings: Settings
    simulator: Simulator
    clock: Clock
    pacer: HookedPacer
    published: list[str] = field(default_factory=list)

    def start(self, recipients: list[RecipientRow], *, subject: str = "Avviso {{n}}", body: str = "Gentile {{n}}",
              attachments: list[str] | None = None) -> str:
        plan = plan_bulk(recipients=recipients, subject=subject, body=body, attachments=attachments or [],
                         settings=self.settings)
        job, _ = self.jobs.create(plan, account=account_of(self.settings), idempotency_key=None,
                                  attachment_paths=attachments or [])
        return job.id

    async def send_all(self) -> int:
        sent = 0
        while await self.runner.send_next():
            sent += 1
        return sent

    def sent_to(self) -> dict[str, int]:
        return dict(self.simulator.stats.recipients)

    def states(self, job_id: str) -> dict[str, str]:
        return {r.address: r.state for r in self.jobs.recipients(job_id, limit=10_000)}


def personalised(n: int, *, prefix: str = "cliente") -> list[RecipientRow]:
    return [RecipientRow(i + 1, f"{prefix}{i}@pec.example.it", {"n": str(i)}) for i in range(n)]


@pytest.fixture
async def bench(settings: Settings, simulator: Simulator, clock: Clock) -> AsyncIterator[Bench]:
    async def virtual_sleep(seconds: float) -> None:
        clock.advance(max(seconds, 0.0))
        await anyio.lowlevel.checkpoint()

    store = Store(settings.store.path, clock=clock.now)
    pacer = HookedPacer(LocalPacer(settings.sending.requests_per_second, clock=clock.now, sleep=virtual_sleep))
    http = build_client(provider="pecmassiva", base_url=simulator.base_url("pecmassiva"),
                        transport=httpx.ASGITransport(app=simulator.app), pacer=pacer)
    client = PecMassivaClient(http, Credentials(sim.PECMASSIVA_TOKEN, sim.PECMASSIVA_USERNAME,
                                                sim.PECMASSIVA_PASSWORD))
    sender = PecSender(client=client, store=store, settings=settings, sender=sim.PECMASSIVA_USERNAME)
    published: list[str] = []

    async def publish(uri: str) -> None:
        published.append(uri)

    channel = PecMassivaChannel(resolve_account(settings, "pecmassiva"), sender)
    runner = JobRunner(store=store, settings=settings, channel=lambda name: channel, publish=publish,
                       policy=FollowUpPolicy(), clock=clock.now, sleep=virtual_sleep)
    async with http:
        yield Bench(runner, runner.jobs, store, settings, simulator, clock, pacer, published)
    store.close()


@pytest.fixture
def simulator(clock: Clock) -> Simulator:
    """No provider rate limit: a real server's runner sends several requests while the simulator's clock is frozen
    (the servers' own pacing is what these tests look at)."""
    from pec_mcp.simulator import create_simulator

    return create_simulator(clock=clock, rate=float("inf"), delivery_delay=2.0)
