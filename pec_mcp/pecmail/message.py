"""Read a received PEC message: what it is (from its signed daticert.xml), who signed it, and what it carries.

The kind and the facts of a receipt come from ``daticert.xml`` inside the signature. The ``X-Ricevuta`` and
``X-Trasporto`` headers, ``X-Riferimento-Message-ID`` and the subject prefix sit outside it, so anyone on the way
could change them: they are compared with the signed data and every disagreement is reported, never trusted.
A transport envelope (``POSTA CERTIFICATA:``) carries the original message as ``postacert.eml``; its real sender
is that message's ``From``, not the envelope's ``"Per conto di: ..."``.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.feedparser import BytesFeedParser
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from pec_mcp.errors import MalformedPecMessage
from pec_mcp.pecmail.daticert import Daticert, parse_daticert
from pec_mcp.pecmail.signature import SignatureCheck, TrustStore, Verdict, split_signed, verify_detached
from pec_mcp.receipts import FAILED_KINDS, REFUSED_KINDS, ClassifiedReceipt, ReceiptKind, classify_subject

# daticert postacert/@tipo (and the X-Ricevuta / X-Trasporto values, which use the same words) -> receipt kind.
KIND_OF_TIPO: dict[str, ReceiptKind] = {
    "accettazione": ReceiptKind.ACCEPTED,
    "non-accettazione": ReceiptKind.NOT_ACCEPTED,
    "presa-in-carico": ReceiptKind.TAKEN_IN_CHARGE,
    "avvenuta-consegna": ReceiptKind.DELIVERED,
    "posta-certificata": ReceiptKind.ENVELOPE,
    "errore-consegna": ReceiptKind.NOT_DELIVERED,
    "preavviso-errore-consegna": ReceiptKind.NOT_DELIVERED_TIMEOUT,
    "rilevazione-virus": ReceiptKind.SECURITY_PROBLEM,
    "errore": ReceiptKind.ANOMALY,
}
_VIRUS_KIND = {ReceiptKind.NOT_ACCEPTED: ReceiptKind.NOT_ACCEPTED_VIRUS,
               ReceiptKind.NOT_DELIVERED: ReceiptKind.NOT_DELIVERED_VIRUS}
_REASON_CODE = re.compile(r"^\s*\d\.\d\.\d+\s*-\s*[^-]+-\s*")
# compat32: the structure only, fast; the few headers shown are decoded one by one (``_decoded``).
_FEED = 1 << 16
# 150 KB or more of base64 letters and line breaks: a body worth leaving out of the parse. Boundary lines hold
# "-" and header lines ":", so neither can be part of a run. One character class, so that the regular expression
# engine keeps no state per line.
_BASE64_MIN = 150_000
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n]{%d,}" % _BASE64_MIN)
_ON_BEHALF_OF = re.compile(r"per conto di:\s*<?([^\s\"<>]+@[^\s\"<>]+?)>?\s*(\"|<|$)", re.IGNORECASE)
_ENVELOPE_PREFIX = re.compile(r"^\s*POSTA CERTIFICATA:\s*", re.IGNORECASE)
_PEC_PARTS = frozenset({"daticert.xml", "postacert.eml", "smime.p7s"})


@dataclass(frozen=True)
class Attachment:
    """A file carried by a message. Its bytes stay encoded in the parsed message until asked for, so listing
    the attachments of a large message costs no copy of them."""

    filename: str
    content_type: str
    size: int  # bytes, decoded
    part: Message = field(repr=False, compare=False)
    source: _Source = field(repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The decoded bytes, whole (for small files; :meth:`chunks` streams large ones)."""
        return b"".join(self.chunks())

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The decoded bytes, a piece at a time: a 30 MB file is written out without a second copy in memory."""
        return _decoded_chunks(self.part, self.source, size)


@dataclass(frozen=True)
class _Source:
    """The message as received, and the marker that stands in the parse for each large base64 body left in it.

    The standard parser holds a body as a list of lines and then joins them: for a 30 MB attachment, several
    hundred MB at its peak. Long runs of base64 lines are therefore cut out before parsing (see ``_parse``);
    their part's payload is the marker with the run's offsets in ``raw``, decoded from there when asked for.
    The marker is random per message, so a body cannot pretend to be one.
    """

    raw: bytes
    marker: str

    def base64_of(self, part: Message) -> tuple[bytes, int, int] | None:
        """A base64 body as (buffer, start, end): the run in ``raw``, or the part's own (small) payload."""
        payload = part.get_payload()
        if not isinstance(payload, str) or part.get("Content-Transfer-Encoding", "").strip().lower() != "base64":
            return None
        if payload.startswith(self.marker):
            start, end = (int(n) for n in payload[len(self.marker):].split()[:2])
            return self.raw, start, end
        encoded = payload.encode("ascii", "replace")
        return encoded, 0, len(encoded)


@dataclass(frozen=True)
class MessageContent:
    """A readable message: the original unpacked from an envelope, or the message itself."""

    sender: str  # the address in From (for an envelope: the real sender, from postacert.eml)
    sender_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: datetime | None
    message_id: str | None
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]


@dataclass(frozen=True)
class PecHeaders:
    """Headers outside the signature: shown, compared, never trusted."""

    subject: str
    sender: str  # From as written, e.g. "Per conto di: mario@pec.it" <posta-certificata@gestore>
    message_id: str | None
    x_ricevuta: str | None
    x_trasporto: str | None
    x_riferimento_message_id: str | None
    x_tipo_ricevuta: str | None
    x_verifica_sicurezza: str | None


@dataclass(frozen=True)
class PecMessage:
    kind: ReceiptKind  # from the signed daticert.xml; OTHER when there is none to read
    daticert: Daticert | None
    signature: SignatureCheck
    headers: PecHeaders
    disagreements: tuple[str, ...]  # headers or subject that contradict the signed data
    problems: tuple[str, ...]  # what could not be read (a malformed daticert.xml, no signature, ...)
    content: MessageContent  # envelope: the original message; receipt: the receipt's own text
    original_included: bool  # postacert.eml was present (envelopes, complete delivery receipts)

    @property
    def counts_as_proof(self) -> bool:
        """Legal proof only with a valid signature over a readable daticert.xml."""
        return self.daticert is not None and self.signature.counts_as_proof


def parse_pec_message(raw: bytes, *, trust: TrustStore | None) -> PecMessage:
    """Parse and verify one received message (its bytes as stored); never raises for a message's own faults."""
    outer, source = _parse(raw)
    headers = _headers(outer)
    parts = split_signed(raw)
    if parts is None:
        check = SignatureCheck(Verdict.INVALID, "the message carries no S/MIME signature (no smime.p7s)")
        claimed = _claimed_kinds(headers)
        disagreements = [f"the headers call it {k.value}, but it is not signed" for k in claimed]
        return PecMessage(ReceiptKind.OTHER, None, check, headers, tuple(dict.fromkeys(disagreements)),
                          ("not a signed PEC message: no daticert.xml can be trusted",),
                          _content(outer, source, skip_pec_parts=False), False)
    # The signed part as the outer parse already read it: parsing its bytes again would hold a second copy of
    # every attachment; its exact bytes (``parts.content``) are what the signature check digests.
    first = outer.get_payload(0) if outer.is_multipart() else None
    if isinstance(first, Message) and outer.get_content_type() == "multipart/signed":
        signed = first
    else:
        signed, source = _parse(parts.content)
    problems: list[str] = []
    daticert = _daticert(signed, problems)
    check = verify_detached(parts.content, parts.signature, trust=trust, at=daticert.date if daticert else None)
    kind = kind_of(daticert) if daticert else ReceiptKind.OTHER
    original = _postacert(signed)
    content = (_content(original, source, skip_pec_parts=False) if original
               else _content(signed, source, skip_pec_parts=True))
    if original is None:  # a receipt: speak of the original's subject, not "CONSEGNA: ..."
        content = _with_subject(content, daticert.subject if daticert else headers.subject)
    disagreements = _cross_check(headers, daticert, kind, content if original else None)
    return PecMessage(kind, daticert, check, headers, tuple(disagreements), tuple(problems), content,
                      original is not None)


def envelope_sender(from_header: str, reply_to: str | None) -> str:
    """The real sender of an incoming PEC, from its envelope's headers (for lists: the signed daticert.xml and
    postacert.eml say it with proof when the message is read): ``"Per conto di: mario@pec.it" <gestore>`` names
    it, and so does Reply-To, which the provider sets to the original sender."""
    match = _ON_BEHALF_OF.search(from_header)
    if match:
        return match.group(1).lower()
    address = parseaddr(reply_to or "")[1]
    return address.lower() if address else from_header


def envelope_subject(subject: str) -> str:
    """The original subject of an incoming PEC: its envelope's subject without ``POSTA CERTIFICATA:``."""
    return _ENVELOPE_PREFIX.sub("", subject, count=1) or subject


def _parse(raw: bytes) -> tuple[Message, _Source]:
    """The message's structure, each long run of base64 lines replaced by a marker line (see ``_Source``)."""
    source = _Source(raw, f"pec-mcp-body-{secrets.token_hex(8)} ")
    parser = BytesFeedParser(policy=policy.compat32)
    last = 0
    for start, end in _base64_runs(raw):
        _feed(parser, raw, last, start)
        parser.feed(f"{source.marker}{start} {end}\r\n".encode())
        last = end
    _feed(parser, raw, last, len(raw))
    return parser.close(), source


def _base64_runs(raw: bytes) -> Iterator[tuple[int, int]]:
    """Where long runs of whole base64 lines are: from the start of a non-empty line to the end of a line."""
    for match in _BASE64_RUN.finditer(raw):
        start, end = match.span()
        if start > 0 and raw[start - 1:start] != b"\n":
            start = raw.find(b"\n", start, end) + 1  # the tail of another line ("...: base64") is not body
        while start < end and raw[start:start + 1] in (b"\r", b"\n"):
            start += 1  # nor the blank line that ends the part's headers
        end = raw.rfind(b"\n", start, end) + 1
        if start > 0 and end - start >= _BASE64_MIN:
            yield start, end


def _feed(parser: BytesFeedParser, raw: bytes, start: int, end: int) -> None:
    # A slice at a time: the parser splits one slice into lines, not the whole message at once.
    for at in range(start, end, _FEED):
        parser.feed(raw[at:min(at + _FEED, end)])


def kind_of(daticert: Daticert) -> ReceiptKind:
    """The receipt kind of a daticert.xml: its type, refined by ``errore="virus"``."""
    kind = KIND_OF_TIPO[daticert.tipo]
    return _VIRUS_KIND.get(kind, kind) if daticert.error == "virus" else kind


def to_classified(message: PecMessage) -> ClassifiedReceipt:
    """The same ``ClassifiedReceipt`` that PEC Massiva receipts become, so one status logic serves both."""
    facts = message.daticert
    if facts is None:  # unsigned or unreadable: its subject proves nothing, so it is no receipt
        return ClassifiedReceipt(ReceiptKind.OTHER, message.headers.subject, None, None, "")
    recipient = facts.delivered_to
    if recipient is None and len(facts.recipients) == 1 and message.kind in FAILED_KINDS | {ReceiptKind.DELIVERED}:
        recipient = facts.recipients[0].address
    reason = None
    if message.kind in FAILED_KINDS | REFUSED_KINDS and facts.error_detail:
        reason = _REASON_CODE.sub("", facts.error_detail) or facts.error_detail
    return ClassifiedReceipt(message.kind, facts.subject, recipient.lower() if recipient else None, reason,
                             facts.date.isoformat())


# --- reading the parts ------------------------------------------------------------------------------------------


def _headers(message: Message) -> PecHeaders:
    def get(name: str) -> str | None:
        value = message.get(name)
        return _decoded(value) if value is not None else None

    return PecHeaders(
        subject=get("Subject") or "",
        sender=get("From") or "",
        message_id=get("Message-ID"),
        x_ricevuta=get("X-Ricevuta"),
        x_trasporto=get("X-Trasporto"),
        x_riferimento_message_id=get("X-Riferimento-Message-ID"),
        x_tipo_ricevuta=get("X-TipoRicevuta"),
        x_verifica_sicurezza=get("X-VerificaSicurezza"),
    )


def _daticert(signed: Message, problems: list[str]) -> Daticert | None:
    part = _named_part(signed, "daticert.xml")
    if part is None:
        problems.append("the signed content holds no daticert.xml")
        return None
    payload = part.get_payload(decode=True)
    try:
        return parse_daticert(payload if isinstance(payload, bytes) else b"")
    except MalformedPecMessage as exc:
        problems.append(exc.message)
        return None


def _postacert(signed: Message) -> Message | None:
    part = _named_part(signed, "postacert.eml")
    if part is None or not part.is_multipart():
        return None
    inner = part.get_payload(0)
    return inner if isinstance(inner, Message) else None


def _named_part(message: Message, filename: str) -> Message | None:
    # Not walk(): the original inside postacert.eml may itself carry parts with any name.
    stack = [message]
    while stack:
        part = stack.pop(0)
        if (part.get_filename() or part.get_param("name") or "") == filename:
            return part
        if part.get_content_maintype() == "multipart":
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))
    return None


def _content(message: Message, source: _Source, *, skip_pec_parts: bool) -> MessageContent:
    text = html = None
    attachments: list[Attachment] = []
    stack = [message]
    while stack:
        part = stack.pop(0)
        if part.get_content_maintype() == "multipart":
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))
            continue
        raw_name = part.get_filename()
        filename = _decoded(raw_name) if raw_name else None  # some clients still write "=?utf-8?...?=" names
        if skip_pec_parts and (filename in _PEC_PARTS or part.get_param("name") in _PEC_PARTS):
            continue
        disposition = part.get_content_disposition()
        if filename is None and disposition != "attachment" and part.get_content_maintype() == "text":
            body = _text_of(part, source)
            if part.get_content_subtype() == "html" and html is None:
                html = body
                continue
            if part.get_content_subtype() == "plain" and text is None:
                text = body
                continue
        attachments.append(Attachment(filename or "unnamed", part.get_content_type(), _decoded_size(part, source),
                                      part, source))
    name, address = parseaddr(_decoded(message.get("From") or ""))
    return MessageContent(
        sender=address.lower(),
        sender_name=name,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        subject=_decoded(message.get("Subject") or ""),
        date=_date(message),
        message_id=str(message.get("Message-ID")).strip() if message.get("Message-ID") else None,
        text=text,
        html=html,
        attachments=tuple(attachments),
    )


def _decoded_size(part: Message, source: _Source) -> int:
    """The size of a part once decoded; for base64 computed from the encoded text, without decoding it."""
    encoded = source.base64_of(part)
    if encoded is not None:
        # Every 4 base64 letters are 3 bytes; line breaks do not count, the '=' padding takes bytes away.
        buffer, start, end = encoded
        letters = end - start - sum(buffer.count(c, start, end) for c in (b"\r", b"\n", b"\t", b" "))
        tail = buffer[max(start, end - 16):end].rstrip()
        return max(0, letters // 4 * 3 - min(2, len(tail) - len(tail.rstrip(b"="))))
    return sum(len(chunk) for chunk in _decoded_chunks(part, source, 1 << 20))


def _decoded_chunks(part: Message, source: _Source, size: int) -> Iterator[bytes]:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0) if part.is_multipart() else None
        yield inner.as_bytes() if isinstance(inner, Message) else b""
        return
    encoded = source.base64_of(part)
    if encoded is not None:
        yield from _base64_chunks(*encoded, size)
        return
    data = part.get_payload(decode=True)
    yield data if isinstance(data, bytes) else b""


def _base64_chunks(buffer: bytes, start: int, end: int, size: int) -> Iterator[bytes]:
    # Decoded a slice at a time; a slice's letters that do not fill a 4-letter group wait for the next slice.
    carry = b""
    for at in range(start, end, size):
        letters = carry + b"".join(buffer[at:min(at + size, end)].split())
        whole = len(letters) - len(letters) % 4
        carry = letters[whole:]
        if whole:
            yield _b64(letters[:whole])
    if carry.rstrip(b"="):
        yield _b64(carry + b"=" * (-len(carry) % 4))


def _b64(letters: bytes) -> bytes:
    try:
        return binascii.a2b_base64(letters)
    except binascii.Error:
        return b""  # broken base64: what the standard library's decode=True gives as well, nothing readable


def _decoded(value: object) -> str:
    """A header value with its RFC 2047 encoded words decoded (Subject, names in From)."""
    text = str(value)
    if "=?" not in text:
        return " ".join(text.split()) if "\n" in text else text.strip()
    try:
        return str(make_header(decode_header(text))).strip()
    except (ValueError, LookupError, UnicodeDecodeError):
        return text.strip()  # a broken encoded word: show it as it came


def _text_of(part: Message, source: _Source) -> str:
    encoded = source.base64_of(part)
    if encoded is not None:
        data = b"".join(_base64_chunks(*encoded, 1 << 20))
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")  # an unknown charset name: read what can be read


def _addresses(message: Message, name: str) -> tuple[str, ...]:
    values = [str(v) for v in message.get_all(name) or ()]
    return tuple(address.lower() for _, address in getaddresses(values) if address)


def _date(message: Message) -> datetime | None:
    value = message.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None


def _with_subject(content: MessageContent, subject: str) -> MessageContent:
    return MessageContent(content.sender, content.sender_name, content.to, content.cc, subject, content.date,
                          content.message_id, content.text, content.html, content.attachments)


# --- the cross-check --------------------------------------------------------------------------------------------


def _claimed_kinds(headers: PecHeaders) -> list[ReceiptKind]:
    claimed = []
    for value in (headers.x_ricevuta, headers.x_trasporto):
        if value and value.lower() in KIND_OF_TIPO:
            claimed.append(KIND_OF_TIPO[value.lower()])
    prefix_kind, _ = classify_subject(headers.subject)
    if prefix_kind is not ReceiptKind.OTHER:
        claimed.append(prefix_kind)
    return claimed


def _family(kind: ReceiptKind) -> str:
    # The subject cannot tell a 12-hour timeout notice from the 24-hour failure, nor a virus refusal's variants.
    if kind in FAILED_KINDS:
        return "not_delivered"
    if kind in REFUSED_KINDS:
        return "not_accepted"
    return kind.value


def _cross_check(
    headers: PecHeaders, daticert: Daticert | None, kind: ReceiptKind, original: MessageContent | None
) -> list[str]:
    if daticert is None:
        return []
    found = []
    header_value = headers.x_ricevuta or headers.x_trasporto
    if header_value is None:
        found.append(f"no X-Ricevuta or X-Trasporto header, while the signed daticert.xml says {daticert.tipo}")
    elif header_value.lower() != daticert.tipo:
        name = "X-Ricevuta" if headers.x_ricevuta else "X-Trasporto"
        found.append(f"{name} says {header_value}, the signed daticert.xml says {daticert.tipo}")
    prefix_kind, _ = classify_subject(headers.subject)
    if prefix_kind is not ReceiptKind.OTHER and _family(prefix_kind) != _family(kind):
        found.append(f"the subject reads as {prefix_kind.value}, the signed daticert.xml says {kind.value}")
    reference = _bare_id(headers.x_riferimento_message_id)
    if reference and daticert.msgid and reference != _bare_id(daticert.msgid):
        found.append(
            f"X-Riferimento-Message-ID is {headers.x_riferimento_message_id}, the signed daticert.xml names "
            f"{daticert.msgid}"
        )
    if original is not None and original.sender and original.sender != daticert.sender.lower():
        found.append(f"postacert.eml is from {original.sender}, the signed daticert.xml says {daticert.sender}")
    return found


def _bare_id(value: str | None) -> str:
    return (value or "").strip().strip("<>").strip().lower()
