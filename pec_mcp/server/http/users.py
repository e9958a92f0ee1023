"""Who is asking: one bearer token per person or agent (``[http.users.<name>]``), and what each may see and do.

The HTTP transport authenticates every ``/mcp`` request (see :class:`pec_mcp.server.http.app.BearerAuth`) and puts
the :class:`User` in the ASGI scope. :func:`user_middleware` copies it, for each MCP message, into a context
variable, so that anything below the handler (tools, the confirmation gate, the audit trail) finds it with
:func:`current_user`. A server without users (stdio, or HTTP with the single ``http.auth_token``) has no current
user: everything is allowed, as before.

What a user may do is checked in one place, :func:`refusal`: the tool's toolset, read-only, and the account the
call will really use, found as the tools find it (:class:`CallAccounts`: the ``account`` argument or the default
account, the job's account for a ``job_id``, the sending's for a ``message_id``). Listings (``tools/list``) show
only what the user may call.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from pec_mcp.config import Settings
from pec_mcp.errors import InputError
from pec_mcp.store import AuditView, Store

# Where the HTTP authentication leaves the user in the ASGI scope.
SCOPE_KEY = "pec_mcp.user"

# The account of each toolset whose tools act on one, when the call itself says nothing more: the pec and bulk tools
# use the account they are given or the default one (see CallAccounts), the certified tools always Mensatek's.
# The mailbox toolset manages mailboxes through openapi.it and acts on no sending account.
TOOLSET_ACCOUNT = {"pec": "pecmassiva", "bulk": "pecmassiva", "certified": "mensatek"}
PEC_ACCOUNT_TOOLSETS = frozenset({"pec", "bulk"})  # their calls use a PEC account: PEC Massiva or a mailbox


@dataclass(frozen=True)
class User:
    """A person or agent with their own token: their name, toolsets, read-only switch and accounts."""

    name: str
    toolsets: frozenset[str]
    read_only: bool
    accounts: frozenset[str] | None  # None: every account

    def may_use_account(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts


_current: ContextVar[User | None] = ContextVar("pec_mcp_user", default=None)


def current_user() -> User | None:
    """The user of the request being handled; None without users (stdio, or the single shared token)."""
    return _current.get()


def users_of(settings: Settings) -> dict[str, User]:
    """The configured users by name; toolsets default to ``tools.enabled``."""
    return {
        name: User(name=name, toolsets=frozenset(entry.toolsets or settings.tools.enabled),
                   read_only=entry.read_only,
                   accounts=None if entry.accounts is None else frozenset(entry.accounts))
        for name, entry in settings.http.users.items()
    }


class TokenTable:
    """Finds the user of a bearer token, comparing with every token in constant time (no early exit)."""

    def __init__(self, settings: Settings) -> None:
        users = users_of(settings)
        self._entries = [(f"Bearer {entry.token.get_secret_value()}".encode(), users[name])
                         for name, entry in settings.http.users.items()]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def find(self, authorization: bytes) -> User | None:
        found = None
        for expected, user in self._entries:
            if hmac.compare_digest(authorization, expected):
                found = user
        return found


async def user_middleware(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Make the user the HTTP layer authenticated the current user while this MCP message is handled."""
    token = _current.set(user_of_request(ctx))
    try:
        return await call_next(ctx)
    finally:
        _current.reset(token)


def user_of_request(ctx: ServerRequestContext[Any, Any]) -> User | None:
    """The user the HTTP layer authenticated for this message (read from the request, not the context variable)."""
    scope = getattr(ctx.request, "scope", None)
    user = scope.get(SCOPE_KEY) if isinstance(scope, Mapping) else None
    return user if isinstance(user, User) else None


def principal(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """What a sealed confirmation is bound to: the user's name, so that one user cannot answer another's.

    The SDK checks it before any middleware runs, so it is read from the request itself.
    """
    user = user_of_request(ctx)
    return None if user is None else f"user:{user.name}"


def actor_name(client: str) -> str:
    """Who acted, for the audit trail and the ledger: the user's name when known, with the client they used."""
    user = current_user()
    return client if user is None else f"{user.name} via {client}"


# -- what a user may do -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolFacts:
    """What the permission check needs to know about a tool."""

    toolset: str | None  # None: available with any toolset (e.g. the ledger resource's companions)
    read_only: bool


class CallAccounts:
    """Which PEC account a call will really use, found the way the tools find it (``pec_mcp.accounts``, the job
    tables, the ledger), so that the permission check and the tool never disagree."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def named(self, name: str | None) -> str | None:
        """The account a tool uses for its ``account`` argument: that account, else the default one. An unknown
        name is returned as given (the tool refuses it); None when no account is the default (the tool asks)."""
        from pec_mcp.accounts import resolve_account

        try:
            return resolve_account(self.settings, name).name
        except InputError:
            return name.strip().lower() if name and name.strip() else None

    def of_job(self, job_id: str) -> str | None:
        from pec_mcp.jobs.store import JobStore

        job = JobStore(self.store).job(job_id)
        return None if job is None else job.account

    def of_sending(self, message_id: str) -> str | None:
        row = self.store.sending_by_message_id(message_id, environment=self.settings.env)
        return None if row is None else sending_account(row)


def account_of_call(toolset: str | None, arguments: Mapping[str, Any],
                    accounts: CallAccounts | None = None) -> str | None:
    """The account a tool call acts on, or None when it acts on none (or cannot tell yet: the tool then refuses).

    A bulk job's tools act on the job's account; a sending's receipts on the account that sent it (PEC Massiva for
    a sending the ledger does not know: only its receipts API can be asked); the other pec and bulk tools on their
    ``account`` argument, else the default account. Without ``accounts`` (no running server) the argument, else
    the toolset's account.
    """
    named = arguments.get("account")
    named = named if isinstance(named, str) and named.strip() else None
    if toolset not in PEC_ACCOUNT_TOOLSETS or accounts is None:
        return named or TOOLSET_ACCOUNT.get(toolset or "")
    job_id, message_id = arguments.get("job_id"), arguments.get("message_id")
    if isinstance(job_id, str) and job_id:
        return accounts.of_job(job_id) or accounts.named(named)
    if isinstance(message_id, str) and message_id:
        return accounts.of_sending(message_id) or "pecmassiva"
    return accounts.named(named)


def refusal(user: User | None, tool: str, facts: ToolFacts | None, arguments: Mapping[str, Any],
            accounts: CallAccounts | None = None) -> str | None:
    """Why ``user`` may not call ``tool`` with these arguments, or None when they may."""
    if user is None:
        return None
    if facts is None:
        return f"There is no tool named {tool!r} for user {user.name}."
    if facts.toolset is not None and facts.toolset not in user.toolsets:
        return (f"User {user.name} may not use {tool!r} (toolset {facts.toolset!r}); their toolsets are "
                f"{', '.join(sorted(user.toolsets)) or 'none'}. Ask the administrator if you need it.")
    if user.read_only and not facts.read_only:
        return (f"User {user.name} has read-only access: {tool!r} changes something and is not available. "
                "Ask someone with write access, or the administrator.")
    account = account_of_call(facts.toolset, arguments, accounts)
    if account is not None and not user.may_use_account(account):
        allowed = ", ".join(sorted(user.accounts or ())) or "none"
        return f"User {user.name} may not use the account {account!r}; their accounts are: {allowed}."
    return None


def visible(user: User | None, facts: ToolFacts | None) -> bool:
    """Whether a tool is listed for the user (its account is checked when it is called)."""
    if user is None:
        return True
    if facts is None:
        return False
    if facts.toolset is not None and facts.toolset not in user.toolsets:
        return False
    if user.read_only and not facts.read_only:
        return False
    # A user with no account at all has nothing to use the account tools on.
    return not (facts.toolset in TOOLSET_ACCOUNT and user.accounts is not None and not user.accounts)


# The toolset and account behind each resource, by URI prefix; the ledger is every toolset's.
RESOURCE_FACTS = (
    ("pec://ledger", None, None),
    ("pec://jobs/", "bulk", "pecmassiva"),
    ("pec://mailboxes/", "mailbox", None),
    ("pec://", "pec", "pecmassiva"),
    ("certified://", "certified", "mensatek"),
)


def resource_refusal(user: User | None, uri: str, accounts: CallAccounts | None = None) -> str | None:
    """Why ``user`` may not read ``uri``, or None when they may (resources are reads: read-only users may).

    A job's resource belongs to the job's account, a sending's to the account that sent it (as for the tools)."""
    if user is None:
        return None
    for prefix, toolset, account in RESOURCE_FACTS:
        if uri.startswith(prefix):
            if accounts is not None and prefix == "pec://jobs/":
                account = accounts.of_job(uri.removeprefix(prefix)) or account
            elif accounts is not None and uri.startswith("pec://sendings/"):
                account = accounts.of_sending(uri.removeprefix("pec://sendings/")) or account
            if toolset is not None and toolset not in user.toolsets:
                return f"User {user.name} may not read {uri} (toolset {toolset!r})."
            if account is not None and not user.may_use_account(account):
                return f"User {user.name} may not read {uri} (account {account!r})."
            return None
    return None


def may_see_account(account: str) -> bool:
    """Whether the current user may see ledger rows, jobs and events of ``account`` (always without users)."""
    user = current_user()
    return user is None or user.may_use_account(account)


def sending_account(row: Any) -> str:
    """The account of a ledger row: its own ``account``, else the one its provider stands for."""
    account = getattr(row, "account", None)
    return str(account) if account else str(row.provider)


def audit_view(facts: Mapping[str, ToolFacts]) -> AuditView | None:
    """The audit entries the current user may see (None: all, without users): those of tools they may use, on
    accounts they may use. An entry of no account: openapi.it's mailbox actions concern none; an older entry of
    another toolset may concern any, so only users with every account see it."""
    user = current_user()
    if user is None:
        return None
    actions = {name for name, tool in facts.items() if tool.toolset is None or tool.toolset in user.toolsets}
    accountless = {name for name in actions if user.accounts is None or facts[name].toolset not in TOOLSET_ACCOUNT}
    return AuditView(actions, user.accounts, accountless)


def visible_accounts() -> frozenset[str] | None:
    """The accounts whose ledger rows the current user may see; None: every account (and without users).

    A search filters on them in the database, so that a limit counts only rows the user may see.
    """
    user = current_user()
    return None if user is None else user.accounts
