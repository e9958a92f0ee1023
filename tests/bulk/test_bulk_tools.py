"""The bulk tools and the job resource through the in-memory MCP client, on a real server and its runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import mcp.types as t
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.simulator import Simulator
from tests.conftest import decline

pytestmark = pytest.mark.anyio

CSV = "address;nome;pratica\n" + "".join(f"cliente{i}@pec.example.it;Cliente {i};{100 + i}\n" for i in range(5))
JOB = {"subject": "Pratica {{pratica}}", "body": "Gentile {{nome}}, la pratica {{pratica}} è chiusa."}


def csv_file(files: Path, text: str = CSV) -> str:
    path = files / "destinatari.csv"
    path.write_text(text, encoding="utf-8-sig")
    return str(path)


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def wait_until_sent(client: Client, job_id: str) -> dict[str, Any]:
    """Follow the job through its resource notifications until nothing is left to send."""
    async with client.listen(resource_subscriptions=[f"pec://jobs/{job_id}"]) as events:
        with anyio.fail_after(10):
            while True:
                job = await call(client, "get_bulk_pec", {"job_id": job_id})
                if job["status"] != "sending":
                    return job
                with anyio.move_on_after(0.5):  # a change may have been told before we listened
                    await events.__anext__()


async def test_a_dry_run_shows_the_plan_cost_and_first_message_and_queues_nothing(
    settings: Settings, connect: Callable[..., Any], files: Path
) -> None:
    async with connect(settings) as client:
        preview = await call(client, "start_bulk_pec", {**JOB, "recipients_csv": csv_file(files), "dry_run": True})
        listed = await call(client, "list_bulk_pec", {})
    assert preview["status"] == "preview" and preview["job_id"] is None
    assert (preview["total_recipients"], preview["requests"], preview["estimated_cost_eur"]) == (5, 5, 0.25)
    assert preview["preview"] == {"to": "cliente0@pec.example.it", "subject": "Pratica 100",
                                  "body": "Gentile Cliente 0, la pratica 100 è chiusa."}
    assert "5 recipients" in preview["note"] and "offline" in preview["note"]
    assert listed["jobs"] == []


async def test_the_user_is_asked_with_server_computed_counts_and_a_job_runs_to_the_end(
    settings: Settings, connect: Callable[..., Any], files: Path, simulator: Simulator
) -> None:
    questions: list[str] = []

    async def user(context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
        questions.append(params.message)
        return t.ElicitResult(action="accept", content={"confirm": True})

    async with connect(settings, elicitation=user) as client:
        started = await call(client, "start_bulk_pec", {**JOB, "recipients_csv": csv_file(files),
                                                        "idempotency_key": "pratiche-marzo"})
        job = await wait_until_sent(client, started["job_id"])
        listed = await call(client, "list_bulk_pec", {"limit": 5})
        resource = await client.read_resource(f"pec://jobs/{started['job_id']}")
    assert started["status"] == "started"
    [question] = questions
    assert "5 recipients: cliente0@pec.example.it" in question and "in 5 request(s)" in question
    assert "€0.25" in question and "offline" in question
    assert job["counts"]["sent"] == 5 and job["requests_done"] == 5 and job["eta_seconds"] is None
    assert job["status"] == "awaiting_receipts"
    assert all(v == 1 for v in simulator.stats.recipients.values()) and len(simulator.stats.recipients) == 5
    assert listed["jobs"][0]["job_id"] == started["job_id"]
    content = resource.contents[0]
    assert isinstance(content, t.TextResourceContents)
    assert len(json.loads(content.text)["recipients"]) == 5


async def test_the_same_idempotency_key_gives_back_the_same_job_and_sends_nothing_new(
    settings: Settings, connect: Callable[..., Any], files: Path, simulator: Simulator
) -> None:
    args = {**JOB, "recipients_csv": csv_file(files), "idempotency_key": "una-volta"}
    async with connect(settings) as client:
        first = await call(client, "start_bulk_pec", args)
        await wait_until_sent(client, first["job_id"])
        again = await call(client, "start_bulk_pec", args)
    assert again["status"] == "duplicate" and again["job_id"] == first["job_id"]
    assert simulator.stats.accepted["pecmassiva_send"] == 5


async def test_a_refused_job_names_its_bad_rows_and_a_declined_one_queues_nothing(
    settings: Settings, connect: Callable[..., Any], files: Path
) -> None:
    bad = CSV + "sbagliato;X;1\ncliente0@pec.example.it;Y;2\n"
    async with connect(settings, elicitation=decline) as client:
        refused = await client.call_tool("start_bulk_pec", {**JOB, "recipients_csv": csv_file(files, bad)})
        declined = await client.call_tool("start_bulk_pec", {**JOB, "recipients": [{"address": "a@pec.it",
                                                            "variables": {"nome": "A", "pratica": "1"}}]})
        listed = await call(client, "list_bulk_pec", {})
    assert refused.is_error
    text = refused.content[0].text  # type: ignore[union-attr]
    assert "row 7: 'sbagliato' is not a valid email address" in text
    assert "row 8: cliente0@pec.example.it is also on row 2" in text
    assert declined.is_error and "declined" in declined.content[0].text  # type: ignore[union-attr]
    assert listed["jobs"] == []


async def test_cancelling_a_job_stops_the_recipients_not_yet_sent(
    make_settings: Callable[..., Settings], connect: Callable[..., Any], simulator: Simulator
) -> None:
    settings = make_settings(sending={"requests_per_second": 2.0})
    recipients = [{"address": f"r{i}@pec.example.it", "variables": {"nome": str(i), "pratica": str(i)}}
                  for i in range(10)]
    async with connect(settings) as client:
        started = await call(client, "start_bulk_pec", {**JOB, "recipients": recipients})
        cancelled = await call(client, "cancel_bulk_pec", {"job_id": started["job_id"]})
        job = await wait_until_sent(client, started["job_id"])
    assert cancelled["cancelled_recipients"] >= 6  # up to four requests were already waiting for their turn
    sent = sum(simulator.stats.recipients.values())
    assert sent <= 2 and job["counts"]["sent"] == sent
    assert job["counts"]["cancelled"] == 10 - sent and job["cancelled"]


async def test_subscribers_are_told_when_a_job_changes(
    settings: Settings, connect: Callable[..., Any], files: Path
) -> None:
    async with connect(settings) as client:
        preview = await call(client, "start_bulk_pec", {**JOB, "recipients_csv": csv_file(files), "dry_run": True})
        assert preview["job_id"] is None
        started = await call(client, "start_bulk_pec", {**JOB, "recipients_csv": csv_file(files)})
        uri = f"pec://jobs/{started['job_id']}"
        async with client.listen(resource_subscriptions=[uri]) as events:
            with anyio.fail_after(60):  # a deadline for a loaded machine, not a measure
                event = await events.__anext__()
    assert getattr(event, "uri", None) == uri


async def test_an_unknown_job_is_a_clear_error(settings: Settings, connect: Callable[..., Any]) -> None:
    async with connect(settings) as client:
        result = await client.call_tool("get_bulk_pec", {"job_id": "job-nope"})
    assert result.is_error and "no bulk job 'job-nope'" in result.content[0].text  # type: ignore[union-attr]
