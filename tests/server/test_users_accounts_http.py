"""The account a call will really use is the one a user's permission is checked on, over real HTTP: the default
account when none is named (here the offline mailbox ``simulata``), a job's own account for its job tools and
resource."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.replicas import Replica, client, running, start_replica, wait_ready, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"elena": "elena-token-7c1d9e3a5b2f4086", "franco": "franco-token-2b8e4d6a0c9f1735"}
CONFIG = f"""
environment = "offline"
default_account = "simulata"

[sending]
confirm = "never"

[simulator]
delivery_delay = 0.2

[http.users.elena]
token = "{TOKENS['elena']}"
toolsets = ["pec", "bulk"]
accounts = ["simulata"]

[http.users.franco]
token = "{TOKENS['franco']}"
toolsets = ["pec", "bulk"]
accounts = ["pecmassiva"]
"""
SEND = {"recipients": ["ufficio@pec.esempio.it"], "subject": "Diffida", "body": "Testo della diffida."}
BULK = {"recipients": [{"address": "ufficio@pec.esempio.it"}], "subject": "Avviso", "body": "Gentile cliente"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    """One replica for the module: one test sends a single PEC, the other runs the only bulk job."""
    tmp_path = tmp_path_factory.mktemp("users-accounts")
    config = write_config(tmp_path, CONFIG)
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
           "PEC_MCP_CONFIG": str(config), "PEC_MCP_STORE__PATH": str(tmp_path / "store.sqlite3")}
    assert sys.executable  # the replica runs with this interpreter
    started = [start_replica(env, tmp_path)]
    with running(started):
        anyio.run(wait_ready, started[0])
        yield started


async def outcome(replica: list[Replica], user: str, tool: str, args: dict[str, Any]) -> tuple[bool, str, Any]:
    async with client(replica, TOKENS[user]) as c:
        result = await c.call_tool(tool, args)
    text = result.content[0].text if result.content else ""  # type: ignore[union-attr]
    return result.is_error, text, result.structured_content


async def test_a_call_without_account_is_checked_on_the_default_account_the_tool_really_uses(
        server: list[Replica]) -> None:
    refused, text, sent = await outcome(server, "elena", "send_pec", {**SEND, "confirm": True})
    assert not refused, text
    assert sent["status"] == "sent" and sent["estimated_cost_eur"] == 0.0  # from the mailbox, not PEC Massiva
    refused, text, _ = await outcome(server, "elena", "send_pec", {**SEND, "account": "pecmassiva", "confirm": True})
    assert refused and "may not use the account 'pecmassiva'" in text
    refused, text, _ = await outcome(server, "franco", "send_pec", {**SEND, "confirm": True})
    assert refused and "may not use the account 'simulata'" in text
    refused, text, _ = await outcome(server, "franco", "send_pec", {**SEND, "account": "pecmassiva", "dry_run": True})
    assert not refused, text


async def test_a_bulk_job_belongs_to_its_account_for_its_tools_and_resource(server: list[Replica]) -> None:
    refused, text, started = await outcome(server, "elena", "start_bulk_pec", {**BULK, "confirm": True})
    assert not refused, text
    assert started["account"] == "simulata"
    job = {"job_id": started["job_id"]}
    refused, text, _ = await outcome(server, "elena", "get_bulk_pec", job)
    assert not refused, text
    refused, text, _ = await outcome(server, "franco", "get_bulk_pec", job)
    assert refused and "may not use the account 'simulata'" in text
    refused, text, _ = await outcome(server, "franco", "cancel_bulk_pec", job)
    assert refused and "'simulata'" in text
    refused, text, _ = await outcome(server, "franco", "start_bulk_pec", {**BULK, "confirm": True})
    assert refused and "'simulata'" in text
    async with client(server, TOKENS["elena"]) as c:
        mine = json.loads((await c.read_resource(f"pec://jobs/{started['job_id']}")).contents[0].text)  # type: ignore[union-attr]
        listed = (await c.call_tool("list_bulk_pec", {})).structured_content
    assert mine["account"] == "simulata" and [j["job_id"] for j in listed["jobs"]] == [started["job_id"]]  # type: ignore[index]
    async with client(server, TOKENS["franco"]) as c:
        with pytest.raises(Exception, match="account 'simulata'"):
            await c.read_resource(f"pec://jobs/{started['job_id']}")


async def test_a_search_counts_toward_its_limit_only_what_the_user_may_see(server: list[Replica]) -> None:
    refused, text, _ = await outcome(server, "elena", "send_pec", {**SEND, "subject": "Per elena", "confirm": True})
    assert not refused, text
    for n in range(2):  # newer, and not elena's to see
        refused, text, _ = await outcome(server, "franco", "send_pec", {**SEND, "subject": f"Per franco {n}",
                                                                        "account": "pecmassiva", "confirm": True})
        assert not refused, text
    refused, text, found = await outcome(server, "elena", "find_pec_sendings", {"limit": 1})
    assert not refused, text
    assert [(s["subject"], s["account"]) for s in found["sendings"]] == [("Per elena", "simulata")]
    refused, text, found = await outcome(server, "franco", "find_pec_sendings", {"limit": 1, "account": "pecmassiva"})
    assert not refused, text
    assert [s["subject"] for s in found["sendings"]] == ["Per franco 1"]
