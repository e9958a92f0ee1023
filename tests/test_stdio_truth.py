"""One store, the real command line over stdio: offline, then sandbox against ``pec-mcp simulate`` on loopback, then
offline again in a new process. Each answer must be true: keys never answer across environments, searches say
which environment they show, a restart forgets no receipt, deleting legal proof is gated and kept in the ledger,
and a reused key with other content is refused with what differs.

Four processes in all (the simulator and three servers), so the checks share them.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp.types as t
import pytest
from mcp import Client, StdioServerParameters

from pec_mcp.simulator import credentials as sim
from tests.processes import simulate_process
from tests.test_stdio import child_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PEC = {"recipients": ["mario.rossi@pec.it"], "subject": "Diffida ad adempiere", "body": "Testo della diffida",
       "idempotency_key": "pratica-42"}


@asynccontextmanager
async def simulate() -> AsyncIterator[str]:
    """``pec-mcp simulate`` on a loopback port of its choosing, receipts at once; yields its origin."""
    with simulate_process("--delivery-delay", "0") as simulated:
        yield simulated.origin


def sandbox(tmp_path: Path, origin: str) -> dict[str, str]:
    return child_env(tmp_path, PEC_MCP_ENVIRONMENT="sandbox", PEC_MCP_PECMASSIVA__BASE_URL=origin + "/pecmassiva",
                     PEC_MCP_PECMASSIVA__TOKEN=sim.PECMASSIVA_TOKEN,
                     PEC_MCP_PECMASSIVA__USERNAME=sim.PECMASSIVA_USERNAME,
                     PEC_MCP_PECMASSIVA__PASSWORD=sim.PECMASSIVA_PASSWORD)


@asynccontextmanager
async def serve(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[Client]:
    """``pec-mcp serve`` over stdio with a client that cannot ask the user: confirm is its only way to say yes."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "pec_mcp", "serve"], cwd=str(tmp_path),
                                   env=env)
    async with Client(params) as client:
        yield client


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, result.structured_content
    return text(result)


def text(result: t.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, t.TextContent))


async def simulator_stats(origin: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        data: dict[str, Any] = (await http.get(origin + "/__simulator__/stats")).json()
    return data


async def test_every_answer_is_true_over_stdio_offline_sandbox_and_after_a_restart(tmp_path: Path) -> None:
    with anyio.fail_after(180):
        async with simulate() as origin:
            # Offline: the key's first use; delivered at once; the same key with other content is refused.
            async with serve(tmp_path, child_env(tmp_path)) as offline:
                first = await call(offline, "send_pec", {**PEC, "confirm": True})
                delivered = await call(offline, "get_pec_receipts", {"message_id": first["message_id"]})
                other = await refused(offline, "send_pec", {**PEC, "subject": "Diffida (bis)", "confirm": True})
                again = await call(offline, "send_pec", {**PEC, "confirm": True})

            # Sandbox on the same store: the offline key does not answer "duplicate", the send really goes.
            async with serve(tmp_path, sandbox(tmp_path, origin)) as live:
                live_send = await call(live, "send_pec", {**PEC, "confirm": True})
                sent_to_simulator = (await simulator_stats(origin))["recipients"].get("mario.rossi@pec.it", 0)
                own = await call(live, "find_pec_sendings", {"recipient": "mario.rossi@pec.it"})
                every = await call(live, "find_pec_sendings", {"recipient": "mario.rossi@pec.it", "environment": "all"})
                live_receipts = await call(live, "get_pec_receipts", {"message_id": live_send["message_id"]})
                # Deleting receipts: a dry run shows what would go, no confirm is refused, confirm deletes.
                preview = await call(live, "delete_pec_receipts",
                                     {"message_id": live_send["message_id"], "dry_run": True})
                unconfirmed = await refused(live, "delete_pec_receipts", {"message_id": live_send["message_id"]})
                before_delete = await simulator_stats(origin)
                deleted = await call(live, "delete_pec_receipts",
                                     {"message_id": live_send["message_id"], "confirm": True})
                after_delete = await simulator_stats(origin)
                kept = await call(live, "get_pec_receipts", {"message_id": live_send["message_id"]})
                nothing_left = await refused(live, "delete_pec_receipts",
                                             {"message_id": live_send["message_id"], "confirm": True})
                mixed = await refused(live, "send_pec", {**PEC, "recipients": ["anna.bianchi@pec.it"],
                                                         "confirm": True})

            # Offline again, a new process: its simulator starts empty, the ledger remembers.
            async with serve(tmp_path, child_env(tmp_path)) as restarted:
                remembered = await call(restarted, "get_pec_receipts", {"message_id": first["message_id"]})
                found = await call(restarted, "find_pec_sendings", {})

    # Item 7: the same key with other content is an error that shows what differs; the same content answers again.
    assert first["status"] == "sent" and delivered["status"] == "delivered"
    assert "pratica-42" in other and "subject" in other and "Diffida ad adempiere" in other
    assert "Diffida (bis)" in other
    assert again["status"] == "duplicate" and again["message_id"] == first["message_id"]
    assert "recipients" in mixed and "anna.bianchi@pec.it" in mixed and "mario.rossi@pec.it" in mixed

    # Item 1: the offline key sent for real in the sandbox.
    assert live_send["status"] == "sent" and live_send["environment"] == "sandbox"
    assert live_send["message_id"] != first["message_id"] and sent_to_simulator == 1

    # Item 2: the current environment by default; "all" shows both, each row labelled.
    assert own["environment"] == "sandbox"
    assert [(s["message_id"], s["environment"]) for s in own["sendings"]] == [(live_send["message_id"], "sandbox")]
    assert every["environment"] == "all"
    assert {(s["message_id"], s["environment"]) for s in every["sendings"]} == {
        (live_send["message_id"], "sandbox"), (first["message_id"], "offline")}
    assert [s["environment"] for s in found["sendings"]] == ["offline"]

    # Item 6: the gate, the provider's copies gone, the ledger's record kept.
    assert preview["status"] == "preview" and preview["deleted"] is False and "nothing was deleted" in preview["what"]
    assert "Ask the user exactly this" in unconfirmed and "CONSEGNA" in unconfirmed
    assert before_delete["accepted"].get("pecmassiva_delete_receipts", 0) == 0
    assert deleted["status"] == "deleted" and after_delete["accepted"]["pecmassiva_delete_receipts"] == 1
    assert live_receipts["status"] == "delivered"
    assert kept["status"] == "delivered" and kept["ledger_only"] == len(kept["receipts"]) >= 2
    assert all(r["at_provider"] is False and r["deleted_at"] for r in kept["receipts"])
    assert "known only from the local ledger" in kept["note"]
    assert "nothing to delete" in nothing_left and after_delete["accepted"]["pecmassiva_delete_receipts"] == 1

    # Item 3: after a restart the offline receipts are the ledger's, and still say delivered.
    assert remembered["status"] == "delivered" and remembered["known_locally"] is True
    # Delivered is settled: the ledger's receipts answer, the restarted (empty) simulator is not asked.
    assert len(remembered["receipts"]) == len(delivered["receipts"]) and remembered["ledger_only"] == 0
    assert {r["at_provider"] for r in remembered["receipts"]} == {None}
    assert "outcome is final" in remembered["note"]
    assert "No receipt yet" not in remembered["note"]
