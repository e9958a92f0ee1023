"""The send path: check a send, ask for confirmation when it costs money, record it before it goes, never twice.

Nothing here knows MCP: the server asks the user; this module decides whether to ask, what to show, and how a
send moves through the ledger (see ``pec_mcp.store``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pec_mcp.config import Settings, environment_label
from pec_mcp.errors import (
    ConfigError,
    InputError,
    LimitExceeded,
    NotFound,
    OutcomeUnknown,
    PecError,
    ProviderError,
)
from pec_mcp.idempotency import check_same, content_hash, describe, file_sha256
from pec_mcp.inbox_index import classify_header
from pec_mcp.paths import MB, allowed_files
from pec_mcp.receipts import (
    SETTLED,
    ClassifiedReceipt,
    DeliveryStatus,
    ReceiptKind,
    RecipientOutcome,
    RecipientState,
    SendingStatus,
    advance,
    classify,
    classify_subject,
    recipients_in_acceptance,
    sending_status,
)
from pec_mcp.store import Receipt, Sending, Store

if TYPE_CHECKING:
    # The provider client is imported when a send is planned, not when the server starts.
    from pec_mcp.providers.pecmassiva import Attachment, PecMassivaClient

_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$"
)
MAX_SUBJECT = 250
ACCOUNT = "pecmassiva"  # the account of [pecmassiva] in the ledger (IMAP accounts go by their config name)

Action = Literal["send_pec", "start_bulk_pec", "retry_bulk_pec", "register_mailbox", "renew_mailbox", "revoke_mailbox",
                 "send_certified_email", "upgrade_mailbox_space", "upgrade_mailbox_type",
                 "enable_mailbox_conservation", "file_pec_with_business_register", "delete_pec_receipts",
                 "delete_pec_message", "add_mailbox_user"]
BULK_ACTIONS: frozenset[str] = frozenset({"start_bulk_pec", "retry_bulk_pec"})
# Actions that cannot be undone: asked about in "bulk" mode too.
IRREVERSIBLE_ACTIONS: frozenset[str] = frozenset({"revoke_mailbox", "delete_pec_receipts", "delete_pec_message"})


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


def pecmassiva_sender(settings: Settings) -> str | None:
    """The address PEC Massiva sends from: the mailbox of the account, which is its username.

    Offline it is always the simulator's mailbox, whatever real settings are present. Elsewhere a configured
    ``pecmassiva.sender`` that is not the account's mailbox is a ConfigError, raised before anything is asked or
    sent (PEC Massiva refuses such a send). None when the account is not configured yet (that error comes later,
    naming what is missing).
    """
    if settings.env == "offline":
        from pec_mcp.simulator import credentials as sim

        return sim.PECMASSIVA_USERNAME
    mismatch = _sender_mismatch(settings)
    if mismatch:
        raise ConfigError(f"{mismatch}, so this send would be refused; nothing was sent",
                          hint=f"{_sender_fix(settings)}, then restart the server.")
    return (settings.pecmassiva.sender or settings.pecmassiva.username or "").strip() or None


def sender_problems(settings: Settings) -> list[str]:
    """What the configured senders would make a provider refuse (for ``check-config``); empty when all is well.

    Worded for a person at a shell checking the settings: nothing is being sent, and no server needs restarting.
    """
    mismatch = _sender_mismatch(settings) if settings.env != "offline" else None
    if mismatch is None:
        return []
    return [f"{mismatch}, so every send_pec would be refused. {_sender_fix(settings)}."]


def _sender_mismatch(settings: Settings) -> str | None:
    mailbox, sender = settings.pecmassiva.username, settings.pecmassiva.sender
    if not (sender and mailbox) or sender.strip().lower() == mailbox.strip().lower():
        return None
    return (f"pecmassiva.sender ({sender}) is not the mailbox of the PEC Massiva account ({mailbox}): PEC Massiva "
            "sends only from the account's own mailbox")


def _sender_fix(settings: Settings) -> str:
    mailbox = settings.pecmassiva.username
    return f"Remove pecmassiva.sender (the mailbox {mailbox} is then used) or set it to {mailbox}"


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


def pec_content(message: PecMessage) -> dict[str, Any]:
    """The content an idempotency key stands for (files hashed: read once more, never held in memory)."""
    files = [(a.name, a.size, file_sha256(a.path)) for a in message.attachments]
    return describe(recipients=message.recipients, subject=message.subject, body=message.body, files=files)


def check_key(store: Store, *, environment: str, account: str, idempotency_key: str | None,
              content: dict[str, Any], addresses: Sequence[str]) -> Sending | None:
    """The sending this key made in this environment and account, if any; KeyReused if it was for other content."""
    if not idempotency_key:
        return None
    first = store.sending_by_key(environment, account, idempotency_key)
    if first is not None:
        check_same(key=idempotency_key, first_hash=first.content_hash, first_content=first.content,
                   first_recipients=first.recipients, first_subject=first.subject, first_state=first.state,
                   content=content, addresses=addresses)
    return first


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
    pecmassiva_sender(settings)
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

    ``always``: every paid or legal action. ``bulk``: bulk jobs, sends to more than one recipient, and what cannot
    be undone (revoking a mailbox, deleting receipts or inbox messages). ``never``: none (the user trusts the
    assistant; the audit trail remains).
    """
    mode = settings.sending.confirm
    if mode == "always":
        return True
    if mode == "never":
        return False
    return action in BULK_ACTIONS or action in IRREVERSIBLE_ACTIONS or recipients > 1


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


SETTLED_STATUSES = tuple(sorted(s.value for s in SETTLED))


async def ledger_entry(store: Store, message_id: str, environment: str
                       ) -> tuple[Sending | None, list[Receipt] | None]:
    """The ledger's row of a sending (of any provider) and, when it is a settled PEC Massiva sending, its kept
    receipts too (for :meth:`PecSender.status`): one round trip where a settled sending would take two."""
    return await store.fetch(store.sending_with_receipts(message_id, environment=environment, provider=ACCOUNT,
                                                         statuses=SETTLED_STATUSES))


@dataclass(frozen=True)
class KnownReceipt:
    """A receipt of a sending as the ledger knows it, and whether the provider still returned it in this read
    (None: not known, the provider could not be read or was not asked)."""

    receipt: ClassifiedReceipt
    at_provider: bool | None
    deleted_at: float | None  # when pec-mcp deleted the provider's copy, if it did


@dataclass(frozen=True)
class DeliveryReport:
    """What the receipts of one sending say, read once: status, the ledger row if any, the receipts themselves
    (what the provider returns now merged with what the ledger kept)."""

    status: SendingStatus
    sending: Sending | None  # None for sendings made outside pec-mcp
    receipts: list[KnownReceipt]
    unreachable: str | None = None  # what the provider said when it could not be read now: the ledger answered
    recorded_only: bool = False  # the status is the one the ledger recorded, no receipt it keeps backs it
    settled: bool = False  # answered from the ledger alone: the outcome is final, the provider was not asked

    @property
    def ledger_only(self) -> list[KnownReceipt]:
        """Receipts the provider no longer returned (deleted, or an offline simulator that restarted empty)."""
        return [r for r in self.receipts if r.at_provider is False]


Audit = Callable[[str, str | None], None]


async def submit_once(
    store: Store,
    row: Sending,
    submit: Callable[[Callable[[], Awaitable[None]]], Awaitable[str]],
    *,
    before_dispatch: Callable[[], Awaitable[None]] | None,
    audit: Audit,
) -> SendOutcome:
    """Send a queued ledger row once, whatever carries it (PEC Massiva's API, a mailbox's SMTP server).

    ``submit`` sends and returns the message_id; it calls its argument right before the request leaves, which
    marks the row ``sending`` (after ``before_dispatch``, where a cancelled bulk job raises and sends nothing). A lost
    answer is ``unknown``, never retried; a failure is ``failed`` and raised; an interruption is ``unknown`` when the
    request may have left, else ``failed``.
    """

    async def dispatching() -> None:
        if before_dispatch is not None:
            await before_dispatch()
        store.mark_dispatching(row.id)

    try:
        message_id = await submit(dispatching)
    except OutcomeUnknown as exc:
        row = store.mark_unknown(row.id, exc.message)
        audit("unknown: " + exc.message, row.message_id)
        return SendOutcome("unknown", row, exc.explain())
    except PecError as exc:
        store.mark_failed(row.id, exc.message)
        audit("failed: " + exc.message, None)
        raise
    except BaseException:
        # Cancelled or crashed mid-call: if the request may have left, say so; otherwise nothing was sent.
        current = store.sending_by_id(row.id)
        if current is not None and current.state == "sending":
            store.mark_unknown(row.id, "interrupted while the request was on its way")
        else:
            store.mark_failed(row.id, "interrupted before the request was sent")
        raise
    row = store.mark_sent(row.id, message_id)
    audit(f"sent, message_id {message_id}", message_id)
    return SendOutcome("sent", row)


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
        content = pec_content(message)
        row, created = self.store.begin_send(
            provider="pecmassiva",
            environment=message.environment,
            account=ACCOUNT,
            idempotency_key=idempotency_key,
            sender=self.sender,
            recipients=message.recipients,
            subject=message.subject,
            attachments=[{"name": a.name, "size": a.size} for a in message.attachments],
            size_bytes=message.message_bytes,
            job_id=job_id,
            actor=actor,
            content_hash=content_hash(content),
            content=content,
        )
        if not created:
            if job_id is None:  # the key of a job's request is ours, and its content is the job's
                check_key(self.store, environment=message.environment, account=ACCOUNT,
                          idempotency_key=idempotency_key, content=content, addresses=message.recipients)
            return SendOutcome("duplicate", row, duplicate_note(row))
        summary = f"PEC to {describe_recipients(message.recipients)}: \"{message.subject}\""

        async def submit(on_dispatch: Callable[[], Awaitable[None]]) -> str:
            result = await self.client.send(
                sender=self.sender,
                recipients=message.recipients,
                subject=message.subject,
                body=message.body,
                attachments=message.attachments,
                on_dispatch=on_dispatch,
            )
            return result.message_id

        return await submit_once(self.store, row, submit, before_dispatch=before_dispatch,
                                 audit=lambda outcome, ref: self._audit(actor, summary, outcome, ref))

    def _audit(self, actor: str, summary: str, outcome: str, ref: str | None) -> None:
        self.store.record_audit(
            action="send_pec", actor=actor, environment=self.settings.env, summary=summary, outcome=outcome, ref=ref,
            account=ACCOUNT,
        )

    async def status(self, message_id: str, *, ledger_fallback: bool = True, ledger_row: Sending | None = None,
                     ledger_receipts: list[Receipt] | None = None) -> DeliveryReport:
        """The delivery status of a sending from every receipt seen: those the provider returns now, merged with
        those the ledger kept. New receipts are kept in the ledger; the status of a ledger row only moves forward.

        When the provider cannot be read now (down, an error, an unreadable answer) and the ledger knows the
        sending, the ledger answers alone and the report says what the provider said (``ledger_fallback=False``:
        the provider's error is raised instead, for actions that need the provider). Raises NotFound when neither
        the provider nor the ledger knows any receipt or row for it.

        ``ledger_row``: this sending's PEC Massiva row, when the caller has just read it (one store round trip
        less). Its recorded status may be a moment old: that is safe, since receipts only accumulate in the ledger
        and a status computed from them never moves back (see :meth:`_forward`).

        ``ledger_receipts``: the receipts the ledger keeps for a settled ``ledger_row``, read with it (see
        :func:`ledger_entry`). A sending whose outcome is final (see :meth:`_settled`) is answered from them, without
        asking the provider.
        """
        environment = self.settings.env
        if ledger_row is not None and ledger_receipts is not None:
            settled = self._settled(ledger_row, ledger_receipts)
            if settled is not None:
                return settled
        try:
            emails = await self.client.receipts(message_id=message_id)
        except ProviderError as exc:
            if not ledger_fallback:
                raise
            return self._from_ledger(message_id, exc)
        row = ledger_row or self.store.sending_by_message_id(message_id, provider="pecmassiva",
                                                             environment=environment)
        seen = [_ledger_receipt(e.subject, e.body, e.date) for e in emails]
        if seen:
            self.store.record_receipts(environment=environment, account=ACCOUNT, message_id=message_id,
                                       sending_id=row.id if row else None, receipts=seen)
        kept = self.store.receipts_of(environment=environment, account=ACCOUNT, message_id=message_id)
        if row is None and not kept:
            raise NotFound(
                f"No receipts found for sending {message_id}, and it is not in the local ledger of the "
                f"{environment} environment",
                provider="PEC Massiva",
                hint="Check the message_id: find_pec_sendings lists sendings made through pec-mcp (environment='all' "
                "shows other environments too, whose receipts only a server in that environment can read).",
            )
        now = {r.dedup_key for r in seen}
        known = [KnownReceipt(_classified(r), r.dedup_key in now, r.deleted_at) for r in kept]
        return self._report(row, known, [e.body for e in emails])

    def _settled(self, row: Sending, kept: list[Receipt]) -> DeliveryReport | None:
        """The report of a settled sending from the ledger alone, or None when it is not settled.

        Settled: every recipient has a CONSEGNA receipt, or the sending was refused at acceptance. Neither can change
        (a CONSEGNA is final and outranks any later notice; a refused message was never sent), so the provider has
        nothing to add to its delivery status. The receipts kept in the ledger must show it: a status recorded
        before the ledger kept receipts goes to the provider as any other.
        """
        if row.delivery_status not in SETTLED or row.message_id is None:
            return None
        known = [KnownReceipt(_classified(r), False if r.deleted_at else None, r.deleted_at) for r in kept]
        report = self._report(row, known, [])
        if report.recorded_only or report.status.status not in SETTLED:
            return None
        return DeliveryReport(status=report.status, sending=row, receipts=known, settled=True)

    def _from_ledger(self, message_id: str, failure: ProviderError) -> DeliveryReport:
        """The report from the ledger alone when the provider could not be read now; the provider's failure is
        raised as it is when the ledger knows nothing of this sending."""
        environment = self.settings.env
        row = self.store.sending_by_message_id(message_id, provider="pecmassiva", environment=environment)
        kept = self.store.receipts_of(environment=environment, account=ACCOUNT, message_id=message_id)
        if row is None and not kept:
            raise failure
        known = [KnownReceipt(_classified(r), None, r.deleted_at) for r in kept]
        bodies = [r.raw.decode(errors="replace") for r in kept if r.raw]
        return self._report(row, known, bodies, unreachable=failure.message)

    def _report(self, row: Sending | None, known: list[KnownReceipt], bodies: list[str], *,
                unreachable: str | None = None) -> DeliveryReport:
        """The status from every known receipt; a sending made elsewhere gets its recipients from the receipts."""
        classified = [k.receipt for k in known]
        if row is not None:
            recipients = row.recipients
        else:
            recipients = recipients_in_acceptance(bodies) or sorted({c.recipient for c in classified if c.recipient})
        seen = sending_status(recipients, classified)
        status = self._forward(row, seen) if row is not None else seen
        return DeliveryReport(status=status, sending=row, receipts=known, unreachable=unreachable,
                              recorded_only=status.status != seen.status)

    def _forward(self, row: Sending, status: SendingStatus) -> SendingStatus:
        """Record the status when it moves forward; keep the recorded one when it would move back."""
        recorded = DeliveryStatus(row.delivery_status) if row.delivery_status else None
        best = advance(recorded, status.status)
        if best != status.status and row.delivery_status is not None:
            # Receipts this row's status came from are no longer readable (recorded before the ledger kept them).
            # A recorded "delivered" means every recipient had a CONSEGNA; other outcomes are not known per recipient.
            outcomes = status.recipients
            if best == DeliveryStatus.DELIVERED:
                outcomes = [RecipientOutcome(o.address, RecipientState.DELIVERED, None, None) for o in outcomes]
            accepted = best != DeliveryStatus.NOT_ACCEPTED
            return SendingStatus(best, outcomes, accepted, row.delivery_summary or best.value)
        if best != recorded or status.summary != row.delivery_summary:
            self.store.update_delivery(row.id, status.status.value, status.summary)
        return status


    # -- deleting legal proof: the ledger keeps what the provider's copy said, the audit trail says who deleted it

    async def deletable_receipts(self, message_id: str) -> DeliveryReport:
        """The receipts of a sending before they are deleted, every one now kept in the ledger. Raises the
        provider's error when it cannot be read, and NotFound when it holds none of them (nothing to delete)."""
        report = await self.status(message_id, ledger_fallback=False)
        if not any(k.at_provider for k in report.receipts):
            kept = len(report.receipts)
            raise NotFound(
                f"The provider holds no receipt of sending {message_id} now, so there is nothing to delete"
                + (f"; the local ledger keeps {kept} receipt(s) of it, which get_pec_receipts shows" if kept else ""),
                provider="PEC Massiva",
                hint="Nothing needs deleting. Receipts not yet arrived can be deleted once get_pec_receipts shows "
                "them at the provider.",
            )
        return report

    async def delete_receipts(self, message_id: str, *, actor: str) -> DeliveryReport:
        """Delete a sending's receipts at the provider, after keeping every one in the ledger (marked deleted)."""
        # What the provider still has is in the ledger before it goes; a provider that cannot be read, or that
        # holds nothing, is not asked to delete.
        report = await self.deletable_receipts(message_id)
        await self.client.delete_receipts(message_id=message_id)
        marked = self.store.mark_receipts_deleted(environment=self.settings.env, account=ACCOUNT,
                                                  message_id=message_id)
        self.store.record_audit(action="delete_pec_receipts", actor=actor, environment=self.settings.env,
                                summary=f"receipts of sending {message_id} ({describe_kinds(report)})",
                                outcome=f"deleted at the provider; {marked} receipt(s) kept in the ledger",
                                ref=message_id, account=ACCOUNT)
        return report

    async def delete_message(self, inbox_id: int, message: InboxFacts, *, actor: str) -> bool:
        """Delete one inbox message; a receipt of a sending is kept in the ledger first (marked deleted).
        Returns whether it was kept as a receipt."""
        kind, code = classify_message(message.subject)
        receipt = _ledger_receipt(message.subject, message.body, message.date, source="inbox") if code else None
        if receipt is not None and code is not None:
            row = self.store.sending_by_message_id(code, provider="pecmassiva", environment=self.settings.env)
            self.store.record_receipts(environment=self.settings.env, account=ACCOUNT, message_id=code,
                                       sending_id=row.id if row else None, receipts=[receipt])
        await self.client.delete_message(inbox_id=inbox_id)
        if receipt is not None and code is not None:
            self.store.mark_receipts_deleted(environment=self.settings.env, account=ACCOUNT, message_id=code,
                                             dedup_keys=[receipt.dedup_key])
        self.store.record_audit(action="delete_pec_message", actor=actor, environment=self.settings.env,
                                summary=f"inbox message {inbox_id}: {kind} from {message.sender}, "
                                f"\"{message.subject}\" ({message.date})",
                                outcome="deleted at the provider; " + ("kept in the ledger as a receipt of "
                                                                       f"sending {code}" if receipt else
                                                                       "its headers kept in the inbox index"),
                                ref=str(inbox_id), account=ACCOUNT)
        return receipt is not None


class InboxFacts(Protocol):
    """What is read of an inbox message before it is deleted (``PecMassivaClient.message``)."""

    sender: str
    date: str
    subject: str
    body: str


def classify_message(subject: str) -> tuple[str, str | None]:
    """The kind of an inbox message by its subject, and the sending a receipt refers to."""
    return classify_header(subject)


def describe_kinds(report: DeliveryReport) -> str:
    """ "accepted ×1, delivered ×2": the receipts of a report by kind."""
    return describe_kinds_of(report.receipts)


def delete_receipts_question(message_id: str, report: DeliveryReport, environment: str) -> str:
    """The confirmation question for deleting receipts: what legal proof is destroyed, from the server's facts."""
    at_provider = [k for k in report.receipts if k.at_provider]
    proofs = sorted({PROOF.get(k.receipt.kind, "a record of the sending's path") for k in at_provider})
    about = ""
    if report.sending is not None:
        about = f" (\"{report.sending.subject}\" to {describe_recipients(report.sending.recipients)})"
    return (
        f"Delete from the PEC mailbox the {len(at_provider)} receipt(s) of sending {message_id}{about}: "
        f"{describe_kinds_of(at_provider)}. They are the legal proof of {', '.join(proofs) or 'the sending'}; the "
        "provider's copies are destroyed for good. The local ledger keeps a record of each (kind, date, text), not "
        f"the signed originals. No charge. Environment: {environment_label(environment)}."
    )


def delete_message_question(inbox_id: int, message: InboxFacts, environment: str) -> str:
    """The confirmation question for deleting an inbox message, saying what legal proof it may be."""
    kind, code = classify_message(message.subject)
    what = {"envelope": "an incoming certified email (PEC): the legal proof that it was delivered to you",
            "other": "a message that is not a PEC receipt"}.get(kind)
    if what is None:
        what = f"a PEC receipt ({kind}) of sending {code}: {PROOF.get(ReceiptKind(kind), 'part of its record')}"
    return (
        f"Delete inbox message {inbox_id} for good: \"{message.subject}\" from {message.sender}, {message.date}. "
        f"It is {what}. The provider's copy is destroyed; the local ledger keeps its headers"
        + (" and a record of the receipt (kind, date, text), not the signed original" if code else "")
        + f". No charge. Environment: {environment_label(environment)}."
    )


# The legal proof each kind of receipt is, in the words of the confirmation questions.
PROOF: dict[ReceiptKind, str] = {
    ReceiptKind.ACCEPTED: "sending (ACCETTAZIONE)",
    ReceiptKind.DELIVERED: "delivery (CONSEGNA)",
    ReceiptKind.NOT_DELIVERED: "non-delivery (MANCATA CONSEGNA)",
    ReceiptKind.NOT_DELIVERED_VIRUS: "non-delivery (MANCATA CONSEGNA)",
    ReceiptKind.NOT_DELIVERED_TIMEOUT: "non-delivery (MANCATA CONSEGNA)",
    ReceiptKind.NOT_ACCEPTED: "refusal (NON ACCETTAZIONE)",
    ReceiptKind.NOT_ACCEPTED_VIRUS: "refusal (NON ACCETTAZIONE)",
    ReceiptKind.ENVELOPE: "what the recipient received (POSTA CERTIFICATA)",
}


def describe_kinds_of(receipts: Sequence[KnownReceipt]) -> str:
    counts: dict[str, int] = {}
    for known in receipts:
        counts[known.receipt.kind.value] = counts.get(known.receipt.kind.value, 0) + 1
    return ", ".join(f"{kind} ×{n}" for kind, n in counts.items()) or "none"


def _ledger_receipt(subject: str, body: str, date: str, *, source: str = "pecmassiva") -> Receipt:
    """A receipt read from PEC Massiva's receipts API, as the ledger keeps it (the body as the raw text)."""
    c = classify(subject, body, date)
    return Receipt(kind=c.kind.value, date=date, provider_text=subject, source=source, recipient=c.recipient,
                   reason=c.reason, raw=body.encode())


def _classified(receipt: Receipt) -> ClassifiedReceipt:
    _, original = classify_subject(receipt.provider_text)
    return ClassifiedReceipt(ReceiptKind(receipt.kind), original, receipt.recipient, receipt.reason, receipt.date)
