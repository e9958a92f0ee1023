"""Fixtures for the PEC mail tests: a test authority, receipts signed the way a provider signs them, and a real
Dovecot IMAP server (started once per session, stopped at the end)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from pec_mcp.pecmail.daticert import Daticert, DaticertRecipient
from pec_mcp.simulator.pecmail.authority import Identity, SimulatorAuthority, create_authority
from pec_mcp.simulator.pecmail.signing import (
    SignOptions,
    detached_signature,
    render_daticert,
    signed_message,
    signed_part,
)
from tests.pecmail.dovecot import DOVECOT, Dovecot, start_dovecot

RECEIPT_DATE = datetime(2026, 3, 2, 10, 15, 0, tzinfo=timezone(timedelta(hours=1)))
ORIGINAL = (
    b"From: Mario Rossi <mario.rossi@pec.esempio.it>\r\nTo: ufficio@pec.comune.esempio.it\r\n"
    b"Subject: Istanza n. 42\r\nMessage-ID: <istanza-42@pec.esempio.it>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Si trasmette l'istanza.\r\n--b1\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename=\"istanza.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQK\r\n--b1--\r\n"
)

DELIVERY = Daticert(
    tipo="avvenuta-consegna",
    error="nessuno",
    sender="mario.rossi@pec.esempio.it",
    recipients=(DaticertRecipient("ufficio@pec.comune.esempio.it", True),),
    reply_to="mario.rossi@pec.esempio.it",
    subject="Istanza n. 42",
    provider="Simulatore PEC S.p.A.",
    date=RECEIPT_DATE,
    identifier="opec000001.20260302101500@pec.simulatore.test",
    msgid="<istanza-42@pec.esempio.it>",
    receipt_type="completa",
    delivered_to="ufficio@pec.comune.esempio.it",
    received_by=(),
    error_detail=None,
)

HEADERS = {
    "avvenuta-consegna": ("CONSEGNA", "X-Ricevuta"),
    "accettazione": ("ACCETTAZIONE", "X-Ricevuta"),
    "errore-consegna": ("AVVISO DI MANCATA CONSEGNA", "X-Ricevuta"),
    "posta-certificata": ("POSTA CERTIFICATA", "X-Trasporto"),
}

MakeReceipt = Callable[..., bytes]
DEFAULT_SIGNING = SignOptions()


@pytest.fixture(scope="session")
def authority() -> SimulatorAuthority:
    return create_authority("pec.simulatore.test", now=RECEIPT_DATE)


@pytest.fixture
def make_receipt(authority: SimulatorAuthority) -> MakeReceipt:
    """A signed PEC message: ``facts`` in daticert.xml, headers as a provider writes them, unless overridden."""

    def make(
        facts: Daticert = DELIVERY,
        *,
        signer: Identity | None = None,
        options: SignOptions = DEFAULT_SIGNING,
        original: bytes | None = ORIGINAL,
        daticert: bytes | None = None,
        header: str | None = None,
        subject: str | None = None,
        reference: str | None = None,
        signed: bool = True,
    ) -> bytes:
        prefix, header_name = HEADERS.get(facts.tipo, ("ACCETTAZIONE", "X-Ricevuta"))
        from_ = ("\"Per conto di: mario.rossi@pec.esempio.it\" <posta-certificata@pec.simulatore.test>"
                 if facts.tipo == "posta-certificata" else "posta-certificata@pec.simulatore.test")
        headers = [
            ("From", from_),
            ("To", "mario.rossi@pec.esempio.it"),
            ("Subject", subject or f"{prefix}: {facts.subject}"),
            ("Message-ID", f"<{facts.identifier}>"),
            (header_name, header or facts.tipo),
            ("X-Riferimento-Message-ID", reference or facts.msgid or ""),
        ]
        content = signed_part("Ricevuta di avvenuta consegna\n", daticert or render_daticert(facts), original)
        signature = detached_signature(content, signer or authority.provider, options) if signed else None
        return signed_message(headers, content, signature)

    return make


def at(facts: Daticert, **changes: object) -> Daticert:
    return replace(facts, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if not os.path.exists(DOVECOT) and not shutil.which("dovecot"):
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: scripts/test.sh installs dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()
