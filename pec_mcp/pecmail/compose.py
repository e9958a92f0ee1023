"""Build an outgoing PEC message: UTF-8 subject and body, text and HTML alternatives, attachments, our Message-ID.

Attachments are never held whole in memory: the message is laid out by the standard library's ``email`` package with
a short placeholder where each attachment's base64 goes, and :meth:`OutgoingMessage.write_to` streams each file,
encoded a few hundred kilobytes at a time, in the placeholder's place. A 25 MB attachment costs a 230 KB buffer,
not three copies of 33 MB. The exact size is known before anything is read, for the size limits.
"""

from __future__ import annotations

import base64
import itertools
import mimetypes
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, localtime
from pathlib import Path
from typing import Protocol

# Base64 turns 57 bytes into one 76-character line; read whole lines' worth at a time.
_READ = 57 * 4096
_LINE = 76
# 7bit transfer: any SMTP server takes it, with or without 8BITMIME.
_POLICY = policy.SMTP.clone(cte_type="7bit")
_DOT_LINE = re.compile(rb"(?m)^\.")
RECEIPT_TYPES = ("completa", "breve", "sintetica")


class BinaryWriter(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class AttachmentSource:
    """One attachment: a file read only while the message is written, or bytes already in memory."""

    filename: str
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)
    content_type: str | None = None  # guessed from the file name when None

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.path is None:
            raise ValueError(f"attachment {self.filename!r} has neither a path nor data")
        return self.path.stat().st_size

    def mime_type(self) -> tuple[str, str]:
        guessed = self.content_type or mimetypes.guess_type(self.filename)[0] or "application/octet-stream"
        maintype, _, subtype = guessed.partition("/")
        return maintype, subtype or "octet-stream"

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            view = memoryview(self.data)
            for start in range(0, len(view), _READ):
                yield bytes(view[start : start + _READ])
            return
        assert self.path is not None
        with self.path.open("rb") as file:
            while chunk := file.read(_READ):
                yield chunk


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to submit: its Message-ID (record it before sending), envelope addresses, and its bytes."""

    message_id: str  # with angle brackets, as in the Message-ID header
    sender: str
    recipients: tuple[str, ...]  # every envelope recipient: To, Cc and Bcc
    size: int  # exact bytes that write_to writes without dot-stuffing
    _segments: tuple[bytes, ...] = field(repr=False)  # laid-out text between the attachments
    _attachments: tuple[AttachmentSource, ...] = field(repr=False)

    def chunks(self, *, smtp_data: bool = False) -> Iterator[bytes]:
        """The message, a piece at a time.

        ``smtp_data``: the payload of SMTP DATA after the 354 reply, lines starting with a dot doubled and the
        final ``.`` line included, ready to write to the connection as it comes.
        """
        for index, segment in enumerate(self._segments):
            yield _DOT_LINE.sub(b"..", segment) if smtp_data else segment
            if index < len(self._attachments):
                yield from _base64_stream(self._attachments[index])  # base64 lines never start with a dot
        if smtp_data:
            yield b".\r\n" if self._segments[-1].endswith(b"\r\n") else b"\r\n.\r\n"

    def write_to(self, out: BinaryWriter, *, smtp_data: bool = False) -> int:
        """Write the whole message to a binary file-like (a file, a socket's makefile, a spooled temp file)."""
        written = 0
        for chunk in self.chunks(smtp_data=smtp_data):
            out.write(chunk)
            written += len(chunk)
        return written

    def as_bytes(self) -> bytes:
        """The whole message in memory: for small messages and tests."""
        return b"".join(self.chunks())


def compose_message(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    attachments: Sequence[AttachmentSource] = (),
    sender_name: str | None = None,
    receipt_type: str | None = None,
    date: datetime | None = None,
    message_id: str | None = None,
) -> OutgoingMessage:
    """Lay out one message; attachments are only measured here, and read when the message is written.

    ``receipt_type`` (completa, breve, sintetica) asks the provider for that kind of delivery receipt
    (``X-TipoRicevuta``); ``message_id`` defaults to a new one of ours on the sender's domain.
    """
    if not to:
        raise ValueError("a message needs at least one To recipient")
    if receipt_type is not None and receipt_type not in RECEIPT_TYPES:
        raise ValueError(f"receipt_type must be one of {', '.join(RECEIPT_TYPES)}, not {receipt_type!r}")
    message_id = message_id or new_message_id(sender)
    message = EmailMessage(policy=_POLICY)
    message["From"] = formataddr((sender_name, sender)) if sender_name else sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = format_datetime(date or localtime())
    message["Message-ID"] = message_id
    if receipt_type:
        message["X-TipoRicevuta"] = receipt_type
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    placeholders = []
    for attachment in attachments:
        placeholder = f"PEC-MCP-ATTACHMENT-{secrets.token_hex(16)}"
        maintype, subtype = attachment.mime_type()
        message.add_attachment(b"", maintype=maintype, subtype=subtype, filename=attachment.filename)
        part = list(message.iter_attachments())[-1]
        part.set_payload(placeholder)  # keeps Content-Transfer-Encoding: base64, set for the real bytes
        placeholders.append(placeholder.encode("ascii"))
    laid_out = message.as_bytes()
    segments = _split(laid_out, placeholders)
    size = sum(map(len, segments)) + sum(_base64_size(a.size()) for a in attachments)
    recipients = tuple(dict.fromkeys(a.strip() for a in (*to, *cc, *bcc) if a.strip()))
    return OutgoingMessage(message_id, sender, recipients, size, segments, tuple(attachments))


def new_message_id(sender: str) -> str:
    """A fresh Message-ID on the sender's domain, unguessable and unique."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<pec-mcp.{secrets.token_hex(16)}@{domain}>"


def _split(laid_out: bytes, placeholders: list[bytes]) -> tuple[bytes, ...]:
    segments = []
    rest = laid_out
    for placeholder in placeholders:
        before, found, rest = rest.partition(placeholder)
        if not found:
            raise RuntimeError("an attachment placeholder was lost while laying out the message")
        segments.append(before)
    segments.append(rest)
    return tuple(segments)


def _base64_stream(attachment: AttachmentSource) -> Iterator[bytes]:
    """Base64 lines of 76 characters joined by CRLF, without a final line break (the layout adds it)."""
    first = True
    carry = b""
    for chunk in itertools.chain(attachment.chunks(), [None]):  # None: the end
        if chunk is None:
            data, carry = carry, b""  # the end: whatever is left, padded
        else:
            data = carry + chunk if carry else chunk
            whole = len(data) - len(data) % 57  # a short read must not cut a base64 line in two
            data, carry = data[:whole], data[whole:]
        if not data:
            continue
        encoded = base64.b64encode(data)
        lines = b"\r\n".join(encoded[i : i + _LINE] for i in range(0, len(encoded), _LINE))
        yield lines if first else b"\r\n" + lines
        first = False


def _base64_size(size: int) -> int:
    characters = 4 * ((size + 2) // 3)
    lines = (characters + _LINE - 1) // _LINE
    return characters + 2 * max(lines - 1, 0)
