"""SMTP submission for the simulated PEC provider (aiosmtpd): AUTH required, the sender must be the account."""

from __future__ import annotations

import asyncio
import logging
import warnings
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from pec_mcp.simulator.pecmail.provider import PecProvider

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 100 * 1024 * 1024  # what PEC providers accept per message, at most, in practice


class SubmissionHandler:
    """aiosmtpd hooks: refuse a sender other than the logged-in account, then hand the message to the provider."""

    def __init__(self, provider: PecProvider) -> None:
        self.provider = provider

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        mailbox = self.provider.mailbox(login)
        if mailbox is None or mailbox.password != auth_data.password.decode("utf-8", "replace"):
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=login.lower())

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        account = session.auth_data if isinstance(session.auth_data, str) else None
        if account is None or address.lower() != account:
            return f"553 5.7.1 Sender address must be the authenticated account <{account}>"
        if self.provider.admit_submission(account) is not None:
            return "451 4.7.1 Too many messages from this account, slow down and try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        account = str(session.auth_data)
        headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        senders = [address.lower() for _, address in getaddresses([str(v) for v in headers.get_all("From") or ()])]
        if senders != [account]:
            return f"550 5.7.1 The From header must be the account's own address <{account}>"
        if self.provider.faults.take("refuse_data"):
            return "451 4.3.0 Temporary failure, message not accepted: try again later"
        self.provider.deliver_due()
        submission = self.provider.submit(account, envelope.rcpt_tos, raw)
        if self.provider.faults.take("drop_after_data") and isinstance(server.transport, asyncio.Transport):
            server.transport.abort()  # accepted, and the reply is lost on the way
        return f"250 2.0.0 Ok: queued as {submission.identifier}"


def smtp_factory(provider: PecProvider, **tls: Any) -> SMTP:
    """One SMTP protocol instance per connection; ``tls`` holds STARTTLS settings for the submission port."""
    handler = SubmissionHandler(provider)
    with warnings.catch_warnings():
        # The warning is about plain-text ports; the implicit-TLS port never carries a byte in clear.
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS", category=UserWarning)
        return _smtp(handler, tls)


def _smtp(handler: SubmissionHandler, tls: dict[str, Any]) -> SMTP:
    return SMTP(
        handler,
        authenticator=handler.authenticate,
        auth_required=True,
        # Over implicit TLS aiosmtpd cannot see the encryption, so it would refuse AUTH; the port itself is TLS only.
        auth_require_tls=bool(tls),
        data_size_limit=MAX_MESSAGE_BYTES,
        hostname="smtp.simulatore.test",
        ident="Simulatore PEC ESMTP",
        **tls,
    )


class QuietLegacyNotices(logging.Filter):
    """Drop aiosmtpd's notices about its own legacy attributes and our implicit-TLS port: noise, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("login_data is deprecated" in text or "auth_require_tls == False" in text)


logging.getLogger("mail.log").addFilter(QuietLegacyNotices())
