"""Build the ``trust.pec_providers`` PEM bundle from PEC messages you received from providers you trust.

AgID publishes its list of accredited PEC providers as a signed PDF (names, not certificates), so no
machine-readable list of the providers' certificates could be sourced. Every receipt, though, carries its
provider's signing certificate and chain inside ``smime.p7s``. This tool collects them from messages you know are
genuine (receipts and envelopes from your own mailbox) and prints who each certificate belongs to, so that you can
check each organisation against AgID's list before trusting it::

    python -m pec_mcp.pecmail.trustlist receipts/*.eml > ~/.config/pec-mcp/gestori-pec.pem
    python -m pec_mcp.pecmail.trustlist --issuers receipts/*.eml > ...   # trust the issuing CAs instead

By default the signers' own certificates are written: the strictest choice (a provider's new signing
certificate must be added when it changes). ``--issuers`` writes the certificates that issued them, which keep
working across renewals but trust everything those CAs issue.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from pec_mcp.pecmail.signature import split_signed


def certificates_in(raw: bytes) -> list[x509.Certificate]:
    """The certificates carried in a message's S/MIME signature, signer first when it can be told; [] if unsigned."""
    parts = split_signed(raw)
    if parts is None:
        return []
    try:
        signed = asn1_cms.ContentInfo.load(parts.signature)["content"]
        found = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"] or ()
                 if c.name == "certificate"]
        sid = signed["signer_infos"][0]["sid"]
    except (ValueError, TypeError, KeyError, IndexError):
        return []
    serial = sid.chosen["serial_number"].native if sid.name == "issuer_and_serial_number" else None
    return sorted(found, key=lambda c: c.serial_number != serial)


def select(messages: Iterable[bytes], *, issuers: bool) -> list[x509.Certificate]:
    """One certificate per signer (or per issuer of a signer), without repeats, in the order first seen."""
    chosen: dict[bytes, x509.Certificate] = {}
    for raw in messages:
        certificates = certificates_in(raw)
        if not certificates:
            continue
        signer = certificates[0]
        if issuers:
            above = [c for c in certificates[1:] if c.subject == signer.issuer]
            if not above:
                continue  # the issuer does not travel in the message: nothing to offer
            signer = above[0]
        chosen.setdefault(signer.fingerprint(hashes.SHA256()), signer)
    return list(chosen.values())


def describe(certificate: x509.Certificate) -> str:
    """Who a certificate belongs to and when it is valid: what to check against AgID's list."""
    return (
        f"{certificate.subject.rfc4514_string()}  (issued by {certificate.issuer.rfc4514_string()}; valid "
        f"{certificate.not_valid_before_utc:%Y-%m-%d} to {certificate.not_valid_after_utc:%Y-%m-%d}; SHA-256 "
        f"{certificate.fingerprint(hashes.SHA256()).hex(':')[:47]}...)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pec_mcp.pecmail.trustlist", description=__doc__.split("\n")[0])
    parser.add_argument("messages", nargs="+", type=Path, help="received PEC messages (.eml), receipts or envelopes")
    parser.add_argument("--issuers", action="store_true", help="write the issuing CAs instead of the signers")
    args = parser.parse_args(argv)
    raws = []
    for path in args.messages:
        try:
            raws.append(path.read_bytes())
        except OSError as exc:
            print(f"skipped {path}: {exc.strerror or exc}", file=sys.stderr)
    chosen = select(raws, issuers=args.issuers)
    if not chosen:
        print("no signed PEC message among the files: nothing written", file=sys.stderr)
        return 1
    for certificate in chosen:
        print(f"check against AgID's list: {describe(certificate)}", file=sys.stderr)
        sys.stdout.write(certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
