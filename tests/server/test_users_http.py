"""One token per user, over real HTTP: each user lists and calls only their tools and accounts, read-only users
change nothing, unknown tokens get 401, the audit trail names the user; on SQLite with one replica and on
PostgreSQL with three replicas behind a round-robin client (a confirmation asked by one replica is answered
through another)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp.types as t
import pytest

from tests.bulk.test_bulk_processes import simulate
from tests.postgres import Cluster
from tests.replicas import (
    Replica,
    client,
    migrate,
    replica_env,
    replicas,
    running,
    start_replica,
    wait_ready,
    write_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HOOK = "webhook-token-for-replicas-4d2e"
TOKENS = {
    "anna": "anna-token-5f0c2a9e71d4b3c8",
    "bruno": "bruno-token-9a7e1c4f2b6d8e03",
    "carla": "carla-token-3c8b5e1a7f9d2046",
    "dario": "dario-token-6e2f9a4c1b8d7053",
}
USERS = f"""
[sending]
confirm = "always"

[http]
state_key = "{'k' * 16}shared-state-key-0123456789abcdef"
webhook_token = "{HOOK}"

[http.users.anna]
token = "{TOKENS['anna']}"
toolsets = ["pec", "bulk"]

[http.users.bruno]
token = "{TOKENS['bruno']}"
read_only = true

[http.users.carla]
token = "{TOKENS['carla']}"
toolsets = ["certified"]
accounts = ["mensatek"]

[http.users.dario]
token = "{TOKENS['dario']}"
toolsets = ["pec"]
accounts = []
"""
REPORT = {"Servicio": "EMAILCERTIFICADO", "Resultado": "1", "idMensaje": "12345", "Fecha": "2026-03-10 10:00"}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


async def accept(context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
    return t.ElicitResult(action="accept", content={"confirm": True})


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    """One replica on SQLite, three on PostgreSQL, all on one simulator and one store.

    Started once for the tests of this module: each test sends to its own recipients and reads back only what it
    did (or a superset check), so they share the replicas as users share one deployment.
    """
    folder = tmp_path_factory.mktemp("users-http")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            store = str(folder / "store.sqlite3")
        else:
            postgres: Cluster = request.getfixturevalue("postgres")
            name = postgres.create_database()
            stack.callback(postgres.drop_database, name)
            store = postgres.url(name)
        origin = stack.enter_context(simulate(rate=1000))
        env = replica_env(origin=origin, store=store, config=write_config(folder, USERS))
        count = 1
        if request.param == "postgresql":
            done = migrate(env)
            assert done.returncode == 0, done.stderr
            count = 3
        started = [start_replica(env, folder) for _ in range(count)]
        stack.enter_context(running(started))
        for replica in started:
            anyio.run(wait_ready, replica)
        yield started


async def tool_names(replicas: list[Replica], user: str) -> set[str]:
    async with client(replicas, TOKENS[user]) as c:
        return {tool.name for tool in (await c.list_tools()).tools}


async def test_each_user_lists_only_the_tools_of_their_toolsets_and_rights(cluster: list[Replica]) -> None:
    anna, bruno, carla, dario = [await tool_names(cluster, u) for u in ("anna", "bruno", "carla", "dario")]
    assert {"send_pec", "start_bulk_pec", "find_pec_sendings"} <= anna
    assert not any(name.endswith("mailbox") or "certified" in name for name in anna)
    assert "find_pec_sendings" in bruno and "check_pec_address" in bruno and "get_certified_email_credits" in bruno
    assert not {"send_pec", "delete_pec_message", "start_bulk_pec", "revoke_mailbox", "cancel_bulk_pec"} & bruno
    assert carla and all("certified" in name for name in carla)
    assert dario == set()  # the pec toolset, but no account to use it on


async def test_calls_beyond_a_users_rights_are_refused_and_say_why(cluster: list[Replica]) -> None:
    async with client(cluster, TOKENS["bruno"]) as c:
        refused = await c.call_tool("send_pec", {"recipients": ["a@pec.it"], "subject": "s", "body": "b",
                                                 "confirm": True})
        allowed = await c.call_tool("find_pec_sendings", {})
    assert refused.is_error and "read-only" in refused.content[0].text  # type: ignore[union-attr]
    assert not allowed.is_error
    async with client(cluster, TOKENS["carla"]) as c:
        other_toolset = await c.call_tool("find_pec_sendings", {})
        other_account = await c.call_tool("find_pec_sendings", {"account": "pecmassiva"})
    assert other_toolset.is_error and "toolset 'pec'" in other_toolset.content[0].text  # type: ignore[union-attr]
    assert other_account.is_error
    async with client(cluster, TOKENS["dario"]) as c:
        no_account = await c.call_tool("find_pec_sendings", {})
    assert no_account.is_error and "account 'pecmassiva'" in no_account.content[0].text  # type: ignore[union-attr]


async def test_unknown_or_missing_tokens_get_401_on_every_replica(cluster: list[Replica]) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
        for replica in cluster:
            missing = await http.post(replica.url, json=LIST, headers=HEADERS)
            unknown = await http.post(replica.url, json=LIST,
                                      headers={**HEADERS, "authorization": "Bearer not-a-user-token-000000"})
            known = await http.post(replica.url, json=LIST,
                                    headers={**HEADERS, "authorization": f"Bearer {TOKENS['anna']}"})
            assert (missing.status_code, unknown.status_code, known.status_code) == (401, 401, 200)
            assert TOKENS["anna"] not in replica.log.read_text()


async def test_a_confirmation_asked_by_one_replica_is_answered_through_another_and_the_audit_names_the_user(
    cluster: list[Replica],
) -> None:
    async with client(cluster, TOKENS["anna"], elicitation_callback=accept) as c:
        sent = await c.call_tool("send_pec", {"recipients": ["mario.rossi@pec.example.it"], "subject": "Diffida",
                                              "body": "Testo", "idempotency_key": "diffida-1"})
        ports = set(c.round_robin.sent)  # type: ignore[attr-defined]
    assert not sent.is_error, sent.content
    assert sent.structured_content is not None and sent.structured_content["status"] == "sent"
    assert len(ports) == len(cluster)  # with several replicas, the call and its answer went to different ones
    async with client(cluster, TOKENS["bruno"]) as c:
        ledger = await c.read_resource("pec://ledger")
    text = ledger.contents[0].text  # type: ignore[union-attr]
    assert '"actor": "anna via' in text and "send_pec" in text and "mario.rossi@pec.example.it" in text
    async with client(cluster, TOKENS["carla"]) as c:  # no PEC Massiva account: its sendings are not hers to see
        theirs = (await c.read_resource("pec://ledger")).contents[0].text  # type: ignore[union-attr]
    assert "mario.rossi@pec.example.it" not in theirs


async def test_the_sends_of_a_users_bulk_job_name_that_user_in_the_ledger(cluster: list[Replica]) -> None:
    people = [{"address": f"cliente{i}@pec.example.it", "variables": {"n": str(i)}} for i in range(2)]
    async with client(cluster, TOKENS["anna"], elicitation_callback=accept) as c:
        started = await c.call_tool("start_bulk_pec", {"recipients": people, "subject": "Avviso {{n}}",
                                                       "body": "Gentile cliente {{n}}", "idempotency_key": "avvisi"})
        assert not started.is_error, started.content
        with anyio.fail_after(60):
            while True:
                job = await c.call_tool("get_bulk_pec", {"job_id": started.structured_content["job_id"]})  # type: ignore[index]
                if job.structured_content["status"] != "sending":  # type: ignore[index]
                    break
                await anyio.sleep(0.2)  # real processes on a real clock
        ledger = (await c.read_resource("pec://ledger")).contents[0].text  # type: ignore[union-attr]
    assert ledger.count('"actor": "anna via') >= 3  # the job's start and each of its two sends


async def test_a_webhook_received_by_one_replica_is_seen_through_every_other(cluster: list[Replica]) -> None:
    # httpx's default 5 s is no promise a loaded machine keeps: the first request to a fresh replica may take longer.
    # Once answered, the report is committed, so every replica reads it at once (tests/server/test_replica_events.py
    # shows that the others also announce it to their listeners).
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
        received = await http.post(f"http://127.0.0.1:{cluster[0].port}/webhooks/mensatek", params={"token": HOOK},
                                   data=REPORT)
    assert received.status_code == 200 and received.json()["stored"] is True
    for replica in cluster:
        async with client([replica], TOKENS["carla"]) as c:
            events = await c.call_tool("list_certified_email_events", {"message_id": "12345"})
        assert not events.is_error and events.structured_content is not None
        assert len(events.structured_content["events"]) == 1


async def test_a_token_removed_from_the_config_is_refused_after_restart(
    store_location: str, tmp_path: Path
) -> None:
    if store_location.startswith("postgresql://"):
        pytest.skip("the same on both stores: the token table lives in the config, not the store")
    with simulate(rate=1000) as origin:
        before = replica_env(origin=origin, store=store_location, config=write_config(tmp_path, USERS))
        without_bruno = USERS.split("[http.users.bruno]")[0] + "[http.users.carla]" + USERS.split(
            "[http.users.carla]")[1]
        after = replica_env(origin=origin, store=store_location, config=write_config(tmp_path, without_bruno))
        statuses = []
        for env in (before, after):
            async with replicas(1, env, tmp_path) as [replica], httpx.AsyncClient() as http:
                response = await http.post(replica.url, json=LIST,
                                           headers={**HEADERS, "authorization": f"Bearer {TOKENS['bruno']}"})
                statuses.append(response.status_code)
    assert statuses == [200, 401]
