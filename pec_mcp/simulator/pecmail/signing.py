"""Write PEC receipts and envelopes as a provider does: daticert.xml inside, S/MIME detached signature outside.

The signature is made by ``cryptography``'s PKCS#7 builder, an implementation independent of the verifier in
``pec_mcp.pecmail.signature``, so the tests that verify what the simulator signs prove something.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from pec_mcp.pecmail.daticert import Daticert
from pec_mcp.simulator.pecmail.authority import Identity

CRLF = "\r\n"


def render_daticert(facts: Daticert) -> bytes:
    """The ``daticert.xml`` of ``facts``, as the rules lay it out."""
    zone = facts.date.strftime("%z") or "+0000"
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<postacert tipo={quoteattr(facts.tipo)} errore={quoteattr(facts.error)}>",
        "  <intestazione>",
        f"    <mittente>{escape(facts.sender)}</mittente>",
        *(
            f"    <destinatari tipo={quoteattr('certificato' if r.certified else 'esterno')}>"
            f"{escape(r.address)}</destinatari>"
            for r in facts.recipients
        ),
        f"    <risposte>{escape(facts.reply_to or facts.sender)}</risposte>",
        f"    <oggetto>{escape(facts.subject)}</oggetto>",
        "  </intestazione>",
        "  <dati>",
        f"    <gestore-emittente>{escape(facts.provider)}</gestore-emittente>",
        f"    <data zona={quoteattr(zone)}>",
        f"      <giorno>{facts.date:%d/%m/%Y}</giorno>",
        f"      <ora>{facts.date:%H:%M:%S}</ora>",
        "    </data>",
        f"    <identificativo>{escape(facts.identifier)}</identificativo>",
    ]
    if facts.msgid:
        lines.append(f"    <msgid>{escape(facts.msgid)}</msgid>")
    if facts.receipt_type:
        lines.append(f"    <ricevuta tipo={quoteattr(facts.receipt_type)}/>")
    if facts.delivered_to:
        lines.append(f"    <consegna>{escape(facts.delivered_to)}</consegna>")
    lines += [f"    <ricezione>{escape(r)}</ricezione>" for r in facts.received_by]
    if facts.error_detail:
        lines.append(f"    <errore-esteso>{escape(facts.error_detail)}</errore-esteso>")
    lines += ["  </dati>", "</postacert>", ""]
    return "\n".join(lines).encode("utf-8")


@dataclass(frozen=True)
class SignOptions:
    hash_name: str = "sha256"  # sha256 | sha384 | sha512
    pss: bool = False  # RSA-PSS instead of PKCS#1 v1.5 (RSA keys only)


def signed_part(text: str, daticert: bytes, original: bytes | None = None) -> bytes:
    """The MIME entity that the signature covers: human text, daticert.xml, and the original when it travels."""
    boundary = _boundary("mixed")
    pieces = [
        f"Content-Type: multipart/mixed; boundary=\"{boundary}\"{CRLF}{CRLF}",
        f"--{boundary}{CRLF}",
        f"Content-Type: text/plain; charset=\"utf-8\"{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}",
        _base64_lines(text.replace("\n", CRLF).encode("utf-8")),
        f"--{boundary}{CRLF}",
        f"Content-Type: application/xml; name=\"daticert.xml\"{CRLF}"
        f"Content-Disposition: inline; filename=\"daticert.xml\"{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}",
        _base64_lines(daticert),
    ]
    body = "".join(pieces).encode("ascii")
    if original is not None:
        body += (
            f"--{boundary}{CRLF}Content-Type: message/rfc822; name=\"postacert.eml\"{CRLF}"
            f"Content-Disposition: inline; filename=\"postacert.eml\"{CRLF}{CRLF}"
        ).encode("ascii")
        body += _crlf(original) + CRLF.encode()
    return body + f"--{boundary}--{CRLF}".encode("ascii")


def detached_signature(content: bytes, signer: Identity, options: SignOptions = SignOptions()) -> bytes:
    """A DER CMS SignedData over ``content`` (detached), with signed attributes and the signer's chain."""
    digest: hashes.HashAlgorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
        options.hash_name
    ]
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    if options.pss and isinstance(signer.key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        builder = builder.add_signer(signer.certificate, signer.key, digest, rsa_padding=pss)  # type: ignore[arg-type]
    else:
        builder = builder.add_signer(signer.certificate, signer.key, digest)  # type: ignore[arg-type]
    for certificate in signer.chain:
        builder = builder.add_certificate(certificate)
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])


def signed_message(
    headers: Sequence[tuple[str, str]], content: bytes, signature: bytes | None, *, micalg: str = "sha-256"
) -> bytes:
    """A whole message: ``headers``, then ``content`` signed by ``signature`` (multipart/signed); unsigned if None."""
    head = "".join(f"{name}: {value}{CRLF}" for name, value in headers) + f"MIME-Version: 1.0{CRLF}"
    if signature is None:
        return head.encode("utf-8") + content
    boundary = _boundary("signed")
    head += (
        f"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=\"{micalg}\"; "
        f"boundary=\"{boundary}\"{CRLF}{CRLF}This is an S/MIME signed message{CRLF}{CRLF}--{boundary}{CRLF}"
    )
    tail = (
        f"{CRLF}--{boundary}{CRLF}Content-Type: application/pkcs7-signature; name=\"smime.p7s\"{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}Content-Disposition: attachment; filename=\"smime.p7s\"{CRLF}{CRLF}"
        + _base64_lines(signature)
        + f"{CRLF}--{boundary}--{CRLF}"
    )
    return head.encode("utf-8") + content + tail.encode("ascii")


def _boundary(kind: str) -> str:
    return f"----=_{kind}_{secrets.token_hex(12)}"


def _base64_lines(data: bytes) -> str:
    encoded = base64.encodebytes(data).decode("ascii")  # 76-character lines, each ending in \n
    return encoded.replace("\n", CRLF)


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
