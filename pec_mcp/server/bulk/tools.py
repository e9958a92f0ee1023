"""The ``bulk`` toolset: durable bulk PEC jobs (start, follow, cancel, list) and their resource ``pec://jobs/{id}``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from pydantic import BaseModel, Field

from pec_mcp.accounts import Account, resolve_account
from pec_mcp.config import environment_label
from pec_mcp.errors import InputError, NotFound
from pec_mcp.idempotency import file_sha256
from pec_mcp.jobs import BulkPlan, JobStore, Progress, inline_recipients, plan_bulk, read_recipients_csv
from pec_mcp.jobs.planning import bulk_content
from pec_mcp.jobs.store import Job
from pec_mcp.sending import describe_files, describe_recipients
from pec_mcp.server.annotations import CHANGE, LOCAL_READ, SEND
from pec_mcp.server.errors import resource_errors, tool_errors
from pec_mcp.server.gate import Approval, Confirmation, actor_of, gate, require_yes, state_of
from pec_mcp.server.http.users import may_see_account
from pec_mcp.server.pec.accounts import AccountName
from pec_mcp.server.pec.models import ENV_FIELD, AttachmentInfo, Environment, EnvironmentFilter, environment_filter
from pec_mcp.server.state import AppState, StateHolder
from pec_mcp.server.views import BULK_JOB_VIEW, view_meta
from pec_mcp.store import iso

PREVIEW_CHARS = 2000
SHOWN_RECIPIENTS = 25


class BulkRecipient(BaseModel):
    address: str = Field(max_length=254, description="PEC address of the recipient")
    variables: dict[str, str] = Field(default_factory=dict, description="Values for the {{variable}} placeholders "
                                      "of subject and body, e.g. {\"nome\": \"Mario Rossi\"}")


Recipients = Annotated[list[BulkRecipient] | None, Field(
    max_length=10_000, description="The recipients, each with its own variables; or use recipients_csv")]
RecipientsCsv = Annotated[str | None, Field(
    max_length=4096, description="Full path of a CSV file inside attachments.allowed_dirs: a header row naming "
    "'address' and the variables, then one recipient per row; ';' or ',' separated; UTF-8 or Latin-1")]
Subject = Annotated[str, Field(min_length=1, max_length=1000, description="Subject line; may use {{variable}}")]
Body = Annotated[str, Field(min_length=1, description="Message text, plain text or HTML; may use {{variable}}")]
Attachments = Annotated[list[str], Field(description="Full paths of local files attached to every message; they "
                                         "must be inside attachments.allowed_dirs")]
IdempotencyKey = Annotated[str | None, Field(max_length=200, description="Any unique string for this intended job "
                           "(e.g. 'solleciti-2026-03'); starting again with the same key returns the same job and "
                           "sends nothing new. Strongly recommended")]
DryRun = Annotated[bool, Field(description="true: check every row and return the plan, cost and a preview; nothing "
                               "is sent")]
Confirm = Annotated[bool, Field(description="Only for clients that cannot show a confirmation prompt: set true ONLY "
                                "after the user explicitly said yes to this exact job in the conversation")]
JobId = Annotated[str, Field(min_length=1, max_length=64, description="The job_id returned by start_bulk_pec")]


class MessagePreview(BaseModel):
    to: str = Field(description="The first recipient")
    subject: str = Field(description="The subject as that recipient will see it")
    body: str = Field(description="The body as that recipient will see it (cut at 2,000 characters)")


class StartBulkResult(BaseModel):
    status: Literal["started", "preview", "duplicate"] = Field(
        description="started: the job is queued and runs in the background; preview: dry run, nothing sent; "
        "duplicate: this idempotency key started a job before, nothing new was queued")
    job_id: str | None = Field(description="Use with get_bulk_pec and cancel_bulk_pec (None for a preview)")
    account: str = Field(description="The PEC account that sends the job (list_pec_accounts describes it)")
    total_recipients: int
    requests: int = Field(description="Messages sent (requests to PEC Massiva, or SMTP submissions from a "
                          "mailbox): identical messages share one, within the per-request recipient and size "
                          "limits; personalised messages go one by one")
    estimated_duration_seconds: float = Field(description="Requests at the account's rate, plus requests queued "
                                              "ahead by other jobs on the same account")
    estimated_cost_eur: float = Field(description="Computed by the server from the list price (0 for a mailbox "
                                      "account: its sends cost nothing per message)")
    attachments: list[AttachmentInfo]
    preview: MessagePreview | None = Field(description="The first message rendered (None for a duplicate)")
    environment: Environment = ENV_FIELD
    note: str


class RecipientOutcome(BaseModel):
    row: int = Field(description="The CSV line, or the position in the recipients list")
    address: str
    state: str = Field(description="queued, sending, sent (awaiting a delivery receipt), delivered, not_delivered, "
                       "failed (not sent), unknown (may or may not have been sent), cancelled")
    reason: str | None = None
    signature: Literal["valid", "valid_untrusted", "invalid"] | None = Field(
        default=None, description="Mailbox accounts: the verdict on the signature of this recipient's receipts "
        "(valid: legal proof from an accredited provider; valid_untrusted: intact, signer not checked; invalid: "
        "forged or tampered, never counted). None when there is none yet, or for PEC Massiva jobs")


class BulkCounts(BaseModel):
    queued: int
    sending: int
    sent: int = Field(description="Sent, no delivery receipt yet")
    delivered: int = Field(description="CONSEGNA receipt: legal proof of delivery")
    not_delivered: int
    failed: int = Field(description="Not sent (refused, or an error before sending)")
    unknown: int = Field(description="May or may not have been sent; never resent automatically")
    cancelled: int


class BulkJobResult(BaseModel):
    job_id: str
    account: str = Field(description="The PEC account that sends the job")
    status: Literal["sending", "awaiting_receipts", "finished", "cancelled"]
    cancelled: bool
    created_at: str = Field(description="UTC")
    subject: str = Field(description="The subject template")
    total_recipients: int
    requests: int
    requests_done: int
    counts: BulkCounts
    achieved_rate_per_second: float | None = Field(description="Requests per second achieved so far")
    limit_per_second: float = Field(description="The account's send limit (sending.requests_per_second for "
                                    "PEC Massiva, accounts.<name>.requests_per_second for a mailbox)")
    eta_seconds: float | None = Field(description="Estimated seconds until every request is sent (None when done)")
    first_errors: list[RecipientOutcome] = Field(description="The first recipients that failed or were not "
                                                 "delivered, with the reason")
    unknown_recipients: list[str] = Field(description="Recipients whose request may or may not have gone out")
    recipients: list[RecipientOutcome] = Field(description="Per-recipient outcomes, first rows only")
    estimated_cost_eur: float
    environment: Environment = ENV_FIELD
    note: str


class CancelBulkResult(BaseModel):
    job_id: str
    cancelled_recipients: int = Field(description="Recipients that will not be sent to")
    already_sent: int = Field(description="Recipients already sent to (or unknown): a PEC cannot be recalled")
    status: str
    environment: Environment = ENV_FIELD
    note: str


def _cancel_note(before: str, stopped: int) -> str:
    if before == "cancelled":
        return "The job was already cancelled; nothing changed."
    if before != "sending":
        return ("Nothing to cancel: every request of this job had already been sent (status "
                f"{before}); a PEC cannot be recalled. Its receipts are still collected.")
    return (f"Cancelled: {stopped} recipient(s) will not be sent to; requests waiting for their turn are stopped "
            "before they leave, and one already on its way still completes.")


class BulkJobSummary(BaseModel):
    job_id: str
    account: str
    created_at: str
    subject: str
    status: str
    total_recipients: int
    counts: BulkCounts
    environment: Environment = ENV_FIELD


class BulkJobList(BaseModel):
    jobs: list[BulkJobSummary] = Field(description="Newest first")
    note: str


def _plan(app: AppState, account: str | None, recipients: list[BulkRecipient] | None, recipients_csv: str | None,
          subject: str, body: str, attachments: list[str]) -> BulkPlan:
    if (recipients is None) == (recipients_csv is None):
        raise InputError("Give either recipients or recipients_csv (exactly one of them)")
    chosen = app.account(account)
    app.channel(chosen)  # a clear ConfigError now (the account cannot send) rather than a failing job later
    if recipients_csv is not None:
        rows = read_recipients_csv(recipients_csv, app.settings.attachments.resolved_dirs())
    else:
        rows = inline_recipients([r.model_dump() for r in recipients or []])
    return plan_bulk(recipients=rows, subject=subject, body=body, attachments=attachments, settings=app.settings,
                     row_word="row" if recipients_csv is not None else "recipient", account=chosen)


def _duration(app: AppState, plan: BulkPlan) -> tuple[float, int]:
    ahead = JobStore(app.store).queued_requests(app.environment, plan.account.name)
    return round((len(plan.requests) + ahead) / plan.account.requests_per_second, 1), ahead


def job_account(app: AppState, job: Job) -> Account | None:
    """The account of a job as configured now (None when it is no longer configured: its job cannot move on)."""
    try:
        return resolve_account(app.settings, job.account)
    except InputError:
        return None


def job_rate(app: AppState, job: Job) -> float:
    account = job_account(app, job)
    return account.requests_per_second if account else app.settings.sending.requests_per_second


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _question(app: AppState, plan: BulkPlan) -> str:
    # Only facts of this job: the question must read the same when the client comes back with the answer (a
    # changed question is asked again), while other jobs' queues move on every second.
    rate = plan.account.requests_per_second
    seconds = round(len(plan.requests) / rate, 1)
    queue = ", plus any requests of other jobs already queued"
    sender = f"{plan.account.name} ({plan.account.address})" if plan.account.address else plan.account.name
    return (
        f"Start a bulk PEC job (certified email with legal value) from the account {sender} to "
        f"{describe_recipients([r.address for r in plan.recipients])}, in {len(plan.requests)} request(s). "
        f"First message: subject \"{plan.preview.subject}\". Attachments: "
        f"{describe_files([(a.name, a.size) for a in plan.attachments])}. Estimated duration: about "
        f"{duration_text(seconds)} ({len(plan.requests)} requests at {rate:g} per second{queue}). Estimated cost: "
        f"€{plan.cost_eur:.2f}. Environment: {environment_label(plan.environment)}."
    )


async def _approve_bulk(
    ctx: Context[Any],
    recipients: list[BulkRecipient] | None,
    recipients_csv: str | None,
    subject: str,
    body: str,
    attachments: list[str],
    idempotency_key: str | None,
    dry_run: bool,
    confirm: bool,
    account: str | None = None,
) -> Elicit[Confirmation] | Approval:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        plan = _plan(app, account, recipients, recipients_csv, subject, body, attachments)
        if idempotency_key and not dry_run and _existing(app, plan, idempotency_key) is not None:
            # The job exists: the tool returns it and queues nothing, so there is nothing to ask.
            return Approval(True, "not_required", "")
    return gate(ctx, "start_bulk_pec", _question(app, plan), recipients=plan.total, dry_run=dry_run, confirm=confirm)


def job_report(app: AppState, job_id: str, *, shown: int = SHOWN_RECIPIENTS) -> BulkJobResult:
    jobs = JobStore(app.store)
    progress = jobs.progress(job_id)
    if progress is None:
        raise NotFound(f"There is no bulk job {job_id!r} in the local store", provider="pec-mcp",
                       hint="list_bulk_pec shows the recent jobs.")
    job, counts = progress.job, progress.counts
    rate = job_rate(app, job)
    left = progress.requests_by_state.get("queued", 0) + progress.requests_by_state.get("sending", 0)
    errors = jobs.recipients(job_id, states=("failed", "not_delivered"), limit=10)
    unknown = jobs.recipients(job_id, states=("unknown",), limit=100)
    verdicts = jobs.receipt_verdicts(job_id)

    def outcome(row: Any) -> RecipientOutcome:
        return RecipientOutcome(row=row.row, address=row.address, state=row.state, reason=row.reason,
                                signature=verdicts.get(row.address.lower()))

    return BulkJobResult(
        job_id=job.id, account=job.account, status=progress.status, cancelled=job.cancelled_at is not None,
        created_at=iso(job.created_at), subject=job.subject, total_recipients=job.total, requests=job.requests,
        requests_done=job.requests - left, counts=BulkCounts(**counts),
        # Departures are paced to the limit; the times measured here are when the answers were recorded, whose
        # jitter can read a hair faster than the pace the requests left at.
        achieved_rate_per_second=None if progress.achieved_rate is None else min(progress.achieved_rate, rate),
        limit_per_second=rate,
        eta_seconds=round((left + progress.queued_ahead) / rate, 1) if left else None,
        first_errors=[outcome(r) for r in errors], unknown_recipients=[r.address for r in unknown],
        recipients=[outcome(r) for r in jobs.recipients(job_id, limit=shown)], estimated_cost_eur=job.cost_eur,
        environment=job.environment, note=_note(progress, forged=sum(v == "invalid" for v in verdicts.values())),
    )


def _note(progress: Progress, *, forged: int = 0) -> str:
    counts = progress.counts
    parts = {
        "sending": "The job is sending in the background at the account's rate; call get_bulk_pec again later.",
        "awaiting_receipts": "Everything is sent; delivery receipts are being collected (up to 24 hours).",
        "finished": "The job is finished.",
        "cancelled": "The job was cancelled; what was sent before stays sent.",
    }
    note = parts[progress.status]
    if counts["unknown"]:
        note += (f" {counts['unknown']} recipient(s) are unknown: their request may or may not have gone out. They "
                 "are never resent automatically; check their receipts (find_pec_sendings) before sending again.")
    if counts["delivered"]:
        note += " Delivered means a CONSEGNA receipt: legal proof of delivery."
    if forged:
        note += (f" {forged} recipient(s) have receipts whose signature is invalid (forged or tampered): they are "
                 "never counted as proof, and their reason says so.")
    return note


def register(mcp: MCPServer[Any], holder: StateHolder) -> None:
    """Add the bulk tools and the job resource to the server."""
    from pec_mcp.server.bulk import retry

    retry.register(mcp, holder)

    @mcp.tool(title="Start a bulk PEC job", annotations=SEND)
    async def start_bulk_pec(
        ctx: Context[Any],
        subject: Subject,
        body: Body,
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_bulk)],
        recipients: Recipients = None,
        recipients_csv: RecipientsCsv = None,
        attachments: Attachments = [],  # noqa: B006 (pydantic copies defaults; the schema shows [])
        idempotency_key: IdempotencyKey = None,
        dry_run: DryRun = False,
        confirm: Confirm = False,
        account: AccountName = None,
    ) -> StartBulkResult:
        """Send PEC (certified email with legal value) to many recipients as a durable background job, at the
        account's rate, with {{variable}} personalisation of subject and body from the recipients list or a CSV.
        From PEC Massiva, or from a PEC mailbox over SMTP (account=, see list_pec_accounts).

        Costs money per recipient on PEC Massiva (nothing per message from a mailbox) and cannot be recalled once
        sent. Every row is checked before anything is sent (a bad address, a duplicate or a missing variable refuses
        the whole job, naming the rows). Use dry_run=true first to show the user the plan, duration, cost and a
        preview; the user is then asked to confirm (or, if this client cannot ask, you must ask and pass
        confirm=true only after they said yes). Returns at once with a job_id: follow it with get_bulk_pec. Always
        pass an idempotency_key.
        """
        app = state_of(ctx)
        with tool_errors(app.redactor):
            jobs = JobStore(app.store)
            plan = _plan(app, account, recipients, recipients_csv, subject, body, attachments)
            existing = _existing(app, plan, idempotency_key) if idempotency_key and not dry_run else None
            if existing is not None:
                return _duplicate_result(app, existing.id)
            seconds, _ = _duration(app, plan)
            if dry_run:
                return _start_result(app, plan, "preview", None, seconds)
            via = require_yes(approval)
            job, created = jobs.create(plan, idempotency_key=idempotency_key, attachment_paths=attachments,
                                       actor=actor_of(ctx, via), content=_content(plan))
            if not created:  # a concurrent start with the same key was first
                _existing(app, plan, idempotency_key)
                return _duplicate_result(app, job.id)
            _audit(app, ctx, via, plan, job.id)
            app.wake_runner()
            return _start_result(app, plan, "started", job.id, seconds)

    @mcp.tool(title="Progress of a bulk PEC job", annotations=LOCAL_READ, meta=view_meta(BULK_JOB_VIEW))
    async def get_bulk_pec(ctx: Context[Any], job_id: JobId) -> BulkJobResult:
        """How a bulk PEC job is going: recipients by state (queued, sent, delivered, not_delivered, failed,
        unknown, cancelled), the rate achieved, the time left, the first errors with reasons, and the recipients
        whose outcome is unknown (never resent automatically: check their receipts before sending again)."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            return job_report(app, job_id)

    @mcp.tool(title="Cancel a bulk PEC job", annotations=CHANGE)
    async def cancel_bulk_pec(ctx: Context[Any], job_id: JobId) -> CancelBulkResult:
        """Stop a bulk PEC job: recipients not yet sent are not sent. What was already sent stays sent (a PEC
        cannot be recalled), and its delivery receipts are still collected."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            jobs = JobStore(app.store)
            job = jobs.job(job_id)
            if job is None:
                raise NotFound(f"There is no bulk job {job_id!r} in the local store", provider="pec-mcp",
                               hint="list_bulk_pec shows the recent jobs.")
            before = job_report(app, job_id, shown=0).status
            # A job with nothing left to send is not cancelled: saying so would suggest something was stopped.
            stopped = jobs.cancel(job_id) if before in ("sending",) else 0
            app.store.record_audit(action="cancel_bulk_pec", actor=actor_of(ctx), environment=app.environment,
                                   summary=f"bulk job {job_id}", outcome=f"{stopped} recipient(s) not sent",
                                   ref=job_id, account=job.account)
            report = job_report(app, job_id, shown=0)
            counts = report.counts
            sent = counts.sent + counts.delivered + counts.not_delivered + counts.unknown + counts.sending
            return CancelBulkResult(job_id=job_id, cancelled_recipients=counts.cancelled, already_sent=sent,
                                    status=report.status, environment=report.environment,
                                    note=_cancel_note(before, stopped))

    @mcp.tool(title="List bulk PEC jobs", annotations=LOCAL_READ)
    async def list_bulk_pec(
        ctx: Context[Any],
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many, newest first")] = 20,
        environment: EnvironmentFilter = None,
    ) -> BulkJobList:
        """The recent bulk PEC jobs of this machine, newest first, with their status and counts: those of the
        server's current environment unless another environment (or "all") is asked for."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            summaries = []
            for job in JobStore(app.store).recent(limit, environment=environment_filter(app, environment)):
                if not may_see_account(job.account):  # another account's job: not this user's to see
                    continue
                report = job_report(app, job.id, shown=0)
                summaries.append(BulkJobSummary(job_id=job.id, account=job.account, created_at=report.created_at,
                                                subject=job.subject,
                                                status=report.status, total_recipients=job.total,
                                                counts=report.counts, environment=report.environment))
            shown = environment or app.environment
            where = "every environment" if shown == "all" else f"the {shown} environment"
            note = (f"{len(summaries)} job(s) ({where})." if summaries else
                    f"No bulk job was started on this machine in {where}.")
            return BulkJobList(jobs=summaries, note=note)

    @mcp.resource("pec://jobs/{job_id}", mime_type="application/json", title="A bulk PEC job")
    async def job_resource(job_id: str, ctx: Context[Any]) -> str:
        """Progress and per-recipient outcomes of one bulk PEC job (first 1,000 recipients); subscribers are told
        when it changes."""
        app = state_of(ctx)
        with resource_errors(app.redactor):
            return json.dumps(job_report(app, job_id, shown=1000).model_dump(), ensure_ascii=False, indent=2)


def _content(plan: BulkPlan) -> dict[str, Any]:
    return bulk_content(plan, [(a.name, a.size, file_sha256(a.path)) for a in plan.attachments])


def _existing(app: AppState, plan: BulkPlan, idempotency_key: str | None) -> Any:
    """The job this key started here before, if any; KeyReused when it was started for other content."""
    return JobStore(app.store).check_key(app.environment, plan.account.name, idempotency_key, _content(plan),
                                         [r.address for r in plan.recipients])


def _audit(app: AppState, ctx: Context[Any], via: str, plan: BulkPlan, job_id: str) -> None:
    app.store.record_audit(
        action="start_bulk_pec", actor=actor_of(ctx, via), environment=app.environment,
        summary=f"bulk job from {plan.account.name} to {describe_recipients([r.address for r in plan.recipients])} "
        f"in {len(plan.requests)} request(s): \"{plan.subject}\"", outcome="started", ref=job_id,
        account=plan.account.name,
    )


def _start_result(app: AppState, plan: BulkPlan, status: str, job_id: str | None, seconds: float) -> StartBulkResult:
    note = ("Preview only: nothing was sent. " + _question(app, plan) if status == "preview" else
            "The job runs in the background at the account's rate; follow it with get_bulk_pec.")
    return StartBulkResult(
        status=status, job_id=job_id, account=plan.account.name, total_recipients=plan.total,
        requests=len(plan.requests),
        estimated_duration_seconds=seconds, estimated_cost_eur=plan.cost_eur,
        attachments=[AttachmentInfo(name=a.name, size_bytes=a.size) for a in plan.attachments],
        preview=MessagePreview(to=plan.preview.to, subject=plan.preview.subject,
                               body=plan.preview.body[:PREVIEW_CHARS]),
        environment=app.environment, note=note,
    )


def _duplicate_result(app: AppState, job_id: str) -> StartBulkResult:
    report = job_report(app, job_id, shown=0)
    return StartBulkResult(
        status="duplicate", job_id=job_id, account=report.account, total_recipients=report.total_recipients,
        requests=report.requests,
        estimated_duration_seconds=report.eta_seconds or 0.0, estimated_cost_eur=report.estimated_cost_eur,
        attachments=[], preview=None, environment=report.environment,
        note=f"This idempotency key started job {job_id} before: nothing new was queued. It is {report.status}; "
        "follow it with get_bulk_pec.",
    )
