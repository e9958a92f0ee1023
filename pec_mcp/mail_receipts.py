"""Receipts read from an IMAP mailbox: parsed, verified, kept in the ledger with their raw bytes, announced.

The sync of an IMAP account (``pec_mcp.pecmail.sync``) hands over the receipts it indexed; each is read whole,
parsed and its signature verified (``pec_mcp.pecmail.message``), and kept in the ledger's receipts table with the
message as received (evidence) and the verdict. A receipt is matched to its sending by the ``msgid`` of its signed
daticert.xml (``X-Riferimento-Message-ID`` only when there is no readable daticert: such a receipt is ``invalid``
anyway). Subscribers of ``pec://sendings/{message_id}`` are told. How a sending's status counts them is
``pec_mcp.mail_accounts.mail_delivery``: never an ``invalid`` one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pec_mcp.errors import PecError
from pec_mcp.pecmail.imap import ImapClient
from pec_mcp.pecmail.index import IndexedMail, bare_message_id
from pec_mcp.pecmail.message import parse_pec_message, to_classified
from pec_mcp.pecmail.signature import TrustStore
from pec_mcp.receipts import ReceiptKind
from pec_mcp.store import Receipt, Store

log = logging.getLogger("pec_mcp.pecmail")

Publish = Callable[[str], Awaitable[None]]


def sending_uri(message_id: str) -> str:
    return f"pec://sendings/{message_id}"


class ReceiptIntake:
    """The sync's receipt handler for one account: read, verify, keep, announce."""

    def __init__(self, store: Store, *, environment: str, account: str, trust: TrustStore | None,
                 publish: Publish | None = None) -> None:
        self.store = store
        self.environment = environment
        self.account = account
        self.trust = trust
        self.publish = publish

    async def __call__(self, imap: ImapClient, pending: list[IndexedMail]) -> list[int]:
        done: list[int] = []
        touched: set[str] = set()
        for mail in pending:
            try:
                raw = await imap.message(mail.uid)
            except PecError as exc:
                log.warning("could not read receipt %s of %s: %s", mail.uid, self.account, exc.message)
                break  # the rest stays pending for the next sync
            if raw is not None:
                ref = self.keep(mail, raw)
                if ref:
                    touched.add(ref)
            done.append(mail.uid)
        if self.publish is not None:
            for ref in sorted(touched):
                await self.publish(sending_uri(ref))
        return done

    def keep(self, mail: IndexedMail, raw: bytes) -> str | None:
        """Parse, verify and keep one message; the sending it belongs to, or None (an incoming PEC, say)."""
        message = parse_pec_message(raw, trust=self.trust)
        if message.kind is ReceiptKind.ENVELOPE:
            return None
        signed_ref = message.daticert.msgid if message.daticert else None
        ref = bare_message_id(signed_ref) or mail.refers_to
        if not ref:
            return None
        classified = to_classified(message)
        kind = classified.kind if classified.kind is not ReceiptKind.OTHER else _claimed(mail)
        notes = [message.signature.reason, *message.problems, *message.disagreements]
        receipt = Receipt(kind=kind.value, date=classified.date or mail.date, provider_text=mail.subject,
                          source="imap", recipient=classified.recipient, reason=classified.reason,
                          signature=message.signature.verdict.value, signature_detail="; ".join(n for n in notes if n),
                          raw=raw)
        sending = self.store.sending_by_message_id(ref, provider="imap", environment=self.environment)
        if sending is not None and sending.account != self.account:
            sending = None  # the same Message-ID sent from another mailbox: not this account's sending
        self.store.record_receipts(environment=self.environment, account=self.account, message_id=ref,
                                   sending_id=sending.id if sending else None, receipts=[receipt])
        return ref


def _claimed(mail: IndexedMail) -> ReceiptKind:
    from pec_mcp.mail_accounts import header_kind

    return ReceiptKind(header_kind(mail))
