"""The provider's send limit on one machine: single sends, a bulk job and the first send after start-up together.

Real time, bounded: one minute at the simulator's own limit (the pacing under test is about what happens between a
send's turn and its arrival, which only a real event loop, threads and clock show).
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from pec_mcp.config import load_settings
from pec_mcp.server.app import build

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RATE = 5.0  # requests per second: the simulator's limit, and exactly what the server is told it may send
JOB_RECIPIENTS = 240
SINGLE_SENDS = 60  # with the job: 300 requests, one minute at the limit


def settings_at_the_limit(tmp_path: Path) -> Any:
    return load_settings(environ={}, environment="offline", store={"path": str(tmp_path / "store.sqlite3")},
                         attachments={"allowed_dirs": [str(tmp_path)]},
                         sending={"requests_per_second": RATE, "confirm": "never"},
                         simulator={"rate": RATE, "delivery_delay": 1.0})


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    structured: dict[str, Any] | None = result.structured_content
    assert structured is not None
    return structured


async def test_single_sends_and_a_job_at_the_providers_exact_limit_are_never_refused(tmp_path: Path) -> None:
    built = build(settings_at_the_limit(tmp_path))  # offline, its own in-process simulator, as `pec-mcp serve`
    async with Client(built.mcp) as client:
        # The very first send after start-up: the simulator is built on the way, and must not cost a refusal.
        first = await call(client, "send_pec", {"recipients": ["primo@pec.example.it"], "subject": "Primo",
                                                "body": "Primo invio"})
        job = await call(client, "start_bulk_pec", {
            "recipients": [{"address": f"cliente{i}@pec.example.it", "variables": {"n": str(i)}}
                           for i in range(JOB_RECIPIENTS)],
            "subject": "Avviso {{n}}", "body": "Gentile cliente {{n}}"})

        async def single_sends() -> None:
            for i in range(1, SINGLE_SENDS):
                await call(client, "send_pec", {"recipients": [f"singolo{i}@pec.example.it"],
                                                "subject": f"Singolo {i}", "body": "Testo"})
                await anyio.sleep((i % 4) * 0.3)  # irregular, as a person or an agent would call

        with anyio.fail_after(150):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(single_sends)
                while (await call(client, "get_bulk_pec", {"job_id": job["job_id"]}))["status"] == "sending":  # noqa: ASYNC110 (polled as a client would)
                    await anyio.sleep(0.5)
        simulator = built.holder.get().simulator
        assert simulator is not None
        stats = simulator.stats.as_dict()
    assert first["status"] == "sent"
    assert stats["rate_limited"] == 0, stats["rate_limited"]
    assert stats["accepted"]["pecmassiva_send"] == JOB_RECIPIENTS + SINGLE_SENDS
    assert max(stats["recipients"].values()) == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_first_offline_sends_after_start_up_are_not_refused_however_long_the_simulator_takes_to_build(
        tmp_path: Path, anyio_backend: str) -> None:
    from pec_mcp.sending import plan_pec
    from pec_mcp.server.state import open_state

    settings = settings_at_the_limit(tmp_path)
    async with open_state(settings) as state:
        wire = state.on_simulator
        assert wire is not None

        def slow_build(simulator: Any) -> None:
            time.sleep(0.3)  # a cold start: importing and building the simulator holds the process this long
            wire(simulator)

        state.on_simulator = slow_build
        sender = state.pec()
        outcomes = []
        for n in range(3):
            message = plan_pec(recipients=[f"avvio{n}@pec.example.it"], subject="Avvio", body="Testo",
                               attachments=[], settings=settings)
            outcomes.append(await sender.send(message, idempotency_key=None, actor="test"))
        simulator = state.simulator
        assert simulator is not None
        assert [o.status for o in outcomes] == ["sent"] * 3
        assert simulator.stats.rate_limited == 0


# One sender process: its own store handle, pacer and HTTP client, as a replica has. Each send prepares for a random
# while after its turn (as the ledger write does), and a task stalls the event loop now and then (a busy replica).
SENDER = r"""
import random, sys, time
import anyio
from pec_mcp.http import ON_DISPATCH, build_client
from pec_mcp.providers.pecmassiva import Credentials, PecMassivaClient
from pec_mcp.simulator import credentials as sim
from pec_mcp.store import Store, StorePacer

store_location, origin, rate, count, tag = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

async def stalls() -> None:
    while True:
        await anyio.sleep(random.uniform(0.0, 0.05))
        time.sleep(random.uniform(0.0, 0.06))

async def prepare() -> None:
    await anyio.sleep(random.uniform(0.0, 0.04))

async def main() -> None:
    store = Store(store_location)
    pacer = StorePacer(store, "pecmassiva-send:sandbox:shared", rate)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(stalls)
        async with build_client(provider="pecmassiva", base_url=origin + "/pecmassiva", pacer=pacer) as http:
            client = PecMassivaClient(http, Credentials(sim.PECMASSIVA_TOKEN, sim.PECMASSIVA_USERNAME,
                                                        sim.PECMASSIVA_PASSWORD))
            for n in range(count):
                await client.send(sender=sim.PECMASSIVA_USERNAME, recipients=[f"{tag}{n}@pec.example.it"],
                                  subject=f"Avviso {n}", body="Testo", on_dispatch=prepare)
        tasks.cancel_scope.cancel()
    store.close()

anyio.run(main)
"""


async def test_three_processes_sharing_a_store_never_send_closer_than_the_providers_limit(
        store_location: str, tmp_path: Path) -> None:
    from pec_mcp.store import Store
    from tests.bulk.test_bulk_processes import ROOT, simulate, stats

    Store(store_location).close()  # the schema exists before the senders start
    rate, each = 10.0, 15
    with simulate(rate=rate) as origin:
        with anyio.fail_after(180):
            async with anyio.create_task_group() as senders:
                for tag in ("uno", "due", "tre"):
                    senders.start_soon(partial(anyio.run_process, [sys.executable, "-c", SENDER, store_location,
                                                                   origin, str(rate), str(each), tag], cwd=ROOT))
        counted = await stats(origin)
    assert counted["rate_limited"] == 0, counted["rate_limited"]
    assert sorted(counted["recipients"].values()) == [1] * (3 * each)
