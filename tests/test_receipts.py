"""The receipt classifier: every PEC subject prefix, recipients and reasons from bodies, overall status, summaries."""

from __future__ import annotations

import pytest

from pec_mcp.receipts import (
    MEANING,
    ClassifiedReceipt,
    DeliveryStatus,
    ReceiptKind,
    RecipientState,
    classify,
    classify_subject,
    recipients_in_acceptance,
    sending_status,
)

CODE = "2020082610003492"
ORIGINAL = "Invio di prova pec massiva"

# Every prefix of pec-domain.md §1.2 (the PEC rules) and the tolerated non-standard ones.
STANDARD = [
    ("ACCETTAZIONE:", ReceiptKind.ACCEPTED),
    ("AVVISO DI NON ACCETTAZIONE:", ReceiptKind.NOT_ACCEPTED),
    ("AVVISO DI NON ACCETTAZIONE PER VIRUS:", ReceiptKind.NOT_ACCEPTED_VIRUS),
    ("POSTA CERTIFICATA:", ReceiptKind.ENVELOPE),
    ("PRESA IN CARICO:", ReceiptKind.TAKEN_IN_CHARGE),
    ("ANOMALIA MESSAGGIO:", ReceiptKind.ANOMALY),
    ("CONSEGNA:", ReceiptKind.DELIVERED),
    ("AVVISO DI MANCATA CONSEGNA:", ReceiptKind.NOT_DELIVERED),
    ("AVVISO DI MANCATA CONSEGNA PER VIRUS:", ReceiptKind.NOT_DELIVERED_VIRUS),
    ("PROBLEMA DI SICUREZZA:", ReceiptKind.SECURITY_PROBLEM),
    ("AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO:", ReceiptKind.NOT_DELIVERED_TIMEOUT),
]
TOLERATED = [
    ("AVVENUTA CONSEGNA:", ReceiptKind.DELIVERED),
    ("MANCATA CONSEGNA:", ReceiptKind.NOT_DELIVERED),
    ("NON ACCETTAZIONE:", ReceiptKind.NOT_ACCEPTED),
    ("ERRORE CONSEGNA:", ReceiptKind.NOT_DELIVERED),
    ("PREAVVISO DI MANCATA CONSEGNA:", ReceiptKind.NOT_DELIVERED_TIMEOUT),
]


def _case_variants(prefix: str) -> list[str]:
    return [prefix, prefix.lower(), prefix.title()]


@pytest.mark.parametrize(("prefix", "kind"), STANDARD + TOLERATED, ids=[p for p, _ in STANDARD + TOLERATED])
@pytest.mark.parametrize("code", ["", f" {CODE}"], ids=["without-code", "with-code"])
def test_every_subject_prefix_is_classified_in_any_case_with_or_without_the_sending_code(
    prefix: str, kind: ReceiptKind, code: str
) -> None:
    for variant in _case_variants(prefix):
        assert classify_subject(f"{variant} {ORIGINAL}{code}") == (kind, ORIGINAL)


def test_the_longest_prefix_wins_over_its_shorter_stem() -> None:
    assert classify_subject("AVVISO DI NON ACCETTAZIONE PER VIRUS: x")[0] == ReceiptKind.NOT_ACCEPTED_VIRUS
    assert classify_subject("AVVISO DI MANCATA CONSEGNA PER VIRUS: x")[0] == ReceiptKind.NOT_DELIVERED_VIRUS
    assert classify_subject("AVVISO DI MANCATA CONSEGNA: x")[0] == ReceiptKind.NOT_DELIVERED


def test_a_subject_without_a_receipt_prefix_is_other_and_kept_whole() -> None:
    assert classify_subject(f"  Fattura n. 12 {CODE}  ") == (ReceiptKind.OTHER, f"Fattura n. 12 {CODE}")
    assert classify_subject("Re: CONSEGNA: x")[0] == ReceiptKind.OTHER  # a prefix counts only at the start


def test_a_short_number_at_the_end_of_the_subject_is_part_of_it_not_a_sending_code() -> None:
    assert classify_subject("CONSEGNA: Fattura 2024")[1] == "Fattura 2024"


def test_every_kind_has_a_meaning() -> None:
    assert set(MEANING) == set(ReceiptKind)


# -- bodies, as PEC Massiva (and the simulator) write them -----------------------------------------------------

DELIVERY_BODY = (
    "Ricevuta di avvenuta consegna\nIl giorno 26/08/2020 alle ore 10:00:36 (+0200) il messaggio\n"
    f'"{ORIGINAL} {CODE}" proveniente da "dev-api@pecmassiva.com"\n'
    'ed indirizzato a "Mario.Rossi@pec.it"\nè stato consegnato nella casella di destinazione.'
)
FAILURE_BODY = (
    "Avviso di mancata consegna\nIl giorno 26/08/2020 alle ore 10:00:36 (+0200) nel messaggio\n"
    f'"{ORIGINAL} {CODE}" proveniente da "dev-api@pecmassiva.com"\ned indirizzato a:\nfail-full-1@pec.it\n'
    "è stato rilevato un problema che ne impedisce la consegna a causa di: 5.2.2 - pecmassiva.com - casella piena"
)
ACCEPTANCE_BODY = (
    "Ricevuta di accettazione\nIl giorno 26/08/2020 alle ore 10:00:34 (+0200) il messaggio\n"
    f'"{ORIGINAL} {CODE}" proveniente da "dev-api@pecmassiva.com"\ned indirizzato a:\n'
    'a@pec.it ("posta certificata")\nB@Pec.it ("posta certificata")\na@pec.it ("posta certificata")\n'
    "è stato accettato dal sistema ed inoltrato."
)


def test_a_delivery_receipt_names_its_recipient_lowercased() -> None:
    receipt = classify(f"CONSEGNA: {ORIGINAL} {CODE}", DELIVERY_BODY, "Wed, 26 Aug 2020 10:00:36 +0200")
    assert receipt == ClassifiedReceipt(
        ReceiptKind.DELIVERED, ORIGINAL, "mario.rossi@pec.it", None, "Wed, 26 Aug 2020 10:00:36 +0200"
    )


def test_a_non_delivery_notice_gives_the_recipient_and_the_reason_without_its_code() -> None:
    receipt = classify(f"AVVISO DI MANCATA CONSEGNA: {ORIGINAL} {CODE}", FAILURE_BODY)
    assert (receipt.recipient, receipt.reason) == ("fail-full-1@pec.it", "casella piena")


def test_a_reason_without_a_standard_code_is_kept_as_written() -> None:
    body = "ed indirizzato a: x@pec.it\nnon consegnato a causa di: utente sconosciuto"
    assert classify("AVVISO DI MANCATA CONSEGNA: s", body).reason == "utente sconosciuto"


def test_acceptance_receipts_speak_of_the_whole_message_not_of_one_recipient() -> None:
    receipt = classify(f"ACCETTAZIONE: {ORIGINAL} {CODE}", ACCEPTANCE_BODY)
    assert receipt.recipient is None and receipt.reason is None


def test_the_recipients_of_an_acceptance_receipt_are_listed_once_each() -> None:
    assert recipients_in_acceptance(["unrelated", ACCEPTANCE_BODY]) == ["a@pec.it", "b@pec.it"]
    assert recipients_in_acceptance(["Ricevuta di consegna"]) == []


# -- the overall status ------------------------------------------------------------------------------------------


def _r(kind: ReceiptKind, recipient: str | None = None, reason: str | None = None) -> ClassifiedReceipt:
    return ClassifiedReceipt(kind, ORIGINAL, recipient, reason, "d")


ACC = _r(ReceiptKind.ACCEPTED)
TWO = ["a@pec.it", "b@pec.it"]


@pytest.mark.parametrize(
    ("recipients", "receipts", "status", "summary"),
    [
        (TWO, [], DeliveryStatus.PENDING, "no receipt yet: the provider has not confirmed acceptance"),
        (TWO, [ACC], DeliveryStatus.ACCEPTED, "delivered to 0 of 2; 2 awaiting a delivery receipt"),
        (TWO, [ACC, _r(ReceiptKind.DELIVERED, "a@pec.it"), _r(ReceiptKind.DELIVERED, "b@pec.it")],
         DeliveryStatus.DELIVERED, "delivered to 2 of 2"),
        (TWO, [ACC, _r(ReceiptKind.DELIVERED, "a@pec.it")], DeliveryStatus.PARTIALLY_DELIVERED,
         "delivered to 1 of 2; 1 awaiting a delivery receipt"),
        (TWO, [ACC, _r(ReceiptKind.DELIVERED, "a@pec.it"), _r(ReceiptKind.NOT_DELIVERED, "b@pec.it", "casella piena")],
         DeliveryStatus.PARTIALLY_DELIVERED, "delivered to 1 of 2; 1 not delivered (casella piena)"),
        (TWO, [ACC, _r(ReceiptKind.NOT_DELIVERED, "a@pec.it", "x")], DeliveryStatus.PARTIALLY_DELIVERED,
         "delivered to 0 of 2; 1 not delivered (x); 1 awaiting a delivery receipt"),
        (TWO, [ACC, _r(ReceiptKind.NOT_DELIVERED, "a@pec.it", "x"), _r(ReceiptKind.NOT_DELIVERED_VIRUS, "b@pec.it")],
         DeliveryStatus.NOT_DELIVERED,
         f"delivered to 0 of 2; 2 not delivered (x, {MEANING[ReceiptKind.NOT_DELIVERED_VIRUS]})"),
        (["t@pec.it"], [ACC, _r(ReceiptKind.NOT_DELIVERED_TIMEOUT)], DeliveryStatus.NOT_DELIVERED,
         f"delivered to 0 of 1; 1 not delivered ({MEANING[ReceiptKind.NOT_DELIVERED_TIMEOUT]})"),
        (TWO, [_r(ReceiptKind.NOT_ACCEPTED_VIRUS)], DeliveryStatus.NOT_ACCEPTED,
         f"not accepted by the provider, nothing was sent ({MEANING[ReceiptKind.NOT_ACCEPTED_VIRUS]})"),
        (TWO, [_r(ReceiptKind.NOT_ACCEPTED, reason="mittente non valido")], DeliveryStatus.NOT_ACCEPTED,
         "not accepted by the provider, nothing was sent (mittente non valido)"),
    ],
    ids=["pending", "accepted", "delivered", "partial-pending", "partial-failed", "failed-and-pending",
         "not-delivered", "timeout", "virus", "not-accepted"],
)
def test_the_overall_status_and_summary_of_each_combination(
    recipients: list[str], receipts: list[ClassifiedReceipt], status: DeliveryStatus, summary: str
) -> None:
    result = sending_status(recipients, receipts)
    assert (result.status, result.summary) == (status, summary)


def test_a_delivery_receipt_outranks_an_earlier_timeout_notice_but_not_the_other_way_round() -> None:
    late = sending_status(["a@pec.it"], [ACC, _r(ReceiptKind.NOT_DELIVERED_TIMEOUT), _r(ReceiptKind.DELIVERED)])
    assert late.status == DeliveryStatus.DELIVERED
    again = sending_status(["a@pec.it"], [ACC, _r(ReceiptKind.DELIVERED), _r(ReceiptKind.NOT_DELIVERED_TIMEOUT)])
    assert again.status == DeliveryStatus.DELIVERED


def test_a_receipt_naming_no_known_recipient_of_a_multi_recipient_sending_is_ignored() -> None:
    result = sending_status(TWO, [ACC, _r(ReceiptKind.DELIVERED, "stranger@pec.it"), _r(ReceiptKind.DELIVERED)])
    assert result.status == DeliveryStatus.ACCEPTED


def test_recipients_match_their_receipts_case_insensitively_and_keep_their_own_spelling() -> None:
    result = sending_status(["Mario.Rossi@pec.it"], [ACC, _r(ReceiptKind.DELIVERED, "mario.rossi@pec.it")])
    assert [(o.address, o.state) for o in result.recipients] == [("Mario.Rossi@pec.it", RecipientState.DELIVERED)]


def test_a_mixed_sending_of_fifty_reads_delivered_to_48_and_names_the_full_mailboxes() -> None:
    recipients = [f"r{i}@pec.it" for i in range(48)] + ["fail-full-1@pec.it", "fail-full-2@pec.it"]
    receipts = [ACC, *(_r(ReceiptKind.DELIVERED, a) for a in recipients[:48]),
                *(_r(ReceiptKind.NOT_DELIVERED, a, "casella piena") for a in recipients[48:])]
    result = sending_status(recipients, receipts)
    assert result.status == DeliveryStatus.PARTIALLY_DELIVERED
    assert result.summary == "delivered to 48 of 50; 2 not delivered (casella piena ×2)"
