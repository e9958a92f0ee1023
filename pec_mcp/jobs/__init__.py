"""Bulk PEC jobs: planning (CSV, templates, grouping into requests), the job tables, and the job runner.

A job is planned whole before anything is sent: every row is read, its address checked and its subject and body
rendered, and the recipients whose rendered message is identical are put into requests of at most
``max_recipients_per_request`` recipients and ``max_request_mb`` of recipients × message size. Personalised
messages go one request each.

A job belongs to one account. The runner sends the queued requests ("groups") in order, through that account's
channel (``pec_mcp.channels``: PEC Massiva's paced API, or a mailbox's paced SMTP) and the same send ledger as
``send_pec`` (one ledger row per request, keyed ``bulk:<job>:<seq>``), so the account's limit holds for every
tool, job and process sharing the store, and a request is never sent twice. A group moves
``queued -> sending -> sent | failed | unknown | cancelled``; its recipients follow, and after sending move on to
``delivered`` or ``not_delivered`` from the receipts. A group left ``sending`` by a process that died is looked up
in the ledger: never dispatched, it is queued again; possibly on the wire, it is ``unknown`` and never resent.

Modules: ``recipients`` (call arguments and CSV files), ``planning`` (templates, checks, grouping, ``plan_bulk``),
``store`` (the job tables), ``notify`` (change notifications), ``runner`` (sending, recovery, receipts).
Nothing here knows MCP.
"""

from __future__ import annotations

from pec_mcp.jobs.notify import job_uri
from pec_mcp.jobs.planning import BulkPlan, account_of, group_requests, plan_bulk, render
from pec_mcp.jobs.recipients import (
    RecipientRow,
    inline_recipients,
    parse_recipients_csv,
    read_recipients_csv,
    sniff_delimiter,
)
from pec_mcp.jobs.runner import NO_RECEIPT_REASON, FollowUpPolicy, JobRunner
from pec_mcp.jobs.store import JobStore, Progress, ledger_key

__all__ = [
    "NO_RECEIPT_REASON",
    "BulkPlan",
    "FollowUpPolicy",
    "JobRunner",
    "JobStore",
    "Progress",
    "RecipientRow",
    "account_of",
    "group_requests",
    "inline_recipients",
    "job_uri",
    "ledger_key",
    "parse_recipients_csv",
    "plan_bulk",
    "read_recipients_csv",
    "render",
    "sniff_delimiter",
]
