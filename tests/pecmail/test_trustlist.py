"""The trust list is built from received messages: their providers' certificates, each shown for checking."""

from __future__ import annotations

from pathlib import Path

import pytest

from pec_mcp.pecmail.signature import TrustStore, Verdict, verify_message
from pec_mcp.pecmail.trustlist import certificates_in, main, select
from pec_mcp.simulator.pecmail.authority import SimulatorAuthority
from tests.pecmail.conftest import RECEIPT_DATE, MakeReceipt


def test_the_signer_comes_first_and_its_issuer_follows(
    authority: SimulatorAuthority, make_receipt: MakeReceipt
) -> None:
    found = certificates_in(make_receipt())
    assert found[0] == authority.provider.certificate
    assert authority.root.certificate in found


def test_each_signer_is_listed_once_and_unsigned_mail_is_ignored(
    authority: SimulatorAuthority, make_receipt: MakeReceipt
) -> None:
    messages = [make_receipt(), make_receipt(), make_receipt(signed=False)]
    assert select(messages, issuers=False) == [authority.provider.certificate]
    assert select(messages, issuers=True) == [authority.root.certificate]


def test_the_bundle_written_verifies_the_receipts_it_came_from(
    make_receipt: MakeReceipt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt = tmp_path / "consegna.eml"
    receipt.write_bytes(make_receipt())
    assert main([str(receipt)]) == 0
    captured = capsys.readouterr()
    assert "check against AgID's list: CN=Simulatore PEC S.p.A." in captured.err
    bundle = tmp_path / "gestori.pem"
    bundle.write_text(captured.out)
    check = verify_message(receipt.read_bytes(), trust=TrustStore.from_file(bundle), at=RECEIPT_DATE)
    assert check.verdict is Verdict.VALID


def test_no_signed_message_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.eml"
    plain.write_bytes(b"Subject: x\r\n\r\ny\r\n")
    assert main([str(plain), str(tmp_path / "missing.eml")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "nothing written" in captured.err and "skipped" in captured.err
