"""One honest ledger: environments and accounts never mix, receipts are never forgotten, deletions are gated and
kept, a reused key must mean the same content, and an old store is migrated with nothing lost.

Everything goes through a real MCP client. Sandbox and production are pointed at the simulator with base_url.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp.types as t
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.server import build_server
from pec_mcp.simulator import Simulator, create_simulator
from pec_mcp.simulator import credentials as sim
from pec_mcp.store import MIGRATIONS, Store
from tests.server.test_tools_pec import call, fails, read

pytestmark = pytest.mark.anyio

PEC = {"recipients": ["mario.rossi@pec.it"], "subject": "Diffida ad adempiere", "body": "<p>Testo</p>"}
JOB = {"subject": "Pratica {{pratica}}", "body": "Gentile cliente, la pratica {{pratica}} è chiusa.",
       "recipients": [{"address": "uno@pec.it", "variables": {"pratica": "1"}}]}
CERTIFIED = {"recipients": [{"email": "ana@example.es", "name": "Ana"}], "subject": "Expediente",
             "message": "<p>Estimado/a {{name}}</p>"}


def live(make_settings: Callable[..., Settings], environment: str) -> Settings:
    """Sandbox or production on the same store, every provider's host pointed at the simulator."""
    return make_settings(
        environment=environment,
        pecmassiva={"token": sim.PECMASSIVA_TOKEN, "username": sim.PECMASSIVA_USERNAME,
                    "password": sim.PECMASSIVA_PASSWORD, "base_url": "http://simulator/pecmassiva"},
        mensatek={"api_user": sim.MENSATEK_API_USER, "api_token": sim.MENSATEK_API_TOKEN,
                  "sender": sim.MENSATEK_SENDER, "base_url": "http://simulator/mensatek/v7"},
    )


class Asked:
    """A user who answers every question with ``answer`` and remembers the questions."""

    def __init__(self, answer: str = "accept") -> None:
        self.answer = answer
        self.questions: list[str] = []

    async def __call__(self, context: Any, params: t.ElicitRequestFormParams) -> t.ElicitResult:
        self.questions.append(params.message)
        if self.answer == "accept":
            return t.ElicitResult(action="accept", content={"confirm": True})
        return t.ElicitResult(action="decline")


def sent_to(simulator: Simulator) -> dict[str, int]:
    return dict(simulator.stats.as_dict()["recipients"])


# -- item 1 and the cross-environment test ------------------------------------------------------------------------


async def test_one_store_switched_between_offline_sandbox_and_production_leaks_nothing_across(
    make_settings, connect, simulator, clock
) -> None:
    """The same keys are used in each environment in turn: each sends for real, and each sees only its own."""
    found: dict[str, dict[str, Any]] = {}
    for environment in ("offline", "sandbox", "production"):
        settings = make_settings() if environment == "offline" else live(make_settings, environment)
        async with connect(settings) as client:
            pec = await call(client, "send_pec", {**PEC, "idempotency_key": "same-key"})
            job = await call(client, "start_bulk_pec", {**JOB, "idempotency_key": "same-job"})
            certified = await call(client, "send_certified_email", {**CERTIFIED, "idempotency_key": "same-cert"})
            assert (pec["status"], job["status"], certified["status"]) == ("sent", "started", "sent"), environment
            assert pec["environment"] == job["environment"] == certified["environment"] == environment
            clock.advance(3.0)
            receipts = await call(client, "get_pec_receipts", {"message_id": pec["message_id"]})
            assert receipts["status"] == "delivered"
            found[environment] = {
                "pec": await call(client, "find_pec_sendings", {}),
                "all": await call(client, "find_pec_sendings", {"environment": "all"}),
                "offline": await call(client, "find_pec_sendings", {"environment": "offline"}),
                "ledger": await read(client, "pec://ledger"),
                "ledger_all": await read(client, "pec://ledger/all"),
                "jobs": await call(client, "list_bulk_pec", {}),
                "jobs_all": await call(client, "list_bulk_pec", {"environment": "all"}),
                "events": await call(client, "list_certified_email_events", {}),
            }
    # Three environments, three real sends of each kind: no key answered for another environment.
    assert sent_to(simulator)["mario.rossi@pec.it"] == 3 and sent_to(simulator)["ana@example.es"] == 3
    for environment, seen in found.items():
        assert {s["environment"] for s in seen["pec"]["sendings"]} == {environment}  # the send and the job's
        assert seen["pec"]["environment"] == environment
        assert all(s["account"] == "pecmassiva" for s in seen["pec"]["sendings"])
        assert {s["environment"] for s in seen["ledger"]["sendings"]} == {environment}
        assert {a["environment"] for a in seen["ledger"]["audit"]} == {environment}
        assert [j["environment"] for j in seen["jobs"]["jobs"]] == [environment]
        assert {e["message_id"] for e in seen["events"]["events"]} <= {
            s["message_id"] for s in seen["ledger"]["sendings"]}
    production = found["production"]
    assert {s["environment"] for s in production["all"]["sendings"]} == {"offline", "production", "sandbox"}
    assert {s["environment"] for s in production["offline"]["sendings"]} == {"offline"}
    assert {s["environment"] for s in production["ledger_all"]["sendings"]} == {"offline", "sandbox", "production"}
    assert len(production["jobs_all"]["jobs"]) == 3
    assert "every environment" in production["jobs_all"]["note"] and "production" in production["jobs"]["note"]


async def test_a_key_used_offline_never_answers_for_production_and_the_reverse(
    make_settings, connect, simulator
) -> None:
    async with connect(live(make_settings, "production")) as client:
        first = await call(client, "send_pec", {**PEC, "idempotency_key": "k-prod"})
    async with connect(make_settings()) as client:
        offline = await call(client, "send_pec", {**PEC, "idempotency_key": "k-prod"})
        again = await call(client, "send_pec", {**PEC, "idempotency_key": "k-prod"})
    assert first["status"] == offline["status"] == "sent" and again["status"] == "duplicate"
    assert offline["message_id"] != first["message_id"] == first["message_id"]
    assert sent_to(simulator) == {"mario.rossi@pec.it": 2}


async def test_mensatek_ids_given_again_by_another_environment_never_overwrite_a_row(
    make_settings, connect, clock, tmp_path
) -> None:
    """Two simulators number their messages alike: the store keeps each environment's recipient of that id."""
    async with connect(make_settings()) as client:
        offline = await call(client, "send_certified_email", CERTIFIED)
    # Another environment's provider, made to number its messages from the same id.
    other = create_simulator(clock=clock, rate=float("inf"), mensatek_first_id=int(offline["message_id"]))
    server = build_server(live(make_settings, "sandbox"), transport=httpx.ASGITransport(app=other.app))
    async with Client(server, elicitation_callback=Asked()) as client:  # type: ignore[arg-type]
        sandbox = await call(client, "send_certified_email", {**CERTIFIED, "recipients": [
            {"email": "luis@example.es", "name": "Luis"}]})
    store = Store(tmp_path / "store.sqlite3")
    try:
        assert offline["message_id"] == sandbox["message_id"]
        kept = {e: store.certified_message(e, offline["message_id"]) for e in ("offline", "sandbox")}
    finally:
        store.close()
    assert kept["offline"] is not None and kept["offline"].email == "ana@example.es"
    assert kept["sandbox"] is not None and kept["sandbox"].email == "luis@example.es"


# -- item 3: receipts kept, status forward only ---------------------------------------------------------------------


@asynccontextmanager
async def offline_server(settings: Settings) -> AsyncIterator[Client]:
    """An offline server with its own in-process simulator, as `pec-mcp serve` runs it: a restart starts it empty."""
    with anyio.fail_after(20):
        async with Client(build_server(settings), elicitation_callback=Asked()) as client:  # type: ignore[arg-type]
            yield client


async def test_an_offline_restart_with_an_empty_simulator_never_turns_delivered_into_pending(make_settings) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.0, "rate": 1000.0})
    async with offline_server(settings) as client:
        sent = await call(client, "send_pec", {**PEC, "idempotency_key": "restart"})
        before = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
    async with offline_server(settings) as client:  # a new process: its simulator has no receipt at all
        after = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
        found = await call(client, "find_pec_sendings", {})
        resource = await read(client, f"pec://sendings/{sent['message_id']}")
    assert before["status"] == "delivered" and before["ledger_only"] == 0
    assert after["status"] == "delivered" and after["summary"] == before["summary"]
    assert [r["kind"] for r in after["receipts"]] == [r["kind"] for r in before["receipts"]]
    # Delivered to everyone is final: the answer comes from the ledger, the (now empty) provider is not asked, so
    # whether it still holds the receipts is not known (null), rather than "no longer there" (false).
    assert all(r["at_provider"] is None and r["deleted_at"] is None for r in after["receipts"])
    assert after["ledger_only"] == 0 and "outcome is final" in after["note"]
    assert after["provider_unreachable"] is None
    assert found["sendings"][0]["delivery_status"] == "delivered"
    assert resource["status"] == "delivered" and resource["receipts_known_only_from_the_ledger"] == 2


async def test_a_status_only_moves_forward_along_one_order() -> None:
    from pec_mcp.receipts import STATUS_ORDER, DeliveryStatus, advance

    assert advance(DeliveryStatus.DELIVERED, DeliveryStatus.PENDING) == DeliveryStatus.DELIVERED
    assert advance(DeliveryStatus.ACCEPTED, DeliveryStatus.PENDING) == DeliveryStatus.ACCEPTED
    assert advance(DeliveryStatus.PENDING, DeliveryStatus.ACCEPTED) == DeliveryStatus.ACCEPTED
    assert advance(DeliveryStatus.PARTIALLY_DELIVERED, DeliveryStatus.DELIVERED) == DeliveryStatus.DELIVERED
    assert set(STATUS_ORDER) == set(DeliveryStatus)


async def test_mensatek_reports_are_kept_as_receipts_of_their_environment(settings, connect, clock) -> None:
    async with connect(settings) as client:
        sent = await call(client, "send_certified_email", CERTIFIED)
        clock.advance(60.0)
        await call(client, "get_certified_email_report", {"message_id": sent["message_id"]})
    store = Store(settings.store.path)
    try:
        kept = store.receipts_of(environment="offline", account="mensatek", message_id=sent["message_id"])
        elsewhere = store.receipts_of(environment="production", account="mensatek", message_id=sent["message_id"])
    finally:
        store.close()
    assert kept and kept[0].source == "mensatek_report" and kept[0].recipient == "ana@example.es"
    assert kept[0].date == ""  # a report has no date for its status; Programado is the planned sending time
    assert elsewhere == []


# -- item 4: deleting passes the gate and stays in the ledger --------------------------------------------------------


async def test_deleting_receipts_is_previewed_asked_and_refused_without_a_yes(settings, connect, simulator,
                                                                             clock) -> None:
    async with connect(settings) as client:
        sent = await call(client, "send_pec", PEC)
    clock.advance(3.0)
    code = {"message_id": sent["message_id"]}
    no = Asked("decline")
    async with connect(settings, elicitation=no) as client:
        preview = await call(client, "delete_pec_receipts", {**code, "dry_run": True})
        declined = await fails(client, "delete_pec_receipts", code)
    async with connect(settings, elicitation=None) as client:
        unconfirmed = await fails(client, "delete_pec_receipts", code)
        still = await call(client, "get_pec_receipts", code)
    assert preview["status"] == "preview" and preview["deleted"] is False
    assert "legal proof of delivery (CONSEGNA), sending (ACCETTAZIONE)" in preview["what"]
    assert "declined" in declined and len(no.questions) == 1 and "destroyed for good" in no.questions[0]
    assert "explicit yes" in unconfirmed and "Delete from the PEC mailbox the 2 receipt(s)" in unconfirmed
    assert still["ledger_only"] == 0 and len(still["receipts"]) == 2  # nothing was deleted at the provider


async def test_receipts_no_longer_at_the_provider_are_not_offered_for_deletion(settings, connect, simulator,
                                                                               clock) -> None:
    yes = Asked()
    async with connect(settings, elicitation=yes) as client:
        sent = await call(client, "send_pec", PEC)
        clock.advance(3.0)
        code = {"message_id": sent["message_id"]}
        deleted = await call(client, "delete_pec_receipts", code)
        again = await fails(client, "delete_pec_receipts", code)
        preview = await fails(client, "delete_pec_receipts", {**code, "dry_run": True})
    assert deleted["status"] == "deleted" and len(yes.questions) == 2  # the send, the first delete: no more
    assert "holds no receipt of sending" in again and "nothing to delete" in again
    assert "the local ledger keeps 2 receipt(s)" in again and "get_pec_receipts" in again
    assert "nothing to delete" in preview
    assert simulator.stats.as_dict()["accepted"]["pecmassiva_delete_receipts"] == 1


async def test_deleting_a_receipt_from_the_inbox_keeps_it_in_the_ledger_and_audits_it(settings, connect,
                                                                                     clock) -> None:
    asked = Asked()
    async with connect(settings, elicitation=asked) as client:
        sent = await call(client, "send_pec", PEC)
        clock.advance(3.0)
        page = await call(client, "list_pec_inbox", {"query": sent["message_id"]})
        delivery = next(m for m in page["messages"] if m["kind"] == "delivered")
        await call(client, "delete_pec_message", {"inbox_id": delivery["inbox_id"]})
        after = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})
        ledger = await read(client, "pec://ledger")
    assert "a PEC receipt (delivered)" in asked.questions[-1] and "legal proof" not in asked.questions[0][:0]
    assert "delivery (CONSEGNA)" in asked.questions[-1]
    assert after["status"] == "delivered"
    gone = [r for r in after["receipts"] if not r["at_provider"]]
    assert [r["kind"] for r in gone] == ["delivered"] and gone[0]["deleted_at"]
    entry = ledger["audit"][0]
    assert entry["action"] == "delete_pec_message" and entry["ref"] == str(delivery["inbox_id"])
    assert "user_confirmed" in entry["actor"] and f"kept in the ledger as a receipt of sending {sent['message_id']}" \
        in entry["outcome"]


# -- item 5: a key means one content -------------------------------------------------------------------------------


async def test_a_reused_key_with_other_attachment_bytes_is_refused_and_the_same_content_is_a_duplicate(
    settings, connect, simulator, files: Path
) -> None:
    attachment = files / "atto.pdf"
    attachment.write_bytes(b"%PDF-1 first")
    async with connect(settings) as client:
        first = await call(client, "send_pec", {**PEC, "attachments": [str(attachment)], "idempotency_key": "a"})
        attachment.write_bytes(b"%PDF-1 other")  # same name, same size, other bytes
        text = await fails(client, "send_pec", {**PEC, "attachments": [str(attachment)], "idempotency_key": "a"})
        job = await call(client, "start_bulk_pec", {**JOB, "idempotency_key": "j"})
        job_text = await fails(client, "start_bulk_pec", {**JOB, "subject": "Altro {{pratica}}",
                                                          "idempotency_key": "j"})
        job_again = await call(client, "start_bulk_pec", {**JOB, "idempotency_key": "j"})
        cert = await call(client, "send_certified_email", {**CERTIFIED, "idempotency_key": "c"})
        cert_text = await fails(client, "send_certified_email", {**CERTIFIED, "message": "<p>Otro</p>",
                                                                 "idempotency_key": "c"})
        cert_again = await call(client, "send_certified_email", {**CERTIFIED, "idempotency_key": "c"})
    assert first["status"] == "sent"
    assert "attachments: first atto.pdf (12 bytes, sha256" in text and "now atto.pdf (12 bytes, sha256" in text
    assert "recipients" not in text.split("What differs:")[1]
    assert "subject: first 'Pratica {{pratica}}', now 'Altro {{pratica}}'" in job_text
    assert job_again["status"] == "duplicate" and job_again["job_id"] == job["job_id"]
    assert "body: first starts '<p>Estimado/a {{name}}</p>" in cert_text and "now starts '<p>Otro</p>'" in cert_text
    assert cert_again["status"] == "duplicate" and cert_again["message_id"] == cert["message_id"]
    assert sent_to(simulator)["mario.rossi@pec.it"] == 1 and sent_to(simulator)["ana@example.es"] == 1


# -- item 6: who sent it ---------------------------------------------------------------------------------------------


async def test_every_sending_says_who_asked_for_it(settings, connect) -> None:
    async with connect(settings) as client:
        await call(client, "send_pec", PEC)
        found = await call(client, "find_pec_sendings", {})
    (row,) = found["sendings"]
    assert row["actor"] and "user_confirmed" in row["actor"] and row["account"] == "pecmassiva"


# -- item 7: a store written by the previous schema ------------------------------------------------------------------


def old_store(path: Path) -> None:
    """A store as schema 4 left it (the released migrations, applied as they were), with a few rows."""
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:4]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 4")
    db.executescript("""
        INSERT INTO sendings (id, provider, environment, idempotency_key, state, message_id, sender, recipients,
            subject, delivery_status, delivery_summary, created_at, updated_at)
        VALUES (1, 'pecmassiva', 'offline', 'old-key', 'sent', '2026031010000001', 'me@pec.it',
            '["mario.rossi@pec.it"]', 'Diffida ad adempiere', 'delivered', 'delivered to 1 of 1', 1773133200,
            1773133200),
            (2, 'mensatek', 'production', 'cert-key', 'sent', '7001', 'me@es', '["ana@example.es"]', 'Expediente',
            NULL, NULL, 1773133300, 1773133300);
        INSERT INTO sending_recipients VALUES (1, 'mario.rossi@pec.it'), (2, 'ana@example.es');
        INSERT INTO certified_messages VALUES ('7001', 2, 0, 'ana@example.es', 'Ana');
        INSERT INTO events (provider, event_key, message_id, kind, payload, received_at)
        VALUES ('mensatek', '7001|1|x', '7001', 'report', '{"Resultado": "1"}', 1773133400),
            ('openapi_pec', 'openapi:1', 'box-1', 'attiva', '{}', 1773133500);
        INSERT INTO jobs (id, provider, environment, account, idempotency_key, subject, body, total, requests,
            cost_eur, created_at)
        VALUES ('job-old', 'pecmassiva', 'sandbox', 'sandbox:me', 'old-job', 'Pratica', 'Testo', 1, 1, 0.05,
            1773133600);
        INSERT INTO inbox_index VALUES ('offline:INBOX', 5, 1773133700, 'd', 's', 'r', 'CONSEGNA: x', 'delivered',
            NULL, NULL, 'consegna: x');
        INSERT INTO inbox_index_sync VALUES ('offline:INBOX', 1773133700);
    """)
    db.commit()
    db.close()


async def test_a_store_of_the_previous_schema_is_migrated_and_nothing_is_lost(make_settings, connect,
                                                                             simulator, tmp_path) -> None:
    path = tmp_path / "store.sqlite3"
    old_store(path)
    store = Store(path)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        old = store.sending_by_key("offline", "pecmassiva", "old-key")
        cert = store.certified_message("production", "7001")
        events = store.events(provider="mensatek", environment="production")
        unrecorded = store.events(provider="openapi_pec", environment="unrecorded")
        index = store.transaction()
        with index as db:
            indexed = db.execute("SELECT environment, account, inbox_id FROM inbox_index").fetchall()
            job = db.execute("SELECT environment, account, idempotency_key FROM jobs").fetchone()
    finally:
        store.close()
    assert old is not None and old.environment == "offline" and old.account == "pecmassiva"
    assert (old.delivery_status, old.content_hash, old.actor) == ("delivered", None, None)
    assert cert is not None and cert.email == "ana@example.es"
    assert [e["payload"] for e in events] == [{"Resultado": "1"}] and len(unrecorded) == 1
    assert [tuple(r) for r in indexed] == [("offline", "pecmassiva", 5)]
    assert tuple(job) == ("sandbox", "pecmassiva", "old-job")
    async with connect(make_settings()) as client:
        again = await call(client, "send_pec", {**PEC, "idempotency_key": "old-key"})
        other = await fails(client, "send_pec", {**PEC, "subject": "Altro", "idempotency_key": "old-key"})
        receipts = await call(client, "get_pec_receipts", {"message_id": "2026031010000001"})
        found = await call(client, "find_pec_sendings", {"environment": "all"})
    assert again["status"] == "duplicate" and again["message_id"] == "2026031010000001"
    assert "subject: first 'Diffida ad adempiere', now 'Altro'" in other
    # The provider no longer knows this old sending: the status recorded before the migration stands.
    assert receipts["status"] == "delivered" and receipts["summary"] == "delivered to 1 of 1"
    assert [r["state"] for r in receipts["recipients"]] == ["delivered"]
    assert "recorded in the local ledger before it kept receipts" in receipts["note"]
    assert {(s["environment"], s["account"]) for s in found["sendings"]} == {("offline", "pecmassiva")}
    assert sent_to(simulator) == {}
