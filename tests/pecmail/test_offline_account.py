"""The offline IMAP account, served by the simulator's PEC provider: send, receipts verified, a forgery refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from pec_mcp.accounts import OFFLINE_ACCOUNT
from pec_mcp.config import Settings
from tests.conftest import Asked
from tests.pecmail.test_tools_dovecot import call

pytestmark = pytest.mark.anyio
REAL, FORGED = "ufficio@pec.esempio.it", "forged-controparte@pec.esempio.it"


async def receipts_until(client: Any, message_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    with anyio.move_on_after(30):
        while True:
            answer = await call(client, "get_pec_receipts", {"message_id": message_id})
            if done(answer):
                return answer
            await anyio.sleep(0.2)
    raise AssertionError(f"the receipts did not settle within 30 s; the last answer: {json.dumps(answer)}")


async def test_a_pec_from_the_offline_mailbox_is_delivered_with_verified_receipts_and_a_forgery_is_refused(
        connect: Any, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.2})
    async with connect(settings) as client:
        accounts = await call(client, "list_pec_accounts", {})
        assert OFFLINE_ACCOUNT in [a["name"] for a in accounts["accounts"]]
        sent = await call(client, "send_pec", {
            "account": OFFLINE_ACCOUNT, "recipients": [REAL, FORGED], "subject": "Messa in mora",
            "body": "Gentili signori, vi mettiamo in mora.", "idempotency_key": "mora-1", "confirm": True})
        assert sent["status"] == "sent" and sent["estimated_cost_eur"] == 0.0

        def settled(answer: dict[str, Any]) -> bool:
            states = {r["address"]: r["state"] for r in answer["recipients"]}
            return states.get(REAL) == "delivered" and any(r["signature"] == "invalid" for r in answer["receipts"])

        answer = await receipts_until(client, sent["message_id"], settled)
        resource = await client.read_resource(f"pec://sendings/{sent['message_id']}")
        assert json.loads(resource.contents[0].text)["status"] == answer["status"]  # type: ignore[union-attr]
        inbox = await call(client, "list_pec_inbox", {"account": OFFLINE_ACCOUNT})
        found = await call(client, "find_pec_sendings", {"account": OFFLINE_ACCOUNT})
    states = {r["address"]: r["state"] for r in answer["recipients"]}
    assert states == {REAL: "delivered", FORGED: "pending"}
    assert answer["status"] != "delivered" and answer["account"] == OFFLINE_ACCOUNT
    valid = [r for r in answer["receipts"] if r["signature"] == "valid"]
    assert {r["kind"] for r in valid} >= {"accepted", "delivered"}
    [forged] = [r for r in answer["receipts"] if r["signature"] == "invalid"]
    assert forged["kind"] == "delivered" and forged["recipient"] == FORGED
    assert "signature is invalid" in answer["note"] and FORGED in answer["note"]
    assert inbox["total"] >= 3 and found["sendings"][0]["message_id"] == sent["message_id"]


async def test_a_pending_sending_is_answered_from_a_fresh_read_of_the_mailbox_without_the_follower(
        connect: Any, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    """The background follower usually brings receipts in as they arrive; without it (an announcement missed),
    get_pec_receipts still reads the mailbox again within seconds while the sending waits for receipts, instead of
    answering from the index for up to its usual minute."""

    async def no_follower(mail: Any) -> None:
        return None

    monkeypatch.setattr("pec_mcp.server.state.follow_mailbox", no_follower)
    # Delivered 1.5 s after sending: the first answer, read at once, finds the mailbox without the receipt.
    async with connect(make_settings(simulator={"delivery_delay": 1.5})) as client:
        sent = await call(client, "send_pec", {
            "account": OFFLINE_ACCOUNT, "recipients": [REAL], "subject": "Sollecito", "body": "Testo.",
            "idempotency_key": "sollecito-1", "confirm": True})
        answer = await receipts_until(client, sent["message_id"],
                                      lambda a: a["recipients"][0]["state"] == "delivered")
    assert answer["status"] == "delivered"


async def test_the_receipts_of_a_mailbox_sending_are_deleted_on_the_server_and_kept_in_the_ledger(
        connect: Any, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.1})
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        sent = await call(client, "send_pec", {
            "account": OFFLINE_ACCOUNT, "recipients": [REAL], "subject": "Diffida", "body": "Vi diffidiamo.",
            "idempotency_key": "diffida-1", "confirm": True})
        message_id = sent["message_id"]
        await receipts_until(client, message_id,
                             lambda a: a["recipients"][0]["state"] == "delivered" and len(a["receipts"]) >= 2)
        before = await call(client, "list_pec_inbox", {"account": OFFLINE_ACCOUNT, "query": message_id})
        assert len(before["messages"]) >= 2

        preview = await call(client, "delete_pec_receipts", {"message_id": message_id, "dry_run": True})
        assert preview["status"] == "preview" and not preview["deleted"] and preview["account"] == OFFLINE_ACCOUNT
        assert "delivered" in preview["what"] and "signed original" in preview["what"]
        asked_before = len(asked.questions)
        assert len((await call(client, "list_pec_inbox", {
            "account": OFFLINE_ACCOUNT, "query": message_id}))["messages"]) == len(before["messages"])

        deleted = await call(client, "delete_pec_receipts", {"message_id": message_id})
        assert deleted["deleted"] and deleted["account"] == OFFLINE_ACCOUNT
        assert len(asked.questions) == asked_before + 1 and "legal proof" in asked.questions[-1]
        after = await call(client, "list_pec_inbox", {"account": OFFLINE_ACCOUNT, "query": message_id})
        assert after["messages"] == []
        kept = await call(client, "get_pec_receipts", {"message_id": message_id})
        again = await client.call_tool("delete_pec_receipts", {"message_id": message_id})
    assert kept["recipients"][0]["state"] == "delivered"  # the proof is still counted, from the ledger
    assert kept["receipts"] and all(not r["at_provider"] and r["deleted_at"] for r in kept["receipts"])
    assert all(r["signature"] == "valid" for r in kept["receipts"])
    assert again.is_error and "nothing to delete" in again.content[0].text  # type: ignore[union-attr]
