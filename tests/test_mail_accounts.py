"""The delivery status of a mailbox sending counts every receipt but those with an invalid signature."""

from __future__ import annotations

from pec_mcp.mail_accounts import mail_delivery
from pec_mcp.store import Receipt

A, B = "ufficio@pec.esempio.it", "forged-altro@pec.esempio.it"


def receipt(kind: str, recipient: str | None, signature: str) -> Receipt:
    return Receipt(kind=kind, date="2026-03-10T10:00:00+01:00", provider_text="CONSEGNA: Atto", source="imap",
                   recipient=recipient, signature=signature, signature_detail="the signer is not in the trust list")


def test_a_forged_consegna_never_makes_a_recipient_delivered() -> None:
    delivery = mail_delivery([A, B], [receipt("accepted", None, "valid"), receipt("delivered", A, "valid"),
                                       receipt("delivered", B, "invalid")])
    states = {o.address: o.state.value for o in delivery.status.recipients}
    assert states == {A: "delivered", B: "pending"}
    assert delivery.status.status.value != "delivered"
    assert [r.recipient for r in delivery.ignored] == [B]


def test_untrusted_but_intact_receipts_count() -> None:
    delivery = mail_delivery([A], [receipt("accepted", None, "valid_untrusted"),
                                   receipt("delivered", A, "valid_untrusted")])
    assert delivery.status.status.value == "delivered" and delivery.ignored == []
