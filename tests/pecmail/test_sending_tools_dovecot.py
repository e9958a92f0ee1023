"""A sending's whole life through the PEC tools on a mailbox whose IMAP server is Dovecot: sent over SMTP (aiosmtpd,
since Dovecot serves IMAP only), its signed receipts put in the real mailbox, a forged CONSEGNA among them; then
found, read, handed over as evidence, and its receipts deleted on the server while the ledger keeps them."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pec_mcp.config import Settings
from pec_mcp.pecmail.daticert import DaticertRecipient
from pec_mcp.simulator.pecmail.authority import SimulatorAuthority, write_authority
from tests.pecmail.conftest import DELIVERY, MakeReceipt, at
from tests.pecmail.dovecot import Dovecot
from tests.pecmail.smtp_server import Recorder, SmtpServer, start_smtp
from tests.pecmail.test_bulk_dovecot import put_raw
from tests.pecmail.test_imap_dovecot import PASSWORD
from tests.pecmail.test_offline_account import receipts_until
from tests.pecmail.test_tools_dovecot import call

pytestmark = pytest.mark.anyio
REAL, FORGED = "ufficio@pec.esempio.it", "controparte@pec.esempio.it"


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user(PASSWORD)


@pytest.fixture
def smtp(dovecot: Dovecot, user: str) -> Iterator[SmtpServer]:
    server = start_smtp(dovecot.pki, Recorder(user, PASSWORD))
    yield server
    server.stop()


@pytest.fixture
def studio(make_settings: Callable[..., Settings], dovecot: Dovecot, user: str, smtp: SmtpServer,
           authority: SimulatorAuthority, tmp_path: Path) -> Settings:
    trust = write_authority(authority, tmp_path / "authority").trust_pem
    return make_settings(environment="sandbox", default_account="studio", trust={"pec_providers": str(trust)},
                         accounts={"studio": {
                             "address": user, "password": PASSWORD, "provider": "custom",
                             "imap_host": "127.0.0.1", "imap_port": dovecot.imaps_port, "smtp_host": "127.0.0.1",
                             "smtp_port": smtp.port, "ca_file": str(dovecot.pki.ca_file)}})


def receipts_of(make_receipt: MakeReceipt, authority: SimulatorAuthority, sender: str, message_id: str) -> list[bytes]:
    """ACCETTAZIONE and a genuine CONSEGNA for REAL, and a CONSEGNA for FORGED signed by a key outside the trust."""
    both = tuple(DaticertRecipient(r, True) for r in (REAL, FORGED))
    common = {"sender": sender, "msgid": f"<{message_id}>", "recipients": both, "subject": "Diffida"}
    return [
        make_receipt(at(DELIVERY, tipo="accettazione", delivered_to=None, receipt_type=None,
                        identifier="opec-acc@pec.simulatore.test", **common), original=None),
        make_receipt(at(DELIVERY, delivered_to=REAL, identifier="opec-real@pec.simulatore.test", **common)),
        make_receipt(at(DELIVERY, delivered_to=FORGED, identifier="opec-forged@pec.simulatore.test", **common),
                     signer=authority.forger),
    ]


async def test_a_sending_from_a_dovecot_mailbox_is_sent_followed_proved_and_its_receipts_deleted(
        connect: Any, studio: Settings, dovecot: Dovecot, user: str, smtp: SmtpServer,
        authority: SimulatorAuthority, make_receipt: MakeReceipt, files: Path) -> None:
    async with connect(studio) as client:
        sent = await call(client, "send_pec", {"recipients": [REAL, FORGED], "subject": "Diffida",
                                               "body": "Vi diffidiamo ad adempiere.", "idempotency_key": "d-1"})
        message_id = sent["message_id"].strip("<>")
        assert sent["status"] == "sent" and sent["account"] == "studio" and len(smtp.recorder.messages) == 1
        await put_raw(dovecot, user, receipts_of(make_receipt, authority, user, message_id))

        # The IDLE follower or the next sync brings them in: read until all three are there.
        receipts = await receipts_until(client, sent["message_id"], lambda a: len(a["receipts"]) == 3)
        found = await call(client, "find_pec_sendings", {"account": "studio", "recipient": REAL})
        evidence = await call(client, "export_pec_evidence", {"message_id": sent["message_id"],
                                                              "save_to": str(files)})
        deleted = await call(client, "delete_pec_receipts", {"message_id": sent["message_id"]})
        left = await call(client, "list_pec_inbox", {"query": sent["message_id"]})
        kept = await call(client, "get_pec_receipts", {"message_id": sent["message_id"]})

    states = {r["address"]: r["state"] for r in receipts["recipients"]}
    assert states == {REAL: "delivered", FORGED: "pending"}  # a forged CONSEGNA proves nothing
    assert sorted(r["signature"] for r in receipts["receipts"]) == ["invalid", "valid", "valid"]
    assert FORGED in receipts["note"] and "signature is invalid" in receipts["note"]
    assert [s["message_id"] for s in found["sendings"]] == [sent["message_id"]]
    with zipfile.ZipFile(evidence["path"]) as pack:
        originals = [n for n in pack.namelist() if n.endswith(".eml")]
    assert evidence["signed_originals"] == len(originals) == 3  # each receipt as received, signature and all
    assert deleted["deleted"] and left["messages"] == []
    assert {r["address"]: r["state"] for r in kept["recipients"]} == states  # the ledger still proves delivery
    assert all(r["deleted_at"] for r in kept["receipts"])
