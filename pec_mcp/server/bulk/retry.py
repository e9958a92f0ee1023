"""``retry_bulk_pec``: send again the recipients of a bulk job that were refused, or checked as not received.

Exactly once still holds: a refused request (its ledger row says nothing left) goes again on the same ledger key,
so a second retry, a crash or another replica can never send it twice; a request whose outcome was unknown goes
again only when the user says it did not arrive, on a new key tied to that unknown attempt.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from pydantic import BaseModel, Field

from pec_mcp.config import environment_label
from pec_mcp.errors import InputError, NotFound
from pec_mcp.jobs import JobStore
from pec_mcp.jobs.store import Job, RetryCandidates
from pec_mcp.sending import describe_recipients
from pec_mcp.server.annotations import SEND
from pec_mcp.server.bulk.tools import job_account
from pec_mcp.server.errors import tool_errors
from pec_mcp.server.gate import Approval, Confirmation, actor_of, gate, require_yes, state_of
from pec_mcp.server.pec.models import ENV_FIELD, Environment
from pec_mcp.server.state import AppState, StateHolder

SHOWN = 25
Which = Literal["failed", "unknown_checked"]
WHAT = {
    "failed": "that were refused before anything was sent (e.g. 'too many requests')",
    "unknown_checked": "whose first request had an unknown outcome and who were checked NOT to have received it "
                       "(if any of them did receive it, they will receive it twice)",
}


class LeftAlone(BaseModel):
    reason: str
    recipients: int


class RetryBulkResult(BaseModel):
    job_id: str
    status: Literal["preview", "queued", "nothing_to_retry"] = Field(
        description="preview: dry run, nothing queued; queued: the runner sends them again at the provider's rate "
        "(follow with get_bulk_pec); nothing_to_retry: no recipient of that kind")
    which: Which
    total_recipients: int = Field(description="Recipients queued again (or that would be, for a preview)")
    requests: int
    recipients: list[str] = Field(description="The first of them")
    estimated_cost_eur: float = Field(description="Computed by the server from the list price")
    left_alone: list[LeftAlone] = Field(description="Recipients this call does not send again, and why")
    environment: Environment = ENV_FIELD
    note: str


def _job(app: AppState, job_id: str) -> Job:
    job = JobStore(app.store).job(job_id)
    if job is None:
        raise NotFound(f"There is no bulk job {job_id!r} in the local store", provider="pec-mcp",
                       hint="list_bulk_pec shows the recent jobs.")
    if job.cancelled_at is not None:
        raise InputError(f"Job {job_id} was cancelled: nothing of it is sent again",
                         hint="Start a new job (start_bulk_pec) for the recipients you still want to reach.")
    return job


def _cost(app: AppState, job: Job, found: RetryCandidates) -> float:
    account = job_account(app, job)
    price = account.price_per_message_eur if account else app.settings.sending.price_per_message_eur
    return round(len(found.addresses) * price, 2)


def _question(app: AppState, job: Job, which: Which, found: RetryCandidates) -> str:
    return (f"Send again, in bulk job {job.id} (\"{job.subject}\", account {job.account}), the "
            f"{len(found.addresses)} recipient(s) {WHAT[which]}: {describe_recipients(found.addresses)}. Requests: "
            f"{len(found.groups)}. Estimated cost: €{_cost(app, job, found):.2f}. Environment: "
            f"{environment_label(job.environment)}.")


async def _approve_retry(ctx: Context[Any], job_id: str, which: Which, dry_run: bool, confirm: bool
                         ) -> Elicit[Confirmation] | Approval:
    app = state_of(ctx)
    with tool_errors(app.redactor):
        job = _job(app, job_id)
        found = JobStore(app.store).retry_candidates(job_id, which)
    if not found.groups:
        return Approval(True, "not_required", "")  # nothing would be sent: nothing to ask
    return gate(ctx, "retry_bulk_pec", _question(app, job, which, found), recipients=len(found.addresses),
                dry_run=dry_run, confirm=confirm)


def _result(app: AppState, job: Job, which: Which, status: str, found: RetryCandidates, note: str
            ) -> RetryBulkResult:
    return RetryBulkResult(
        job_id=job.id, status=status, which=which, total_recipients=len(found.addresses), requests=len(found.groups),
        recipients=found.addresses[:SHOWN], estimated_cost_eur=_cost(app, job, found),
        left_alone=[LeftAlone(reason=r, recipients=n) for r, n in found.left_alone.items()],
        environment=app.environment, note=note)


def register(mcp: MCPServer[Any], holder: StateHolder) -> None:
    @mcp.tool(title="Send again the refused recipients of a bulk PEC job", annotations=SEND)
    async def retry_bulk_pec(
        ctx: Context[Any],
        job_id: Annotated[str, Field(min_length=1, max_length=64, description="The job_id of start_bulk_pec")],
        approval: Annotated[ElicitationResult[Confirmation], Resolve(_approve_retry)],
        which: Annotated[Which, Field(description="'failed': recipients refused before anything was sent (safe: "
                                      "the ledger proves nothing left). 'unknown_checked': recipients whose outcome "
                                      "was unknown, ONLY after the user checked they did not receive it (no "
                                      "ACCETTAZIONE or CONSEGNA receipt for them): otherwise they may get it twice")]
        = "failed",
        dry_run: Annotated[bool, Field(description="true: show who would be sent again and the cost; nothing is "
                                       "queued")] = False,
        confirm: Annotated[bool, Field(description="Only for clients that cannot show a confirmation prompt: set "
                                       "true ONLY after the user explicitly said yes to this retry")] = False,
    ) -> RetryBulkResult:
        """Queue again the recipients of a bulk job that did not go out, so the job runner sends them at the
        provider's rate. Costs money per recipient, like start_bulk_pec, and passes the same confirmation. Use
        which='failed' for recipients refused before sending (get_bulk_pec shows them as failed); use
        which='unknown_checked' only after the user confirmed that recipients shown as unknown did NOT receive
        the message. Each request still goes at most once per retry: calling it twice queues nothing new."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            job = _job(app, job_id)
            jobs = JobStore(app.store)
            if dry_run:
                found = jobs.retry_candidates(job_id, which)
                return _result(app, job, which, "preview" if found.groups else "nothing_to_retry", found,
                               "Preview only: nothing was queued. " + _question(app, job, which, found)
                               if found.groups else "No recipient of that kind: nothing to send again.")
            via = require_yes(approval)
            found = jobs.requeue(job_id, which)
            if not found.groups:
                return _result(app, job, which, "nothing_to_retry", found,
                               "No recipient of that kind: nothing was queued.")
            app.store.record_audit(action="retry_bulk_pec", actor=actor_of(ctx, via), environment=app.environment,
                                   summary=f"bulk job {job_id}: {which}, {describe_recipients(found.addresses)}",
                                   outcome="queued", ref=job_id, account=job.account)
            app.wake_runner()
            return _result(app, job, which, "queued", found, "Queued again: the job runner sends them at the "
                           "provider's rate; follow with get_bulk_pec.")
