"""The job runner on a mailbox channel, driven step by step, against a provider that throttles SMTP: refusals are
requeued, nobody gets the message twice (tests/pecmail/test_sending_dovecot.py drives it against Dovecot)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import anyio
import pytest

from pec_mcp.accounts import mail_endpoints, resolve_account
from pec_mcp.channels import MailboxChannel
from pec_mcp.config import Settings
from pec_mcp.jobs import FollowUpPolicy, JobRunner, JobStore, RecipientRow, plan_bulk
from pec_mcp.mail_accounts import MailAccount
from pec_mcp.mail_receipts import ReceiptIntake
from pec_mcp.mail_sending import MailSender
from pec_mcp.pecmail.signature import TrustStore
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.pecmail.provider import SUBMISSION
from pec_mcp.simulator.pecmail.servers import PecMailOptions, PecMailServers, start_pec_mail_provider
from pec_mcp.store import Store

pytestmark = pytest.mark.anyio


async def short_sleep(seconds: float) -> None:
    # The runner's back-off after a refusal, cut short: the provider's own limit is what these tests look at.
    await anyio.sleep(min(seconds, 0.3))


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class MailboxBench:
    runner: JobRunner
    jobs: JobStore
    settings: Settings

    def start(self, rows: list[RecipientRow], body: str = "Gentile {{n}}") -> str:
        plan = plan_bulk(recipients=rows, subject="Sollecito", body=body, attachments=[], settings=self.settings,
                         account=resolve_account(self.settings, "studio"))
        job, _ = self.jobs.create(plan, idempotency_key=None, attachment_paths=[])
        return job.id

    async def send_all(self) -> None:
        with anyio.fail_after(60):
            while await self.runner.send_next():
                pass

    async def follow_until(self, job_id: str, done: Callable[[dict[str, tuple[str, str | None]]], bool]
                           ) -> dict[str, tuple[str, str | None]]:
        with anyio.fail_after(30):
            while True:
                await self.runner.follow_due()
                states = {r.address: (r.state, r.reason) for r in self.jobs.recipients(job_id)}
                if done(states):
                    return states
                await anyio.sleep(0.2)  # the provider delivers on its own clock; this only looks


def bench(settings: Settings, store: Store, trust: TrustStore, *, sleep: Sleep = short_sleep) -> MailboxBench:
    account = resolve_account(settings, "studio")
    endpoints = mail_endpoints(account)
    sender = MailSender(account, endpoints, store)
    # Synced at every look (no index age): the test reads the mailbox the moment receipts are put there.
    mail = MailAccount(account, endpoints, store, max_age=0.0, on_receipts=ReceiptIntake(
        store, environment=settings.env, account="studio", trust=trust))
    channel = MailboxChannel(account, lambda: sender, lambda: mail, store)
    runner = JobRunner(store=store, settings=settings, channel=lambda name: channel, accounts=["studio"],
                       policy=FollowUpPolicy(interval=0.1), sleep=sleep)
    return MailboxBench(runner, runner.jobs, settings)


def rows(n: int) -> list[RecipientRow]:
    return [RecipientRow(i + 1, f"cliente{i}@pec.esempio.it", {"n": str(i)}) for i in range(n)]


# -- a provider that holds the account to 5 submissions a second, while the account is set to 50 -------------------


@pytest.fixture
def throttling() -> Iterator[PecMailServers]:
    # The provider's time stands still until the runner waits: two submissions always come "at once" for it, so
    # the second is refused whatever the machine's load, and the runner's wait is what lets the next one in.
    clock = Clock(frozen_at=time.time())
    with start_pec_mail_provider(PecMailOptions(delivery_delay=0.2, smtp_rate=5.0), clock=clock) as servers:
        yield servers


async def test_submissions_the_provider_refuses_as_too_fast_are_requeued_and_each_recipient_gets_one(
        make_settings: Callable[..., Settings], throttling: PecMailServers) -> None:
    where = throttling.endpoints
    address = where.accounts[0].address
    settings = make_settings(environment="sandbox", accounts={"studio": {
        "address": address, "password": where.accounts[0].password, "provider": "custom",
        "imap_host": where.host, "imap_port": where.imap_port, "smtp_host": where.host, "smtp_port": where.smtp_port,
        "ca_file": str(where.ca_file), "requests_per_second": 50}})
    store = Store(settings.store.path)
    try:
        async def waiting(seconds: float) -> None:
            throttling.clock.advance(seconds)
            await anyio.sleep(0.01)

        mailbox = bench(settings, store, TrustStore.from_file(where.trust_file), sleep=waiting)
        job_id = mailbox.start(rows(6))
        await mailbox.send_all()
        throttling.clock.advance(1.0)  # the receipts fall due
        states = await mailbox.follow_until(job_id, lambda s: all(v[0] == "delivered" for v in s.values()))
        ledger = store.find_sendings(account="studio", limit=50)
    finally:
        store.close()
    assert throttling.stats.rate_limited > 0  # the account's 50 a second met the provider's 5
    assert throttling.stats.accepted[SUBMISSION] == 6
    assert dict(throttling.stats.recipients) == {f"cliente{i}@pec.esempio.it": 1 for i in range(6)}
    assert set(states) == {f"cliente{i}@pec.esempio.it" for i in range(6)}
    # One ledger row per request, reused by its retries after a refusal: each sent once.
    assert sorted(row.state for row in ledger) == ["sent"] * 6
