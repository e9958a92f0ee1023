"""The Mensatek certified-email path: templating, scheduling, the ledger, and delivery reports received by webhook.

Templating. Recipients carry ``variables`` (a name -> text mapping, the same names for every recipient, at most
ten); the subject and message use ``{{name}}`` (the recipient's name) and ``{{<variable>}}``. Every placeholder is
checked before anything is sent: an unknown one is an error, never left as literal text. The variable names are
mapped, in alphabetical order, to Mensatek's own ``Variable_1`` .. ``Variable_10`` and ``{{name}}`` to
``{{Nombre}}``; the request carries Mensatek's placeholders, so one request serves every recipient and Mensatek
personalises each copy.

The ledger. One send is one ledger row (``provider="mensatek"``) written before the request, with the
idempotency key; Mensatek answers one ``idMensaje`` per recipient: the row's ``message_id`` is the first, and the
table ``certified_messages`` keeps every recipient's id. A repeated key returns the first result and sends
nothing; an answer that was lost or cannot be read leaves the row ``unknown``, never retried.

Webhook reports (``/webhooks/mensatek``) are validated here and stored as events keyed on
``idMensaje|Resultado|Fecha``, so that a replay is stored once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import anyio

from pec_mcp.config import Settings, environment_label
from pec_mcp.errors import BadResponse, InputError, OutcomeUnknown, PecError, Rejected
from pec_mcp.idempotency import check_same, content_hash, describe, file_sha256
from pec_mcp.paths import allowed_files
from pec_mcp.providers.mensatek import (
    ESTADOS,
    MAX_VARIABLES,
    Attachment,
    CancelResult,
    MensatekClient,
    Recipient,
    RescheduleResult,
    normalise_status,
    scheduled_time_to_madrid,
)
from pec_mcp.sending import (
    check_call_size,
    check_domains,
    check_subject,
    describe_files,
    normalise_address,
)
from pec_mcp.store import CertifiedMessage, Receipt, Sending, Store

PROVIDER = "mensatek"
NAME = "name"  # the placeholder of the recipient's own name, {{Nombre}} on the wire
CREDITS_PER_RECIPIENT = 1  # what the simulator charges; a real account's price may differ per option
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VARIABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
# Mensatek's own names: a model that writes them is told to use its own names instead (they would bypass checks).
_RESERVED = re.compile(r"^(name|nombre|email|variable_\d+)$", re.IGNORECASE)
MAX_VALUE_CHARS = 1000
PREVIEW_CHARS = 600
WEBHOOK_FIELDS = ("Servicio", "Resultado", "Remitente", "Destinatario", "Fecha", "Asunto", "idMensaje",
                  "Referencia", "CSV")
_MESSAGE_ID = re.compile(r"^[0-9A-Za-z_-]{1,40}$")
SERVICE = "EMAILCERTIFICADO"


@dataclass(frozen=True)
class RecipientSpec:
    """One recipient as the caller gives it."""

    email: str
    name: str = ""
    variables: Mapping[str, str] | None = None


@dataclass(frozen=True)
class CertifiedPlan:
    """A certified email checked and ready to go; nothing here comes unchecked from the caller."""

    recipients: list[Recipient]  # variables in the order of ``variable_names``
    variable_names: list[str]  # position i is Mensatek's Variable_{i+1}
    subject: str  # as the caller wrote it, with our placeholder names
    message: str
    wire_subject: str  # with Mensatek's placeholders
    wire_message: str
    preview_subject: str  # rendered for the first recipient
    preview_message: str
    scheduled_at: datetime | None
    scheduled_for: str | None  # Spanish local time, "YYYY-MM-DD HH:MM"
    require_acceptance: bool
    acceptance_days: int | None
    files: list[tuple[Path, int]]
    reference: str | None
    environment: str

    @property
    def emails(self) -> list[str]:
        return [r.email for r in self.recipients]

    @property
    def credits_needed(self) -> int:
        return CREDITS_PER_RECIPIENT * len(self.recipients)

    @property
    def mapping(self) -> dict[str, str]:
        return wire_names(self.variable_names)


def wire_names(names: Sequence[str]) -> dict[str, str]:
    """Our placeholder names -> Mensatek's: {{name}} is {{Nombre}}, the variables Variable_1 .. Variable_10."""
    return {NAME: "Nombre"} | {n: f"Variable_{i}" for i, n in enumerate(names, start=1)}


def plan_certified(
    *,
    recipients: Sequence[RecipientSpec],
    subject: str,
    message: str,
    attachments: Sequence[str],
    scheduled_at: datetime | None,
    require_acceptance: bool,
    acceptance_days: int,
    reference: str | None,
    idempotency_key: str | None,
    settings: Settings,
    now: float | None = None,
) -> CertifiedPlan:
    """Check everything about a certified email before any file is read or anything is sent."""
    emails = _check_recipients(recipients, settings)
    names = variable_names(recipients)
    subject = check_subject(subject)
    if not message.strip():
        raise InputError("The message is empty", hint="Write the text of the certified email (HTML or text).")
    used = check_placeholders(subject, names) | check_placeholders(message, names)
    nameless = [e for e, r in zip(emails, recipients, strict=True) if NAME in used and not r.name.strip()]
    if nameless:
        raise InputError(f"{{{{name}}}} is used but these recipients have no name: {', '.join(nameless[:5])}",
                         hint="Give every recipient a name, or remove {{name}} from the subject and message.")
    if not 1 <= acceptance_days <= 30:
        raise InputError(f"acceptance_days must be between 1 and 30 (got {acceptance_days})",
                         hint="Mensatek lets the recipient accept or reject for 1 to 30 days.")
    scheduled_for = _check_schedule(scheduled_at, time.time() if now is None else now)
    plan_recipients = [
        Recipient(email=email, name=spec.name.strip(), variables=tuple((spec.variables or {})[n] for n in names))
        for email, spec in zip(emails, recipients, strict=True)
    ]
    mapping = wire_names(names)
    first = {NAME: plan_recipients[0].name} | dict(zip(names, plan_recipients[0].variables, strict=True))
    files = allowed_files(attachments, settings.attachments.resolved_dirs(),
                          max_total_mb=settings.attachments.max_total_mb)
    return CertifiedPlan(
        recipients=plan_recipients, variable_names=names, subject=subject, message=message,
        wire_subject=substitute(subject, {k: "{{" + v + "}}" for k, v in mapping.items()}),
        wire_message=substitute(message, {k: "{{" + v + "}}" for k, v in mapping.items()}),
        preview_subject=substitute(subject, first), preview_message=substitute(message, first)[:PREVIEW_CHARS],
        scheduled_at=scheduled_at, scheduled_for=scheduled_for, require_acceptance=require_acceptance,
        acceptance_days=acceptance_days if require_acceptance else None, files=files,
        reference=reference or idempotency_key, environment=settings.env,
    )


def _check_recipients(recipients: Sequence[RecipientSpec], settings: Settings) -> list[str]:
    if not recipients:
        raise InputError("No recipient was given", hint="Give at least one recipient with an email address.")
    check_call_size(len(recipients), settings, what="call", split_into="sends")
    emails, seen = [], set()
    for spec in recipients:
        email = normalise_address(spec.email)
        if email.lower() in seen:
            raise InputError(f"{email} is given twice", hint="List each recipient once.")
        seen.add(email.lower())
        emails.append(email)
    check_domains(emails, settings.sending.allowed_recipient_domains)
    return emails


def variable_names(recipients: Sequence[RecipientSpec]) -> list[str]:
    """The variable names, checked: the same for every recipient, at most ten, not Mensatek's own; sorted."""
    first = set((recipients[0].variables or {}).keys()) if recipients else set()
    for spec in recipients:
        names = set((spec.variables or {}).keys())
        if names != first:
            missing, extra = sorted(first - names), sorted(names - first)
            raise InputError(
                f"Every recipient must carry the same variable names; {spec.email} differs from the first "
                f"recipient (missing: {', '.join(missing) or 'none'}; extra: {', '.join(extra) or 'none'})",
                hint="Give every recipient a value for every variable (an empty string is allowed).",
            )
        too_long = [n for n, v in (spec.variables or {}).items() if len(v) > MAX_VALUE_CHARS]
        if too_long:
            raise InputError(f"The value of {too_long[0]!r} for {spec.email} is longer than {MAX_VALUE_CHARS} "
                             "characters")
    if len(first) > MAX_VARIABLES:
        raise InputError(f"{len(first)} variables is more than the {MAX_VARIABLES} Mensatek can carry per recipient",
                         hint="Use at most ten variables, or put fixed text in the message itself.")
    for name in sorted(first):
        if not _VARIABLE_NAME.match(name):
            raise InputError(f"{name!r} is not a valid variable name",
                             hint="Use letters, digits and underscores, starting with a letter (e.g. case_number).")
        if _RESERVED.match(name):
            raise InputError(f"{name!r} is reserved and cannot be a variable name",
                             hint="The recipient's name is {{name}}, from the recipient's 'name'; pick other "
                             "names for variables (e.g. case_number).")
    return sorted(first)


def check_placeholders(text: str, names: Sequence[str]) -> set[str]:
    """The placeholder names a text uses; InputError listing any that is not {{name}} or a variable."""
    used = {match.strip() for match in _PLACEHOLDER.findall(text)}
    known = {NAME, *names}
    unknown = sorted(used - known)
    if unknown:
        shown = ", ".join("{{" + u + "}}" for u in unknown[:5])
        raise InputError(
            f"Unknown template variable(s) {shown}: placeholders are never sent as literal text",
            hint=f"Known names: {', '.join('{{' + k + '}}' for k in sorted(known))}. Add the variable to every "
            "recipient's 'variables', or fix the spelling.",
        )
    return used


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every checked placeholder by its value."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1).strip()], text)


def _check_schedule(scheduled_at: datetime | None, now: float) -> str | None:
    if scheduled_at is None:
        return None
    text = scheduled_time_to_madrid(scheduled_at)  # raises InputError for a time without zone
    if scheduled_at.timestamp() < now - 60:
        raise InputError(f"The scheduled time {scheduled_at.isoformat()} is in the past",
                         hint="Give a future time, or leave scheduled_at empty to send now.")
    return text


def madrid_text(scheduled_for: str | None) -> str:
    return f"{scheduled_for} Spanish time (Europe/Madrid)" if scheduled_for else "now"


def certified_question(plan: CertifiedPlan) -> str:
    """The confirmation question, built from what the server checked.

    Only facts of this send: the question must read the same when the client comes back with the answer (a changed
    question is asked again), and the credits left change with every other send.
    """
    shown = ", ".join(f"{r.name} <{r.email}>" if r.name else r.email for r in plan.recipients[:3])
    more = len(plan.recipients) - 3
    people = f"{len(plan.recipients)} recipient{'s' if len(plan.recipients) != 1 else ''}: {shown}" + (
        f" and {more} more" if more > 0 else "")
    acceptance = (f"the recipient must accept it within {plan.acceptance_days} days" if plan.require_acceptance
                  else "no acceptance required")
    return (
        f"Send a Mensatek certified email to {people}. Subject: \"{plan.preview_subject}\". Attachments: "
        f"{describe_files([(p.name, size) for p, size in plan.files])}. Sending: {madrid_text(plan.scheduled_for)}; "
        f"{acceptance}. Credits needed: {plan.credits_needed} (1 per recipient). "
        f"Environment: {environment_label(plan.environment)}."
    )


def credits_text(plan: CertifiedPlan, credits_left: float | None) -> str:
    """What the preview says of the account's credits, when they are known without asking Mensatek."""
    if credits_left is None:
        return "Credits left: not checked (get_certified_email_credits tells)."
    short = " NOT ENOUGH for this send." if credits_left < plan.credits_needed else ""
    return f"Credits left: {credits_left:g}.{short}"


# -- the ledger and the provider -------------------------------------------------------------------------------


@dataclass
class CertifiedOutcome:
    status: Literal["sent", "duplicate", "unknown"]
    sending: Sending
    messages: list[CertifiedMessage]
    note: str = ""
    credits_left: float | None = None


class CertifiedSender:
    """Certified email through the ledger: one row per send, written before the request, never sent twice."""

    def __init__(self, *, client: MensatekClient, store: Store, settings: Settings, sender: str) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.sender = sender

    async def send(self, plan: CertifiedPlan, *, idempotency_key: str | None, actor: str) -> CertifiedOutcome:
        attachments = [Attachment(name=p.name, content=await anyio.Path(p).read_bytes()) for p, _ in plan.files]
        content = certified_content(plan)
        row, created = self.store.begin_send(
            provider=PROVIDER, environment=plan.environment, account=PROVIDER, idempotency_key=idempotency_key,
            sender=self.sender, recipients=plan.emails, subject=plan.subject,
            attachments=[{"name": p.name, "size": size} for p, size in plan.files],
            size_bytes=sum(size for _, size in plan.files) + len(plan.message.encode()),
            actor=actor, content_hash=content_hash(content), content=content,
        )
        if not created:
            check_key(self.store, plan, idempotency_key, content)
            return CertifiedOutcome("duplicate", row, messages_of(self.store, row.id),
                                    f"This idempotency key was used before (that send is {row.state}): nothing "
                                    "was sent again.")
        summary = f"certified email to {len(plan.recipients)} recipient(s): \"{plan.subject}\""
        self.store.mark_dispatching(row.id)  # the client has no dispatch hook: from here a lost answer is unknown
        try:
            result = await self.client.send(
                sender=self.sender, recipients=plan.recipients, subject=plan.wire_subject,
                message_html=plan.wire_message, scheduled_at=plan.scheduled_at,
                require_acceptance=plan.require_acceptance, acceptance_days=plan.acceptance_days or 10,
                attachments=attachments, reference=plan.reference,
            )
        except (OutcomeUnknown, BadResponse) as exc:
            # An answer lost or unreadable after the request went: it may have been sent, so never retry it.
            row = self.store.mark_unknown(row.id, exc.message)
            self._audit("send_certified_email", summary, "unknown: " + exc.message, None, actor)
            return CertifiedOutcome("unknown", row, [], exc.explain() + " Do not send again before checking the "
                                    "Mensatek panel or the reports.")
        except PecError as exc:
            self.store.mark_failed(row.id, exc.message)
            self._audit("send_certified_email", summary, "failed: " + exc.message, None, actor)
            raise
        except BaseException:
            self.store.mark_unknown(row.id, "interrupted while the request was on its way")
            raise
        ids = [(r.message_id, r.email, r.name) for r in result.recipients if r.message_id]
        if not ids:
            row = self.store.mark_unknown(row.id, f"Mensatek accepted the send (Res {result.result_code}) but "
                                          "returned no message ids")
            self._audit("send_certified_email", summary, "unknown: no message ids", None, actor)
            return CertifiedOutcome("unknown", row, [], "Mensatek accepted the send but returned no message ids; "
                                    "do not send again, look it up in the Mensatek panel.", result.credits_left)
        self.store.record_certified_messages(environment=plan.environment, sending_id=row.id, ids=ids)
        row = self.store.mark_sent(row.id, ids[0][0])
        self._audit("send_certified_email", summary, f"sent, {len(ids)} message id(s) from {ids[0][0]}", ids[0][0],
                    actor)
        return CertifiedOutcome("sent", row, messages_of(self.store, row.id), "", result.credits_left)

    async def cancel(self, message_id: str, *, actor: str) -> CancelResult:
        """Cancel a scheduled message; Mensatek's refusal (it already went) is explained with its reason."""
        try:
            result = await self.client.cancel(message_id=message_id)
        except Rejected as exc:
            self._audit("cancel_certified_email", f"cancel {message_id}", "refused: " + exc.message, message_id, actor)
            raise Rejected(f"Mensatek refused to cancel message {message_id}: {exc.message}", provider=PROVIDER,
                           status=exc.status, code=exc.code,
                           hint="Only a scheduled message that has not gone out yet can be cancelled; "
                           "get_certified_email_report shows where it is.") from exc
        self._audit("cancel_certified_email", f"cancel {message_id}", "cancelled", message_id, actor)
        return result

    async def reschedule(self, message_id: str, when: datetime, *, actor: str) -> RescheduleResult:
        _check_schedule(when, time.time())
        result = await self.client.reschedule(message_id=message_id, when=when)
        self._audit("reschedule_certified_email", f"reschedule {message_id} to {result.scheduled_for}",
                    "rescheduled", message_id, actor)
        return result

    def _audit(self, action: str, summary: str, outcome: str, ref: str | None, actor: str) -> None:
        self.store.record_audit(action=action, actor=actor, environment=self.settings.env, summary=summary,
                                outcome=outcome, ref=ref, account=PROVIDER)


def certified_content(plan: CertifiedPlan) -> dict[str, Any]:
    """What an idempotency key of a certified email stands for: recipients with their names and variables,
    subject, message, schedule and acceptance, attachments by name, size and SHA-256."""
    details = [[r.email.lower(), r.name, list(r.variables)] for r in plan.recipients]
    acceptance = f"acceptance within {plan.acceptance_days} days" if plan.require_acceptance else "no acceptance"
    options = f"sending {madrid_text(plan.scheduled_for)}, {acceptance}, reference {plan.reference or 'none'}"
    files = [(p.name, size, file_sha256(p)) for p, size in plan.files]
    return describe(recipients=plan.emails, subject=plan.subject, body=plan.message, files=files,
                    recipient_details=details, options=options)


def check_key(store: Store, plan: CertifiedPlan, idempotency_key: str | None, content: dict[str, Any]) -> None:
    """KeyReused when this key sent other content before in this environment (see pec_mcp.idempotency)."""
    if not idempotency_key:
        return
    first = store.sending_by_key(plan.environment, PROVIDER, idempotency_key)
    if first is not None:
        check_same(key=idempotency_key, first_hash=first.content_hash, first_content=first.content,
                   first_recipients=first.recipients, first_subject=first.subject, first_state=first.state,
                   content=content, addresses=plan.emails)


def messages_of(store: Store, sending_id: int) -> list[CertifiedMessage]:
    return store.certified_messages_of(sending_id)


def message_by_id(store: Store, environment: str, message_id: str) -> CertifiedMessage | None:
    return store.certified_message(environment, message_id)


def record_report(store: Store, *, environment: str, message_id: str, kind: str, date: str, text: str,
                  source: str, recipient: str | None = None) -> None:
    """Keep what a Mensatek report says of one recipient's message in the ledger's receipts (once)."""
    known = store.certified_message(environment, message_id)
    store.record_receipts(
        environment=environment, account=PROVIDER, message_id=message_id,
        sending_id=known.sending_id if known else None,
        receipts=[Receipt(kind=kind, date=date, provider_text=text, source=source,
                          recipient=(known.email if known else recipient))],
    )


# -- delivery reports received by webhook ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReportEvent:
    """A validated Mensatek delivery report."""

    event_key: str
    message_id: str
    fields: dict[str, str]


def parse_report(payload: Mapping[str, Any]) -> ReportEvent:
    """The known fields of a report webhook (names case-insensitive, values trimmed); InputError if invalid."""
    lowered = {str(k).lower(): v for k, v in payload.items()}
    fields = {name: str(lowered[name.lower()]).strip()[:500] for name in WEBHOOK_FIELDS
              if lowered.get(name.lower()) not in (None, "")}
    message_id = fields.get("idMensaje", "")
    if not _MESSAGE_ID.match(message_id):
        raise InputError("the report has no valid idMensaje")
    if not re.fullmatch(r"-?\d{1,6}", fields.get("Resultado", "")):
        raise InputError("the report has no numeric Resultado")
    return ReportEvent(f"{message_id}|{fields['Resultado']}|{fields.get('Fecha', '')}", message_id, fields)


def store_report(store: Store, payload: Mapping[str, Any], *, environment: str) -> tuple[bool, str]:
    """Store one report webhook once, as an event and as a receipt of its message in the ledger of the server's
    environment; (stored, message) for the HTTP answer. Invalid reports are not stored."""
    try:
        event = parse_report(payload)
    except InputError as exc:
        return False, f"ignored: {exc.message}"
    stored = store.record_event(provider=PROVIDER, environment=environment, event_key=event.event_key,
                                message_id=event.message_id, kind="report", payload=event.fields)
    status, code, _ = report_status(event.fields)
    record_report(store, environment=environment, message_id=event.message_id, kind=status,
                  date=event.fields.get("Fecha", ""), text=f"Resultado {code}", source="mensatek_webhook",
                  recipient=event.fields.get("Destinatario"))
    return stored, "stored" if stored else "already stored (a replay)"


def report_status(fields: Mapping[str, str], learned: Mapping[int, str] | None = None) -> tuple[str, int | None, str]:
    """(normalised status, code, note) of a stored report; codes are interpreted for certified email only.

    A webhook report carries a code and no text: a code in no published table is classified from the text
    Mensatek gave for the same code in a report read earlier (``learned``, see :func:`learn_status_text`).
    """
    raw = fields.get("Resultado", "")
    code = int(raw) if re.fullmatch(r"-?\d+", raw) else None
    service = fields.get("Servicio", SERVICE)
    if service.upper() != SERVICE:
        return "unknown", code, f"A report of Mensatek's {service} service: its codes are not interpreted here."
    if code is not None and code not in ESTADOS and learned and code in learned:
        status, note = normalise_status(code, learned[code])
        return status, code, note + " (the text of an earlier report with this code; a webhook carries none)"
    status, note = normalise_status(code)
    if status == "unknown" and code is not None:
        note = (f"Mensatek status code {code} is in no published table and a webhook report carries no text: "
                "get_certified_email_report on this message shows Mensatek's own text, and from then on reports "
                "with this code are classified from it.")
    return status, code, note


# Texts learnt from reports live beside the webhook events, under a provider name of their own, so that they are
# never listed as events; one row per code and text.
STATUS_TEXTS = "mensatek_status_text"


def learn_status_text(store: Store, environment: str, code: int | None, text: str) -> None:
    """Remember Mensatek's text for a code in no published table, to classify later webhook reports with it.

    Per environment: the simulator's own codes must never explain a real report, nor the reverse.
    """
    if code is None or code in ESTADOS or not text.strip():
        return
    store.record_event(provider=STATUS_TEXTS, environment=environment, event_key=f"{code}|{text.strip()[:200]}",
                       message_id=None, kind="status_text", payload={"code": code, "text": text.strip()[:200]})


def learned_status_texts(store: Store, environment: str) -> dict[int, str]:
    """Code -> the latest text Mensatek gave for it in a report of this environment (table codes excluded)."""
    learned: dict[int, str] = {}
    # Newest first: the first text per code wins.
    for event in store.events(provider=STATUS_TEXTS, environment=environment, limit=1000):
        payload = event["payload"]
        learned.setdefault(int(payload["code"]), str(payload["text"]))
    return learned
