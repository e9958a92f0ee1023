"""The send path: check a send, ask for confirmation when it costs money, record it before it goes, never twice.

Nothing here knows MCP: the server asks the user; this module decides whether to ask, what to show, and how a
send moves through the ledger (see ``pec_mcp.store``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pec_mcp.config import Settings, environment_label
from pec_mcp.errors import InputError, LimitExceeded, NotFound, OutcomeUnknown, PecError
from pec_mcp.paths import MB, allowed_files
from pec_mcp.receipts import ClassifiedReceipt, SendingStatus, classify, recipients_in_acceptance, sending_status
from pec_mcp.store import Sending, Store

if TYPE_CHECKING:
    # The provider client is imported when a send is planned, not when the server starts.
    from pec_mcp.providers.pecmassiva import Attachment, PecMassivaClient

_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)
MAX_SUBJECT = 250

Action = Literal["send_pec", "start_bulk_pec", "register_mailbox", "renew_mailbox", "revoke_mailbox",
                 "send_certified_email", "upgrade_mailbox_space", "upgrade_mailbox_type",
                 "enable_mailbox_conservation", "file_pec_with_business_register"]
BULK_ACTIONS: frozenset[str] = frozenset({"start_bulk_pec"})


def normalise_address(raw: str) -> str:
    """A trimmed address with its domain lower-cased; InputError if it is not an email address."""
    address = raw.strip().strip("<>").strip()
    if not _ADDRESS.match(address) or len(address) > 254:
        raise InputError(f"{raw!r} is not a valid email address", hint="Write it as name@domain.it.")
    local, domain = address.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def check_call_size(count: int, settings: Settings, *, what: str, split_into: str) -> None:
    """Hold any one call (a send, a job) to ``sending.max_recipients_per_call`` recipients."""
    limit = settings.sending.max_recipients_per_call
    if count > limit:
        raise LimitExceeded(
            f"{count} recipients is more than the {limit} allowed in one {what} (sending.max_recipients_per_call)",
            hint=f"Split the list into several {split_into}.",
        )


def check_recipients(raws: Sequence[str], settings: Settings) -> list[str]:
    """Recipients validated, without duplicates (case-insensitive), within the allowed domains and the call limit."""
    if not raws:
        raise InputError("No recipient was given", hint="Give at least one PEC address.")
    check_call_size(len(raws), settings, what="call", split_into="jobs")
    seen: dict[str, str] = {}
    bad: list[str] = []
    for raw in raws:
        try:
            address = normalise_address(raw)
        except InputError:
            bad.append(repr(raw))
            continue
        seen.setdefault(address.lower(), address)
    if bad:
        raise InputError(f"Not valid email addresses: {', '.join(bad[:10])}", hint="Correct or remove them.")
    addresses = list(seen.values())
    check_domains(addresses, settings.sending.allowed_recipient_domains)
    return addresses


def check_domains(addresses: Sequence[str], allowed: Sequence[str]) -> None:
    if not allowed:
        return
    blocked = [a for a in addresses if not _domain_allowed(a.rsplit("@", 1)[1].lower(), allowed)]
    if blocked:
        raise LimitExceeded(
            f"Recipients outside the allowed domains ({', '.join(allowed)}): {', '.join(blocked[:10])}",
            hint="Only the domains in sending.allowed_recipient_domains may receive mail from this server; "
            "ask the user to change the configuration if these recipients are intended.",
        )


def _domain_allowed(domain: str, allowed: Sequence[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in allowed)


def check_subject(subject: str) -> str:
    subject = subject.strip()
    if not subject:
        raise InputError("The subject is empty", hint="A PEC needs a subject.")
    if len(subject) > MAX_SUBJECT or "\n" in subject or "\r" in subject:
        raise InputError(f"The subject must be one line of at most {MAX_SUBJECT} characters")
    return subject


@dataclass(frozen=True)
class PecMessage:
    """One PEC ready to go: checked recipients, subject, body and attachments, with its size and cost."""

    recipients: list[str]
    subject: str
    body: str
    attachments: list[Attachment]
    message_bytes: int  # body, subject and files, as the 30 MB rule counts them (before encoding)
    cost_eur: float
    environment: str

    @property
    def request_bytes(self) -> int:
        return self.message_bytes * len(self.recipients)


def load_attachments(paths: Sequence[str], settings: Settings) -> list[Attachment]:
    from pec_mcp.providers.pecmassiva import Attachment

    files = allowed_files(paths, settings.attachments.resolved_dirs(), max_total_mb=settings.attachments.max_total_mb)
    return [Attachment(path=p, name=p.name, size=size) for p, size in files]


def message_size(subject: str, body: str, attachments: Sequence[Attachment]) -> int:
    return len(subject.encode()) + len(body.encode()) + sum(a.size for a in attachments)


def plan_pec(
    *, recipients: Sequence[str], subject: str, body: str, attachments: Sequence[str], settings: Settings
) -> PecMessage:
    """Check everything about a single-request PEC before anything is read, encoded or sent."""
    addresses = check_recipients(recipients, settings)
    subject = check_subject(subject)
    if not body.strip():
        raise InputError("The body is empty", hint="Write the text of the PEC (plain text or HTML).")
    files = load_attachments(attachments, settings)
    size = message_size(subject, body, files)
    message = PecMessage(
        recipients=addresses,
        subject=subject,
        body=body,
        attachments=files,
        message_bytes=size,
        cost_eur=round(len(addresses) * settings.sending.price_per_message_eur, 2),
        environment=settings.env,
    )
    check_single_request(message, settings)
    return message


def check_single_request(message: PecMessage, settings: Settings) -> None:
    """send_pec is one request: refuse what the provider would have to split, and point to bulk sending."""
    limit = settings.sending.max_recipients_per_request
    if len(message.recipients) > limit:
        raise LimitExceeded(
            f"{len(message.recipients)} recipients is more than one request may carry ({limit}, "
            "sending.max_recipients_per_request)",
            hint="Use start_bulk_pec, which splits the sending into paced requests and shows the split first. "
                 f"Or send to at most {limit} recipients per send_pec call.",
        )
    max_bytes = settings.sending.max_request_mb * MB
    if message.request_bytes > max_bytes:
        raise LimitExceeded(
            f"{len(message.recipients)} recipients × {message.message_bytes / MB:.2f} MB is "
            f"{message.request_bytes / MB:.1f} MB, over the {settings.sending.max_request_mb:g} MB one request may "
            "carry (sending.max_request_mb; the PEC rules guarantee 30 MB)",
            hint="Use start_bulk_pec, which splits the recipients into requests within the limit. Or send to "
                 "fewer recipients per send_pec call, or with smaller attachments.",
        )


# -- confirmation ----------------------------------------------------------------------------------------------


def needs_confirmation(settings: Settings, action: Action, recipients: int = 1) -> bool:
    """Whether the user must say yes, per ``sending.confirm``.

    ``always``: every paid or legal action. ``bulk``: bulk jobs, sends to more than one recipient, and revoking a
    mailbox (which cannot be undone). ``never``: none (the user trusts the assistant; the audit trail remains).
    """
    mode = settings.sending.confirm
    if mode == "always":
        return True
    if mode == "never":
        return False
    return action in BULK_ACTIONS or action == "revoke_mailbox" or recipients > 1


def describe_recipients(addresses: Sequence[str], shown: int = 3) -> str:
    head = ", ".join(addresses[:shown])
    more = len(addresses) - shown
    return f"{len(addresses)} recipient{'s' if len(addresses) != 1 else ''}: {head}" + (
        f" and {more} more" if more > 0 else ""
    )


def describe_files(names_and_sizes: Sequence[tuple[str, int]]) -> str:
    if not names_and_sizes:
        return "no attachments"
    return ", ".join(f"{name} ({_size_text(size)})" for name, size in names_and_sizes)


def _size_text(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB else f"{max(1, round(size / 1024))} KB"


def pec_question(message: PecMessage) -> str:
    """The confirmation question for a PEC, built from what the server checked, never from the model's words."""
    return (
        f"Send a PEC (certified email with legal value) to {describe_recipients(message.recipients)}. "
        f"Subject: \"{message.subject}\". Attachments: "
        f"{describe_files([(a.name, a.size) for a in message.attachments])}. "
        f"Estimated cost: €{message.cost_eur:.2f}. Environment: {environment_label(message.environment)}."
    )


# -- sending ---------------------------------------------------------------------------------------------------


@dataclass
class SendOutcome:
    status: Literal["sent", "duplicate", "unknown"]
    sending: Sending
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def duplicate_note(first: Sending) -> str:
    """What a repeated idempotency key means, given how the first send with that key ended."""
    how = {
        "sent": f"it was sent, message_id {first.message_id}",
        "unknown": "its outcome is unknown (the answer was lost); look for its ACCETTAZIONE receipt in the inbox "
        "before sending again with a new key",
        "sending": "it is on its way right now",
        "queued": "it is about to be sent",
    }.get(first.state, first.state)
    return (
        f"This idempotency key was used before ({how}): nothing was sent again. The recipients and subject shown "
        "are those of that first send."
    )


@dataclass(frozen=True)
class DeliveryReport:
    """What the receipts of one sending say, read once: status, the ledger row if any, the receipts themselves."""

    status: SendingStatus
    sending: Sending | None  # None for sendings made outside pec-mcp
    receipts: list[ClassifiedReceipt]


class PecSender:
    """Sends PEC through the ledger: written before the request, one row per send, never sent twice."""

    def __init__(self, *, client: PecMassivaClient, store: Store, settings: Settings, sender: str) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.sender = sender

    async def send(
        self,
        message: PecMessage,
        *,
        idempotency_key: str | None,
        actor: str,
        job_id: str | None = None,
        before_dispatch: Callable[[], Awaitable[None]] | None = None,
    ) -> SendOutcome:
        """One request through the ledger. ``before_dispatch`` runs after the pacing wait, before the request
        leaves: raising there (a bulk job cancelled meanwhile) sends nothing."""
        row, created = self.store.begin_send(
            provider="pecmassiva",
            environment=message.environment,
            idempotency_key=idempotency_key,
            sender=self.sender,
            recipients=message.recipients,
            subject=message.subject,
            attachments=[{"name": a.name, "size": a.size} for a in message.attachments],
            size_bytes=message.message_bytes,
            job_id=job_id,
        )
        if not created:
            return SendOutcome("duplicate", row, duplicate_note(row))
        summary = f"PEC to {describe_recipients(message.recipients)}: \"{message.subject}\""

        async def dispatching() -> None:
            if before_dispatch is not None:
                await before_dispatch()
            self.store.mark_dispatching(row.id)

        try:
            result = await self.client.send(
                sender=self.sender,
                recipients=message.recipients,
                subject=message.subject,
                body=message.body,
                attachments=message.attachments,
                on_dispatch=dispatching,
            )
        except OutcomeUnknown as exc:
            row = self.store.mark_unknown(row.id, exc.message)
            self._audit(actor, summary, "unknown: " + exc.message, None)
            return SendOutcome("unknown", row, exc.explain())
        except PecError as exc:
            self.store.mark_failed(row.id, exc.message)
            self._audit(actor, summary, "failed: " + exc.message, None)
            raise
        except BaseException:
            # Cancelled or crashed mid-call: if the request may have left, say so; otherwise nothing was sent.
            current = self.store.sending_by_id(row.id)
            if current is not None and current.state == "sending":
                self.store.mark_unknown(row.id, "interrupted while the request was on its way")
            else:
                self.store.mark_failed(row.id, "interrupted before the request was sent")
            raise
        row = self.store.mark_sent(row.id, result.message_id)
        self._audit(actor, summary, f"sent, message_id {result.message_id}", result.message_id)
        return SendOutcome("sent", row)

    def _audit(self, actor: str, summary: str, outcome: str, ref: str | None) -> None:
        self.store.record_audit(
            action="send_pec", actor=actor, environment=self.settings.env, summary=summary, outcome=outcome, ref=ref
        )

    async def status(self, message_id: str) -> DeliveryReport:
        """The delivery status of a sending from its receipts; the ledger row is updated when there is one.

        Raises NotFound when the provider has no receipt for it and the ledger does not know it either.
        """
        emails = await self.client.receipts(message_id=message_id)
        classified = [classify(e.subject, e.body, e.date) for e in emails]
        row = self.store.sending_by_message_id(message_id, provider="pecmassiva")
        if row is None and not emails:
            raise NotFound(
                f"No receipts found for sending {message_id}, and it is not in the local ledger",
                provider="PEC Massiva",
                hint="Check the message_id (find_pec_sendings lists sendings made through pec-mcp).",
            )
        if row is not None:
            recipients = row.recipients
        else:
            recipients = recipients_in_acceptance([e.body for e in emails]) or sorted(
                {c.recipient for c in classified if c.recipient}
            )
        status = sending_status(recipients, classified)
        if row is not None and emails:
            self.store.update_delivery(row.id, status.status.value, status.summary)
        return DeliveryReport(status=status, sending=row, receipts=classified)

