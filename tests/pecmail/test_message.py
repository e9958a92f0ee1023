"""A received PEC message is classified from its signed daticert.xml; headers only cross-check it."""

from __future__ import annotations

import pytest

from pec_mcp.pecmail.message import parse_pec_message, to_classified
from pec_mcp.pecmail.signature import TrustStore, Verdict
from pec_mcp.receipts import ReceiptKind, sending_status
from pec_mcp.simulator.pecmail.authority import SimulatorAuthority
from tests.pecmail.conftest import DELIVERY, MakeReceipt, at


@pytest.fixture
def trust(authority: SimulatorAuthority) -> TrustStore:
    return TrustStore([authority.root.certificate])


@pytest.mark.parametrize(
    ("tipo", "error", "kind"),
    [
        ("accettazione", "nessuno", ReceiptKind.ACCEPTED),
        ("non-accettazione", "altro", ReceiptKind.NOT_ACCEPTED),
        ("non-accettazione", "virus", ReceiptKind.NOT_ACCEPTED_VIRUS),
        ("presa-in-carico", "nessuno", ReceiptKind.TAKEN_IN_CHARGE),
        ("avvenuta-consegna", "nessuno", ReceiptKind.DELIVERED),
        ("errore-consegna", "no-dest", ReceiptKind.NOT_DELIVERED),
        ("errore-consegna", "virus", ReceiptKind.NOT_DELIVERED_VIRUS),
        ("preavviso-errore-consegna", "altro", ReceiptKind.NOT_DELIVERED_TIMEOUT),
        ("rilevazione-virus", "virus", ReceiptKind.SECURITY_PROBLEM),
        ("posta-certificata", "nessuno", ReceiptKind.ENVELOPE),
        ("errore", "altro", ReceiptKind.ANOMALY),
    ],
)
def test_the_kind_comes_from_the_signed_daticert(
    make_receipt: MakeReceipt, trust: TrustStore, tipo: str, error: str, kind: ReceiptKind
) -> None:
    message = parse_pec_message(make_receipt(at(DELIVERY, tipo=tipo, error=error)), trust=trust)
    assert message.kind is kind
    assert message.signature.verdict is Verdict.VALID


def test_a_delivery_receipt_becomes_the_same_classified_receipt_as_pec_massiva_ones(
    make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    message = parse_pec_message(make_receipt(), trust=trust)
    assert message.counts_as_proof
    assert message.disagreements == ()
    classified = to_classified(message)
    assert classified.kind is ReceiptKind.DELIVERED
    assert classified.recipient == "ufficio@pec.comune.esempio.it"
    assert classified.subject == "Istanza n. 42"
    assert classified.date == "2026-03-02T10:15:00+01:00"
    status = sending_status(["ufficio@pec.comune.esempio.it"], [classified])
    assert status.status.value == "delivered"


def test_a_failure_reason_is_the_error_detail_without_its_code(make_receipt: MakeReceipt, trust: TrustStore) -> None:
    facts = at(DELIVERY, tipo="errore-consegna", error="no-dest", receipt_type=None,
               error_detail="5.1.1 - Simulatore PEC - utente inesistente")
    classified = to_classified(parse_pec_message(make_receipt(facts), trust=trust))
    assert classified.kind is ReceiptKind.NOT_DELIVERED
    assert classified.reason == "utente inesistente"


def test_headers_that_contradict_the_signed_data_are_reported_not_trusted(
    make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    raw = make_receipt(header="errore-consegna", subject="AVVISO DI MANCATA CONSEGNA: Istanza n. 42",
                       reference="<altro@pec.esempio.it>")
    message = parse_pec_message(raw, trust=trust)
    assert message.kind is ReceiptKind.DELIVERED
    assert message.signature.verdict is Verdict.VALID
    text = " | ".join(message.disagreements)
    assert "X-Ricevuta says errore-consegna" in text
    assert "the subject reads as not_delivered" in text
    assert "X-Riferimento-Message-ID is <altro@pec.esempio.it>" in text


def test_a_forged_delivery_receipt_never_counts_as_proof(
    authority: SimulatorAuthority, make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    message = parse_pec_message(make_receipt(signer=authority.forger), trust=trust)
    assert message.kind is ReceiptKind.DELIVERED
    assert message.signature.verdict is Verdict.INVALID
    assert not message.counts_as_proof


def test_an_envelope_shows_the_original_with_its_real_sender_and_attachments(
    make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    message = parse_pec_message(make_receipt(at(DELIVERY, tipo="posta-certificata", receipt_type=None,
                                                delivered_to=None)), trust=trust)
    assert message.kind is ReceiptKind.ENVELOPE
    assert message.original_included
    assert message.headers.sender.startswith('"Per conto di:')
    assert message.content.sender == "mario.rossi@pec.esempio.it"
    assert message.content.sender_name == "Mario Rossi"
    assert message.content.subject == "Istanza n. 42"
    assert message.content.text is not None and "istanza" in message.content.text
    assert [(a.filename, a.content_type, a.size) for a in message.content.attachments] == [
        ("istanza.pdf", "application/pdf", 9)
    ]
    assert message.content.attachments[0].data == b"%PDF-1.4\n"


def test_a_malformed_daticert_is_a_problem_reported_not_an_exception(
    make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    message = parse_pec_message(make_receipt(daticert=b"<postacert tipo='avvenuta-consegna'>"), trust=trust)
    assert message.kind is ReceiptKind.OTHER
    assert message.daticert is None
    assert not message.counts_as_proof
    assert any("not well-formed" in p for p in message.problems)
    assert to_classified(message).kind is ReceiptKind.OTHER


def test_an_unsigned_message_claiming_to_be_a_receipt_is_no_receipt(
    make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    message = parse_pec_message(make_receipt(signed=False), trust=trust)
    assert message.kind is ReceiptKind.OTHER
    assert message.signature.verdict is Verdict.INVALID
    assert any("not signed" in d for d in message.disagreements)
    assert to_classified(message).kind is ReceiptKind.OTHER


def test_ordinary_mail_is_read_as_it_is() -> None:
    raw = b"From: a@example.it\r\nTo: b@example.it\r\nSubject: Ciao\r\n\r\nSolo testo.\r\n"
    message = parse_pec_message(raw, trust=None)
    assert message.kind is ReceiptKind.OTHER
    assert message.content.text == "Solo testo.\r\n" or message.content.text == "Solo testo.\n"
    assert message.disagreements == ()
