"""The provider's send limit on one machine: single sends, a bulk job and the first send after start-up together.

Real time, bounded: one minute at the simulator's own limit (the pacing under test is about what happens between a
send's turn and its arrival, which only a real event loop, threads and clock show).
"""

from __future__ import annotations

import time
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
    assert result.structured_content is not None
    return result.structured_content


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
