"""What a PEC provider does with a submitted message: receipts, envelopes, delivery, all signed.

Each accepted submission brings, in the sender's INBOX, an ACCETTAZIONE at once, then for each recipient a CONSEGNA
(or a failure notice) when its time comes; a recipient with a mailbox here also gets the POSTA CERTIFICATA envelope.
Recipient local parts steer the outcome, as in the HTTP simulator (case-insensitive prefixes):

==============  ==========================================================================================
``fail-``       AVVISO DI MANCATA CONSEGNA (errore-consegna) after ``delivery_delay``: 5.1.1 utente inesistente
                (5.2.2 casella piena when the local part also contains ``full``)
``virus-``      the whole message is refused at once: AVVISO DI NON ACCETTAZIONE PER VIRUS, nothing delivered
``timeout-``    AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO (preavviso-errore-consegna) after 12 hours
``slow-``       CONSEGNA after 10 × ``delivery_delay``
``forged-``     CONSEGNA after ``delivery_delay``, signed by a look-alike key that no trust list holds
anything else   CONSEGNA after ``delivery_delay``
==============  ==========================================================================================

A local recipient whose mailbox is over quota gets no envelope, and the sender an AVVISO DI MANCATA CONSEGNA
(5.2.2 casella piena). Like providers that throttle SMTP, an account may be held to a rate
(:meth:`PecProvider.limit_submissions`): a submission whose MAIL FROM comes sooner after the previous accepted one
than the rate allows is refused with ``451 4.7.1`` (nothing is sent) and counted in ``stats.rate_limited``.

Time comes from the simulator's :class:`Clock`; due messages are delivered by :meth:`PecProvider.deliver_due`,
which the servers call before each command and on a short tick.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid
from zoneinfo import ZoneInfo

from pec_mcp.pecmail.daticert import Daticert, DaticertRecipient
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.pecmail.authority import PROVIDER_NAME, Identity, SimulatorAuthority
from pec_mcp.simulator.pecmail.mailstore import Mailbox
from pec_mcp.simulator.pecmail.signing import detached_signature, render_daticert, signed_message, signed_part
from pec_mcp.simulator.ratelimit import RateGate
from pec_mcp.simulator.stats import Stats

ROME = ZoneInfo("Europe/Rome")
TIMEOUT_SECONDS = 12 * 3600
SLOW_FACTOR = 10
SUBMISSION = "pecmail_submission"  # the Stats endpoint name of an accepted SMTP submission


@dataclass
class PecMailFaults:
    """Faults the next connections meet, each a count that goes down as it is used; tests set them directly.

    ``drop_after_data``: the message is accepted (receipts follow) and the connection closes before the 250 reply,
    the ambiguous outcome a client must record as unknown. ``refuse_data``: DATA is refused with 451, nothing is
    sent. ``drop_during_fetch``: a FETCH of a message body stops halfway and the connection closes.
    """

    drop_after_data: int = 0
    refuse_data: int = 0
    drop_during_fetch: int = 0

    def take(self, name: str) -> bool:
        """Use one fault of kind ``name`` if any is left."""
        left: int = getattr(self, name)
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True


@dataclass(frozen=True)
class Submission:
    sender: str
    recipients: tuple[str, ...]  # envelope recipients (RCPT TO)
    raw: bytes
    subject: str
    message_id: str
    identifier: str  # the provider's id of the message (daticert identificativo)
    receipt_type: str  # completa | breve | sintetica
    at: float


@dataclass(order=True, frozen=True)
class _Due:
    at: float
    order: int
    recipient: str
    outcome: str  # delivered | forged | failed | full | timeout
    submission: Submission


class PecProvider:
    """The mailboxes and the receipt rules of one simulated PEC provider (domain ``domain``)."""

    def __init__(
        self, domain: str, authority: SimulatorAuthority, *, clock: Clock, stats: Stats, delivery_delay: float
    ) -> None:
        self.domain = domain
        self.gateway = f"posta-certificata@{domain}"
        self.authority = authority
        self.clock = clock
        self.stats = stats
        self.delivery_delay = delivery_delay
        self.mailboxes: dict[str, Mailbox] = {}
        self.faults = PecMailFaults()
        self._due: list[_Due] = []
        self._order = itertools.count(1)
        self._gates: dict[str, RateGate] = {}
        self.mail_times: dict[str, list[float]] = {}  # per account, when each admitted MAIL FROM came

    def add_mailbox(self, address: str, password: str, *, quota_bytes: int = 1 << 30) -> Mailbox:
        mailbox = Mailbox(address.lower(), password, uidvalidity=int(self.clock.now()), quota_bytes=quota_bytes)
        self.mailboxes[address.lower()] = mailbox
        return mailbox

    def mailbox(self, address: str) -> Mailbox | None:
        return self.mailboxes.get(address.lower())

    def limit_submissions(self, address: str, rate: float) -> None:
        """Hold an account to ``rate`` submissions per second (measured at MAIL FROM, on the provider's clock); the
        same limit set again keeps counting from the last submission."""
        current = self._gates.get(address.lower())
        if current is None or current.interval != 1.0 / rate:
            self._gates[address.lower()] = RateGate(rate, self.clock)

    def admit_submission(self, address: str) -> float | None:
        """None when the account may start a submission now (it is counted), else the seconds it is early by."""
        gate = self._gates.get(address.lower())
        early = gate.admit() if gate is not None else None
        if early is not None:
            self.stats.rate_limited += 1
            return early
        self.mail_times.setdefault(address.lower(), []).append(self.clock.now())
        return None

    def submit(self, sender: str, recipients: Sequence[str], raw: bytes) -> Submission:
        """Accept one message from an authenticated account; receipts follow as the module docstring says."""
        raw = _crlf(raw)
        headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        now = self.clock.now()
        number = next(self._order)
        submission = Submission(
            sender=sender.lower(),
            recipients=tuple(r.lower() for r in recipients),
            raw=raw,
            subject=str(headers.get("Subject") or ""),
            message_id=str(headers.get("Message-ID") or make_msgid(domain=self.domain)).strip(),
            identifier=f"opec{number:06d}.{datetime.fromtimestamp(now, ROME):%Y%m%d%H%M%S}@{self.domain}",
            receipt_type=str(headers.get("X-TipoRicevuta") or "completa").strip().lower(),
            at=now,
        )
        self.stats.count_accepted(SUBMISSION, list(submission.recipients))
        if any(_local(r).startswith("virus-") for r in submission.recipients):
            self._to_sender(submission, "non-accettazione", now, error="virus")
            return submission
        self._to_sender(submission, "accettazione", now)
        for recipient in submission.recipients:
            self._plan(submission, recipient)
        self.deliver_due()
        return submission

    def deliver_due(self) -> int:
        """Deliver everything whose time has come; how many deliveries were made."""
        now = self.clock.now()
        done = 0
        while self._due and self._due[0].at <= now:
            due = heapq.heappop(self._due)
            self._deliver(due)
            done += 1
        return done

    # --- planning and delivering ------------------------------------------------------------------------------

    def _plan(self, submission: Submission, recipient: str) -> None:
        local = _local(recipient)
        delay, outcome = self.delivery_delay, "delivered"
        if local.startswith("fail-"):
            outcome = "full" if "full" in local else "failed"
        elif local.startswith("timeout-"):
            delay, outcome = TIMEOUT_SECONDS, "timeout"
        elif local.startswith("slow-"):
            delay = self.delivery_delay * SLOW_FACTOR
        elif local.startswith("forged-"):
            outcome = "forged"
        heapq.heappush(self._due, _Due(submission.at + delay, next(self._order), recipient, outcome, submission))

    def _deliver(self, due: _Due) -> None:
        submission, recipient, at = due.submission, due.recipient, due.at
        if due.outcome in ("failed", "full", "timeout"):
            self._failure(submission, recipient, at, due.outcome)
            return
        mailbox = self.mailbox(recipient)
        if mailbox is not None:
            envelope = self._envelope(submission, at)
            if not mailbox.has_room_for(len(envelope)):
                self._failure(submission, recipient, at, "full")
                return
            mailbox.append(envelope, at)
        signer = self.authority.forger if due.outcome == "forged" else self.authority.provider
        self._to_sender(submission, "avvenuta-consegna", at, recipient=recipient, signer=signer)

    def _failure(self, submission: Submission, recipient: str, at: float, outcome: str) -> None:
        provider = "Simulatore PEC"
        if outcome == "timeout":
            detail = f"5.4.1 - {provider} - tempo massimo di consegna superato"
            self._to_sender(submission, "preavviso-errore-consegna", at, recipient=recipient, error="altro",
                            detail=detail)
            return
        error, detail = (("altro", f"5.2.2 - {provider} - casella piena") if outcome == "full"
                         else ("no-dest", f"5.1.1 - {provider} - utente inesistente"))
        self._to_sender(submission, "errore-consegna", at, recipient=recipient, error=error, detail=detail)

    # --- writing signed messages -----------------------------------------------------------------------------

    def _facts(self, submission: Submission, tipo: str, at: float, **extra: object) -> Daticert:
        headers = BytesParser(policy=policy.default).parsebytes(submission.raw, headersonly=True)
        listed = [a.lower() for _, a in getaddresses([str(v) for k in ("To", "Cc") for v in headers.get_all(k) or ()])]
        values: dict[str, object] = {
            "tipo": tipo,
            "error": "nessuno",
            "sender": submission.sender,
            "recipients": tuple(DaticertRecipient(a, True) for a in dict.fromkeys(listed or submission.recipients)),
            "reply_to": submission.sender,
            "subject": submission.subject,
            "provider": PROVIDER_NAME,
            "date": datetime.fromtimestamp(int(at), ROME),
            "identifier": submission.identifier,
            "msgid": submission.message_id,
            "receipt_type": None,
            "delivered_to": None,
            "received_by": (),
            "error_detail": None,
        }
        values.update(extra)
        return Daticert(**values)  # type: ignore[arg-type]

    def _to_sender(
        self,
        submission: Submission,
        tipo: str,
        at: float,
        *,
        recipient: str | None = None,
        error: str = "nessuno",
        detail: str | None = None,
        signer: Identity | None = None,
    ) -> None:
        mailbox = self.mailbox(submission.sender)
        if mailbox is None:
            return
        complete = tipo == "avvenuta-consegna" and submission.receipt_type == "completa"
        facts = self._facts(
            submission, tipo, at, error=error, delivered_to=recipient, error_detail=detail,
            receipt_type=submission.receipt_type if tipo == "avvenuta-consegna" else None,
        )
        prefix = _PREFIX[tipo] if error != "virus" else "AVVISO DI NON ACCETTAZIONE PER VIRUS"
        headers = [
            ("Date", format_datetime(datetime.fromtimestamp(int(at), ROME))),
            ("From", f"\"Posta Certificata\" <{self.gateway}>"),
            ("To", submission.sender),
            ("Subject", f"{prefix}: {submission.subject}"),
            ("Message-ID", f"<{tipo}-{next(self._order)}-{submission.identifier}>"),
            ("X-Ricevuta", tipo),
            ("X-Riferimento-Message-ID", submission.message_id),
        ]
        if tipo == "avvenuta-consegna":
            headers.append(("X-TipoRicevuta", submission.receipt_type))
        text = _receipt_text(tipo, facts, recipient, detail)
        raw = self._sign(headers, text, facts, submission.raw if complete else None, signer)
        mailbox.append(raw, at)

    def _envelope(self, submission: Submission, at: float) -> bytes:
        facts = self._facts(submission, "posta-certificata", at)
        headers = BytesParser(policy=policy.default).parsebytes(submission.raw, headersonly=True)
        wanted = [("Date", format_datetime(datetime.fromtimestamp(int(at), ROME))),
                  ("From", f"\"Per conto di: {submission.sender}\" <{self.gateway}>"),
                  ("Reply-To", submission.sender)]
        for name in ("To", "Cc"):
            if headers.get(name):
                wanted.append((name, str(headers.get(name))))
        wanted += [
            ("Subject", f"POSTA CERTIFICATA: {submission.subject}"),
            ("Message-ID", f"<{submission.identifier}>"),
            ("X-Trasporto", "posta-certificata"),
            ("X-Riferimento-Message-ID", submission.message_id),
        ]
        moment = facts.date
        text = (
            f"Messaggio di posta certificata\r\n\r\nIl giorno {moment:%d/%m/%Y} alle ore {moment:%H:%M:%S} "
            f"({moment:%z}) il messaggio \"{submission.subject}\" è stato inviato da \"{submission.sender}\" "
            f"indirizzato a:\r\n" + "\r\n".join(r.address for r in facts.recipients)
            + "\r\nIl messaggio originale è incluso in allegato.\r\n"
            f"Identificativo messaggio: {submission.identifier}\r\n"
        )
        return self._sign(wanted, text, facts, submission.raw, None)

    def _sign(
        self, headers: list[tuple[str, str]], text: str, facts: Daticert, original: bytes | None,
        signer: Identity | None,
    ) -> bytes:
        content = signed_part(text, render_daticert(facts), original)
        signature = detached_signature(content, signer or self.authority.provider)
        encoded = [(name, _header_value(value)) for name, value in headers]
        return signed_message(encoded, content, signature)


_PREFIX = {
    "accettazione": "ACCETTAZIONE",
    "non-accettazione": "AVVISO DI NON ACCETTAZIONE",
    "avvenuta-consegna": "CONSEGNA",
    "errore-consegna": "AVVISO DI MANCATA CONSEGNA",
    "preavviso-errore-consegna": "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO",
}


def _receipt_text(tipo: str, facts: Daticert, recipient: str | None, detail: str | None) -> str:
    moment = facts.date
    stamp = f"Il giorno {moment:%d/%m/%Y} alle ore {moment:%H:%M:%S} ({moment:%z})"
    origin = f"\"{facts.subject}\" proveniente da \"{facts.sender}\""
    lines = {
        "accettazione": ["Ricevuta di accettazione", f"{stamp} il messaggio", origin, "ed indirizzato a:",
                         *(f"{r.address} (\"posta certificata\")" for r in facts.recipients),
                         "è stato accettato dal sistema ed inoltrato."],
        "non-accettazione": ["Avviso di non accettazione per virus", f"{stamp} nel messaggio", origin,
                             "è stato rilevato un virus e il messaggio non è stato accettato."],
        "avvenuta-consegna": ["Ricevuta di avvenuta consegna", f"{stamp} il messaggio", origin,
                              f"ed indirizzato a \"{recipient}\"",
                              "è stato consegnato nella casella di destinazione."],
        "errore-consegna": ["Avviso di mancata consegna", f"{stamp} nel messaggio", origin, "ed indirizzato a:",
                            recipient or "", f"è stato rilevato un problema che ne impedisce la consegna a causa di: "
                            f"{detail}"],
        "preavviso-errore-consegna": ["Avviso di mancata consegna per superamento del tempo massimo",
                                      f"{stamp} nel messaggio", origin, "ed indirizzato a:", recipient or "",
                                      f"non è stata ricevuta la ricevuta di consegna a causa di: {detail}"],
    }[tipo]
    return "\n".join([*lines, f"Identificativo messaggio: {facts.identifier}", ""])


def _header_value(value: str) -> str:
    """Encode a header value as RFC 2047 when it is not plain ASCII (subjects with accents)."""
    if value.isascii():
        return value
    from email.header import Header

    return Header(value, "utf-8").encode()


def _local(address: str) -> str:
    return address.partition("@")[0].lower()


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
