"""A real SMTP submission server on loopback (aiosmtpd) that records what it accepted and can misbehave."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.pecmail.dovecot import free_port
from tests.pecmail.tls import MailPki

Fault = Literal["none", "drop_after_data", "refuse_data", "mailbox_full", "drop_while_streaming"]


@dataclass
class Recorder:
    """The handler: accepts mail from one login, refuses listed recipients, records every accepted message."""

    username: str
    password: str
    refuse: set[str] = field(default_factory=set)
    fault: Fault = "none"
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 <" + address + ">: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        if self.fault == "refuse_data":
            return "554 5.7.1 message refused"
        if self.fault == "mailbox_full":
            return "552 5.2.2 mailbox full: quota exceeded"
        # Whatever happens to the answer, the server has the message: that is what "unknown" is about.
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), envelope.content))
        if self.fault == "drop_after_data":
            assert server.transport is not None
            server.transport.abort()
        return "250 2.0.0 Ok: queued as SIM" + str(len(self.messages))

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username
              and auth_data.password.decode() == self.password)
        return AuthResult(success=ok, handled=False)


class _DroppingSMTP(SMTP):
    """Closes the connection in the middle of the data, before the final dot arrives."""

    async def smtp_DATA(self, arg: str) -> None:
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.read(1024)
        assert self.transport is not None
        self.transport.abort()


@dataclass
class SmtpServer:
    controller: Controller
    recorder: Recorder
    port: int
    security: Literal["tls", "starttls"]

    def stop(self) -> None:
        self.controller.stop()


def start_smtp(pki: MailPki, recorder: Recorder, *, security: Literal["tls", "starttls"] = "tls",
               max_bytes: int | None = 40 * 1024 * 1024) -> SmtpServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    port = free_port()
    # With implicit TLS the whole session is encrypted; aiosmtpd's auth_require_tls only knows STARTTLS.
    kwargs: dict[str, Any] = dict(authenticator=recorder.authenticate, auth_require_tls=security == "starttls",
                                  data_size_limit=max_bytes)
    if security == "tls":
        controller = _controller(recorder, port, ssl_context=context, **kwargs)
    else:
        controller = _controller(recorder, port, tls_context=context, require_starttls=True, **kwargs)
    controller.start()
    return SmtpServer(controller=controller, recorder=recorder, port=port, security=security)


def _controller(recorder: Recorder, port: int, *, ssl_context: ssl.SSLContext | None = None,
                **server_kwargs: Any) -> Controller:
    dropping = recorder.fault == "drop_while_streaming"

    class _Controller(Controller):
        def factory(self) -> SMTP:
            cls = _DroppingSMTP if dropping else SMTP
            return cls(self.handler, **self.SMTP_kwargs)

    return _Controller(recorder, hostname="127.0.0.1", port=port, ssl_context=ssl_context,
                       server_hostname="127.0.0.1", **server_kwargs)
