"""Planning a bulk job: templates rendered and recipients checked for every row, then grouped into requests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pec_mcp.accounts import Account, default_account_name, resolve_account
from pec_mcp.config import Settings
from pec_mcp.errors import InputError, LimitExceeded
from pec_mcp.idempotency import describe
from pec_mcp.jobs.recipients import RecipientRow
from pec_mcp.paths import MB
from pec_mcp.sending import MAX_SUBJECT, check_call_size, load_attachments, normalise_address

if TYPE_CHECKING:
    from pec_mcp.providers.pecmassiva import Attachment

SHOWN_PROBLEMS = 20


# -- templates ----------------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_variables(template: str) -> set[str]:
    return {m.group(1).lower() for m in _VARIABLE.finditer(template)}


def render(template: str, variables: Mapping[str, str]) -> str:
    """``{{name}}`` replaced by the variable (names case-insensitive); every name must be present."""
    return _VARIABLE.sub(lambda m: variables[m.group(1).lower()], template)


def _variables_of(row: RecipientRow, address: str) -> dict[str, str]:
    # The address itself may be used in the text ("Spett.le {{address}}").
    return {"address": address, **row.variables}


# -- grouping ---------------------------------------------------------------------------------------------------


def group_requests(messages: Sequence[tuple[bytes, int]], *, max_recipients: int, max_bytes: float) -> list[list[int]]:
    """Split recipients into requests: identical messages together, within both limits; order of first sight.

    ``messages`` holds, per recipient, the key of its rendered message and the message size. Returns, per request,
    the indexes of its recipients. A message too large for even one recipient raises LimitExceeded.
    """
    by_key: dict[bytes, list[int]] = {}
    sizes: dict[bytes, int] = {}
    for index, (key, size) in enumerate(messages):
        by_key.setdefault(key, []).append(index)
        sizes[key] = size
    requests: list[list[int]] = []
    for key, members in by_key.items():
        per_request = min(max_recipients, int(max_bytes // max(sizes[key], 1)))
        if per_request < 1:
            raise LimitExceeded(
                f"One message is {sizes[key] / MB:.1f} MB, more than a request may carry "
                f"({max_bytes / MB:g} MB, sending.max_request_mb)",
                hint="Send smaller attachments.",
            )
        requests.extend(members[i : i + per_request] for i in range(0, len(members), per_request))
    return requests


def message_key(subject: str, body: str) -> bytes:
    return hashlib.sha256(subject.encode() + b"\x00" + body.encode()).digest()


@dataclass(frozen=True)
class Preview:
    """The first message as its recipient will see it."""

    to: str
    subject: str
    body: str


@dataclass(frozen=True)
class BulkPlan:
    """A checked bulk sending from one account: recipients (addresses normalised), templates, attachments and the
    requests."""

    account: Account
    recipients: list[RecipientRow]
    subject: str
    body: str
    attachments: list[Attachment]
    requests: list[list[int]]  # indexes into recipients
    request_bytes: list[int]  # the message size of each request's message
    cost_eur: float
    environment: str
    preview: Preview

    @property
    def total(self) -> int:
        return len(self.recipients)


def plan_bulk(
    *,
    recipients: Sequence[RecipientRow],
    subject: str,
    body: str,
    attachments: Sequence[str],
    settings: Settings,
    row_word: str = "row",
    account: Account | None = None,
) -> BulkPlan:
    """Check every recipient and render every message before anything is sent; InputError names the bad rows.

    ``account`` sends the job (default: the default account). Whether it can send is the caller's to check (its
    channel says so: ``pec_mcp.channels``); the requests are grouped the same way for every account, by the PEC
    rules' limits (recipients per message, recipients × size).
    """
    account = account or resolve_account(settings, None)
    if not recipients:
        raise InputError("No recipient was given", hint="Give recipients or a CSV file with at least one row.")
    check_call_size(len(recipients), settings, what="job", split_into="jobs")
    if not subject.strip():
        raise InputError("The subject is empty", hint="A PEC needs a subject.")
    if not body.strip():
        raise InputError("The body is empty", hint="Write the text of the PEC (plain text or HTML).")
    files = load_attachments(attachments, settings)
    file_bytes = sum(a.size for a in files)
    problems: list[str] = []
    seen: dict[str, int] = {}
    checked: list[RecipientRow] = []
    keys: list[tuple[bytes, int]] = []
    preview: Preview | None = None
    needed = template_variables(subject) | template_variables(body)
    allowed = settings.sending.allowed_recipient_domains
    for row in recipients:
        where = f"{row_word} {row.row}"
        try:
            address = normalise_address(row.address)
        except InputError:
            problems.append(f"{where}: {row.address!r} is not a valid email address")
            continue
        if address.lower() in seen:
            problems.append(f"{where}: {address} is also on {row_word} {seen[address.lower()]}")
            continue
        seen[address.lower()] = row.row
        domain = address.rsplit("@", 1)[1]
        if allowed and not any(domain == d or domain.endswith("." + d) for d in allowed):
            problems.append(f"{where}: {address} is outside the allowed domains ({', '.join(allowed)})")
            continue
        variables = _variables_of(row, address)
        missing = sorted(needed - variables.keys())
        if missing:
            problems.append(f"{where}: no value for " + ", ".join("{{" + m + "}}" for m in missing))
            continue
        rendered_subject, rendered_body = render(subject, variables).strip(), render(body, variables)
        if len(rendered_subject) > MAX_SUBJECT or "\n" in rendered_subject or "\r" in rendered_subject:
            problems.append(f"{where}: the subject is not one line of at most {MAX_SUBJECT} characters")
            continue
        if preview is None:
            preview = Preview(address, rendered_subject, rendered_body)
        checked.append(RecipientRow(row.row, address, row.variables))
        size = len(rendered_subject.encode()) + len(rendered_body.encode()) + file_bytes
        keys.append((message_key(rendered_subject, rendered_body), size))
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise InputError(f"The job was refused and nothing was sent: {len(problems)} problem(s) in the "
                         f"recipients: {shown}{more}", hint="Correct these rows (or remove them) and start again.")
    assert preview is not None
    requests = group_requests(keys, max_recipients=settings.sending.max_recipients_per_request,
                              max_bytes=settings.sending.max_request_mb * MB)
    return BulkPlan(
        account=account, recipients=checked, subject=subject.strip(), body=body, attachments=files,
        requests=requests, request_bytes=[keys[r[0]][1] for r in requests],
        cost_eur=round(len(checked) * account.price_per_message_eur, 2),
        environment=settings.env, preview=preview,
    )


def account_of(settings: Settings) -> str:
    """The account a job belongs to when none is named: the default account (runners take jobs by environment and
    account)."""
    return default_account_name(settings) or "pecmassiva"


def bulk_content(plan: BulkPlan, files: Sequence[tuple[str, int, str]]) -> dict[str, Any]:
    """What an idempotency key of a job stands for: recipients with their variables, the subject and body
    templates, and the attachments (name, size, sha256)."""
    return describe(recipients=[r.address for r in plan.recipients], subject=plan.subject, body=plan.body,
                    files=files, recipient_details=[[r.address.lower(), r.variables] for r in plan.recipients])
