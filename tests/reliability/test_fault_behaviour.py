"""How the server behaves under each simulator fault, for a read and a send of every provider, through MCP.

Reads are retried within a bound and then fail with a clear error; sends are never repeated once the request may
have arrived, and an answer lost or unreadable after that is recorded and shown as ``unknown``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mcp.types as t
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.faults import FORWARDED, KINDS, FaultPlan, rule
from pec_mcp.store import Store
from tests.reliability.conftest import Waits, assert_explained, text_of

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Operation:
    provider: str
    tool: str
    args: dict[str, Any]
    path: str  # below the provider's mount, as a fault rule matches it
    method: str
    counter: str = ""  # the simulator's count of accepted sends

    def __str__(self) -> str:
        return self.tool


READS = [
    Operation("pecmassiva", "get_pec_quota", {}, "/quota/INBOX", "GET"),
    Operation("openapi_pec", "check_pec_address", {"address": "nuovo@testcert.legalmail.it"},
              "/verifica_pec/nuovo@testcert.legalmail.it",
              "GET"),
    Operation("mensatek", "get_certified_email_credits", {}, "/GetCreditos", "POST"),
]
REGISTRATION: dict[str, Any] = {
    "address": "studio.rossi@testcert.legalmail.it", "mailbox_type": "BRONZE", "customer_type": "professional",
    "customer_subtype": "lawyer", "applicant_first_name": "Mario", "applicant_last_name": "Rossi",
    "applicant_tax_code": "RSSMRA82D11H501X", "applicant_birth_date": "11/04/1982", "applicant_gender": "M",
    "applicant_email": "mario@example.com", "applicant_phone": "0612345678", "holder_address": "via Verdi 20",
    "holder_city": "Roma", "holder_postal_code": "00100", "holder_province": "RM",
}
SENDS = [
    Operation("pecmassiva", "send_pec", {"recipients": ["mario.rossi@pec.it"], "subject": "Diffida ad adempiere",
                                         "body": "<p>Testo</p>", "idempotency_key": "k-1"},
              "/send", "POST", "pecmassiva_send"),
    Operation("openapi_pec", "register_mailbox", REGISTRATION, "/pec", "POST", "openapi_pec_register"),
    Operation("mensatek", "send_certified_email",
              {"recipients": [{"email": "ana@example.es", "name": "Ana"}], "subject": "Expediente 7",
               "message": "<p>Estimada Ana: resolución del expediente.</p>", "idempotency_key": "k-1"},
              "/EnviarEMAILCERTIFICADO", "POST", "mensatek_send"),
]
# Faults a read may meet once and get past by trying again.
PASSING = ["429", "500-html", "502-html", "503-html", "drop", "drop-after", "slow"]
# Answers that came back, readable as HTTP but not as the provider's data: trying again would not help.
GARBLED = ["truncated", "invalid-json", "success-false", "empty-204"]
# A send met by one of these may have been carried out behind the fault.
AMBIGUOUS = set(FORWARDED) | {"drop", "500-html", "502-html", "503-html"}
# Every kind whose answer the plan makes up itself ("respond" answers whatever a test gives it: tested with it).
MADE_UP = [kind for kind in KINDS if kind != "respond"]


def seen(simulator: Simulator, op: Operation) -> int:
    return simulator.faults.seen[f"{op.provider} {op.method} {op.path}"]


def accepted(simulator: Simulator, op: Operation) -> int:
    return int(simulator.stats.accepted[op.counter])


def fault(kind: str, op: Operation, *, times: int | None = None, **options: Any) -> FaultPlan:
    return FaultPlan([rule(kind, op.provider, op.path, method=op.method, times=times, delay=5.0, **options)])  # type: ignore[arg-type]


async def call(client: Client, op: Operation) -> t.CallToolResult:
    return await client.call_tool(op.tool, op.args)


def ledger_row(settings: Settings, provider: str) -> Any:
    store = Store(settings.store.path)
    try:
        rows = [r for r in store.find_sendings(limit=10) if r.provider == provider]
        audit = store.audit_log(limit=10)
    finally:
        store.close()
    return rows, audit


# -- reads ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PASSING)
@pytest.mark.parametrize("op", READS, ids=str)
async def test_a_read_gets_past_a_passing_fault_by_trying_again(
    kind: str, op: Operation, settings: Settings, serve: Callable[..., Any], simulator: Simulator, waits: Waits
) -> None:
    simulator.faults = fault(kind, op, times=2, retry_after=1.5)
    async with serve(settings) as client:
        result = await call(client, op)
    assert not result.is_error, text_of(result)
    assert seen(simulator, op) == 3
    if kind == "429":
        assert waits.seconds == [1.5, 1.5]  # the provider's Retry-After, honoured
    else:
        assert len(waits.seconds) == 2 and all(0 < w < 2 for w in waits.seconds)


@pytest.mark.parametrize("kind", PASSING)
@pytest.mark.parametrize("op", READS, ids=str)
async def test_a_read_that_keeps_failing_gives_up_after_four_attempts_with_a_clear_error(
    kind: str, op: Operation, settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.faults = fault(kind, op)
    async with serve(settings) as client:
        result = await call(client, op)
    assert result.is_error
    assert_explained(result)
    text = text_of(result)
    assert "Retrying later may help" in text or "Wait a little and call again" in text, text
    assert "<html" not in text.lower() and "<!doctype" not in text.lower()
    assert seen(simulator, op) == 4


@pytest.mark.parametrize("kind", GARBLED)
@pytest.mark.parametrize("op", READS, ids=str)
async def test_a_read_answered_with_something_unreadable_is_a_clear_error_at_once(
    kind: str, op: Operation, settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.faults = fault(kind, op)
    async with serve(settings) as client:
        result = await call(client, op)
    assert result.is_error
    assert_explained(result)
    assert "<b>" not in text_of(result) and "mysqli" not in text_of(result)
    assert seen(simulator, op) == 1


# -- sends ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MADE_UP)
@pytest.mark.parametrize("op", SENDS, ids=str)
async def test_a_send_is_never_repeated_and_an_ambiguous_one_is_recorded_unknown(
    kind: str, op: Operation, settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.faults = fault(kind, op)
    async with serve(settings) as client:
        result = await call(client, op)
    assert seen(simulator, op) == 1  # never retried, whatever happened
    assert accepted(simulator, op) == (1 if kind in FORWARDED else 0)
    assert_explained(result)
    text = text_of(result)
    if op.provider == "openapi_pec":
        # No ledger for mailboxes: the tool fails, the audit trail keeps the outcome.
        assert result.is_error
        (entry, *_) = ledger_row(settings, op.provider)[1]
        if kind in AMBIGUOUS:
            assert "may or may not have happened" in text and entry.outcome == "unknown", text
        else:
            assert entry.outcome.startswith("refused"), (text, entry.outcome)
        return
    (row,), audit = ledger_row(settings, op.provider)
    if kind in AMBIGUOUS:
        assert not result.is_error, text
        assert result.structured_content is not None and result.structured_content["status"] == "unknown"
        assert row.state == "unknown" and audit[0].outcome.startswith("unknown")
    else:
        assert result.is_error and row.state == "failed", (text, row.state)
        assert "may or may not" not in text


@pytest.mark.parametrize("kind", sorted(AMBIGUOUS))
@pytest.mark.parametrize("op", [SENDS[0], SENDS[2]], ids=str)
async def test_an_unknown_send_is_not_sent_again_with_its_key_even_when_the_provider_is_back(
    kind: str, op: Operation, settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.faults = fault(kind, op, times=1)
    async with serve(settings) as client:
        first = await call(client, op)
        second = await call(client, op)
    assert first.structured_content is not None and first.structured_content["status"] == "unknown"
    assert second.structured_content is not None and second.structured_content["status"] == "duplicate"
    assert seen(simulator, op) == 1 and accepted(simulator, op) == (1 if kind in FORWARDED else 0)


@pytest.mark.parametrize("kind", ["429", "success-false"])
@pytest.mark.parametrize("op", [SENDS[0], SENDS[2]], ids=str)
async def test_a_send_the_provider_refused_may_go_again_with_the_same_key(
    kind: str, op: Operation, settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.faults = fault(kind, op, times=1)
    async with serve(settings) as client:
        first = await call(client, op)
        second = await call(client, op)
    assert first.is_error and not second.is_error
    assert second.structured_content is not None and second.structured_content["status"] == "sent"
    assert accepted(simulator, op) == 1


async def test_a_pec_whose_answer_was_lost_is_unknown_everywhere_and_its_receipts_still_arrive(
    settings: Settings, serve: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    op = SENDS[0]
    simulator.faults = fault("drop-after", op, times=1)
    async with serve(settings) as client:
        sent = (await call(client, op)).structured_content
        simulator.clock.advance(3)
        found = (await client.call_tool("find_pec_sendings", {"recipient": "mario.rossi@pec.it"})).structured_content
        inbox = (await client.call_tool("list_pec_inbox", {"query": "Diffida"})).structured_content
        ledger = json.loads((await client.read_resource("pec://ledger")).contents[0].text)  # type: ignore[union-attr]
    assert sent is not None and sent["status"] == "unknown" and "Do not send again blindly" in sent["note"]
    assert found is not None and [s["state"] for s in found["sendings"]] == ["unknown"]
    assert ledger["sendings"][0]["state"] == "unknown"
    assert inbox is not None and any("ACCETTAZIONE" in m["subject"] for m in inbox["messages"])
    assert simulator.stats.recipients["mario.rossi@pec.it"] == 1


async def test_a_slow_send_times_out_as_unknown_without_waiting_for_the_answer(
    settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.faults = fault("slow", SENDS[0])  # 5 s late; the client's deadline is 0.2 s
    async with serve(settings) as client:
        result = await call(client, SENDS[0])
    assert result.structured_content is not None and result.structured_content["status"] == "unknown"
    assert "ReadTimeout" in result.structured_content["note"]
