"""The simulator's own test certificate authority: TLS for its servers, and the keys that sign its PEC receipts.

Generated with ``cryptography`` when the provider starts (well under a second), never written outside the folder the
provider is given. A second, unrelated authority with the *same names* stands for a forger: receipts it signs look
right to the eye and only a check against the trust list tells them apart.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CA_NAME = "Simulatore PEC - Autorità di certificazione di prova"
PROVIDER_NAME = "Simulatore PEC S.p.A."


@dataclass(frozen=True)
class Identity:
    """A certificate, its private key, and the certificates above it (not the root)."""

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass(frozen=True)
class SimulatorAuthority:
    root: Identity  # the test CA: trust it for TLS, and list it in trust.pec_providers
    tls: Identity  # the servers' certificate for localhost and 127.0.0.1
    provider: Identity  # signs every receipt and envelope of the simulated provider
    forger: Identity  # same names as ``provider``, issued by a look-alike root nobody trusts


def create_authority(domain: str, *, now: dt.datetime | None = None) -> SimulatorAuthority:
    """A fresh test CA for ``domain`` (the provider's mail domain), valid from a year before ``now`` for ten years."""
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=365)
    end = start + dt.timedelta(days=3650)
    root = issue(None, CA_NAME, not_before=start, not_after=end, is_ca=True)
    tls = issue(root, "localhost", not_before=start, not_after=end, dns_names=["localhost"], ips=["127.0.0.1"])
    provider = issue(root, PROVIDER_NAME, not_before=start, not_after=end, email=f"posta-certificata@{domain}",
                     key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    look_alike = issue(None, CA_NAME, not_before=start, not_after=end, is_ca=True)
    forger = issue(look_alike, PROVIDER_NAME, not_before=start, not_after=end, email=f"posta-certificata@{domain}")
    return SimulatorAuthority(root=root, tls=tls, provider=provider, forger=forger)


def issue(
    issuer: Identity | None,
    common_name: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    is_ca: bool = False,
    email: str | None = None,
    dns_names: Sequence[str] = (),
    ips: Sequence[str] = (),
    key: PrivateKey | None = None,
) -> Identity:
    """A certificate for ``common_name`` signed by ``issuer`` (self-signed when None). EC P-256 keys by default."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, PROVIDER_NAME),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if email:
        names.append(x509.RFC822Name(email))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if is_ca:
        builder = builder.add_extension(_usage(cert_sign=True), critical=True)
    elif email:
        builder = builder.add_extension(_usage(cert_sign=False), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    certificate = builder.sign(signer_key, hashes.SHA256())
    chain = (issuer.certificate, *issuer.chain) if issuer else ()
    return Identity(certificate, key, chain)


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=not cert_sign, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


@dataclass(frozen=True)
class AuthorityFiles:
    ca_pem: Path  # trust this for TLS to the simulator's servers
    trust_pem: Path  # the simulated "accredited providers" list, for trust.pec_providers
    tls_cert: Path
    tls_key: Path


def write_authority(authority: SimulatorAuthority, folder: Path) -> AuthorityFiles:
    """Write the PEM files the servers and their clients need into ``folder`` (private key readable by owner only)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = AuthorityFiles(folder / "ca.pem", folder / "pec-providers.pem", folder / "tls.pem", folder / "tls.key")
    files.ca_pem.write_bytes(authority.root.certificate_pem())
    files.trust_pem.write_bytes(authority.root.certificate_pem())
    files.tls_cert.write_bytes(authority.tls.certificate_pem() + authority.root.certificate_pem())
    files.tls_key.touch(mode=0o600)
    files.tls_key.write_bytes(authority.tls.key_pem())
    return files
