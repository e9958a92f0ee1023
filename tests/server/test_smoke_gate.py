"""The confirmation gate, end to end through the in-memory MCP client."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import decline

pytestmark = pytest.mark.anyio

SEND = {"recipients": ["mario.rossi@pec.it"], "subject": "Prova", "body": "Testo"}


async def test_a_client_without_elicitation_and_without_confirm_is_told_to_ask_the_user(settings, connect) -> None:
    async with connect(settings, elicitation=None) as client:
        result = await client.call_tool("send_pec", SEND)
    assert result.is_error
    assert "Ask the user exactly this" in result.content[0].text


async def test_a_declined_question_sends_nothing(settings, connect, simulator) -> None:
    async with connect(settings, elicitation=decline) as client:
        result = await client.call_tool("send_pec", SEND)
    assert result.is_error and "declined" in result.content[0].text
    assert simulator.stats.as_dict()["accepted"].get("pecmassiva_send", 0) == 0


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_accepted_question_sends_once(settings, connect, simulator, mode: str) -> None:
    async with connect(settings, mode=mode) as client:
        result = await client.call_tool("send_pec", {**SEND, "idempotency_key": "k"})
    data: dict[str, Any] = result.structured_content or {}
    assert data["status"] == "sent"
    assert simulator.stats.as_dict()["accepted"]["pecmassiva_send"] == 1
