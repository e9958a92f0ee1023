"""Where each PEC provider's mailboxes are reached over IMAP and SMTP, from the providers' own guides.

Every PEC provider offers IMAP and SMTP with implicit TLS (IMAPS on 993, SMTPS on 465): the PEC rules require
an encrypted channel between a user's client and the provider. Each preset cites the public page its hosts come
from; what that page did not show is marked UNVERIFIED and may be overridden per account (imap_host, imap_port,
smtp_host, smtp_port, security). ``custom`` has no hosts: the account must give them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Security = Literal["tls", "starttls"]
ProviderPreset = Literal["aruba", "legalmail", "namirial", "poste", "register", "custom"]

IMAPS_PORT = 993
SMTPS_PORT = 465
SUBMISSION_PORT = 587  # SMTP with STARTTLS
IMAP_STARTTLS_PORT = 143


@dataclass(frozen=True)
class Preset:
    """The IMAP and SMTP endpoints of one PEC provider, with where they were read and what was not."""

    label: str
    imap_host: str
    imap_port: int
    smtp_host: str
    smtp_port: int
    security: Security
    source: str
    unverified: str = ""  # what the source did not show (empty: everything was read there)


PRESETS: dict[str, Preset] = {
    # guide.pec.it "Configurare la casella PEC" names smtps.pec.aruba.it as the mandatory outgoing server;
    # https://guide.pec.it/posta-pec/configurare-casella-pec/bozza.aspx
    "aruba": Preset(
        label="Aruba PEC",
        imap_host="imaps.pec.aruba.it", imap_port=IMAPS_PORT,
        smtp_host="smtps.pec.aruba.it", smtp_port=SMTPS_PORT, security="tls",
        source="https://guide.pec.it/posta-pec/configurare-casella-pec/bozza.aspx",
        unverified="the IMAP host and both ports (the stored copy of the page stops before its parameter table)",
    ),
    # InfoCert's help centre names mbox.cert.legalmail.it and sendm.cert.legalmail.it as the Legalmail servers
    # (certificate *.cert.legalmail.it, GlobalSign chain) and a limit of 6 messages a minute per mailbox;
    # https://help.infocert.it/Cerca?searchText=guida+alla+configurazione+Legalmail+-&idTipoUtente=&idProdotto=41&idMotivo=87
    "legalmail": Preset(
        label="Legalmail (InfoCert)",
        imap_host="mbox.cert.legalmail.it", imap_port=IMAPS_PORT,
        smtp_host="sendm.cert.legalmail.it", smtp_port=SMTPS_PORT, security="tls",
        source="https://help.infocert.it/Cerca?searchText=guida+alla+configurazione+Legalmail+-"
        "&idTipoUtente=&idProdotto=41&idMotivo=87",
        unverified="the ports (the page names the hosts only)",
    ),
    # Namirial's Thunderbird guide: outgoing smtps.sicurezzapostale.it port 465 SSL/TLS, incoming
    # pops.sicurezzapostale.it port 995, "even if the address is ...@yourpec.it"; http://doczz.it/doc/2396871/mozilla-thunderbird
    "namirial": Preset(
        label="Namirial (sicurezzapostale.it)",
        imap_host="imaps.sicurezzapostale.it", imap_port=IMAPS_PORT,
        smtp_host="smtps.sicurezzapostale.it", smtp_port=SMTPS_PORT, security="tls",
        source="http://doczz.it/doc/2396871/mozilla-thunderbird",
        unverified="the IMAP host and port (the guide configures POP3 on pops.sicurezzapostale.it:995)",
    ),
    # Poste Italiane's user manual of the PEC webmail and mail clients (MUWebMailPEC_Client_01) describes the
    # client set-up, but the stored copy does not show the server names; http://doczz.it/doc/158447/
    "poste": Preset(
        label="Poste Italiane (Postecert)",
        imap_host="mail.postecert.it", imap_port=IMAPS_PORT,
        smtp_host="mail.postecert.it", smtp_port=SMTPS_PORT, security="tls",
        source="http://doczz.it/doc/158447/1.-manuale-d-uso-per-l-utilizzo-della-webmail-pec-e-del",
        unverified="hosts and ports (not shown by the source: check the activation message of the mailbox)",
    ),
    # Register.it's PEC operating manual (REGIT-PEC-MO 2.2, §6.4.2 "Accesso via client di posta elettronica")
    # covers client access; the stored index shows the chapter, not its server names;
    # https://lawinsider.com/it/contracts/g82ZqbBCUwm
    "register": Preset(
        label="Register.it PEC",
        imap_host="imaps.pec.register.it", imap_port=IMAPS_PORT,
        smtp_host="smtps.pec.register.it", smtp_port=SMTPS_PORT, security="tls",
        source="https://lawinsider.com/it/contracts/g82ZqbBCUwm",
        unverified="hosts and ports (not shown by the source: check the activation message of the mailbox)",
    ),
}


def default_port(protocol: Literal["imap", "smtp"], security: Security) -> int:
    """The standard port of a protocol for a kind of TLS (RFC 8314: implicit TLS is preferred)."""
    if protocol == "imap":
        return IMAPS_PORT if security == "tls" else IMAP_STARTTLS_PORT
    return SMTPS_PORT if security == "tls" else SUBMISSION_PORT
