"""Which address a PEC goes out from: the simulator's mailbox offline, the account's own mailbox elsewhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from pec_mcp.cli import main
from pec_mcp.config import Settings
from pec_mcp.simulator import Simulator
from pec_mcp.simulator import credentials as sim
from tests.conftest import Asked

pytestmark = pytest.mark.anyio

SEND = {"recipients": ["mario.rossi@pec.it"], "subject": "Diffida", "body": "<p>Testo</p>"}
BULK = {"recipients": [{"address": "mario.rossi@pec.it"}], "subject": "Avviso", "body": "Gentile cliente"}
REAL_MAILBOX = {"sender": "studio.rossi@pec.it", "username": "studio.rossi@pec.it", "token": "real-token-1",
                "password": "real-password-1"}


def sends(simulator: Simulator) -> int:
    return int(simulator.stats.accepted.get("pecmassiva_send", 0))


def sandbox(make_settings: Callable[..., Settings], simulator: Simulator, sender: str) -> Settings:
    return make_settings(environment="sandbox", pecmassiva={
        "token": sim.PECMASSIVA_TOKEN, "username": sim.PECMASSIVA_USERNAME, "password": sim.PECMASSIVA_PASSWORD,
        "sender": sender, "base_url": simulator.base_url("pecmassiva")})


async def test_offline_a_real_configured_sender_does_not_matter(make_settings, connect, simulator) -> None:
    settings = make_settings(environment="offline", pecmassiva=REAL_MAILBOX)
    async with connect(settings) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("send_pec", SEND)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert result.structured_content and result.structured_content["status"] == "sent"
    assert sends(simulator) == 1


async def test_a_sender_that_is_not_the_mailbox_is_refused_before_anything_is_asked_or_sent(
        make_settings, connect, simulator) -> None:
    settings = sandbox(make_settings, simulator, sender="someone.else@pec.it")
    questions = Asked()
    async with connect(settings, elicitation=questions) as client:
        for tool, args in (("send_pec", SEND), ("send_pec", {**SEND, "dry_run": True}),
                           ("start_bulk_pec", BULK), ("start_bulk_pec", {**BULK, "dry_run": True})):
            with anyio.fail_after(10):
                result = await client.call_tool(tool, args)
            assert result.is_error, (tool, result.structured_content)
            text = result.content[0].text  # type: ignore[union-attr]
            assert "pecmassiva.sender (someone.else@pec.it) is not the mailbox" in text, text
            assert sim.PECMASSIVA_USERNAME in text and "INBOX" not in text
    assert questions.questions == [] and sends(simulator) == 0


async def test_the_mailbox_itself_as_sender_is_fine_in_the_sandbox(make_settings, connect, simulator) -> None:
    settings = sandbox(make_settings, simulator, sender=sim.PECMASSIVA_USERNAME.upper())
    async with connect(settings) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("send_pec", SEND)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    assert sends(simulator) == 1


def check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], environment: str) -> tuple[int, dict[str, Any]]:
    config = tmp_path / "config.toml"
    config.write_text(f'environment = "{environment}"\n[pecmassiva]\nusername = "studio.rossi@pec.it"\n'
                      'sender = "segreteria@pec.it"\n')
    config.chmod(0o600)
    code = main(["check-config", "--config", str(config)])
    return code, json.loads(capsys.readouterr().out)


def test_check_config_reports_a_sender_that_is_not_the_mailbox(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check_config(tmp_path, capsys, "sandbox")
    assert code == 1
    assert any("pecmassiva.sender (segreteria@pec.it) is not the mailbox" in p for p in report["problems"])


def test_check_config_has_no_problem_offline_whatever_the_sender(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check_config(tmp_path, capsys, "offline")
    assert code == 0 and "problems" not in report
