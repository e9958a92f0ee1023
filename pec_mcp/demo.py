"""``pec-mcp demo``: an offline story told through a real MCP client talking to a real pec-mcp server.

Everything runs in this process against the built-in simulator; a temporary folder holds the store and the
attachment. Each chapter checks what it gets and the demo exits non-zero if any chapter fails.
"""

from __future__ import annotations

import html
import json
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp.types as t
from mcp import Client

from pec_mcp.config import load_settings
from pec_mcp.receipts import STANDARD_PREFIXES
from pec_mcp.server.app import build
from pec_mcp.simulator import Simulator

RECIPIENT = "ufficio.legale@pec-cliente.it"
RECEIPT_TIMEOUT = 30.0
# The name each receipt has in the PEC rules (its subject prefix), for the story.
RECEIPT_NAMES = {kind.value: prefix.rstrip(":") for prefix, kind in STANDARD_PREFIXES}
DEMO_RATE = 5.0


class DemoFailure(Exception):
    """A chapter did not get what it expected."""


@dataclass
class Story:
    client: Client
    folder: Path
    facts: dict[str, Any] = field(default_factory=dict)
    simulator: Simulator | None = None  # the in-process providers, whose clock a chapter may move on

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        if result.is_error:
            text = result.content[0].text if result.content and isinstance(result.content[0], t.TextContent) else ""
            raise DemoFailure(f"{tool} failed: {text}")
        assert result.structured_content is not None
        content: dict[str, Any] = result.structured_content
        return content


def say(text: str = "") -> None:
    print(text, flush=True)


def show(label: str, value: Any) -> None:
    say(f"    {label}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}")


async def confirm_everything(context: Any, params: t.ElicitRequestParams) -> t.ElicitResult:
    """The demo's user: reads the question the server built, and says yes."""
    say(f"    [the user is asked] {params.message}")
    say("    [the user answers] yes")
    return t.ElicitResult(action="accept", content={"confirm": True})


# -- chapters --------------------------------------------------------------------------------------------------


async def open_a_mailbox(story: Story) -> None:
    address = "studio.rossi@testcert.legalmail.it"
    check = await story.call("check_pec_address", {"address": address})
    show("address", f"{address} is {'available' if check['available'] else 'taken'}")
    registered = await story.call("register_mailbox", {
        "address": address, "mailbox_type": "BRONZE", "customer_type": "professional", "customer_subtype": "lawyer",
        "applicant_first_name": "Mario", "applicant_last_name": "Rossi", "applicant_tax_code": "RSSMRA82D11H501X",
        "applicant_birth_date": "11/04/1982", "applicant_gender": "M", "applicant_email": "mario.rossi@example.com",
        "applicant_phone": "0612345678", "holder_address": "via Verdi 20", "holder_city": "Roma",
        "holder_postal_code": "00100", "holder_province": "RM"})
    mailbox_id = registered["mailbox"]["mailbox_id"]
    show("registered", f"{mailbox_id}, state {registered['mailbox']['state']}, "
         f"estimated €{registered['estimated_cost_eur']:.2f}")
    form = await story.call("download_mailbox_form", {"mailbox_id": mailbox_id, "form": "activation",
                                                      "save_to": str(story.folder)})
    show("activation form", f"{Path(form['path']).name} ({form['size_bytes']} bytes); the customer signs it")
    identity = story.folder / "carta-identita.pdf"
    identity.write_bytes(b"%PDF-1.4\n% a scanned identity document\n%%EOF\n")
    activated = await story.call("activate_mailbox", {"mailbox_id": mailbox_id,
                                                      "documents": [form["path"], str(identity)]})
    show("documents sent", f"state {activated['state']}")
    if story.simulator is None:
        raise DemoFailure("the demo needs the in-process simulator")
    # openapi.it takes a while to check the documents (a minute in the simulator): move its clock on.
    story.simulator.clock.advance(story.simulator.openapi_pec.activation_delay + 1)
    say("    [a minute later at openapi.it]")
    active = await story.call("get_mailbox", {"mailbox_id": mailbox_id})
    show("status", f"{active['state']}: {active['state_meaning']}; paid until {active['expires_on']}")
    show("callbacks received", " -> ".join(c["state"] for c in reversed(active["callbacks"])))
    if active["state"] != "evasa":
        raise DemoFailure(f"the mailbox did not become active ({active['state']})")


async def send_a_pec(story: Story) -> None:
    letter = story.folder / "diffida.pdf"
    letter.write_bytes(b"%PDF-1.4\n% a small demo document\n%%EOF\n")
    args = {"recipients": [RECIPIENT], "subject": "Diffida ad adempiere - contratto 2026/114",
            "body": "<p>Spettabile ditta, con la presente vi invitiamo ad adempiere entro 15 giorni.</p>",
            "attachments": [str(letter)], "idempotency_key": "demo-diffida-2026-114"}
    preview = await story.call("send_pec", {**args, "dry_run": True})
    show("dry run", f"{preview['status']}, {len(preview['recipients'])} recipient, "
         f"estimated cost €{preview['estimated_cost_eur']:.2f}, environment {preview['environment']}")
    sent = await story.call("send_pec", args)
    if sent["status"] != "sent" or not sent["message_id"]:
        raise DemoFailure(f"expected a sent PEC, got {sent['status']}")
    show("sent", f"message_id {sent['message_id']}")
    again = await story.call("send_pec", args)
    show("same idempotency key again", f"{again['status']} (message_id {again['message_id']}, nothing re-sent)")
    story.facts["message_id"] = sent["message_id"]


async def watch_receipts(story: Story) -> None:
    message_id = story.facts["message_id"]
    seen: set[str] = set()
    deadline = time.monotonic() + RECEIPT_TIMEOUT
    while True:
        receipts = await story.call("get_pec_receipts", {"message_id": message_id})
        for receipt in receipts["receipts"]:
            key = f"{receipt['kind']}|{receipt['recipient']}"
            if key not in seen:
                seen.add(key)
                who = f" for {receipt['recipient']}" if receipt["recipient"] else ""
                name = RECEIPT_NAMES.get(receipt["kind"], receipt["kind"])
                show(f"receipt {name} ({receipt['kind']}){who}", receipt["meaning"])
        if receipts["status"] == "delivered":
            show("status", f"{receipts['status']}: {receipts['summary']}")
            return
        if time.monotonic() > deadline:
            raise DemoFailure(f"no delivery receipt within {RECEIPT_TIMEOUT:.0f} s ({receipts['summary']})")
        await anyio.sleep(0.5)


async def read_the_inbox(story: Story) -> None:
    inbox = await story.call("list_pec_inbox", {})
    show("inbox", f"{inbox['total']} messages")
    for message in inbox["messages"][:6]:
        say(f"      #{message['inbox_id']:<3} {message['kind']:<14} {message['subject']}")  # whole: it ends with a code
    incoming = next((m for m in inbox["messages"] if m["kind"] == "envelope"), None)
    if incoming is None:
        raise DemoFailure("the inbox has no incoming PEC to read")
    message = await story.call("read_pec_message", {"inbox_id": incoming["inbox_id"]})
    show("read", f"from {message['sender']}: {_excerpt(message['body'])}")


async def find_by_recipient(story: Story) -> None:
    found = await story.call("find_pec_sendings", {"recipient": "pec-cliente.it"})
    for sending in found["sendings"]:
        show("ledger", f"{sending['message_id']} to {', '.join(sending['recipients'])}: "
             f"{sending['delivery_summary'] or sending['state']}")
    if not found["sendings"]:
        raise DemoFailure("the ledger does not know the PEC just sent")


# Who gets what in the certified-email chapter: the simulator steers outcomes by the local part (``read-`` reads
# it, ``fail-`` is never delivered), and each recipient's reports arrive in this many webhook calls.
CERTIFIED_REPORTS = {"ana.garcia@example.es": 2, "read-luis.martin@example.es": 3, "fail-marta.ruiz@example.es": 2}


async def send_certified_email(story: Story) -> None:
    args = {"recipients": [{"email": "ana.garcia@example.es", "name": "Ana García",
                            "variables": {"expediente": "EXP-2026-031"}},
                           {"email": "read-luis.martin@example.es", "name": "Luis Martín",
                            "variables": {"expediente": "EXP-2026-032"}},
                           {"email": "fail-marta.ruiz@example.es", "name": "Marta Ruiz",
                            "variables": {"expediente": "EXP-2026-033"}}],
            "subject": "Notificación del expediente {{expediente}}",
            "message": "<p>Estimado/a {{name}}: le notificamos la resolución del expediente {{expediente}}.</p>",
            "idempotency_key": "demo-notificacion-2026-031"}
    credits = await story.call("get_certified_email_credits", {})
    show("Mensatek credits", f"{credits['credits']:g}")
    sent = await story.call("send_certified_email", args)
    if sent["status"] != "sent":
        raise DemoFailure(f"expected a sent certified email, got {sent['status']}")
    for recipient in sent["recipients"]:
        show("sent", f"{recipient['name']} <{recipient['email']}>: message_id {recipient['message_id']}")
    show("credits", f"{sent['credits_needed']} used, {sent['credits_left']:g} left")
    ids = {r["message_id"]: r["email"] for r in sent["recipients"]}
    early, *later = ids
    first = await story.call("get_certified_email_report", {"message_id": early})
    show("report right after sending", f"{ids[early]}: {first['status']}, {first['provider_text']} "
         f"(code {first['status_code']})")
    await _wait_for_reports(story, ids)
    # A report gives Mensatek's own text of its code, which then classifies the webhook reports with that code.
    # (The first recipient's report was read above: answers are reused for 10 s, so it is not read again.)
    for message_id in later:
        email = ids[message_id]
        report = await story.call("get_certified_email_report", {"message_id": message_id})
        show("report", f"{email}: {report['status']}, {report['provider_text']} (code {report['status_code']})")
    events = (await story.call("list_certified_email_events", {}))["events"]
    for event in reversed(events):
        show(f"webhook report {event['status_code']} ({event['status']})", f"{event['recipient']} at "
             f"{event['reported_at']} Spanish time")
    unclassified = [e for e in events if e["status"] == "unknown"]
    if unclassified:
        raise DemoFailure(f"{len(unclassified)} Mensatek report(s) could not be classified")


async def _wait_for_reports(story: Story, ids: dict[str, str]) -> None:
    """Wait until every recipient's webhook reports have arrived (a local read: Mensatek is not polled)."""
    deadline = time.monotonic() + RECEIPT_TIMEOUT
    while True:
        events: list[dict[str, Any]] = (await story.call("list_certified_email_events", {}))["events"]
        counts = {message_id: sum(e["message_id"] == message_id for e in events) for message_id in ids}
        if all(counts[m] >= CERTIFIED_REPORTS[email] for m, email in ids.items()):
            return
        if time.monotonic() > deadline:
            raise DemoFailure(f"the delivery reports did not all arrive within {RECEIPT_TIMEOUT:.0f} s")
        await anyio.sleep(0.5)


BULK_CSV = (
    "address;nome;pratica\n"
    "studio.bianchi@pec-clienti.it;Studio Bianchi;2026/101\n"
    "ferri.costruzioni@pec-clienti.it;Ferri Costruzioni srl;2026/102\n"
    "anna.verdi@pec-clienti.it;Anna Verdi;2026/103\n"
    "fail-ex.socio@pec-clienti.it;Luca Neri;2026/104\n"
    "comune.esempio@pec-clienti.it;Comune di Esempio;2026/105\n"
    "marco.gallo@pec-clienti.it;Marco Gallo;2026/106\n"
)
BULK_TIMEOUT = 30.0
FINAL_STATES = {"delivered", "not_delivered", "failed", "unknown", "cancelled"}


async def follow_job(story: Story, job_id: str, *, progress: bool = False) -> dict[str, Any]:
    """The job once finished (DemoFailure after BULK_TIMEOUT), with its progress shown as it changes if asked."""
    last = ""
    deadline = time.monotonic() + BULK_TIMEOUT
    while True:
        job = await story.call("get_bulk_pec", {"job_id": job_id})
        counts = ", ".join(f"{k} {v}" for k, v in job["counts"].items() if v)
        if progress and counts != last:
            rate = job["achieved_rate_per_second"]
            show("progress", f"{job['status']}: {counts}" + (f" ({rate:.1f} requests/s)" if rate else ""))
            last = counts
        if job["status"] == "finished":
            return job
        if time.monotonic() > deadline:
            raise DemoFailure(f"the bulk job did not finish within {BULK_TIMEOUT:.0f} s ({counts})")
        await anyio.sleep(0.3)


async def run_a_bulk_job(story: Story) -> None:
    csv_path = story.folder / "solleciti.csv"
    csv_path.write_text(BULK_CSV, encoding="utf-8-sig")
    args = {"recipients_csv": str(csv_path), "subject": "Sollecito pratica {{pratica}}",
            "body": "<p>Spett.le {{nome}}, la pratica {{pratica}} attende i documenti richiesti.</p>",
            "idempotency_key": "demo-solleciti-2026"}
    started = await story.call("start_bulk_pec", args)
    show("started", f"job {started['job_id']}: {started['total_recipients']} recipients, {started['requests']} "
         f"requests, about {started['estimated_duration_seconds']:.0f} s, €{started['estimated_cost_eur']:.2f}")
    show("first message", f"to {started['preview']['to']}: {started['preview']['subject']}")
    job = await follow_job(story, started["job_id"], progress=True)
    for recipient in job["recipients"]:
        reason = f" ({recipient['reason']})" if recipient["reason"] else ""
        say(f"      row {recipient['row']}: {recipient['address']:<36} {recipient['state']}{reason}")
    states = {r["state"] for r in job["recipients"]}
    if not states <= FINAL_STATES or job["counts"]["delivered"] != 5 or job["counts"]["not_delivered"] != 1:
        raise DemoFailure(f"expected 5 delivered and 1 not delivered, got {job['counts']}")


FORGED = "forged-controparte@pec-altro.it"


async def send_from_an_imap_mailbox(story: Story) -> None:
    accounts = await story.call("list_pec_accounts", {})
    mailbox = next(a for a in accounts["accounts"] if a["kind"] == "imap")
    show("account", f"{mailbox['name']}: {mailbox['address']} ({mailbox['note']})")
    sent = await story.call("send_pec", {
        "account": mailbox["name"], "recipients": [RECIPIENT, FORGED],
        "subject": "Messa in mora - pratica 2026/31", "body": "Gentili signori,\nvi mettiamo formalmente in mora.",
        "idempotency_key": "demo-imap-2026-31"})
    if sent["status"] != "sent":
        raise DemoFailure(f"expected a sent PEC, got {sent['status']}")
    show("sent over SMTP", f"message_id {sent['message_id']}")
    deadline = time.monotonic() + RECEIPT_TIMEOUT
    while True:
        receipts = await story.call("get_pec_receipts", {"message_id": sent["message_id"]})
        states = {r["address"]: r["state"] for r in receipts["recipients"]}
        forged = [r for r in receipts["receipts"] if r.get("signature") == "invalid"]
        if states.get(RECIPIENT) == "delivered" and forged:
            break
        if time.monotonic() > deadline:
            raise DemoFailure(f"receipts did not arrive in time: {receipts['summary']}")
        await anyio.sleep(0.5)
    for receipt in receipts["receipts"]:
        who = f" for {receipt['recipient']}" if receipt["recipient"] else ""
        name = RECEIPT_NAMES.get(receipt["kind"], receipt["kind"])
        show(f"receipt {name}{who}", f"signature {receipt['signature']}: {receipt.get('signature_detail') or ''}")
    show("status", f"{receipts['status']}: {receipts['summary']}")
    show("why", receipts["note"])
    if states.get(FORGED) == "delivered":
        raise DemoFailure("a forged CONSEGNA was counted as delivery")
    show("forged receipt", f"{FORGED} stays {states.get(FORGED)}: its CONSEGNA is signed by a key outside the "
         "trust list, so it is not proof and is not counted")


MAILBOX_JOB = [("studio.bianchi@pec-clienti.it", "Studio Bianchi"),
               ("comune.esempio@pec-clienti.it", "Comune di Esempio"),
               ("fail-vecchio.indirizzo@pec-clienti.it", "Vecchio indirizzo")]


async def run_a_bulk_job_from_the_mailbox(story: Story) -> None:
    accounts = await story.call("list_pec_accounts", {})
    mailbox = next(a for a in accounts["accounts"] if a["kind"] == "imap")
    started = await story.call("start_bulk_pec", {
        "account": mailbox["name"], "subject": "Convocazione assemblea",
        "recipients": [{"address": a, "variables": {"nome": n}} for a, n in MAILBOX_JOB],
        "body": "Spett.le {{nome}}, è convocata l'assemblea del 30 aprile.", "idempotency_key": "demo-assemblea"})
    show("started", f"job {started['job_id']} from {started['account']}: {started['requests']} SMTP submissions, "
         f"€{started['estimated_cost_eur']:.2f} (the mailbox is paid for)")
    job = await follow_job(story, started["job_id"])
    for recipient in job["recipients"]:
        reason = f" ({recipient['reason']})" if recipient["reason"] else ""
        show(recipient["address"], f"{recipient['state']}, receipt signature {recipient['signature']}{reason}")
    show("pace", f"at most {job['limit_per_second']:g} submissions a second on this account (requests_per_second)")
    if job["counts"]["delivered"] != 2 or job["counts"]["not_delivered"] != 1:
        raise DemoFailure(f"expected 2 delivered and 1 not delivered, got {job['counts']}")
    if any(r["signature"] != "valid" for r in job["recipients"]):
        raise DemoFailure("every receipt of this job should carry a valid signature")


Chapter = Callable[[Story], Awaitable[None]]
CHAPTERS: list[tuple[str, Chapter]] = [
    ("Open a PEC mailbox (check the address, register, sign the form, activate)", open_a_mailbox),
    ("Send a PEC with an attachment (preview, confirm, send, and a retry that sends nothing)", send_a_pec),
    ("Watch its receipts arrive", watch_receipts),
    ("Read the PEC inbox", read_the_inbox),
    ("Was my PEC to the client delivered? (no message_id needed)", find_by_recipient),
    ("A bulk job from a CSV: six personalised reminders, one to an address that does not exist", run_a_bulk_job),
    ("Send from a PEC mailbox over SMTP (IMAP account): verified receipts, and a forged CONSEGNA refused",
     send_from_an_imap_mailbox),
    ("A bulk job from the PEC mailbox: sent over SMTP at the account's pace, each receipt verified",
     run_a_bulk_job_from_the_mailbox),
    ("Send a Spanish certified email (Mensatek) to three recipients; follow its webhook reports", send_certified_email),
]


async def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="pec-mcp-demo-") as tmp:
        folder = Path(tmp)
        settings = load_settings(
            environ={},
            environment="offline",
            store={"path": str(folder / "demo.sqlite3")},
            attachments={"allowed_dirs": [str(folder)]},
            simulator={"delivery_delay": 1.0, "rate": DEMO_RATE},
            sending={"requests_per_second": DEMO_RATE},
        )
        say(f"pec-mcp demo: environment {settings.env} (built-in simulator; nothing leaves this machine); "
            f"the simulator takes {DEMO_RATE:g} sends per second (the real service: 1), so the bulk job is quick")
        built = build(settings)
        failures = 0
        async with Client(built.mcp, elicitation_callback=confirm_everything) as client:
            story = Story(client=client, folder=folder, simulator=built.holder.get().simulator)
            for number, (title, chapter) in enumerate(CHAPTERS, start=1):
                say(f"\n{number}. {title}")
                try:
                    await chapter(story)
                except DemoFailure as exc:
                    failures += 1
                    say(f"    FAILED: {exc}")
        say("\nThe demo worked end to end." if not failures else f"\n{failures} chapter(s) failed.")
        return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(anyio.run(run_demo))


def _excerpt(body: str, length: int = 90) -> str:
    """The beginning of a message body as a person reads it: HTML tags removed, cut at a word."""
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())
    if len(text) <= length:
        return text
    return text[:length].rsplit(" ", 1)[0] + " …"
