"""Sending from a mailbox whose IMAP server is Dovecot, its receipts (signed by a provider, and by a forger) put in the
real mailbox: a sending's whole life through the PEC tools, and a bulk job whose runner counts the genuine receipts
and never the forged CONSEGNA.

SMTP is aiosmtpd (Dovecot serves IMAP only), as in the other Dovecot tests: it records what it accepted.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pec_mcp.config import Settings
from pec_mcp.jobs import RecipientRow
from pec_mcp.pecmail.connection import Endpoint, Login
from pec_mcp.pecmail.daticert import DaticertRecipient
from pec_mcp.pecmail.imap import ImapClient
from pec_mcp.pecmail.signature import TrustStore
from pec_mcp.simulator.pecmail.authority import SimulatorAuthority, write_authority
from pec_mcp.store import Store
from tests.bulk.test_bulk_mailbox_runner import bench
from tests.pecmail.conftest import DELIVERY, MakeReceipt, at
from tests.pecmail.dovecot import Dovecot
from tests.pecmail.smtp_server import Recorder, SmtpServer, start_smtp
from tests.pecmail.test_imap_dovecot import PASSWORD
from tests.pecmail.test_offline_account import receipts_until
from tests.pecmail.test_tools_dovecot import call

pytestmark = pytest.mark.anyio


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user(PASSWORD)


@pytest.fixture
def smtp(dovecot: Dovecot, user: str) -> Iterator[SmtpServer]:
    server = start_smtp(dovecot.pki, Recorder(user, PASSWORD))
    yield server
    server.stop()


REAL, FORGED = "ufficio@pec.esempio.it", "controparte@pec.esempio.it"


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


async def test_a_job_on_a_dovecot_mailbox_counts_signed_receipts_and_never_a_forged_consegna(
        make_settings: Callable[..., Settings], dovecot: Dovecot, user: str, smtp: SmtpServer,
        authority: SimulatorAuthority, make_receipt: MakeReceipt, tmp_path: Path) -> None:
    settings = make_settings(environment="sandbox", accounts={"studio": {
        "address": user, "password": PASSWORD, "provider": "custom", "imap_host": "127.0.0.1",
        "imap_port": dovecot.imaps_port, "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
        "ca_file": str(dovecot.pki.ca_file), "requests_per_second": 100}})
    trust = TrustStore.from_file(write_authority(authority, tmp_path / "authority").trust_pem)
    store = Store(settings.store.path)
    shared, alone = ["uno@pec.esempio.it", "due@pec.esempio.it"], "forged-tre@pec.esempio.it"
    try:
        mailbox = bench(settings, store, trust)
        job_id = mailbox.start([RecipientRow(1, shared[0], {"nome": "Studio"}),
                                RecipientRow(2, shared[1], {"nome": "Studio"}),
                                RecipientRow(3, alone, {"nome": "Tre"})], body="Gentile {{nome}}")
        await mailbox.send_all()
        sent = {tuple(recipients): message_id(raw) for _, recipients, raw in smtp.recorder.messages}
        assert set(sent) == {tuple(shared), (alone,)}  # the identical message went once, to both
        receipts = [make_receipt(at(DELIVERY, tipo="accettazione", sender=user, msgid=f"<{ref}>",
                                    recipients=tuple(DaticertRecipient(r, True) for r in to), delivered_to=None,
                                    receipt_type=None), original=None) for to, ref in sent.items()]
        receipts += [make_receipt(at(DELIVERY, sender=user, msgid=f"<{sent[tuple(shared)]}>", delivered_to=r,
                                     recipients=tuple(DaticertRecipient(a, True) for a in shared))) for r in shared]
        receipts.append(make_receipt(at(DELIVERY, sender=user, msgid=f"<{sent[(alone,)]}>", delivered_to=alone,
                                        recipients=(DaticertRecipient(alone, True),)), signer=authority.forger))
        await put_raw(dovecot, user, receipts)
        states = await mailbox.follow_until(
            job_id, lambda s: all(s[a][0] == "delivered" for a in shared) and s[alone][1] is not None)
        verdicts = mailbox.jobs.receipt_verdicts(job_id)
    finally:
        store.close()
    assert states[alone][0] == "sent" and "invalid signature" in (states[alone][1] or "")
    assert verdicts == {shared[0]: "valid", shared[1]: "valid", alone: "invalid"}
    assert len(smtp.recorder.messages) == 2


async def put_raw(dovecot: Dovecot, user: str, messages: list[bytes]) -> None:
    async with ImapClient(Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file),
                          Login(user, PASSWORD)) as imap:
        for raw in messages:
            await imap.append("INBOX", raw)


def message_id(raw: bytes) -> str:
    from email import message_from_bytes

    return str(message_from_bytes(raw)["Message-ID"]).strip().strip("<>")
