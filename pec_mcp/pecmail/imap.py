"""An IMAP client for PEC mailboxes: headers, whole messages, header search, append, delete, quota and IDLE.

Built on IMAPClient (a mature library on top of the standard imaplib that parses FETCH answers, and speaks IDLE,
QUOTA, UIDPLUS and STARTTLS). It is blocking, so each call runs in a worker thread; one session's calls are
serialised by a lock. Messages are always addressed by UID, which stays valid while the folder's UIDVALIDITY does.
Failures become errors of ``pec_mcp.errors`` (see ``pec_mcp.pecmail.connection``); nothing is retried here.
"""

from __future__ import annotations

import contextlib
import email.policy
import imaplib
import re
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Any, TypeVar

import anyio
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from pec_mcp.errors import BadResponse, PecError, Rejected
from pec_mcp.pecmail.connection import Endpoint, Login, connection_error, login_refused, tls_context

T = TypeVar("T")

# The headers the index and the receipt matcher need; everything else stays on the server.
INDEX_HEADERS = ("Message-ID", "Date", "From", "Reply-To", "To", "Subject", "X-Ricevuta", "X-Trasporto",
                 "X-Riferimento-Message-ID", "X-TipoRicevuta", "X-VerificaSicurezza")
_HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS (" + " ".join(h.upper() for h in INDEX_HEADERS) + ")]"
_HEADER_KEY = ("BODY[HEADER.FIELDS (" + " ".join(h.upper() for h in INDEX_HEADERS) + ")]").encode()
# UIDs per FETCH command: few round trips on a big mailbox, each answer still small (about 0.5 MB of headers),
# and the command line within the 8,000 octets servers are asked to accept (RFC 7162 §4) up to 6-digit UIDs.
FETCH_BATCH = 1000
_SURROGATES = re.compile("[\udc80-\udcff]")
_SAFE_SEARCH = re.compile(r"^[\x20-\x7e]{1,300}$")


@dataclass(frozen=True)
class FolderState:
    """A selected folder: its UIDVALIDITY (UIDs are valid while it stays), next UID and message count."""

    name: str
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True)
class MessageHeaders:
    """The indexed headers of one message, decoded to text."""

    uid: int
    size: int
    internal_date: datetime | None
    message_id: str | None
    date: str | None
    sender: str
    to: str
    subject: str
    x_ricevuta: str | None
    x_trasporto: str | None
    x_riferimento: str | None  # X-Riferimento-Message-ID: the sending a receipt refers to
    x_tipo_ricevuta: str | None
    reply_to: str | None = None  # an incoming PEC's envelope names the original sender here


@dataclass(frozen=True)
class Quota:
    """Storage used and allowed under a quota root, in KiB (the unit of the IMAP QUOTA STORAGE resource)."""

    root: str
    used_kib: int
    limit_kib: int


class ImapClient:
    """One authenticated IMAP session. Use as ``async with ImapClient(endpoint, login) as imap: ...``."""

    def __init__(self, endpoint: Endpoint, login: Login, *, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.login = login
        self.timeout = timeout
        self._client: IMAPClient | None = None
        self._lock = anyio.Lock()
        self._capabilities: frozenset[str] = frozenset()
        self.selected: FolderState | None = None

    async def __aenter__(self) -> ImapClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    def supports(self, capability: str) -> bool:
        return capability.upper() in self._capabilities

    async def connect(self) -> None:
        """Open the connection (TLS verified), log in, and read the capabilities."""
        context = tls_context(self.endpoint.ca_file)
        await self._run(lambda: self._connect(context), "connecting")

    def _connect(self, context: ssl.SSLContext) -> None:
        implicit = self.endpoint.security == "tls"
        client = IMAPClient(self.endpoint.host, port=self.endpoint.port, ssl=implicit, ssl_context=context,
                            timeout=self.timeout)
        try:
            if not implicit:
                client.starttls(context)
            client.login(self.login.username, self.login.password)
            self._capabilities = frozenset(c.decode().upper() for c in client.capabilities())
        except BaseException:
            _quietly_close(client)
            raise
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Shielded: a cancelled task still logs out and closes its socket.
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    await anyio.to_thread.run_sync(_quietly_close, client)

    async def select(self, folder: str = "INBOX", *, readonly: bool = True) -> FolderState:
        """Select a folder (read-only unless deleting) and return its UIDVALIDITY, UIDNEXT and size."""
        answer = await self._call(lambda c: c.select_folder(folder, readonly=readonly), f"opening {folder}")
        uidvalidity = answer.get(b"UIDVALIDITY")
        if uidvalidity is None:
            raise BadResponse(f"The IMAP server gave no UIDVALIDITY for {folder}", provider=self._provider)
        self.selected = FolderState(name=folder, uidvalidity=int(uidvalidity),
                                    uidnext=_int_or_none(answer.get(b"UIDNEXT")), exists=int(answer[b"EXISTS"]))
        return self.selected

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` in the selected folder, oldest first (new mail since the last sync)."""
        found = await self._call(lambda c: c.search(["UID", f"{last_uid + 1}:*"]), "searching new mail")
        # "n:*" always matches the last message, even when its UID is below n (RFC 3501 §6.4.8).
        return sorted(uid for uid in found if uid > last_uid)

    async def search_header(self, name: str, value: str) -> list[int]:
        """UIDs of the messages whose header ``name`` contains ``value`` (server-side SEARCH HEADER)."""
        if not _SAFE_SEARCH.match(value) or not re.match(r"^[A-Za-z0-9-]{1,60}$", name):
            raise Rejected("A header search takes printable ASCII only", provider=self._provider)
        found = await self._call(lambda c: c.search(["HEADER", name, value]), "searching")
        return sorted(found)

    async def headers(self, uids: Sequence[int]) -> list[MessageHeaders]:
        """The indexed headers of these messages, fetched in batches; UIDs no longer there are left out."""
        result: list[MessageHeaders] = []
        for start in range(0, len(uids), FETCH_BATCH):
            batch = list(uids[start:start + FETCH_BATCH])

            def fetch(client: IMAPClient, batch: list[int] = batch) -> dict[int, dict[bytes, Any]]:
                return client.fetch(batch, ["RFC822.SIZE", "INTERNALDATE", _HEADER_ITEM])  # type: ignore[no-any-return]

            answer = await self._call(fetch, "fetching headers")
            result.extend(_headers(uid, data) for uid, data in sorted(answer.items()))
        return result

    async def message(self, uid: int) -> bytes | None:
        """The whole message as received (None when the UID is gone). Does not mark it as read."""
        answer = await self._call(lambda c: c.fetch([uid], ["BODY.PEEK[]"]), "fetching a message")
        data = answer.get(uid)
        if data is None:
            return None
        raw = data.get(b"BODY[]")
        if not isinstance(raw, bytes):
            raise BadResponse(f"The IMAP server returned no body for message {uid}", provider=self._provider)
        return raw

    async def append(self, folder: str, raw: bytes, *, seen: bool = False, when: datetime | None = None) -> int | None:
        """Store a message in a folder; its UID when the server says it (UIDPLUS), else None."""
        flags = [b"\\Seen"] if seen else []
        answer = await self._call(lambda c: c.append(folder, raw, flags=flags, msg_time=when), f"appending to {folder}")
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", answer if isinstance(answer, bytes) else b"")
        return int(match.group(1)) if match else None

    async def delete(self, uids: Iterable[int]) -> None:
        """Delete messages for good from the selected folder (selected with ``readonly=False``)."""
        chosen = list(uids)

        def delete(client: IMAPClient) -> None:
            client.delete_messages(chosen)
            if self.supports("UIDPLUS"):
                client.uid_expunge(chosen)  # only these: other clients' \\Deleted messages stay
            else:
                client.expunge()

        await self._call(delete, "deleting")

    async def quota(self, folder: str = "INBOX") -> Quota | None:
        """Storage quota of the folder's quota root (GETQUOTAROOT); None when the server has no QUOTA."""
        if not self.supports("QUOTA"):
            return None
        _roots, quotas = await self._call(lambda c: c.get_quota_root(folder), "reading the quota")
        for quota in quotas:
            if str(quota.resource).upper() == "STORAGE":
                return Quota(root=str(quota.quota_root), used_kib=int(quota.usage), limit_kib=int(quota.limit))
        return None

    async def wait_for_news(self, seconds: float) -> bool:
        """IDLE on the selected folder for at most ``seconds``; True when the server announced a change.

        The server is asked once to IDLE, then listened to a second at a time, so that a cancelled wait ends
        within a second. Without IDLE on the server this returns False at once: the caller then polls.
        """
        if not self.supports("IDLE"):
            return False
        client = self._client
        if client is None:
            raise RuntimeError("the IMAP session is not open")
        async with self._lock:
            await self._unlocked(client.idle, "starting IDLE")
            try:
                deadline = anyio.current_time() + seconds
                while (left := deadline - anyio.current_time()) > 0:
                    step = min(1.0, left)

                    def check(step: float = step) -> list[Any]:
                        return client.idle_check(timeout=step)  # type: ignore[no-any-return]

                    events = await self._unlocked(check, "waiting for new mail")
                    if any(isinstance(e, tuple) and len(e) > 1 and e[1] in (b"EXISTS", b"EXPUNGE", b"FETCH")
                           for e in events):
                        return True
                return False
            finally:
                if self._client is not None:
                    with anyio.CancelScope(shield=True):
                        await self._unlocked(client.idle_done, "ending IDLE")

    # -- plumbing ----------------------------------------------------------------------------------------------

    @property
    def _provider(self) -> str:
        return f"IMAP {self.endpoint.host}"

    async def _call(self, work: Callable[[IMAPClient], T], doing: str) -> T:
        client = self._client
        if client is None:
            raise RuntimeError("the IMAP session is not open")
        return await self._run(lambda: work(client), doing)

    async def _run(self, work: Callable[[], T], doing: str) -> T:
        async with self._lock:
            return await self._unlocked(work, doing)

    async def _unlocked(self, work: Callable[[], T], doing: str) -> T:
        try:
            return await anyio.to_thread.run_sync(work)
        except PecError:
            raise
        except LoginError:
            raise login_refused(self.endpoint, self.login, protocol="IMAP") from None
        except (IMAPClientAbortError, imaplib.IMAP4.abort, OSError) as exc:
            # The session is unusable after a drop: close it so that the next use reconnects.
            self._drop()
            raise connection_error(exc, self.endpoint, protocol="IMAP", doing=doing) from None
        except (IMAPClientError, imaplib.IMAP4.error) as exc:
            raise _refusal(str(exc), self._provider, doing) from None

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _quietly_close(client, logout=False)


def _refusal(text: str, provider: str, doing: str) -> PecError:
    # Server texts name the problem (a folder, a quota); they never hold our password, which is sent only at LOGIN.
    detail = text.strip()[:200]
    if "OVERQUOTA" in text.upper() or "QUOTA" in text.upper():
        return Rejected(f"The mailbox is over its quota ({detail})", provider=provider,
                        hint="Free space: delete or archive old messages (receipts carry copies of attachments).")
    return Rejected(f"The IMAP server refused {doing}: {detail}", provider=provider)


def _headers(uid: int, data: dict[bytes, Any]) -> MessageHeaders:
    raw = data.get(_HEADER_KEY) or next((v for k, v in data.items() if k.startswith(b"BODY[HEADER")), b"")
    # compat32, not policy.default: the modern policy's header objects cost about 5 ms a message, most of a
    # first sync's time; the few fields indexed are unfolded and decoded here instead.
    parsed: Message = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw or b"")

    def text(name: str) -> str | None:
        value = parsed.get(name)
        return None if value is None else header_text(value)

    internal = data.get(b"INTERNALDATE")
    return MessageHeaders(
        uid=uid, size=int(data.get(b"RFC822.SIZE") or 0),
        internal_date=internal if isinstance(internal, datetime) else None,
        message_id=text("Message-ID"), date=text("Date"), sender=text("From") or "", to=text("To") or "",
        subject=text("Subject") or "", x_ricevuta=text("X-Ricevuta"), x_trasporto=text("X-Trasporto"),
        x_riferimento=text("X-Riferimento-Message-ID"), x_tipo_ricevuta=text("X-TipoRicevuta"),
        reply_to=text("Reply-To"),
    )


def header_text(value: object) -> str:
    """A header value as one line of text: unfolded, its RFC 2047 encoded words decoded, raw 8-bit as UTF-8."""
    text = " ".join(str(value).split())
    if not text.isascii() and _SURROGATES.search(text):  # raw bytes kept by the parser as surrogates
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "=?" in text:
        with contextlib.suppress(ValueError, LookupError, UnicodeDecodeError):  # a broken one: shown as it came
            text = str(make_header(decode_header(text)))
    return text


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _quietly_close(client: IMAPClient, *, logout: bool = True) -> None:
    # Closing is best effort: the session is over either way, and its errors would hide the real one.
    try:
        if logout:
            client.logout()
        else:
            client.shutdown()
    except (IMAPClientError, imaplib.IMAP4.error, OSError):
        with contextlib.suppress(IMAPClientError, imaplib.IMAP4.error, OSError):
            client.shutdown()
