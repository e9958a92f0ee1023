"""A bulk job on a mailbox whose IMAP server is Dovecot: the receipts, signed by a provider and by a forger, are put
in the real mailbox; the runner counts the genuine ones and never the forged CONSEGNA.

SMTP is aiosmtpd (Dovecot serves IMAP only), as in the other Dovecot tests: it records what it accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

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

pytestmark = pytest.mark.anyio


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user(PASSWORD)


@pytest.fixture
def smtp(dovecot: Dovecot, user: str) -> Iterator[SmtpServer]:
    server = start_smtp(dovecot.pki, Recorder(user, PASSWORD))
    yield server
    server.stop()


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
