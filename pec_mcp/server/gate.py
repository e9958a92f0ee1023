"""The confirmation gate: paid or legal actions go ahead only with the user's yes.

A tool declares a parameter ``approval: Annotated[ElicitationResult[Confirmation], Resolve(its_resolver)]``. The
resolver checks the request (so that the user is never asked about something that would fail), builds the question
from what the server computed, and then:

- with ``dry_run``: asks nothing (the tool only previews);
- when ``sending.confirm`` does not require a yes for this action: approves;
- when the client can elicit: asks the user through MCP elicitation (the model's ``confirm`` is not enough);
- otherwise: takes the ``confirm`` argument, which the tool descriptions reserve for after the user said yes.

The tool body then calls :func:`require_yes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit
from pydantic import BaseModel, Field

from pec_mcp.errors import NotConfirmed
from pec_mcp.sending import Action, needs_confirmation
from pec_mcp.server.http.users import actor_name
from pec_mcp.server.state import AppState


class Confirmation(BaseModel):
    """The form shown to the user."""

    confirm: bool = Field(description="Yes, go ahead")


@dataclass(frozen=True)
class Approval:
    """An approval reached without asking (dry run, not required, or the confirm argument)."""

    confirmed: bool
    via: Literal["dry_run", "not_required", "confirm_argument"]
    question: str


def state_of(ctx: Context[Any]) -> AppState:
    state: AppState = ctx.request_context.lifespan_context
    return state


def actor_of(ctx: Context[Any], via: str | None = None) -> str:
    """Who asked, for the audit trail: the user (when the server has users), the client's declared name and
    version, and how the action was approved."""
    try:
        params = ctx.session.client_params
        info = params.client_info if params is not None else None
    except (AttributeError, LookupError):
        info = None
    name = f"{info.name} {info.version}".strip() if info is not None else "unknown MCP client"
    return actor_name(f"{name} ({via})" if via else name)


def can_elicit(ctx: Context[Any]) -> bool:
    caps = ctx.client_capabilities
    return caps is not None and caps.elicitation is not None


def gate(
    ctx: Context[Any], action: Action, question: str, *, recipients: int, dry_run: bool, confirm: bool
) -> Elicit[Confirmation] | Approval:
    """Decide how this action is approved; see the module docstring."""
    if dry_run:
        return Approval(False, "dry_run", question)
    if not needs_confirmation(state_of(ctx).settings, action, recipients):
        return Approval(True, "not_required", question)
    if can_elicit(ctx):
        return Elicit(question + " Do you confirm?", Confirmation)
    return Approval(confirm, "confirm_argument", question)


def require_yes(approval: ElicitationResult[Any]) -> str:
    """Raise NotConfirmed unless the action was approved; returns how it was approved (for the audit trail)."""
    if isinstance(approval, AcceptedElicitation):
        data = approval.data
        if isinstance(data, Approval):
            if data.confirmed:
                return data.via
            raise NotConfirmed(
                "This action needs the user's explicit yes and this client cannot ask them directly. "
                f"Ask the user exactly this: {data.question}"
            )
        if isinstance(data, Confirmation) and data.confirm:
            return "user_confirmed"
        raise NotConfirmed("The user did not confirm; nothing was done", hint="Ask the user what to change.")
    raise NotConfirmed(
        f"The user {'declined' if approval.action == 'decline' else 'cancelled'}; nothing was done",
        hint="Do not retry unless the user asks for it.",
    )
