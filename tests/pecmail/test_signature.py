"""S/MIME verification tells a real receipt from a tampered, forged, expired or unsigned one, and says why."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pec_mcp.errors import ConfigError
from pec_mcp.pecmail.signature import TrustStore, Verdict, split_signed, verify_message
from pec_mcp.simulator.pecmail.authority import SimulatorAuthority, issue
from pec_mcp.simulator.pecmail.signing import SignOptions
from tests.pecmail.conftest import DELIVERY, RECEIPT_DATE, MakeReceipt


@pytest.fixture
def trust(authority: SimulatorAuthority) -> TrustStore:
    return TrustStore([authority.root.certificate])


def test_a_receipt_signed_by_a_listed_provider_is_valid(make_receipt: MakeReceipt, trust: TrustStore) -> None:
    check = verify_message(make_receipt(), trust=trust, at=RECEIPT_DATE)
    assert check.verdict is Verdict.VALID
    assert check.counts_as_proof
    assert "Simulatore PEC" in (check.signer or "")
    assert check.signed_at is not None


def test_without_a_trust_list_an_intact_receipt_is_valid_but_untrusted(make_receipt: MakeReceipt) -> None:
    check = verify_message(make_receipt(), trust=None, at=RECEIPT_DATE)
    assert check.verdict is Verdict.VALID_UNTRUSTED
    assert not check.counts_as_proof
    assert "trust.pec_providers" in check.reason


@pytest.mark.parametrize(
    "options", [SignOptions(pss=True), SignOptions(hash_name="sha512"), SignOptions(hash_name="sha384")]
)
def test_rsa_pss_and_other_digests_verify(make_receipt: MakeReceipt, trust: TrustStore, options: SignOptions) -> None:
    assert verify_message(make_receipt(options=options), trust=trust, at=RECEIPT_DATE).verdict is Verdict.VALID


def test_an_ecdsa_signer_verifies(authority: SimulatorAuthority, make_receipt: MakeReceipt, trust: TrustStore) -> None:
    ec_signer = issue(authority.root, "Gestore EC", not_before=RECEIPT_DATE - timedelta(days=1),
                      not_after=RECEIPT_DATE + timedelta(days=1), email="posta-certificata@ec.test")
    assert verify_message(make_receipt(signer=ec_signer), trust=trust, at=RECEIPT_DATE).verdict is Verdict.VALID


def test_a_changed_daticert_breaks_the_signature(make_receipt: MakeReceipt, trust: TrustStore) -> None:
    raw = make_receipt()
    parts = split_signed(raw)
    assert parts is not None
    # Change one base64 character of the signed daticert.xml: the digest no longer matches.
    index = raw.index(b"daticert.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n") + 60
    tampered = raw[:index] + (b"B" if raw[index:index + 1] != b"B" else b"C") + raw[index + 1:]
    check = verify_message(tampered, trust=trust, at=RECEIPT_DATE)
    assert check.verdict is Verdict.INVALID
    assert "changed after signing" in check.reason


def test_a_changed_header_outside_the_signature_leaves_it_valid(make_receipt: MakeReceipt, trust: TrustStore) -> None:
    raw = make_receipt().replace(b"X-Ricevuta: avvenuta-consegna", b"X-Ricevuta: errore-consegna")
    assert verify_message(raw, trust=trust, at=RECEIPT_DATE).verdict is Verdict.VALID


def test_a_look_alike_signer_outside_the_trust_list_is_a_forgery(
    authority: SimulatorAuthority, make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    raw = make_receipt(signer=authority.forger)
    check = verify_message(raw, trust=trust, at=RECEIPT_DATE)
    assert check.verdict is Verdict.INVALID
    assert "not issued by any PEC provider in the trust list" in check.reason
    assert verify_message(raw, trust=None, at=RECEIPT_DATE).verdict is Verdict.VALID_UNTRUSTED


def test_a_signature_swapped_in_from_another_message_does_not_verify(
    make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    first, second = make_receipt(), make_receipt(original=None)
    first_parts, second_parts = split_signed(first), split_signed(second)
    assert first_parts and second_parts
    from pec_mcp.pecmail.signature import verify_detached

    check = verify_detached(first_parts.content, second_parts.signature, trust=trust, at=RECEIPT_DATE)
    assert check.verdict is Verdict.INVALID


def test_a_certificate_expired_at_the_receipt_date_is_invalid(
    authority: SimulatorAuthority, make_receipt: MakeReceipt, trust: TrustStore
) -> None:
    old = issue(authority.root, "Gestore scaduto", not_before=RECEIPT_DATE - timedelta(days=400),
                not_after=RECEIPT_DATE - timedelta(days=30), email="posta-certificata@scaduto.test",
                key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    check = verify_message(make_receipt(signer=old), trust=trust, at=RECEIPT_DATE)
    assert check.verdict is Verdict.INVALID
    assert "was not valid on 2026-03-02" in check.reason
    # The same receipt dated while the certificate was valid is fine: the date of the receipt decides.
    earlier = RECEIPT_DATE - timedelta(days=60)
    assert verify_message(make_receipt(signer=old), trust=trust, at=earlier).verdict is Verdict.VALID


def test_a_message_without_signature_is_invalid(make_receipt: MakeReceipt, trust: TrustStore) -> None:
    check = verify_message(make_receipt(signed=False), trust=trust, at=RECEIPT_DATE)
    assert check.verdict is Verdict.INVALID
    assert "no S/MIME signature" in check.reason


def test_an_unreadable_signature_is_invalid_not_a_crash(make_receipt: MakeReceipt, trust: TrustStore) -> None:
    raw = make_receipt()
    start = raw.index(b"filename=\"smime.p7s\"\r\n\r\n") + len(b"filename=\"smime.p7s\"\r\n\r\n")
    broken = raw[:start] + b"bm90IGEgc2lnbmF0dXJl\r\n" + raw[raw.index(b"\r\n--", start):]
    check = verify_message(broken, trust=trust, at=RECEIPT_DATE)
    assert check.verdict is Verdict.INVALID
    assert "cannot be read" in check.reason


def test_a_message_stored_with_bare_newlines_still_verifies(make_receipt: MakeReceipt, trust: TrustStore) -> None:
    raw = make_receipt().replace(b"\r\n", b"\n")
    assert verify_message(raw, trust=trust, at=RECEIPT_DATE).verdict is Verdict.VALID


def test_the_trust_list_is_read_from_a_pem_bundle(authority: SimulatorAuthority, tmp_path: Path) -> None:
    bundle = tmp_path / "gestori.pem"
    bundle.write_bytes(authority.root.certificate_pem() + authority.provider.certificate_pem())
    assert len(TrustStore.from_file(bundle)) == 2


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_missing_or_empty_trust_list_is_a_config_error(tmp_path: Path, content: bytes | None) -> None:
    bundle = tmp_path / "gestori.pem"
    if content is not None:
        bundle.write_bytes(content)
    with pytest.raises(ConfigError, match=r"trust\.pec_providers"):
        TrustStore.from_file(bundle)


def test_the_delivery_facts_fixture_is_dated_inside_the_authority(authority: SimulatorAuthority) -> None:
    assert authority.provider.certificate.not_valid_before_utc < DELIVERY.date


def test_an_issuer_expired_at_the_receipt_date_breaks_the_chain(
    authority: SimulatorAuthority, make_receipt: MakeReceipt
) -> None:
    start = RECEIPT_DATE - timedelta(days=400)
    old_ca = issue(None, "CA scaduta", not_before=start, not_after=RECEIPT_DATE - timedelta(days=1), is_ca=True)
    signer = issue(old_ca, "Gestore", not_before=start, not_after=RECEIPT_DATE + timedelta(days=30),
                   email="posta-certificata@gestore.test")
    check = verify_message(make_receipt(signer=signer), trust=TrustStore([old_ca.certificate]), at=RECEIPT_DATE)
    assert check.verdict is Verdict.INVALID
    assert "issuing certificate" in check.reason
