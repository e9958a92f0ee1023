"""A provider that cannot be read now never makes the ledger forget: get_pec_receipts and pec://sendings answer
from the ledger, say that the provider could not be reached and what it said, and never fall back to pending
for a sending the ledger knows was delivered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import mcp.types as t
import pytest

from pec_mcp.config import Settings
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.faults import FaultPlan, rule
from tests.reliability.conftest import assert_explained, text_of

pytestmark = pytest.mark.anyio

PEC = {"recipients": ["mario.rossi@pec.it", "anna.bianchi@pec.it"], "subject": "Diffida", "body": "<p>Testo</p>"}
# A read of the receipts that fails every time: a proxy error page, a lost connection, an answer that is not the
# provider's JSON, and the provider's own refusal envelope.
FAILURES = ["503-html", "drop", "invalid-json", "success-false"]


def receipts_fail(kind: str) -> FaultPlan:
    return FaultPlan([rule(kind, "pecmassiva", "/send/*", method="GET")])  # type: ignore[arg-type]


def structured(result: t.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def sending(client: Any) -> str:
    sent = structured(await client.call_tool("send_pec", PEC))
    return str(sent["message_id"])


async def resource(client: Any, uri: str) -> dict[str, Any]:
    contents = (await client.read_resource(uri)).contents[0]
    assert isinstance(contents, t.TextResourceContents)
    data: dict[str, Any] = json.loads(contents.text)
    return data


@pytest.mark.parametrize("kind", FAILURES)
async def test_a_partly_delivered_sending_keeps_its_outcome_from_the_ledger_when_the_provider_cannot_be_read(
    kind: str, settings: Settings, serve: Callable[..., Any], simulator: Simulator, clock: Clock
) -> None:
    # One recipient's mailbox is full: not settled (a later receipt could still change it), so it is read from
    # the provider each time.
    partly = {**PEC, "recipients": ["mario.rossi@pec.it", "fail-full@pec.it"]}
    async with serve(settings) as client:
        message_id = str(structured(await client.call_tool("send_pec", partly))["message_id"])
        clock.advance(3.0)
        before = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
        simulator.faults = receipts_fail(kind)
        during = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
        seen = await resource(client, f"pec://sendings/{message_id}")
    assert before["status"] == "partially_delivered" and before["provider_unreachable"] is None
    assert during["status"] == "partially_delivered"
    assert [r["state"] for r in during["recipients"]] == ["delivered", "not_delivered"]
    assert len(during["receipts"]) == len(before["receipts"]) >= 3
    assert {r["at_provider"] for r in during["receipts"]} == {None}  # not known now, not "deleted"
    assert during["ledger_only"] == 0
    assert during["provider_unreachable"]
    assert "could not be reached now" in during["note"] and during["provider_unreachable"] in during["note"]
    assert "local ledger alone" in during["note"] and "check again shortly" not in during["note"]
    assert "<html" not in during["note"].lower() and "mysqli" not in during["note"]
    assert seen["status"] == "partially_delivered" and seen["provider_unreachable"] == during["provider_unreachable"]


async def test_a_delivered_sending_is_settled_and_answered_from_the_ledger_without_asking_the_provider(
    settings: Settings, serve: Callable[..., Any], simulator: Simulator, clock: Clock
) -> None:
    async with serve(settings) as client:
        message_id = await sending(client)
        clock.advance(3.0)
        before = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
        simulator.faults = receipts_fail("503-html")  # the provider is down: it is not asked
        during = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
        seen = await resource(client, f"pec://sendings/{message_id}")  # the resource still reads the provider
    assert before["status"] == "delivered" and {r["at_provider"] for r in before["receipts"]} == {True}
    assert during["status"] == "delivered" and during["summary"] == before["summary"]
    assert [r["state"] for r in during["recipients"]] == ["delivered", "delivered"]
    assert [r["kind"] for r in during["receipts"]] == [r["kind"] for r in before["receipts"]]
    assert {r["at_provider"] for r in during["receipts"]} == {None} and during["ledger_only"] == 0
    assert during["provider_unreachable"] is None and "outcome is final" in during["note"]
    assert seen["status"] == "delivered" and seen["provider_unreachable"]


async def test_a_sending_with_no_receipt_yet_is_pending_from_the_ledger_and_says_the_provider_is_down(
    settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    async with serve(settings) as client:
        message_id = await sending(client)
        simulator.faults = receipts_fail("503-html")
        during = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
    assert during["status"] == "pending" and during["known_locally"] is True and during["receipts"] == []
    assert "knows no receipt of this sending yet" in during["note"]
    assert "could not be reached now" in during["note"] and "check again shortly" not in during["note"]


async def test_once_the_provider_answers_again_the_receipts_are_read_from_it(
    settings: Settings, serve: Callable[..., Any], simulator: Simulator, clock: Clock
) -> None:
    async with serve(settings) as client:
        message_id = await sending(client)
        simulator.faults = receipts_fail("503-html")
        clock.advance(3.0)  # delivered meanwhile, but the provider cannot say so now
        during = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
        simulator.faults = FaultPlan([])
        after = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
    assert during["status"] == "pending" and during["provider_unreachable"]
    assert after["status"] == "delivered" and after["provider_unreachable"] is None
    assert {r["at_provider"] for r in after["receipts"]} == {True}


async def test_a_sending_the_ledger_does_not_know_is_the_providers_error(
    settings: Settings, serve: Callable[..., Any], simulator: Simulator
) -> None:
    simulator.faults = receipts_fail("503-html")
    async with serve(settings) as client:
        result = await client.call_tool("get_pec_receipts", {"message_id": "123456"})
    assert result.is_error and "pending" not in text_of(result)
    assert_explained(result)


async def test_receipts_are_not_deleted_while_the_provider_cannot_be_read(
    settings: Settings, serve: Callable[..., Any], simulator: Simulator, clock: Clock
) -> None:
    async with serve(settings) as client:  # the serve fixture's client says yes to every question
        message_id = await sending(client)
        clock.advance(3.0)
        structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
        simulator.faults = receipts_fail("503-html")
        preview = await client.call_tool("delete_pec_receipts", {"message_id": message_id, "dry_run": True})
        deleted = await client.call_tool("delete_pec_receipts", {"message_id": message_id, "confirm": True})
        simulator.faults = FaultPlan([])
        after = structured(await client.call_tool("get_pec_receipts", {"message_id": message_id}))
        at_provider = await resource(client, f"pec://sendings/{message_id}")  # reads the provider again
    assert preview.is_error and deleted.is_error
    assert_explained(deleted)
    assert after["status"] == "delivered" and {r["deleted_at"] for r in after["receipts"]} == {None}
    assert at_provider["provider_unreachable"] is None and at_provider["receipts_known_only_from_the_ledger"] == 0
