"""The paid or legal tools as tables, and the world they act on, shared by the safety and canary tests.

A new gated tool (e.g. ``start_bulk_pec``) is one entry in ``GATED``; a new tool of any kind is one entry in
``GOOD`` and one in ``BAD`` (the canary test fails for a listed tool without them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp.types as t
from mcp import Client

from pec_mcp.simulator import Simulator
from pec_mcp.simulator.openapi_pec import ACTIVATION_DELAY, make_pdf
from pec_mcp.simulator.pecmassiva import Incoming

REGISTRATION: dict[str, Any] = {
    "address": "studio.rossi@testcert.legalmail.it", "mailbox_type": "BRONZE", "customer_type": "professional",
    "customer_subtype": "lawyer", "applicant_first_name": "Mario", "applicant_last_name": "Rossi",
    "applicant_tax_code": "RSSMRA82D11H501X", "applicant_birth_date": "11/04/1982", "applicant_gender": "M",
    "applicant_email": "mario@example.com", "applicant_phone": "0612345678", "holder_address": "via Verdi 20",
    "holder_city": "Roma", "holder_postal_code": "00100", "holder_province": "RM",
}
FILING: dict[str, Any] = {
    "address": "amministrazione@pec.bianchi-srl.it", "company_name": "Bianchi Srl", "company_tax_id": "01234567890",
    "company_city": "Milano", "company_province": "MI", "applicant_first_name": "Anna",
    "applicant_last_name": "Bianchi", "applicant_tax_code": "BNCNNA80A41F205X", "applicant_role": "director",
    "applicant_email": "anna@bianchi-srl.it", "applicant_mobile": "3331234567",
}
PEC = {"recipients": ["mario.rossi@pec.it"], "subject": "Sollecito", "body": "Testo della PEC"}
CERTIFIED = {"recipients": [{"email": "ana.garcia@example.es", "name": "Ana"}], "subject": "Notificación",
             "message": "Hola {{name}}"}
BULK = {"recipients": [{"address": "mario.rossi@pec.it", "variables": {"nome": "Mario"}}],
        "subject": "Sollecito", "body": "Gentile {{nome}}, testo della PEC"}


@dataclass
class World:
    """What the gated tools act on: an active mailbox, signed documents, the allowed folder, a delivered PEC
    (its receipts at the provider) and an incoming PEC in the inbox."""

    files: Path
    mailbox_id: str = ""
    documents: list[str] = field(default_factory=list)
    message_id: str = ""
    inbox_id: int = 0


def pdf(folder: Path, name: str) -> str:
    path = folder / name
    path.write_bytes(make_pdf([name]))
    return str(path)


def structured(result: t.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text if result.content else result  # type: ignore[union-attr]
    assert result.structured_content is not None
    return result.structured_content


def text_of(result: t.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, t.TextContent))


async def make_world(client: Client, simulator: Simulator, files: Path) -> World:
    """An active (evasa) mailbox, registered and activated through the tools with an accepting client."""
    registered = structured(await client.call_tool("register_mailbox", REGISTRATION))
    mailbox_id = registered["mailbox"]["mailbox_id"]
    documents = [pdf(files, "signed-form.pdf"), pdf(files, "identity.pdf")]
    structured(await client.call_tool("activate_mailbox", {"mailbox_id": mailbox_id, "documents": documents}))
    sent = structured(await client.call_tool("send_pec", {**PEC, "subject": "Diffida", "confirm": True}))
    simulator.clock.advance(ACTIVATION_DELAY + 1)  # the mailbox is active, and the PEC delivered
    (inbox_id,) = simulator.pecmassiva.add_incoming([Incoming("avv.bianchi@pec.it", "Atto di citazione", "Testo")])
    return World(files=files, mailbox_id=mailbox_id, documents=documents, message_id=sent["message_id"],
                 inbox_id=inbox_id)


async def audit_of(client: Client) -> list[dict[str, Any]]:
    """The audit trail as ``pec://ledger`` shows it, newest first."""
    contents = (await client.read_resource("pec://ledger")).contents[0]
    assert isinstance(contents, t.TextResourceContents)
    audit: list[dict[str, Any]] = json.loads(contents.text)["audit"]
    return audit


@dataclass(frozen=True)
class Gated:
    """One paid or legal tool: good arguments, the simulator counter its action moves, and whether
    ``sending.confirm = "bulk"`` asks for these arguments (as ``needs_confirmation`` documents)."""

    args: Callable[[World], dict[str, Any]]
    counter: str
    asks_in_bulk_mode: bool
    question_says: tuple[str, ...]  # words the server-built question must contain besides cost and environment


GATED: dict[str, Gated] = {
    "start_bulk_pec": Gated(lambda w: dict(BULK), "pecmassiva_send", True,
                            ("bulk", "1 recipient", "mario.rossi@pec.it", "Sollecito")),
    "send_pec": Gated(lambda w: dict(PEC), "pecmassiva_send", False,
                      ("PEC", "1 recipient", "mario.rossi@pec.it", "Sollecito", "no attachments")),
    "send_certified_email": Gated(lambda w: dict(CERTIFIED), "mensatek_send", False,
                                  ("certified email", "1 recipient", "ana.garcia@example.es", "Credits needed")),
    "register_mailbox": Gated(lambda w: {**REGISTRATION, "address": "nuova@testcert.legalmail.it"},
                              "openapi_pec_register", False, ("Register", "nuova@testcert.legalmail.it")),
    "renew_mailbox": Gated(lambda w: {"mailbox_id": w.mailbox_id, "years": 2}, "openapi_pec_renew", False,
                           ("Renew", "2 years")),
    "revoke_mailbox": Gated(lambda w: {"mailbox_id": w.mailbox_id}, "openapi_pec_revoke", True, ("Revoke",)),
    "upgrade_mailbox_space": Gated(lambda w: {"mailbox_id": w.mailbox_id, "disk_space_mb": 4096},
                                   "openapi_pec_modify", False, ("space",)),
    "upgrade_mailbox_type": Gated(lambda w: {"mailbox_id": w.mailbox_id, "mailbox_type": "GOLD"},
                                  "openapi_pec_transform", False, ("Upgrade", "GOLD")),
    "enable_mailbox_conservation": Gated(lambda w: {"mailbox_id": w.mailbox_id, "documents": w.documents},
                                         "openapi_pec_conservation", False, ("conservation",)),
    "file_pec_with_business_register": Gated(lambda w: dict(FILING), "openapi_pec_create_filing", False,
                                             ("business register", "Bianchi Srl")),
    # Deleting legal proof passes the same gate; it cannot be undone, so "bulk" mode asks too.
    "delete_pec_receipts": Gated(lambda w: {"message_id": w.message_id}, "pecmassiva_delete_receipts", True,
                                 ("Delete", "receipt(s)", "delivery (CONSEGNA)", "Diffida", "ledger")),
    "delete_pec_message": Gated(lambda w: {"inbox_id": w.inbox_id}, "pecmassiva_delete_message", True,
                                ("Delete inbox message", "Atto di citazione", "avv.bianchi@pec.it", "ledger")),
}


def done(simulator: Simulator, counter: str) -> int:
    """How many times the simulator accepted this action."""
    return int(simulator.stats.as_dict()["accepted"].get(counter, 0))


async def done_soon(simulator: Simulator, counter: str, expected: int) -> int:
    """The counter once it reaches ``expected`` (a bulk job sends in the background), or as it is after 5 s."""
    with anyio.move_on_after(5):
        while done(simulator, counter) < expected:  # noqa: ASYNC110 (the simulator has no event to wait on)
            await anyio.sleep(0.01)
    return done(simulator, counter)


def newest(audit: list[dict[str, Any]], action: str) -> dict[str, Any]:
    """The newest audit entry of one action (a bulk job also records one entry per request it sends)."""
    return next(entry for entry in audit if entry["action"] == action)
