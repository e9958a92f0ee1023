"""Verify the S/MIME signature of a received PEC message: who signed it, whether it is intact, whether to trust it.

Every PEC receipt and envelope is ``multipart/signed``: the first part (human text, ``daticert.xml``, maybe
``postacert.eml``) and a detached CMS SignedData in ``smime.p7s``. Checked, in this order:

1. the signature can be read and names its signer's certificate (carried in the CMS or in the trust list);
2. content intact: the digest of the first part, byte for byte in canonical CRLF form, equals the signed
   ``messageDigest`` attribute (and the content type attribute is ``data``);
3. the signature over the signed attributes (or, without them, over the content) verifies with the signer's public
   key: RSA PKCS#1 v1.5, RSA-PSS, ECDSA or Ed25519;
4. the signer's certificate was valid at the receipt's date (``daticert.xml``; else the signing time; else now);
5. with a trust list: a chain of issuer signatures, each certificate valid at that date, leads from the signer to a
   certificate of the list (``trust.pec_providers``, a PEM bundle of the accredited providers' certificates).

Verdicts: ``valid`` (1-5 hold), ``valid_untrusted`` (1-4 hold; no trust list configured, so the signer is not
checked), ``invalid`` (anything else, with the reason). ``asn1crypto`` parses the CMS structure; ``cryptography``
does every cryptographic check. Revocation (CRL/OCSP) is not checked: that needs the network.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from enum import StrEnum
from pathlib import Path

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from pec_mcp.errors import ConfigError


class Verdict(StrEnum):
    VALID = "valid"  # intact, signer certificate valid at the date, issued to a provider in the trust list
    VALID_UNTRUSTED = "valid_untrusted"  # intact and well signed; signer not checked (no trust list configured)
    INVALID = "invalid"  # tampered, forged, expired, unknown signer, or not signed at all


@dataclass(frozen=True)
class SignatureCheck:
    verdict: Verdict
    reason: str  # one plain sentence: why this verdict
    signer: str | None = None  # the signer certificate's common name (or email), when it could be read
    signed_at: datetime | None = None  # the signingTime attribute, when present

    @property
    def counts_as_proof(self) -> bool:
        """Only a ``valid`` signature makes a receipt legal proof."""
        return self.verdict is Verdict.VALID


@dataclass(frozen=True)
class SignedParts:
    content: bytes  # the signed MIME entity, canonical CRLF, exactly the bytes the digest covers
    signature: bytes  # the DER CMS SignedData of smime.p7s


class TrustStore:
    """The certificates of the accredited PEC providers (roots or the providers' own): anchors of trust."""

    def __init__(self, certificates: Iterable[x509.Certificate]) -> None:
        self.certificates = tuple(certificates)
        self._fingerprints = {c.fingerprint(hashes.SHA256()) for c in self.certificates}
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        # (certificate, issuer) fingerprints whose issuer signature verified: a signature on a certificate never
        # changes, and a provider signs thousands of receipts with one chain.
        self.verified_links: set[tuple[bytes, bytes]] = set()
        for certificate in self.certificates:
            self._by_subject.setdefault(certificate.subject, []).append(certificate)

    @classmethod
    def from_pem(cls, data: bytes) -> TrustStore:
        """Every certificate of a PEM bundle; raises ``ValueError`` if it holds none."""
        certificates = x509.load_pem_x509_certificates(data)
        return cls(certificates)

    @classmethod
    def from_file(cls, path: Path) -> TrustStore:
        """The PEM bundle at ``path`` (``trust.pec_providers``); raises :class:`ConfigError` saying what is wrong."""
        try:
            return cls.from_pem(path.expanduser().read_bytes())
        except OSError as exc:
            raise ConfigError(
                f"trust.pec_providers: cannot read {path} ({exc.strerror or exc})",
                hint="Point trust.pec_providers to a readable PEM file of the PEC providers' certificates.",
            ) from exc
        except ValueError as exc:
            raise ConfigError(
                f"trust.pec_providers: {path} holds no PEM certificate (-----BEGIN CERTIFICATE----- blocks)",
                hint="Build the bundle as the README's 'PEC mail' section says, then restart.",
            ) from exc

    def __len__(self) -> int:
        return len(self.certificates)

    def contains(self, certificate: x509.Certificate) -> bool:
        return certificate.fingerprint(hashes.SHA256()) in self._fingerprints

    def with_subject(self, name: x509.Name) -> Sequence[x509.Certificate]:
        return self._by_subject.get(name, ())


def split_signed(raw: bytes) -> SignedParts | None:
    """The signed content and the signature of a ``multipart/signed`` or ``application/pkcs7-mime`` message.

    None when the message is not signed in either form.
    """
    # The headers first, read in place: unsigned mail (a 30 MB attachment, say) is then never copied.
    ends = [at for at in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if at >= 0]
    if not ends:
        return None
    headers = BytesHeaderParser().parsebytes(raw[:min(ends)] + b"\r\n\r\n")
    content_type = headers.get_content_type()
    if content_type not in ("application/pkcs7-mime", "application/x-pkcs7-mime", "multipart/signed"):
        return None
    _, separator, body = _crlf(raw).partition(b"\r\n\r\n")
    if not separator:
        return None
    if content_type != "multipart/signed":
        return _opaque(body)
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return None
    cuts = _delimiters(body, b"--" + boundary.encode("ascii", "replace"), 3)
    if len(cuts) < 3:
        return None
    content = body[cuts[0][1] : cuts[1][0]]
    signature_part = body[cuts[1][1] : cuts[2][0]]
    return SignedParts(content, _decode_part(signature_part))


def _delimiters(body: bytes, marker: bytes, wanted: int) -> list[tuple[int, int]]:
    """Up to ``wanted`` boundary lines: (where the delimiter starts, with its leading CRLF; where its line ends)."""
    found: list[tuple[int, int]] = []
    start = 0 if body.startswith(marker) else body.find(b"\r\n" + marker)
    while start >= 0 and len(found) < wanted:
        after = start + len(marker) + (0 if start == 0 and body.startswith(marker) else 2)
        line_end = body.find(b"\r\n", after)
        line_end = len(body) if line_end < 0 else line_end
        if body[after:line_end].strip(b" \t") in (b"", b"--"):  # not a longer boundary that merely starts alike
            found.append((start, min(line_end + 2, len(body))))
        start = body.find(b"\r\n" + marker, line_end)
    return found


def verify_message(raw: bytes, *, trust: TrustStore | None, at: datetime | None = None) -> SignatureCheck:
    """Verify a whole received message (bytes as stored); ``at`` is the receipt's date from daticert.xml."""
    parts = split_signed(raw)
    if parts is None:
        return SignatureCheck(Verdict.INVALID, "the message carries no S/MIME signature (no smime.p7s)")
    return verify_detached(parts.content, parts.signature, trust=trust, at=at)


def verify_detached(
    content: bytes | None, signature: bytes, *, trust: TrustStore | None, at: datetime | None = None
) -> SignatureCheck:
    """Verify a CMS SignedData over ``content`` (None: the content inside the CMS), as the module docstring says."""
    try:
        signed = _signed_data(signature)
        signer_info = signed["signer_infos"][0]
        certificates = _certificates(signed)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return SignatureCheck(Verdict.INVALID, f"the signature (smime.p7s) cannot be read: {_short(exc)}")
    if content is None:
        content = signed["encap_content_info"]["content"].native
        if not isinstance(content, bytes):
            return SignatureCheck(Verdict.INVALID, "the signature holds no content and none was given")
    signer = _find_signer(signer_info, certificates, trust)
    if signer is None:
        return SignatureCheck(Verdict.INVALID, "the signer's certificate is not in the signature nor in the trust list")
    name = _display_name(signer)
    try:
        signed_at = _signing_time(signer_info)
        problem = _integrity_problem(content, signer_info, signer)
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm) as exc:
        return SignatureCheck(Verdict.INVALID, f"the signature cannot be checked: {_short(exc)}", name)
    if problem:
        return SignatureCheck(Verdict.INVALID, problem, name, signed_at)
    moment = _aware(at or signed_at or datetime.now(UTC))
    if not _valid_at(signer, moment):
        return SignatureCheck(Verdict.INVALID, _expired_reason(signer, moment, "signer's certificate"), name, signed_at)
    if trust is None:
        return SignatureCheck(
            Verdict.VALID_UNTRUSTED,
            f"content intact and signed by {name}; the signer was not checked because no trust list is configured "
            "(trust.pec_providers)",
            name,
            signed_at,
        )
    untrusted = _chain_problem(signer, certificates, trust, moment)
    if untrusted:
        return SignatureCheck(Verdict.INVALID, untrusted, name, signed_at)
    return SignatureCheck(
        Verdict.VALID,
        f"content intact, signed by {name}, certificate valid on {moment:%Y-%m-%d}, issued to a provider in the "
        "trust list",
        name,
        signed_at,
    )


# --- CMS structure ---------------------------------------------------------------------------------------------


def _signed_data(der: bytes) -> asn1_cms.SignedData:
    info = asn1_cms.ContentInfo.load(der)
    if info["content_type"].native != "signed_data":
        raise ValueError(f"it is {info['content_type'].native}, not signed data")
    signed = info["content"]
    if not len(signed["signer_infos"]):
        raise ValueError("it names no signer")
    return signed


def _certificates(signed: asn1_cms.SignedData) -> list[x509.Certificate]:
    found = []
    for choice in signed["certificates"] or ():
        if choice.name == "certificate":
            found.append(x509.load_der_x509_certificate(choice.chosen.dump()))
    return found


def _find_signer(
    signer_info: asn1_cms.SignerInfo, certificates: list[x509.Certificate], trust: TrustStore | None
) -> x509.Certificate | None:
    sid = signer_info["sid"]
    candidates = certificates + list(trust.certificates if trust else ())
    if sid.name == "issuer_and_serial_number":
        issuer_der = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        for certificate in candidates:
            if certificate.serial_number == serial and certificate.issuer.public_bytes() == issuer_der:
                return certificate
        return None
    key_id = sid.chosen.native
    for certificate in candidates:
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            continue
        if ski == key_id:
            return certificate
    return None


def _signing_time(signer_info: asn1_cms.SignerInfo) -> datetime | None:
    value = _attribute_values(signer_info["signed_attrs"] or (), ("signing_time",)).get("signing_time")
    return value if isinstance(value, datetime) else None


def _attribute_values(attributes: Iterable[asn1_cms.CMSAttribute], wanted: tuple[str, ...]) -> dict[str, object]:
    # Only the attributes asked for are decoded: S/MIME capabilities and the like cost time and say nothing here.
    return {a["type"].native: a["values"][0].native for a in attributes if a["type"].native in wanted}


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _hash(name: str) -> hashes.HashAlgorithm:
    if name not in _HASHES:
        raise ValueError(f"digest algorithm {name} is not supported")
    return _HASHES[name]()


def _integrity_problem(content: bytes, signer_info: asn1_cms.SignerInfo, signer: x509.Certificate) -> str | None:
    """None when the content matches and the signature verifies; else why not."""
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    digest = _hash(digest_name)
    attributes = signer_info["signed_attrs"]
    if attributes is not None and len(attributes):
        values = _attribute_values(attributes, ("content_type", "message_digest"))
        if values.get("content_type") != "data":
            return "the signed content type is not plain data, as S/MIME requires"
        expected = values.get("message_digest")
        if hashlib.new(digest_name, content).digest() != expected:
            return "the content was changed after signing: its digest does not match the signed one"
        # The signature covers the DER SET OF the attributes, not their [0] IMPLICIT form in the SignerInfo.
        encoded = attributes.dump()
        signed_bytes = b"\x31" + encoded[1:]
    else:
        signed_bytes = content
    try:
        _verify_signature(signer, signer_info, signed_bytes, digest)
    except InvalidSignature:
        return "the signature does not match the signer's certificate: the message was forged or changed"
    return None


def _verify_signature(
    signer: x509.Certificate, signer_info: asn1_cms.SignerInfo, data: bytes, digest: hashes.HashAlgorithm
) -> None:
    algorithm = signer_info["signature_algorithm"]
    signature = signer_info["signature"].native
    key = signer.public_key()
    kind = algorithm.signature_algo
    if isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pss":
        params = algorithm["parameters"]
        pss_hash = _hash(params["hash_algorithm"]["algorithm"].native)
        mgf_hash = _hash(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
        salt = params["salt_length"].native
        key.verify(signature, data, padding.PSS(padding.MGF1(mgf_hash), salt), pss_hash)
    elif isinstance(key, rsa.RSAPublicKey) and kind == "rsassa_pkcs1v15":
        key.verify(signature, data, padding.PKCS1v15(), _signature_hash(algorithm, digest))
    elif isinstance(key, ec.EllipticCurvePublicKey) and kind == "ecdsa":
        key.verify(signature, data, ec.ECDSA(_signature_hash(algorithm, digest)))
    elif isinstance(key, ed25519.Ed25519PublicKey) and kind == "ed25519":
        key.verify(signature, data)
    else:
        raise ValueError(f"a {kind} signature with a {type(key).__name__} key is not supported")


def _signature_hash(algorithm: asn1_cms.SignedDigestAlgorithm, digest: hashes.HashAlgorithm) -> hashes.HashAlgorithm:
    try:
        return _hash(algorithm.hash_algo)  # sha256_rsa, sha256_ecdsa, ... name their hash
    except ValueError:
        return digest  # plain rsaEncryption / ecPublicKey: the SignerInfo's digest algorithm


# --- dates and the chain of trust -------------------------------------------------------------------------------


def _valid_at(certificate: x509.Certificate, moment: datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _expired_reason(certificate: x509.Certificate, moment: datetime, what: str) -> str:
    return (
        f"the {what} ({_display_name(certificate)}) was not valid on {moment:%Y-%m-%d %H:%M} UTC: valid from "
        f"{certificate.not_valid_before_utc:%Y-%m-%d} to {certificate.not_valid_after_utc:%Y-%m-%d}"
    )


def _chain_problem(
    signer: x509.Certificate, pool: list[x509.Certificate], trust: TrustStore, moment: datetime
) -> str | None:
    """None when issuer signatures lead from ``signer`` to a trusted certificate, each valid at ``moment``."""
    current = signer
    for _ in range(8):  # PEC chains are two or three certificates long; eight bounds a loop of cross-signatures
        if trust.contains(current):
            return None
        issuer = _issuer_of(current, [*trust.with_subject(current.issuer), *pool], trust.verified_links)
        if issuer is None:
            return (
                f"signed by {_display_name(signer)}, which is not issued by any PEC provider in the trust list "
                "(trust.pec_providers): treat it as a forgery"
            )
        if not trust.contains(issuer) and not _is_ca(issuer):
            return f"the certificate chain of {_display_name(signer)} passes through a non-CA certificate"
        if not _valid_at(issuer, moment):  # a listed certificate too: an expired anchor proves nothing
            return _expired_reason(issuer, moment, "issuing certificate")
        current = issuer
    return f"the certificate chain of {_display_name(signer)} is too long to be a PEC provider's"


def _issuer_of(
    certificate: x509.Certificate, candidates: Iterable[x509.Certificate], verified: set[tuple[bytes, bytes]]
) -> x509.Certificate | None:
    child = certificate.fingerprint(hashes.SHA256())
    for candidate in candidates:
        if candidate.subject != certificate.issuer or candidate == certificate:
            continue
        link = (child, candidate.fingerprint(hashes.SHA256()))
        if link in verified:
            return candidate
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue  # same name, different key: a look-alike issuer
        if len(verified) < 10_000:
            verified.add(link)
        return candidate
    return None


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


# --- small helpers ----------------------------------------------------------------------------------------------


def _display_name(certificate: x509.Certificate) -> str:
    for oid in (NameOID.COMMON_NAME, NameOID.EMAIL_ADDRESS, NameOID.ORGANIZATION_NAME):
        values = certificate.subject.get_attributes_for_oid(oid)
        if values:
            return f'"{values[0].value!s}"'
    return certificate.subject.rfc4514_string() or "an unnamed certificate"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _crlf(data: bytes) -> bytes:
    if b"\n" not in data.replace(b"\r\n", b""):
        return data  # already canonical: spare a copy of a large message
    return re.sub(rb"\r?\n", b"\r\n", data)


def _decode_part(part: bytes) -> bytes:
    headers, _, body = part.partition(b"\r\n\r\n")
    if b"base64" in headers.lower():
        return base64.b64decode(b"".join(body.split()))
    return body


def _opaque(body: bytes) -> SignedParts | None:
    """An opaque signed message (application/pkcs7-mime): the signed entity travels inside the CMS."""
    try:
        der = base64.b64decode(b"".join(body.split()))
        content = _signed_data(der)["encap_content_info"]["content"].native
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    return SignedParts(_crlf(content), der) if isinstance(content, bytes) else None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
