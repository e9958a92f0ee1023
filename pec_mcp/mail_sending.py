"""Sending a PEC from an IMAP/SMTP account: composed here, recorded in the ledger with its Message-ID, then submitted.

The same rules as for PEC Massiva (``pec_mcp.sending``): the ledger row is written before anything goes, and it
carries our Message-ID before submission (receipts find their sending by it); the account's pace
(``requests_per_second``, shared by every process on the store) is waited for before connecting; a lost answer after
the data is ``unknown`` and never resent; a refusal is a failure (nothing was sent) and the same key may try again.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable

from pec_mcp.accounts import Account, MailEndpoints
from pec_mcp.http import mark_dispatched
from pec_mcp.idempotency import content_hash
from pec_mcp.pecmail.compose import AttachmentSource, compose_message
from pec_mcp.pecmail.index import bare_message_id
from pec_mcp.pecmail.smtp import SmtpClient
from pec_mcp.sending import (
    PecMessage,
    SendOutcome,
    check_key,
    describe_recipients,
    duplicate_note,
    pec_content,
    submit_once,
)
from pec_mcp.store import Store, StorePacer

_TAG = re.compile(r"<[^>]+>")
_HTML = re.compile(r"<(p|br|div|html|body|b|i|a|ul|ol|li|table|span|strong|em|h[1-6])\b", re.IGNORECASE)


def text_and_html(body: str) -> tuple[str, str | None]:
    """A plain-text part always, and the HTML part when the body is HTML (PEC clients show either)."""
    if not _HTML.search(body):
        return body, None
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>", "\n", body)
    return html.unescape(_TAG.sub("", text)).strip() + "\n", body


def smtp_pacer(store: Store, account: Account) -> StorePacer:
    """The pace of one account's SMTP submissions, shared by every process using the store."""
    return StorePacer(store, f"smtp-send:{account.environment}:{account.name}", account.requests_per_second)


class MailSender:
    """Sends PEC from one IMAP/SMTP account through the ledger."""

    def __init__(self, account: Account, endpoints: MailEndpoints, store: Store, *, timeout: float = 120.0) -> None:
        self.account = account
        self.endpoints = endpoints
        self.store = store
        self.smtp = SmtpClient(endpoints.smtp, endpoints.login, timeout=timeout)
        self.pacer = smtp_pacer(store, account)

    async def send(self, message: PecMessage, *, idempotency_key: str | None, actor: str, job_id: str | None = None,
                   before_dispatch: Callable[[], Awaitable[None]] | None = None) -> SendOutcome:
        text, html_part = text_and_html(message.body)
        composed = compose_message(
            sender=self.endpoints.address, to=message.recipients, subject=message.subject, text=text, html=html_part,
            attachments=[AttachmentSource(filename=a.name, path=a.path) for a in message.attachments])
        message_id = bare_message_id(composed.message_id) or composed.message_id
        content = pec_content(message)
        row, created = self.store.begin_send(
            provider="imap", environment=message.environment, account=self.account.name,
            idempotency_key=idempotency_key, sender=self.endpoints.address, recipients=message.recipients,
            subject=message.subject, attachments=[{"name": a.name, "size": a.size} for a in message.attachments],
            size_bytes=composed.size, job_id=job_id, actor=actor, content_hash=content_hash(content), content=content)
        if not created:
            if job_id is None:
                check_key(self.store, environment=message.environment, account=self.account.name,
                          idempotency_key=idempotency_key, content=content, addresses=message.recipients)
            return SendOutcome("duplicate", row, duplicate_note(row))
        self.store.assign_message_id(row.id, message_id)  # before submission: receipts will name it
        summary = f"PEC from {self.account.name} to {describe_recipients(message.recipients)}: \"{message.subject}\""

        async def submit(on_dispatch: Callable[[], Awaitable[None]]) -> str:
            # The turn is held until the message is on its way (then the slot counts) or nothing went (given back).
            await self.pacer.wait_turn()
            # The provider counts a submission from its first command (MAIL FROM): nothing goes out before the
            # turn's moment, which wait_turn may return a little ahead of.
            await self.pacer.until_moment()
            used = False

            async def dispatching() -> None:
                nonlocal used
                await on_dispatch()
                used = True
                await mark_dispatched(self.pacer)

            try:
                await self.smtp.submit(sender=self.endpoints.address, recipients=list(composed.recipients),
                                       message=composed, on_dispatch=dispatching)
            finally:
                if not used:
                    await self.pacer.give_back()
            return message_id

        return await submit_once(self.store, row, submit, before_dispatch=before_dispatch,
                                 audit=lambda outcome, ref: self._audit(actor, summary, outcome, ref))

    def _audit(self, actor: str, summary: str, outcome: str, ref: str | None) -> None:
        self.store.record_audit(action="send_pec", actor=actor, environment=self.account.environment,
                                summary=summary, outcome=outcome, ref=ref, account=self.account.name)
