"""Turn PEC receipts into plain answers: which recipient got what, and what that means legally.

PEC Massiva exposes only the subject and body of each receipt, so receipts are classified by the exact subject
prefixes of the PEC rules (DM 2/11/2005, technical annex), longest first, after stripping the sending code the
provider appends to the subject. Only an avvenuta-consegna receipt (``CONSEGNA:``) proves legal delivery.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class ReceiptKind(StrEnum):
    ACCEPTED = "accepted"  # ricevuta di accettazione: the sender's provider took the message
    NOT_ACCEPTED = "not_accepted"  # avviso di non accettazione (formal reasons)
    NOT_ACCEPTED_VIRUS = "not_accepted_virus"
    ENVELOPE = "envelope"  # busta di trasporto: the message itself as the recipient sees it
    TAKEN_IN_CHARGE = "taken_in_charge"  # presa in carico, between providers
    ANOMALY = "anomaly"  # busta di anomalia: a non-PEC message wrapped by the recipient's provider
    DELIVERED = "delivered"  # ricevuta di avvenuta consegna: legal delivery
    NOT_DELIVERED = "not_delivered"  # avviso di mancata consegna
    NOT_DELIVERED_VIRUS = "not_delivered_virus"
    NOT_DELIVERED_TIMEOUT = "not_delivered_timeout"  # no delivery within the maximum time (12 h notice / 24 h)
    SECURITY_PROBLEM = "security_problem"  # rilevazione virus, between providers
    OTHER = "other"  # not a PEC receipt


# The subject prefixes of the PEC rules, longest first so that "... PER VIRUS:" wins over its shorter stem.
STANDARD_PREFIXES: tuple[tuple[str, ReceiptKind], ...] = tuple(
    sorted(
        (
            ("ACCETTAZIONE:", ReceiptKind.ACCEPTED),
            ("AVVISO DI NON ACCETTAZIONE:", ReceiptKind.NOT_ACCEPTED),
            ("AVVISO DI NON ACCETTAZIONE PER VIRUS:", ReceiptKind.NOT_ACCEPTED_VIRUS),
            ("POSTA CERTIFICATA:", ReceiptKind.ENVELOPE),
            ("PRESA IN CARICO:", ReceiptKind.TAKEN_IN_CHARGE),
            ("ANOMALIA MESSAGGIO:", ReceiptKind.ANOMALY),
            ("CONSEGNA:", ReceiptKind.DELIVERED),
            ("AVVISO DI MANCATA CONSEGNA:", ReceiptKind.NOT_DELIVERED),
            ("AVVISO DI MANCATA CONSEGNA PER VIRUS:", ReceiptKind.NOT_DELIVERED_VIRUS),
            ("AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO:", ReceiptKind.NOT_DELIVERED_TIMEOUT),
            ("PROBLEMA DI SICUREZZA:", ReceiptKind.SECURITY_PROBLEM),
        ),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
)

# Prefixes seen in third-party heuristics but not in the rules: accepted only when no standard prefix matches.
TOLERATED_PREFIXES: tuple[tuple[str, ReceiptKind], ...] = (
    ("PREAVVISO DI MANCATA CONSEGNA", ReceiptKind.NOT_DELIVERED_TIMEOUT),
    ("AVVENUTA CONSEGNA:", ReceiptKind.DELIVERED),
    ("MANCATA CONSEGNA:", ReceiptKind.NOT_DELIVERED),
    ("NON ACCETTAZIONE:", ReceiptKind.NOT_ACCEPTED),
    ("ERRORE CONSEGNA:", ReceiptKind.NOT_DELIVERED),
)

MEANING: dict[ReceiptKind, str] = {
    ReceiptKind.ACCEPTED: "accepted by the sender's PEC provider: legal proof that the message was sent",
    ReceiptKind.NOT_ACCEPTED: "refused by the sender's PEC provider: the message was not sent",
    ReceiptKind.NOT_ACCEPTED_VIRUS: "refused by the sender's PEC provider because of a virus: not sent",
    ReceiptKind.ENVELOPE: "the certified envelope of the message (what a recipient sees)",
    ReceiptKind.TAKEN_IN_CHARGE: "taken in charge by the recipient's provider; not yet delivered",
    ReceiptKind.ANOMALY: "a message that did not come through the PEC system (no legal value)",
    ReceiptKind.DELIVERED: "delivered to the recipient's PEC mailbox: legal proof of delivery",
    ReceiptKind.NOT_DELIVERED: "not delivered: the notification did not happen and must be redone",
    ReceiptKind.NOT_DELIVERED_VIRUS: "not delivered because of a virus: must be redone",
    ReceiptKind.NOT_DELIVERED_TIMEOUT: "not delivered within the maximum time: treat as not delivered",
    ReceiptKind.SECURITY_PROBLEM: "a virus was detected between providers",
    ReceiptKind.OTHER: "not a PEC receipt",
}

FAILED_KINDS = frozenset(
    {ReceiptKind.NOT_DELIVERED, ReceiptKind.NOT_DELIVERED_VIRUS, ReceiptKind.NOT_DELIVERED_TIMEOUT}
)
REFUSED_KINDS = frozenset({ReceiptKind.NOT_ACCEPTED, ReceiptKind.NOT_ACCEPTED_VIRUS})

_TRAILING_CODE = re.compile(r"\s+\d{10,20}\s*$")
_ADDRESS = r"[^\s\"'<>(),;:]+@[^\s\"'<>(),;:]+"
_RECIPIENT_AFTER = re.compile(r"indirizzat[oa] a:?\s*\n?\s*\"?(" + _ADDRESS + r")", re.IGNORECASE)
_ADDRESS_LINE = re.compile(r"^\s*\"?(" + _ADDRESS + r")\"?\s*(?:\(|$)", re.MULTILINE)
_REASON = re.compile(r"a causa di:?\s*(.+)", re.IGNORECASE)
_REASON_CODE = re.compile(r"^\s*\d\.\d\.\d+\s*-\s*[^-]+-\s*")


@dataclass(frozen=True)
class ClassifiedReceipt:
    kind: ReceiptKind
    subject: str  # the original subject, prefix and sending code removed
    recipient: str | None  # the recipient the receipt speaks of, when it names one
    reason: str | None  # the provider's reason for a failure ("casella piena"), when given
    date: str


def classify_subject(subject: str) -> tuple[ReceiptKind, str]:
    """The receipt kind of a subject and the original subject behind it (sending code stripped)."""
    text = subject.strip()
    upper = text.upper()
    for table in (STANDARD_PREFIXES, TOLERATED_PREFIXES):
        for prefix, kind in table:
            if upper.startswith(prefix):
                rest = text[len(prefix) :].lstrip(": ").strip()
                return kind, _TRAILING_CODE.sub("", rest)
    return ReceiptKind.OTHER, text


def classify(subject: str, body: str = "", date: str = "") -> ClassifiedReceipt:
    """Classify one receipt; the recipient and the failure reason are read from the standard body text."""
    kind, original = classify_subject(subject)
    return ClassifiedReceipt(kind, original, _recipient_in(kind, body), _reason_in(kind, body), date)


def _recipient_in(kind: ReceiptKind, body: str) -> str | None:
    if kind not in FAILED_KINDS | {ReceiptKind.DELIVERED, ReceiptKind.TAKEN_IN_CHARGE}:
        return None  # acceptance receipts list every recipient; they speak of the whole message
    match = _RECIPIENT_AFTER.search(body)
    return match.group(1).lower() if match else None


def _reason_in(kind: ReceiptKind, body: str) -> str | None:
    if kind not in FAILED_KINDS | REFUSED_KINDS:
        return None
    match = _REASON.search(body)
    if not match:
        return None
    reason = match.group(1).strip()
    return _REASON_CODE.sub("", reason) or reason


def recipients_in_acceptance(bodies: Iterable[str]) -> list[str]:
    """The recipients listed in an acceptance receipt's body, for sendings the ledger does not know."""
    for body in bodies:
        if "accettazione" not in body.lower()[:80]:
            continue
        tail = re.split(r"indirizzat[oa] a:?", body, maxsplit=1, flags=re.IGNORECASE)
        if len(tail) == 2:
            found = [m.group(1).lower() for m in _ADDRESS_LINE.finditer(tail[1])]
            if found:
                return list(dict.fromkeys(found))
    return []


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # no receipt yet
    ACCEPTED = "accepted"  # sent (accettazione), no delivery receipt yet
    DELIVERED = "delivered"  # every recipient has a CONSEGNA receipt
    PARTIALLY_DELIVERED = "partially_delivered"  # some delivered, some failed or still pending
    NOT_DELIVERED = "not_delivered"  # no recipient delivered, at least one failure
    NOT_ACCEPTED = "not_accepted"  # refused at acceptance: nothing was sent


# The one order of delivery statuses: a sending's status only moves forward along it. A later read that sees
# fewer receipts (deleted at the provider, an offline simulator restarted empty, an outage) never moves it back.
# The final statuses share the last rank: receipts still arriving may turn one into another.
STATUS_ORDER: dict[DeliveryStatus, int] = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.ACCEPTED: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.PARTIALLY_DELIVERED: 2,
    DeliveryStatus.NOT_DELIVERED: 2,
    DeliveryStatus.NOT_ACCEPTED: 2,
}

# Outcomes no receipt can change: every recipient has a CONSEGNA (final, it outranks any later notice), or the
# message was refused at acceptance (it was never sent). Other final statuses may still turn into one another.
SETTLED: frozenset[DeliveryStatus] = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.NOT_ACCEPTED})


def advance(recorded: DeliveryStatus | None, seen: DeliveryStatus) -> DeliveryStatus:
    """The status after a read: ``seen`` unless it would move back from ``recorded`` along STATUS_ORDER."""
    if recorded is not None and STATUS_ORDER[seen] < STATUS_ORDER[recorded]:
        return recorded
    return seen


class RecipientState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    NOT_DELIVERED = "not_delivered"
    NOT_ACCEPTED = "not_accepted"


@dataclass(frozen=True)
class RecipientOutcome:
    address: str
    state: RecipientState
    reason: str | None
    date: str | None


@dataclass(frozen=True)
class SendingStatus:
    status: DeliveryStatus
    recipients: list[RecipientOutcome]
    accepted: bool
    summary: str


def sending_status(recipients: Sequence[str], receipts: Iterable[ClassifiedReceipt]) -> SendingStatus:
    """Per-recipient outcomes and the overall status of one sending, from all its receipts so far."""
    receipts = list(receipts)
    accepted = any(r.kind == ReceiptKind.ACCEPTED for r in receipts)
    refused = next((r for r in receipts if r.kind in REFUSED_KINDS), None)
    outcomes = {a.lower(): RecipientOutcome(a, RecipientState.PENDING, None, None) for a in recipients}
    if refused is not None:
        outcomes = {k: RecipientOutcome(o.address, RecipientState.NOT_ACCEPTED, refused.reason or MEANING[refused.kind],
                                        refused.date) for k, o in outcomes.items()}
    for receipt in receipts:
        target = _target(receipt, outcomes)
        if target is None:
            continue
        current = outcomes[target]
        if receipt.kind == ReceiptKind.DELIVERED:
            # A delivery receipt is final and outranks an earlier timeout notice.
            outcomes[target] = RecipientOutcome(current.address, RecipientState.DELIVERED, None, receipt.date)
        elif receipt.kind in FAILED_KINDS and current.state != RecipientState.DELIVERED:
            reason = receipt.reason or MEANING[receipt.kind]
            outcomes[target] = RecipientOutcome(current.address, RecipientState.NOT_DELIVERED, reason, receipt.date)
    states = list(outcomes.values())
    status = _overall(accepted, refused is not None, states)
    return SendingStatus(status, states, accepted, summarize(status, states))


def _target(receipt: ClassifiedReceipt, outcomes: dict[str, RecipientOutcome]) -> str | None:
    if receipt.kind not in FAILED_KINDS | {ReceiptKind.DELIVERED}:
        return None
    if receipt.recipient and receipt.recipient in outcomes:
        return receipt.recipient
    if len(outcomes) == 1:
        return next(iter(outcomes))  # a single-recipient sending: the receipt can only be about that one
    return None


def _overall(accepted: bool, refused: bool, states: list[RecipientOutcome]) -> DeliveryStatus:
    if refused:
        return DeliveryStatus.NOT_ACCEPTED
    delivered = sum(s.state == RecipientState.DELIVERED for s in states)
    failed = sum(s.state == RecipientState.NOT_DELIVERED for s in states)
    if states and delivered == len(states):
        return DeliveryStatus.DELIVERED
    if delivered:
        return DeliveryStatus.PARTIALLY_DELIVERED
    if failed and failed == len(states):
        return DeliveryStatus.NOT_DELIVERED
    if failed:
        return DeliveryStatus.PARTIALLY_DELIVERED  # some failed, the rest still pending
    return DeliveryStatus.ACCEPTED if accepted else DeliveryStatus.PENDING


def summarize(status: DeliveryStatus, states: Sequence[RecipientOutcome]) -> str:
    """One plain sentence: "delivered to 48 of 50; 2 not delivered (casella piena ×2)"."""
    total = len(states)
    if status == DeliveryStatus.NOT_ACCEPTED:
        reason = states[0].reason if states else None
        return f"not accepted by the provider, nothing was sent ({reason})" if reason else "not accepted"
    if status == DeliveryStatus.PENDING:
        return "no receipt yet: the provider has not confirmed acceptance"
    delivered = sum(s.state == RecipientState.DELIVERED for s in states)
    failed = [s for s in states if s.state == RecipientState.NOT_DELIVERED]
    pending = total - delivered - len(failed)
    parts = [f"delivered to {delivered} of {total}"]
    if failed:
        reasons: dict[str, int] = {}
        for s in failed:
            reasons[s.reason or "no reason given"] = reasons.get(s.reason or "no reason given", 0) + 1
        detail = ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in reasons.items())
        parts.append(f"{len(failed)} not delivered ({detail})")
    if pending:
        parts.append(f"{pending} awaiting a delivery receipt")
    return "; ".join(parts)
