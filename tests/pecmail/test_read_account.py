"""Reading the inbox of an IMAP account: an incoming PEC unpacked, its attachments listed and saved on request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from pec_mcp.accounts import OFFLINE_ACCOUNT, OFFLINE_ADDRESS
from pec_mcp.config import Settings
from pec_mcp.pecmail.connection import Endpoint, Login
from pec_mcp.pecmail.imap import ImapClient
from tests.pecmail.conftest import MakeReceipt
from tests.pecmail.dovecot import Dovecot
from tests.pecmail.test_imap_dovecot import PASSWORD
from tests.pecmail.test_tools_dovecot import call, error_of

pytestmark = pytest.mark.anyio


async def incoming_pec(client: Any, files: Path) -> dict[str, Any]:
    """A PEC with an attachment sent from the offline mailbox to itself: its envelope lands in its INBOX."""
    (files / "istanza.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    await call(client, "send_pec", {
        "account": OFFLINE_ACCOUNT, "recipients": [OFFLINE_ADDRESS], "subject": "Istanza n. 7",
        "body": "Si trasmette l'istanza.", "attachments": [str(files / "istanza.pdf")],
        "idempotency_key": "istanza-7", "confirm": True})
    with anyio.fail_after(30):
        while True:
            page = await call(client, "list_pec_inbox", {"account": OFFLINE_ACCOUNT, "query": "Istanza n. 7"})
            envelopes = [m for m in page["messages"] if m["kind"] == "envelope"]
            if envelopes:
                return envelopes[0]
            await anyio.sleep(0.2)


async def test_an_incoming_pec_is_listed_and_read_as_its_original_with_the_verdict_and_facts(
        connect: Any, make_settings: Callable[..., Settings], files: Path) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.1})
    async with connect(settings) as client:
        entry = await incoming_pec(client, files)
        message = await call(client, "read_pec_message", {"inbox_id": entry["inbox_id"],
                                                          "account": OFFLINE_ACCOUNT})
    # The list shows the real sender and subject, not "Per conto di: ..." and "POSTA CERTIFICATA: ...".
    assert (entry["sender"], entry["subject"]) == (OFFLINE_ADDRESS, "Istanza n. 7")
    assert (message["sender"], message["subject"], message["kind"]) == (OFFLINE_ADDRESS, "Istanza n. 7", "envelope")
    assert message["to"] == [OFFLINE_ADDRESS] and "Si trasmette" in message["body"]
    assert message["envelope_sender"].startswith('"Per conto di: ')
    assert message["signature"] == "valid"
    facts = message["certification"]
    assert (facts["type"], facts["sender"], facts["recipients"]) == ("posta-certificata", OFFLINE_ADDRESS,
                                                                     [OFFLINE_ADDRESS])
    assert message["attachments"] == [{"name": "istanza.pdf", "size_bytes": 9 + 256 * 40,
                                       "content_type": "application/pdf", "saved_to": None}]
    assert "unpacked" in message["note"]


async def test_attachments_are_saved_only_on_request_and_only_into_an_allowed_folder(
        connect: Any, make_settings: Callable[..., Settings], files: Path, tmp_path: Path) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.1})
    outside = tmp_path / "outside"
    outside.mkdir()
    inbox = files / "ricevuti"
    inbox.mkdir()
    (inbox / "istanza.pdf").write_bytes(b"already here")
    async with connect(settings) as client:
        entry = await incoming_pec(client, files)
        read = {"inbox_id": entry["inbox_id"], "account": OFFLINE_ACCOUNT}
        refused = await error_of(client, "read_pec_message", {**read, "save_attachments_to": str(outside)})
        missing = await error_of(client, "read_pec_message", {**read, "save_attachments_to": str(files / "nope")})
        message = await call(client, "read_pec_message", {**read, "save_attachments_to": str(inbox)})
    assert "outside the allowed folders" in refused and str(files) in refused
    assert "not an existing folder" in missing
    assert list(outside.iterdir()) == []
    [saved] = message["attachments"]
    assert saved["saved_to"] == str(inbox / "istanza (2).pdf")  # the file already there is kept
    assert (inbox / "istanza.pdf").read_bytes() == b"already here"
    assert (inbox / "istanza (2).pdf").read_bytes() == (files / "istanza.pdf").read_bytes()
    assert "Saved 1 attachment" in message["note"]


async def test_a_receipt_is_read_with_its_signed_facts_and_ordinary_text(
        connect: Any, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(simulator={"delivery_delay": 0.1})
    async with connect(settings) as client:
        sent = await call(client, "send_pec", {
            "account": OFFLINE_ACCOUNT, "recipients": ["ufficio@pec.esempio.it"], "subject": "Diffida",
            "body": "Testo.", "idempotency_key": "diffida-1", "confirm": True})
        with anyio.fail_after(30):
            while True:
                page = await call(client, "list_pec_inbox", {"account": OFFLINE_ACCOUNT, "query": sent["message_id"]})
                if page["messages"]:
                    break
                await anyio.sleep(0.2)
        receipt = await call(client, "read_pec_message", {"inbox_id": page["messages"][-1]["inbox_id"],
                                                          "account": OFFLINE_ACCOUNT})
    assert receipt["kind"] in {"accepted", "delivered"} and receipt["signature"] == "valid"
    assert receipt["certification"]["msgid"].strip("<>") == sent["message_id"]
    assert receipt["envelope_sender"] is None and "receipt" in receipt["note"]


async def test_pec_massiva_has_no_attachments_to_save_and_says_so(connect: Any, settings: Settings,
                                                                  files: Path) -> None:
    async with connect(settings) as client:
        text = await error_of(client, "read_pec_message", {"inbox_id": 1, "account": "pecmassiva",
                                                           "save_attachments_to": str(files)})
    assert "nothing to save" in json.loads(text)[0]["text"]


async def test_a_receipt_with_a_malformed_daticert_or_no_signature_reads_as_no_proof_and_says_why(
        connect: Any, make_settings: Callable[..., Settings], dovecot: Dovecot, make_receipt: MakeReceipt) -> None:
    user = dovecot.add_user(PASSWORD)
    settings = make_settings(environment="sandbox", default_account="studio", accounts={"studio": {
        "address": user, "password": PASSWORD, "imap_host": "127.0.0.1", "imap_port": dovecot.imaps_port,
        "smtp_host": "127.0.0.1", "ca_file": str(dovecot.pki.ca_file)}})
    async with ImapClient(Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file),
                          Login(user, PASSWORD)) as imap:
        await imap.append("INBOX", make_receipt(daticert=b"<postacert tipo='avvenuta-consegna'>"))
        await imap.append("INBOX", make_receipt(signed=False))
        await imap.append("INBOX", b"From: a@example.it\r\nTo: b@example.it\r\nSubject: Ciao\r\n\r\nSolo testo.\r\n")
    async with connect(settings) as client:
        page = await call(client, "list_pec_inbox", {})
        malformed, unsigned, plain = [
            await call(client, "read_pec_message", {"inbox_id": m["inbox_id"]}) for m in reversed(page["messages"])]
    assert (malformed["kind"], malformed["certification"]) == ("other", None)
    assert "not well-formed" in malformed["signature_detail"] and "not valid legal proof" in malformed["note"]
    assert (unsigned["kind"], unsigned["signature"]) == ("other", "invalid")
    assert "no S/MIME signature" in unsigned["signature_detail"]
    assert "not signed" in unsigned["signature_detail"]
    assert (plain["kind"], plain["signature"], plain["body"].strip()) == ("other", None, "Solo testo.")
    assert PASSWORD not in json.dumps([malformed, unsigned, plain])
