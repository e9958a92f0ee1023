"""Bulk jobs on a PEC mailbox: sent over SMTP from the offline account, paced per account, receipts verified.

The server runs in process with the simulator's PEC provider (SMTP and IMAP on loopback, its own test CA), which
throttles each account at the account's own ``requests_per_second``: a pace that did not hold would be refused
and counted in its ``rate_limited``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from pec_mcp.accounts import OFFLINE_ACCOUNT
from pec_mcp.config import Settings
from pec_mcp.server.app import build
from pec_mcp.server.state import AppState
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.pecmail.provider import SUBMISSION
from tests.bulk.test_bulk_tools import call
from tests.conftest import Asked

pytestmark = pytest.mark.anyio

OK, SAME = "ufficio@pec.esempio.it", "protocollo@pec.esempio.it"
FAIL, VIRUS = "fail-ex.socio@pec.esempio.it", "virus-archivio@pec.esempio.it"
FORGED = "forged-controparte@pec.esempio.it"
# Two rows render the same message (the same {{nome}}): they share one SMTP submission. The others go one by one.
ROWS = [(OK, "Ufficio legale"), (SAME, "Ufficio legale"), (FAIL, "Luca Neri"), (VIRUS, "Archivio"),
        (FORGED, "Controparte")]
JOB = {"subject": "Sollecito pratica 2026/31", "body": "Gentile {{nome}}, la pratica attende i documenti."}


def recipients(rows: list[tuple[str, str]] = ROWS) -> list[dict[str, Any]]:
    return [{"address": address, "variables": {"nome": nome}} for address, nome in rows]


@asynccontextmanager
async def server(settings: Settings, simulator: Simulator) -> AsyncIterator[tuple[Client, AppState]]:
    built = build(settings, transport=httpx.ASGITransport(app=simulator.app))
    async with Client(built.mcp, elicitation_callback=Asked()) as client:  # type: ignore[arg-type]
        yield client, built.holder.get()


async def job_until(client: Client, job_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    with anyio.fail_after(40):
        while True:
            job = await call(client, "get_bulk_pec", {"job_id": job_id})
            if done(job):
                return job
            await anyio.sleep(0.2)  # the server's runner and the provider work on their own; this only looks


def by_address(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["address"]: r for r in job["recipients"]}


def settled(job: dict[str, Any]) -> bool:
    rows = by_address(job)
    return (job["counts"]["delivered"] == 2 and job["counts"]["not_delivered"] == 1
            and job["counts"]["failed"] == 1 and rows[FORGED]["signature"] == "invalid"
            and rows[FORGED]["reason"] is not None)


async def test_a_job_from_a_mailbox_sends_over_smtp_and_counts_only_receipts_with_a_valid_signature(
        make_settings: Callable[..., Settings], simulator: Simulator) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.2})
    async with server(settings, simulator) as (client, state):
        preview = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(), "dry_run": True,
                                                        "account": OFFLINE_ACCOUNT})
        started = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(),
                                                        "account": OFFLINE_ACCOUNT, "idempotency_key": "solleciti"})
        job = await job_until(client, started["job_id"], settled)
        again = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients(),
                                                      "account": OFFLINE_ACCOUNT, "idempotency_key": "solleciti"})
        listed = await call(client, "list_bulk_pec", {})
        found = await call(client, "find_pec_sendings", {"account": OFFLINE_ACCOUNT})
        provider = state.pec_mail().provider
    assert preview["status"] == "preview" and preview["account"] == OFFLINE_ACCOUNT
    assert (preview["total_recipients"], preview["requests"], preview["estimated_cost_eur"]) == (5, 4, 0.0)
    assert f"from the account {OFFLINE_ACCOUNT}" in preview["note"]
    assert started["status"] == "started" and again["status"] == "duplicate"
    # Exactly once: four submissions, every recipient once, none refused as too fast.
    assert provider.stats.accepted[SUBMISSION] == 4 and provider.stats.rate_limited == 0
    assert dict(provider.stats.recipients) == {address.lower(): 1 for address, _ in ROWS}
    rows = by_address(job)
    assert (rows[OK]["state"], rows[OK]["signature"]) == ("delivered", "valid")
    assert (rows[SAME]["state"], rows[SAME]["signature"]) == ("delivered", "valid")
    assert rows[FAIL]["state"] == "not_delivered" and "utente inesistente" in rows[FAIL]["reason"]
    assert rows[FAIL]["signature"] == "valid"
    assert rows[VIRUS]["state"] == "failed" and "not accepted" in rows[VIRUS]["reason"]
    # The forged CONSEGNA is reported and never counted: the recipient is still waiting for a genuine receipt.
    assert rows[FORGED]["state"] == "sent" and "invalid signature" in rows[FORGED]["reason"]
    assert "signature is invalid" in job["note"] and job["account"] == OFFLINE_ACCOUNT
    assert job["status"] == "awaiting_receipts" and job["estimated_cost_eur"] == 0.0
    assert [j["account"] for j in listed["jobs"]] == [OFFLINE_ACCOUNT]
    assert len(found["sendings"]) == 4 and {s["account"] for s in found["sendings"]} == {OFFLINE_ACCOUNT}


async def test_a_job_and_single_sends_on_one_account_share_its_pace_and_are_never_refused(
        make_settings: Callable[..., Settings], simulator: Simulator) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.2}, accounts={"lento": {
        "address": "lento@pec.simulatore.test", "provider": "aruba", "requests_per_second": 4}})
    many = [{"address": f"cliente{i}@pec.esempio.it", "variables": {"nome": f"Cliente {i}"}} for i in range(8)]
    async with server(settings, simulator) as (client, state):
        started = await call(client, "start_bulk_pec", {**JOB, "recipients": many, "account": "lento"})
        singles = [await call(client, "send_pec", {"account": "lento", "recipients": [f"diretto{i}@pec.esempio.it"],
                                                   "subject": f"Diffida {i}", "body": "Testo", "confirm": True})
                   for i in range(3)]
        job = await job_until(client, started["job_id"], lambda j: j["status"] != "sending")
        provider = state.pec_mail().provider
    assert started["estimated_duration_seconds"] == 2.0  # 8 submissions at 4 a second
    assert all(s["status"] == "sent" for s in singles)
    assert job["counts"]["queued"] == job["counts"]["failed"] == job["counts"]["unknown"] == 0
    assert job["limit_per_second"] == 4 and (job["achieved_rate_per_second"] or 0) <= 4
    # The provider holds the account to 4 submissions a second and refused none: the pace held, job and
    # single sends together (11 submissions, each counted once).
    times = provider.mail_times["lento@pec.simulatore.test"]
    assert provider.stats.rate_limited == 0 and len(times) == 11
    assert sorted(provider.stats.recipients.values()) == [1] * 11


async def test_an_answer_lost_after_the_data_is_unknown_and_sent_again_only_after_the_users_check(
        make_settings: Callable[..., Settings], simulator: Simulator) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.2})
    rows = [{"address": OK, "variables": {"nome": "Ufficio"}}]
    async with server(settings, simulator) as (client, state):
        state.pec_mail().provider.faults.drop_after_data = 1  # accepted, then the connection closes: no reply
        started = await call(client, "start_bulk_pec", {**JOB, "recipients": rows, "account": OFFLINE_ACCOUNT})
        unknown = await job_until(client, started["job_id"], lambda j: j["status"] != "sending")
        not_failed = await call(client, "retry_bulk_pec", {"job_id": started["job_id"], "which": "failed"})
        checked = await call(client, "retry_bulk_pec", {"job_id": started["job_id"], "which": "unknown_checked"})
        done = await job_until(client, started["job_id"], lambda j: j["counts"]["delivered"] == 1)
        twice = await call(client, "retry_bulk_pec", {"job_id": started["job_id"], "which": "unknown_checked"})
        provider = state.pec_mail().provider
    assert unknown["counts"]["unknown"] == 1 and unknown["unknown_recipients"] == [OK]
    assert not_failed["status"] == "nothing_to_retry"
    assert any("unknown_checked" in r["reason"] for r in not_failed["left_alone"])
    assert checked["status"] == "queued" and checked["estimated_cost_eur"] == 0.0
    assert by_address(done)[OK]["signature"] == "valid"
    assert twice["status"] == "nothing_to_retry"
    # Two submissions reached the provider: the one whose answer was lost, and the one the user asked for.
    assert provider.stats.recipients[OK] == 2 and provider.stats.accepted[SUBMISSION] == 2
