"""Submitting a PEC over SMTP: TLS always verified, AUTH, and the message streamed from a file, never sent twice.

Built on the standard smtplib (in worker threads): it is complete, and its ``docmd``/``send``/``getreply``
primitives let the DATA phase stream the message from disk with dot-stuffing on the fly, so a 25 MB attachment
never sits in memory several times (``sendmail`` and the async clients take the whole message as one bytes
object and copy it while stuffing it).

What a failure means for "never sent twice":

- before the end-of-data dot is sent, the server cannot deliver anything (RFC 5321 §4.1.1.4): an error is a
  plain failure, and the send may be tried again;
- after the dot, a reply of 4xx/5xx is a refusal (not sent); no reply at all (a dropped connection, a timeout) is
  ``OutcomeUnknown``: the server may have accepted it, so it is never retried automatically.
"""

from __future__ import annotations

import contextlib
import io
import re
import smtplib
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import anyio

from pec_mcp.errors import OutcomeUnknown, PecError, ProviderUnavailable, RateLimited, Rejected
from pec_mcp.pecmail.connection import Endpoint, Login, connection_error, login_refused, tls_context

CHUNK = 64 * 1024  # bytes handed to the socket at a time while streaming DATA
# How providers word a temporary refusal for sending too fast (421/450/451 4.7.x "too many messages", "rate
# limit exceeded", "slow down"); "too many recipients" (4.5.3) is about one message, not the pace.
_THROTTLED = re.compile(r"too many (messages|mails|connections|requests)|rate.?limit|throttl|slow down", re.I)

class StreamedMessage(Protocol):
    """A message that writes itself as SMTP DATA, dot-stuffed, a chunk at a time (``compose.OutgoingMessage``)."""

    @property
    def size(self) -> int: ...

    def chunks(self, *, smtp_data: bool = False) -> Iterator[bytes]: ...


# A file on disk, bytes in memory, or a composed message that streams its attachments from their files.
MessageSource = Path | bytes | StreamedMessage


@dataclass(frozen=True)
class Submitted:
    """The server took responsibility for the message (250 after the data)."""

    recipients: list[str]
    reply: str  # the server's final reply, often with its queue id


class SmtpClient:
    """Submits messages to one SMTP server with one login. Each submission uses its own connection."""

    def __init__(self, endpoint: Endpoint, login: Login, *, timeout: float = 60.0) -> None:
        self.endpoint = endpoint
        self.login = login
        self.timeout = timeout

    @property
    def _provider(self) -> str:
        return f"SMTP {self.endpoint.host}"

    async def submit(
        self,
        *,
        sender: str,
        recipients: Sequence[str],
        message: MessageSource,
        on_dispatch: Callable[[], Awaitable[None]] | None = None,
    ) -> Submitted:
        """Send one message to every recipient, or raise: Rejected/ProviderUnavailable (not sent, safe to try
        again) or OutcomeUnknown (it may have been accepted: never try again blindly).

        ``on_dispatch`` runs when every recipient was accepted, right before the data goes: the ledger marks the
        send as on its way there; raising in it sends nothing.
        """
        size = message.stat().st_size if isinstance(message, Path) else (
            len(message) if isinstance(message, bytes) else message.size)
        context = tls_context(self.endpoint.ca_file)
        session = await self._thread(lambda: self._open(context, sender, list(recipients), size), "connecting")
        try:
            if on_dispatch is not None:
                await on_dispatch()
            reply = await anyio.to_thread.run_sync(lambda: self._transfer(session, message))
        finally:
            await anyio.to_thread.run_sync(_quietly_quit, session)
        return Submitted(recipients=list(recipients), reply=reply)

    async def check_login(self) -> None:
        """Connect and log in, then leave: proves the account's SMTP settings without sending anything."""
        context = tls_context(self.endpoint.ca_file)
        session = await self._thread(lambda: self._connect(context), "connecting")
        await anyio.to_thread.run_sync(_quietly_quit, session)

    async def _thread(self, work: Callable[[], smtplib.SMTP], doing: str) -> smtplib.SMTP:
        try:
            return await anyio.to_thread.run_sync(work)
        except PecError:
            raise
        except smtplib.SMTPAuthenticationError:
            raise login_refused(self.endpoint, self.login, protocol="SMTP") from None
        except smtplib.SMTPNotSupportedError:
            raise Rejected(f"The SMTP server {self.endpoint.where} does not offer AUTH on this connection",
                           provider=self._provider,
                           hint="Check smtp_host, smtp_port and security of the account: PEC submission needs "
                           "a login.") from None
        except smtplib.SMTPResponseException as exc:
            raise self._refusal(exc.smtp_code, exc.smtp_error, doing) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise connection_error(exc, self.endpoint, protocol="SMTP", doing=doing) from None

    def _connect(self, context: ssl.SSLContext) -> smtplib.SMTP:
        host, port = self.endpoint.host, self.endpoint.port
        session: smtplib.SMTP
        if self.endpoint.security == "tls":
            session = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=context)
        else:
            session = smtplib.SMTP(host, port, timeout=self.timeout)
        try:
            session.ehlo()
            if self.endpoint.security == "starttls":
                if not session.has_extn("starttls"):
                    raise ProviderUnavailable(
                        f"The SMTP server {self.endpoint.where} does not offer STARTTLS", provider=self._provider,
                        retryable=False, hint="Use security = \"tls\" with the provider's SMTPS port (465).")
                session.starttls(context=context)
                session.ehlo()
            _authenticate(session, self.login)
        except BaseException:
            _quietly_quit(session)
            raise
        return session

    def _open(self, context: ssl.SSLContext, sender: str, recipients: list[str], size: int) -> smtplib.SMTP:
        """Connect, log in, and have the envelope accepted (MAIL FROM, RCPT TO for everyone): nothing sent yet."""
        session = self._connect(context)
        try:
            limit = int(session.esmtp_features.get("size", "0") or 0)
            if limit and size > limit:
                raise Rejected(
                    f"The message is {size / 1048576:.1f} MB and the SMTP server accepts at most "
                    f"{limit / 1048576:.1f} MB", provider=self._provider,
                    hint="Send fewer or smaller attachments.")
            options = [f"SIZE={size}"] if session.has_extn("size") else []
            code, text = session.mail(sender, options)
            if code != 250:
                raise self._refusal(code, text, f"the sender {sender}")
            refused = []
            for address in recipients:
                code, text = session.rcpt(address)
                if code not in (250, 251):
                    refused.append((address, code, text))
            if refused:
                session.rset()
                raise self._refused_recipients(refused)
        except BaseException:
            _quietly_quit(session)
            raise
        return session

    def _transfer(self, session: smtplib.SMTP, message: MessageSource) -> str:
        """DATA, the message streamed with dot-stuffing, the final dot, and the server's verdict."""
        dot_sent = False
        try:
            code, text = session.docmd("DATA")
            if code != 354:
                raise self._refusal(code, text, "the message data")
            for chunk in _data_chunks(message):
                session.send(chunk)
            session.send(b".\r\n")
            dot_sent = True
            code, text = session.getreply()
        except PecError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            if dot_sent:
                raise OutcomeUnknown(
                    f"The SMTP server {self.endpoint.where} received the whole message but its answer was lost "
                    f"({type(exc).__name__}): the PEC may or may not have been accepted",
                    provider=self._provider) from None
            raise connection_error(exc, self.endpoint, protocol="SMTP", doing="sending the message") from None
        if code != 250:
            raise self._refusal(code, text, "the message")
        return text.decode(errors="replace")

    def _refusal(self, code: int, text: bytes | str, what: str) -> PecError:
        detail = (text.decode(errors="replace") if isinstance(text, bytes) else text).strip()[:200]
        if code in (452, 552) or "quota" in detail.lower() or "5.2.2" in detail:
            return Rejected(f"The SMTP server refused {what}: mailbox or message over its limit ({code} {detail})",
                            provider=self._provider,
                            hint="Free space in the mailbox or send smaller attachments, then send again.")
        if 400 <= code < 500 and _THROTTLED.search(detail):
            return RateLimited(f"The SMTP server refused {what} as too many for now ({code} {detail})",
                               provider=self._provider,
                               hint="Nothing was sent. Try again in a minute; if it keeps happening, lower the "
                               "account's requests_per_second to what its provider allows.")
        retryable = 400 <= code < 500
        return Rejected(f"The SMTP server refused {what} ({code} {detail})", provider=self._provider,
                        retryable=retryable,
                        hint="Nothing was sent. " + ("Try again in a few minutes." if retryable else
                                                     "Correct what the server names, then send again."))

    def _refused_recipients(self, refused: list[tuple[str, int, bytes]]) -> PecError:
        listed = "; ".join(f"{a} ({c} {t.decode(errors='replace').strip()[:80]})" for a, c, t in refused[:10])
        return Rejected(f"The SMTP server refused {len(refused)} recipient(s): {listed}", provider=self._provider,
                        hint="Nothing was sent. Check those addresses (they must be PEC mailboxes), then send again.")


def stuffed_chunks(source: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    """The message as SMTP DATA: CRLF line ends, lines starting with "." doubled, in chunks of about ``chunk``.

    Reads line by line, so memory stays at one chunk whatever the size of the message.
    """
    buffer = bytearray()
    ended_with_newline = True
    for line in source:
        if line.startswith(b"."):
            buffer += b"."
        if line.endswith(b"\r\n"):
            buffer += line
        elif line.endswith(b"\n"):
            buffer += line[:-1] + b"\r\n"
        else:
            buffer += line
        ended_with_newline = line.endswith(b"\n")
        if len(buffer) >= chunk:
            yield bytes(buffer)
            buffer.clear()
    if not ended_with_newline:
        buffer += b"\r\n"
    if buffer:
        yield bytes(buffer)


def _data_chunks(message: MessageSource) -> Iterator[bytes]:
    """The message as dot-stuffed DATA with CRLF line ends, ending with CRLF, a chunk at a time."""
    if isinstance(message, Path):
        with message.open("rb") as file:
            yield from stuffed_chunks(file)
    elif isinstance(message, bytes):
        yield from stuffed_chunks(io.BytesIO(message))
    else:
        yield from _without_terminator(message.chunks(smtp_data=True))


def _without_terminator(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A composed message's DATA chunks (CRLF line ends, dots stuffed) without the end-of-data line it may add:
    the final dot is sent by the caller, who must know when it went (what a lost answer means depends on it)."""
    previous = b""
    for chunk in chunks:
        if previous:
            yield previous
        previous = chunk
    if previous.endswith(b"\r\n.\r\n"):
        previous = previous[:-3]
    elif previous == b".\r\n":
        previous = b""
    if previous:
        yield previous if previous.endswith(b"\r\n") else previous + b"\r\n"


def _authenticate(session: smtplib.SMTP, login: Login) -> None:
    """One AUTH PLAIN when offered (one wrong password is one failed attempt, not three), else smtplib's choice."""
    mechanisms = session.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" not in mechanisms:
        session.login(login.username, login.password)
        return
    session.user, session.password = login.username, login.password
    session.auth("PLAIN", session.auth_plain)


def _quietly_quit(session: smtplib.SMTP) -> None:
    # The message's fate is decided before QUIT; a failing QUIT changes nothing.
    try:
        session.quit()
    except (smtplib.SMTPException, OSError):
        with contextlib.suppress(OSError):
            session.close()
