"""The simulated provider's mailboxes: one INBOX per account, messages with UIDs, flags and arrival dates."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser

_HEADERS = BytesHeaderParser(policy=policy.default)
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


@dataclass
class StoredMessage:
    uid: int
    raw: bytes  # exactly as delivered, CRLF line endings
    internal_date: float  # Unix time of arrival
    flags: set[str] = field(default_factory=set)
    _headers: Message | None = field(default=None, repr=False)

    @property
    def headers(self) -> Message:
        """The parsed header section, kept: SEARCH HEADER runs over every message."""
        if self._headers is None:
            self._headers = _HEADERS.parsebytes(self.header_bytes())
        return self._headers

    def header_bytes(self) -> bytes:
        end = self.raw.find(b"\r\n\r\n")
        return self.raw if end < 0 else self.raw[: end + 4]

    def text_bytes(self) -> bytes:
        end = self.raw.find(b"\r\n\r\n")
        return b"" if end < 0 else self.raw[end + 4 :]


class Mailbox:
    """One account's INBOX. Changed only on the provider's event loop; sessions wait on :meth:`changed`."""

    def __init__(self, address: str, password: str, *, uidvalidity: int, quota_bytes: int) -> None:
        self.address = address
        self.password = password
        self.uidvalidity = uidvalidity
        self.quota_bytes = quota_bytes
        self.next_uid = 1
        self.messages: dict[int, StoredMessage] = {}  # by UID, in UID order
        self._waiters: set[asyncio.Event] = set()

    def size(self) -> int:
        return sum(len(m.raw) for m in self.messages.values())

    def has_room_for(self, size: int) -> bool:
        return self.size() + size <= self.quota_bytes

    def append(self, raw: bytes, at: float, flags: set[str] | None = None) -> int:
        uid = self.next_uid
        self.next_uid += 1
        self.messages[uid] = StoredMessage(uid, raw, at, set(flags or ()))
        self._notify()
        return uid

    def expunge(self) -> list[int]:
        """Remove every message flagged \\Deleted; their UIDs, ascending."""
        gone = [uid for uid, message in self.messages.items() if "\\Deleted" in message.flags]
        for uid in gone:
            del self.messages[uid]
        if gone:
            self._notify()
        return gone

    def watch(self) -> asyncio.Event:
        """An event set at the next change; pass it to :meth:`unwatch` when done."""
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def unwatch(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def _notify(self) -> None:
        for event in self._waiters:
            event.set()
