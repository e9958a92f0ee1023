"""PEC accounts: the ``list_pec_accounts`` tool, and the PEC tools' answers for IMAP/SMTP accounts.

The tools of the ``pec`` toolset resolve their ``account`` argument (``AppState.account``); for an IMAP account
they call the functions here, which speak through ``pec_mcp.mail_accounts`` and answer with the same models as
for PEC Massiva, so a model reading the answers sees one shape whatever the account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from pec_mcp.accounts import Account, default_account_name, list_accounts
from pec_mcp.errors import NotFound
from pec_mcp.paths import MB
from pec_mcp.receipts import ReceiptKind
from pec_mcp.sending import PecMessage
from pec_mcp.server.annotations import LOCAL_READ
from pec_mcp.server.errors import tool_errors
from pec_mcp.server.gate import Confirmation, require_yes, state_of
from pec_mcp.server.http.users import visible_accounts
from pec_mcp.server.pec.account_models import AccountInfo, AccountsResult
from pec_mcp.server.pec.models import (
    CertificationFacts,
    DeletedResult,
    InboxEntry,
    InboxPageResult,
    PecMessageResult,
    QuotaResult,
    ReceiptInfo,
    ReceiptsResult,
    ReceivedAttachment,
    RecipientReceipt,
    receipt_note,
)
from pec_mcp.server.state import AppState
from pec_mcp.store import Sending, iso
from pec_mcp.times import as_utc

if TYPE_CHECKING:  # the mail parsing and its crypto load with the first IMAP read, not with the server
    from pec_mcp.pecmail.daticert import Daticert
    from pec_mcp.pecmail.message import PecMessage as MailMessage

AccountName = Annotated[str | None, Field(max_length=40, description="The PEC account to use (list_pec_accounts "
                                          "names them); default: the configured default account")]


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(title="List the PEC accounts", annotations=LOCAL_READ)
    async def list_pec_accounts(ctx: Context[Any]) -> AccountsResult:
        """The PEC accounts this server can use: the PEC Massiva account ('pecmassiva') and every PEC mailbox
        reached over IMAP/SMTP (Aruba, Legalmail, Namirial, Poste, Register.it, others), with the address, the
        environment, whether each can send and read, and which one is the default. Pass a name as account= to
        send_pec, list_pec_inbox, read_pec_message, delete_pec_message, get_pec_quota, find_pec_sendings and
        start_bulk_pec."""
        app = state_of(ctx)
        with tool_errors(app.redactor):
            default = default_account_name(app.settings)
            return AccountsResult(accounts=[_info(a, default) for a in list_accounts(app.settings)],
                                  default_account=default)


def _info(account: Account, default: str | None) -> AccountInfo:
    return AccountInfo(name=account.name, address=account.address, kind=account.kind, provider=account.provider,
                       environment=account.environment,
                       can_send=account.can_send, can_read=account.can_read, default=account.name == default,
                       note=account.note)


async def imap_inbox(app: AppState, account: Account, query: str | None, page: int) -> InboxPageResult:
    from pec_mcp.mail_accounts import header_kind

    found = await app.mail_account(account).inbox(query=query, page=page)
    entries = [InboxEntry(inbox_id=m.uid, date=m.date, sender=m.sender, subject=m.subject, kind=header_kind(m),
                          message_id=m.refers_to) for m in found.messages]
    return InboxPageResult(page=found.page, pages=found.pages, total=found.total, messages=entries, query=query,
                           source="index", index_synced_at=iso(found.synced_at) if found.synced_at else None,
                           environment=app.environment, account=account.name)


async def imap_message(app: AppState, account: Account, inbox_id: int,
                       save_attachments_to: str | None = None) -> PecMessageResult:
    """One message of an IMAP account: an incoming PEC unpacked (the original's real sender, subject, body and
    attachments from postacert.eml), a receipt with its signed facts, ordinary mail as it is; the attachments
    saved into an allowed folder when asked."""
    from pec_mcp.mail_accounts import save_attachments
    from pec_mcp.paths import allowed_folder

    folder = None
    if save_attachments_to is not None:  # checked before anything is read from the server
        folder = allowed_folder(save_attachments_to, app.settings.attachments.resolved_dirs(),
                                argument="save_attachments_to")
    read = await app.mail_account(account).read(inbox_id, trust=app.trust_store())
    message, content = read.message, read.message.content
    saved = save_attachments(content.attachments, folder) if folder is not None else []
    where = [str(p) for p in saved] + [None] * (len(content.attachments) - len(saved))
    certified = read.is_certified
    facts = message.daticert
    return PecMessageResult(
        inbox_id=inbox_id, date=as_utc(read.mail.date) or read.mail.date,
        sender=content.sender or read.mail.sender, recipient=", ".join(content.to) or read.mail.recipient,
        to=list(content.to), cc=list(content.cc), subject=content.subject,
        kind=message.kind.value, message_id=read.mail.refers_to,
        body=content.text if content.text is not None else content.html or "",
        body_format="html" if content.text is None and content.html is not None else "text",
        attachments=[ReceivedAttachment(name=a.filename, size_bytes=a.size, content_type=a.content_type,
                                        saved_to=w) for a, w in zip(content.attachments, where, strict=True)],
        signature=message.signature.verdict.value if certified else None,
        signature_detail="; ".join([message.signature.reason, *message.problems, *message.disagreements])
        if certified else None,
        certification=_certification(facts) if facts else None,
        envelope_sender=message.headers.sender if message.original_included else None,
        note=_read_note(read.message, certified, saved),
        environment=app.environment, account=account.name)


def _certification(facts: Daticert) -> CertificationFacts:
    return CertificationFacts(type=facts.tipo, date=facts.date.isoformat(), sender=facts.sender,
                              recipients=[r.address for r in facts.recipients], subject=facts.subject,
                              provider=facts.provider, identifier=facts.identifier, msgid=facts.msgid,
                              delivered_to=facts.delivered_to,
                              error=facts.error_detail or (None if facts.error == "nessuno" else facts.error))


def _read_note(message: MailMessage, certified: bool, saved: list[Path]) -> str:
    if not certified:
        note = "Ordinary email, not certified (no PEC signature or daticert.xml): it proves nothing legally."
    elif message.original_included and message.kind is ReceiptKind.ENVELOPE:
        note = ("An incoming PEC: the original message, unpacked from the provider's signed envelope "
                "(postacert.eml); sender is its real sender.")
    else:
        note = "A PEC receipt: its facts come from the signed daticert.xml."
    if certified and not message.counts_as_proof:
        note += " Its signature is not valid legal proof (see signature_detail)."
    elif certified and message.signature.verdict.value == "valid_untrusted":
        note += " Intact, but its signer was not checked: no trust list (trust.pec_providers) is configured."
    if saved:
        note += f" Saved {len(saved)} attachment(s) into {saved[0].parent}."
    return note


async def imap_delete_question(app: AppState, account: Account, inbox_id: int) -> str:
    """The confirmation question for deleting a message of an IMAP account: what proof it may be."""
    from pec_mcp.config import environment_label
    from pec_mcp.mail_accounts import header_kind
    from pec_mcp.sending import PROOF

    mail = await app.mail_account(account).get(inbox_id)
    kind = header_kind(mail)
    if kind == "envelope":
        what = "an incoming certified email (PEC): the legal proof that it was delivered to you"
    elif kind == "other":
        what = "a message that is not a PEC receipt"
    else:
        what = (f"a PEC receipt ({kind}) of sending {mail.refers_to}: "
                f"{PROOF.get(ReceiptKind(kind), 'part of its record')}")
    return (f"Delete message {inbox_id} of the account {account.name} for good: \"{mail.subject}\" from "
            f"{mail.sender}, {mail.date}. It is {what}. The copy on the mail server is destroyed; the local ledger "
            "keeps its headers, and a receipt already read stays in the ledger with the signed original. "
            f"Environment: {environment_label(app.environment)}.")


async def imap_delete(app: AppState, account: Account, inbox_id: int, *, dry_run: bool,
                      approval: ElicitationResult[Confirmation], actor: Callable[[str], str]) -> DeletedResult:
    """Delete a message of an IMAP account through the confirmation gate (a dry run deletes nothing)."""
    kept = KEPT_IMAP
    if dry_run:
        question = await imap_delete_question(app, account, inbox_id)
        return DeletedResult(status="preview", deleted=False, what="Preview only: nothing was deleted. " + question,
                             kept_in_ledger=kept, environment=app.environment, account=account.name)
    via = require_yes(approval)
    mail = await app.mail_account(account).delete(inbox_id)
    what = f"message {inbox_id} of the account {account.name}: \"{mail.subject}\""
    app.store.record_audit(action="delete_pec_message", actor=actor(via), environment=app.environment,
                           summary=what, outcome="deleted", ref=f"{account.name}:{inbox_id}", account=account.name)
    return DeletedResult(status="deleted", deleted=True, what=what, kept_in_ledger=kept, environment=app.environment,
                         account=account.name)


KEPT_IMAP = ("The local index keeps its headers (date, sender, subject), a receipt already read stays in the ledger "
             "with the signed original, and the audit trail records the deletion.")


async def imap_delete_receipts_question(app: AppState, account: Account, message_id: str,
                                       row: Sending | None) -> str:
    """The confirmation question for deleting a sending's receipts from an IMAP mailbox, from the server's facts.

    Only receipts already read, verified and kept in the ledger with their signed original are deleted; one not
    read yet stays on the server. NotFound when there is nothing to delete."""
    from pec_mcp.config import environment_label
    from pec_mcp.sending import PROOF, describe_recipients

    kept, unread = await app.mail_account(account).receipts_on_server(message_id)
    if not kept:
        raise _nothing_to_delete(account, message_id, unread)
    # What they are comes from the ledger, which kept each one from its signed daticert.xml.
    ledger = [r for r in app.store.receipts_of(environment=app.environment, account=account.name,
                                               message_id=message_id) if r.deleted_at is None]
    kinds = sorted({r.kind for r in ledger})
    proofs = sorted({PROOF.get(ReceiptKind(k), "a record of the sending's path") for k in kinds})
    about = f" (\"{row.subject}\" to {describe_recipients(row.recipients)})" if row is not None else ""
    later = (f" {len(unread)} receipt(s) not read yet stay on the server until pec-mcp has kept them."
             if unread else "")
    proof = ", ".join(proofs) or "the sending"
    return (f"Delete from the mailbox of the account {account.name} the {len(kept)} receipt(s) of sending "
            f"{message_id}{about}: {', '.join(kinds) or 'receipts'}. They are the legal proof of {proof}; "
            "the copies on the mail server are destroyed for good. The local ledger keeps each one with its signed "
            f"original and its signature verdict.{later} No charge. Environment: {environment_label(app.environment)}.")


async def imap_delete_receipts(app: AppState, account: Account, message_id: str, *, dry_run: bool,
                               approval: ElicitationResult[Confirmation], actor: Callable[[str], str],
                               row: Sending | None) -> DeletedResult:
    """Delete a sending's receipts from an IMAP mailbox through the confirmation gate; the ledger keeps them."""
    if dry_run:
        question = await imap_delete_receipts_question(app, account, message_id, row)
        return DeletedResult(status="preview", deleted=False, what="Preview only: nothing was deleted. " + question,
                             kept_in_ledger=KEPT_IMAP_RECEIPTS, environment=app.environment, account=account.name)
    via = require_yes(approval)
    mailbox = app.mail_account(account)
    kept, unread = await mailbox.receipts_on_server(message_id)  # what the server holds now, kept in the ledger
    if not kept:
        raise _nothing_to_delete(account, message_id, unread)
    await mailbox.delete_many(kept)
    marked = app.store.mark_receipts_deleted(environment=app.environment, account=account.name,
                                             message_id=message_id)
    what = f"the {len(kept)} receipt(s) of sending {message_id} in the mailbox of the account {account.name}"
    app.store.record_audit(action="delete_pec_receipts", actor=actor(via), environment=app.environment,
                           summary=f"receipts of sending {message_id} ({len(kept)} message(s) on the mail server)",
                           outcome=f"deleted on the mail server; {marked} receipt(s) kept in the ledger",
                           ref=message_id, account=account.name)
    return DeletedResult(status="deleted", deleted=True, what=what,
                         kept_in_ledger=KEPT_IMAP_RECEIPTS + (f" {len(unread)} receipt(s) not read yet stay on the "
                                                              "server." if unread else ""),
                         environment=app.environment, account=account.name)


def _nothing_to_delete(account: Account, message_id: str, unread: list[Any]) -> NotFound:
    if unread:
        return NotFound(f"The {len(unread)} receipt(s) of sending {message_id} in the mailbox of the account "
                        f"{account.name} have not been read and kept in the ledger yet, so nothing was deleted",
                        provider=f"account {account.name}", retryable=True,
                        hint="Call get_pec_receipts for this sending (it reads them), then try again.")
    return NotFound(f"The mailbox of the account {account.name} holds no receipt of sending {message_id} now, so "
                    "there is nothing to delete", provider=f"account {account.name}",
                    hint="Nothing needs deleting; get_pec_receipts shows what the ledger keeps.")


KEPT_IMAP_RECEIPTS = ("The ledger keeps every receipt with its signed original (as received) and its signature "
                      "verdict, marked deleted; the audit trail records the deletion.")


async def imap_quota(app: AppState, account: Account, mailbox: str) -> QuotaResult:
    quota = await app.mail_account(account).quota(mailbox)
    if quota is None:
        return QuotaResult(mailbox=mailbox, usage=0, limit=0, percent_used=0.0,
                           unit="unknown: this IMAP server does not offer the QUOTA extension",
                           environment=app.environment, account=account.name)
    percent = round(100 * quota.used_kib / quota.limit_kib, 1) if quota.limit_kib else 0.0
    return QuotaResult(mailbox=mailbox, usage=round(quota.used_kib * 1024 / MB, 2),
                       limit=round(quota.limit_kib * 1024 / MB, 2), percent_used=percent,
                       unit=f"MB (IMAP QUOTA of the root {quota.root!r})", environment=app.environment,
                       account=account.name)


async def find_pec_rows(app: AppState, *, account: str | None, recipient: str | None, query: str | None,
                        since: date | None, limit: int, environment: str | None) -> list[Sending]:
    """PEC sendings in the ledger of one account, or of every PEC account (PEC Massiva and mailboxes), newest
    first."""
    if account:
        chosen = app.account(account).name
        found = app.store.sendings_found(account=chosen, recipient=recipient, query=query, since=since, limit=limit,
                                         environment=environment, accounts=visible_accounts())
    else:
        found = app.store.sendings_found(providers=("pecmassiva", "imap"), recipient=recipient, query=query,
                                         since=since, limit=limit, environment=environment, accounts=visible_accounts())
    return await app.store.fetch(found)


async def imap_receipts(app: AppState, account: Account, message_id: str, row: Sending | None) -> ReceiptsResult:
    """The receipts of a sending made from an IMAP account: the mailbox synced (new receipts read, verified and
    kept), then every receipt the ledger keeps, counted unless its signature is invalid."""
    from pec_mcp.channels import mailbox_delivery
    from pec_mcp.receipts import MEANING

    delivery, receipts = await mailbox_delivery(app.store, app.mail_account(account), message_id, row)
    status = delivery.status
    note = receipt_note(status)
    if delivery.ignored:
        note += " Not counted, because their signature is invalid (not legal proof, whatever they claim): " + "; ".join(
            f"{r.kind} for {r.recipient or 'the sending'} ({r.signature_detail or 'no detail'})"
            for r in delivery.ignored) + "."
    untrusted = sum(r.signature == "valid_untrusted" for r in receipts)
    if untrusted:
        note += (f" {untrusted} receipt(s) are intact but their signer was not checked: no trust list "
                 "(trust.pec_providers) is configured.")
    return ReceiptsResult(
        message_id=message_id, status=status.status.value, summary=status.summary,
        recipients=[RecipientReceipt(address=o.address, state=o.state.value, reason=o.reason, date=o.date)
                    for o in status.recipients],
        receipts=[ReceiptInfo(kind=r.kind, date=r.date, recipient=r.recipient, meaning=MEANING[ReceiptKind(r.kind)],
                              at_provider=r.deleted_at is None,
                              deleted_at=iso(r.deleted_at) if r.deleted_at else None,
                              signature=r.signature,
                              signature_detail=r.signature_detail) for r in receipts],
        known_locally=row is not None, environment=app.environment, note=note, account=account.name)


def plan_for_account(account: Account, message: PecMessage) -> PecMessage:
    """A mailbox's sends cost nothing per message (the mailbox is paid for): the preview and question say so."""
    return replace(message, cost_eur=0.0) if account.kind == "imap" else message
