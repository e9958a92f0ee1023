"""A small IMAP4rev1 server (RFC 3501) over the simulated mailboxes, with IDLE (RFC 2177) and QUOTA (RFC 2087).

Enough of the protocol for a PEC client and for the standard library's ``imaplib``: CAPABILITY, LOGIN,
AUTHENTICATE PLAIN, SELECT/EXAMINE, LIST/LSUB, STATUS, SEARCH, FETCH, STORE (each also as UID ...), APPEND, EXPUNGE,
CLOSE, UNSELECT, CHECK, IDLE, GETQUOTAROOT/GETQUOTA, NOOP, LOGOUT. One folder, INBOX. Each session keeps its own
view of the mailbox (UIDs by sequence number) and hears of new messages and expunges at NOOP, IDLE and CHECK,
and of new messages after any command, as the RFC allows.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pec_mcp.simulator.pecmail.imap_syntax import (
    SyntaxProblem,
    Token,
    in_set,
    internal_date,
    parse_date,
    parse_set,
    read_command,
    text_of,
    tokenize,
)
from pec_mcp.simulator.pecmail.mailstore import SYSTEM_FLAGS, Mailbox, StoredMessage
from pec_mcp.simulator.pecmail.provider import PecProvider

log = logging.getLogger(__name__)
ROME = ZoneInfo("Europe/Rome")
CAPABILITIES = "IMAP4rev1 AUTH=PLAIN IDLE QUOTA UNSELECT"
Predicate = Callable[[StoredMessage, int], bool]
_SECTION = re.compile(r"^(BODY(?:\.PEEK)?)\[([^\]]*)\](?:<(\d+)(?:\.(\d+))?>)?$", re.IGNORECASE)


class Bad(Exception):
    """Answer the command with BAD (syntax) or NO (refused), with this text."""

    def __init__(self, text: str, *, status: str = "BAD") -> None:
        super().__init__(text)
        self.status = status


class ImapSession:
    def __init__(self, provider: PecProvider, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.provider = provider
        self.reader = reader
        self.writer = writer
        self.mailbox: Mailbox | None = None  # the authenticated account's INBOX
        self.selected = False
        self.read_only = False
        self.view: list[int] = []  # UIDs by sequence number - 1

    # --- the loop ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.send(f"* OK [CAPABILITY {CAPABILITIES}] Simulatore PEC IMAP4rev1 ready")
        while True:
            try:
                pieces = await read_command(self.reader, lambda: self.send("+ Ready for literal data"))
            except SyntaxProblem as exc:
                await self.send(f"* BAD {exc}")
                continue
            if pieces is None:
                return
            tokens = tokenize_or_none(pieces)
            if not tokens or not isinstance(tokens[0], str):
                await self.send("* BAD expected a tag and a command")
                continue
            tag, command, args = tokens[0], (text_of(tokens[1]).upper() if len(tokens) > 1 else ""), tokens[2:]
            self.provider.deliver_due()
            try:
                done = await self.dispatch(tag, command, args)
            except Bad as exc:
                await self.send(f"{tag} {exc.status} {exc}")
                continue
            except SyntaxProblem as exc:
                await self.send(f"{tag} BAD {exc}")
                continue
            if done == "logout":
                return

    async def dispatch(self, tag: str, command: str, args: list[Token]) -> str | None:
        if command == "UID":
            if not args:
                raise Bad("UID needs a command")
            sub = text_of(args[0]).upper()
            if sub not in ("FETCH", "SEARCH", "STORE"):
                raise Bad(f"UID {sub} is not supported")
            self._need_selected()
            await getattr(self, f"do_{sub.lower()}")(args[1:], by_uid=True)
            await self._sync(expunges=False)
            await self.send(f"{tag} OK UID {sub} completed")
            return None
        handler = getattr(self, f"do_{command.lower()}", None)
        if handler is None:
            raise Bad(f"unknown command {command}")
        if command not in ("CAPABILITY", "NOOP", "LOGOUT", "LOGIN", "AUTHENTICATE") and self.mailbox is None:
            raise Bad("log in first (LOGIN or AUTHENTICATE PLAIN)", status="NO")
        if command in ("FETCH", "SEARCH", "STORE", "EXPUNGE", "CLOSE", "UNSELECT", "CHECK"):
            self._need_selected()
        if command in ("FETCH", "SEARCH", "STORE"):
            await handler(args, by_uid=False)
            await self._sync(expunges=False)
            await self.send(f"{tag} OK {command} completed")
            return None
        result: str | None = await handler(tag, args)
        if result in (None, "logout"):
            return result
        await self.send(f"{tag} {result}")
        return None

    async def send(self, line: str | bytes) -> None:
        self.writer.write((line.encode("utf-8") if isinstance(line, str) else line) + b"\r\n")
        await self.writer.drain()

    # --- not authenticated ------------------------------------------------------------------------------------

    async def do_capability(self, tag: str, args: list[Token]) -> str:
        await self.send(f"* CAPABILITY {CAPABILITIES}")
        return "OK CAPABILITY completed"

    async def do_noop(self, tag: str, args: list[Token]) -> str:
        if self.selected:
            await self._sync(expunges=True)
        return "OK NOOP completed"

    async def do_check(self, tag: str, args: list[Token]) -> str:
        await self._sync(expunges=True)
        return "OK CHECK completed"

    async def do_logout(self, tag: str, args: list[Token]) -> str:
        await self.send("* BYE Simulatore PEC logging out")
        await self.send(f"{tag} OK LOGOUT completed")
        return "logout"

    async def do_login(self, tag: str, args: list[Token]) -> str:
        if len(args) != 2:
            raise Bad("LOGIN needs a user name and a password")
        return self._log_in(text_of(args[0]), text_of(args[1]))

    async def do_authenticate(self, tag: str, args: list[Token]) -> str:
        if not args or text_of(args[0]).upper() != "PLAIN":
            raise Bad("only AUTHENTICATE PLAIN is offered", status="NO")
        if len(args) > 1:
            answer = text_of(args[1]).encode()
        else:
            await self.send("+ ")
            answer = (await self.reader.readline()).strip()
        if answer == b"*":
            raise Bad("authentication cancelled")
        try:
            _, user, password = base64.b64decode(answer, validate=True).decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise Bad("AUTHENTICATE PLAIN expects base64 of authzid NUL user NUL password") from exc
        return self._log_in(user, password)

    def _log_in(self, user: str, password: str) -> str:
        if self.mailbox is not None:
            raise Bad("already logged in")
        mailbox = self.provider.mailbox(user)
        if mailbox is None or mailbox.password != password:
            raise Bad("[AUTHENTICATIONFAILED] invalid user name or password", status="NO")
        self.mailbox = mailbox
        return f"OK [CAPABILITY {CAPABILITIES}] logged in"

    # --- authenticated ----------------------------------------------------------------------------------------

    async def do_select(self, tag: str, args: list[Token], *, read_only: bool = False) -> str:
        mailbox = self._inbox(args)
        self.selected, self.read_only = True, read_only
        self.view = list(mailbox.messages)
        flags = " ".join(SYSTEM_FLAGS)
        await self.send(f"* FLAGS ({flags})")
        await self.send(f"* {len(self.view)} EXISTS")
        await self.send("* 0 RECENT")
        await self.send(f"* OK [PERMANENTFLAGS ({flags})] flags permitted")
        await self.send(f"* OK [UIDVALIDITY {mailbox.uidvalidity}] UIDs valid")
        await self.send(f"* OK [UIDNEXT {mailbox.next_uid}] predicted next UID")
        mode = "READ-ONLY" if read_only else "READ-WRITE"
        return f"OK [{mode}] {'EXAMINE' if read_only else 'SELECT'} completed"

    async def do_examine(self, tag: str, args: list[Token]) -> str:
        return await self.do_select(tag, args, read_only=True)

    async def do_list(self, tag: str, args: list[Token], *, verb: str = "LIST") -> str:
        if len(args) != 2:
            raise Bad(f"{verb} needs a reference and a mailbox pattern")
        pattern = text_of(args[1])
        if pattern == "":
            await self.send(f'* {verb} (\\Noselect) "/" ""')
        elif re.fullmatch(re.escape(pattern).replace(r"\*", ".*").replace("%", "[^/]*"), "INBOX", re.IGNORECASE):
            await self.send(f'* {verb} (\\HasNoChildren) "/" INBOX')
        return f"OK {verb} completed"

    async def do_lsub(self, tag: str, args: list[Token]) -> str:
        return await self.do_list(tag, args, verb="LSUB")

    async def do_status(self, tag: str, args: list[Token]) -> str:
        if len(args) != 2 or not isinstance(args[1], list):
            raise Bad("STATUS needs a mailbox and a list of items")
        mailbox = self._inbox(args[:1])
        values = {
            "MESSAGES": len(mailbox.messages),
            "RECENT": 0,
            "UIDNEXT": mailbox.next_uid,
            "UIDVALIDITY": mailbox.uidvalidity,
            "UNSEEN": sum("\\Seen" not in m.flags for m in mailbox.messages.values()),
        }
        items = [text_of(i).upper() for i in args[1]]
        unknown = [i for i in items if i not in values]
        if unknown:
            raise Bad(f"unknown STATUS item {unknown[0]}")
        await self.send(f"* STATUS INBOX ({' '.join(f'{i} {values[i]}' for i in items)})")
        return "OK STATUS completed"

    async def do_append(self, tag: str, args: list[Token]) -> str:
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise Bad("APPEND needs a mailbox and a message literal")
        mailbox = self._inbox(args[:1])
        flags = {text_of(f) for f in args[1]} if isinstance(args[1], list) else set()
        mailbox.append(args[-1], self.provider.clock.now(), flags & set(SYSTEM_FLAGS))
        return "OK APPEND completed"

    async def do_getquotaroot(self, tag: str, args: list[Token]) -> str:
        self._inbox(args[:1])
        await self.send('* QUOTAROOT INBOX ""')
        await self._quota()
        return "OK GETQUOTAROOT completed"

    async def do_getquota(self, tag: str, args: list[Token]) -> str:
        if not args or text_of(args[0]) != "":
            raise Bad('the only quota root is ""', status="NO")
        await self._quota()
        return "OK GETQUOTA completed"

    async def _quota(self) -> None:
        assert self.mailbox is not None
        used, limit = (self.mailbox.size() + 1023) // 1024, self.mailbox.quota_bytes // 1024
        await self.send(f'* QUOTA "" (STORAGE {used} {limit})')

    async def do_idle(self, tag: str, args: list[Token]) -> None:
        assert self.mailbox is not None
        await self.send("+ idling")
        line_task = asyncio.ensure_future(self.reader.readline())
        try:
            while True:
                change = self.mailbox.watch()
                if self.selected:
                    await self._sync(expunges=True)
                change_task = asyncio.ensure_future(change.wait())
                done, _ = await asyncio.wait({line_task, change_task}, timeout=0.25,
                                             return_when=asyncio.FIRST_COMPLETED)
                change_task.cancel()
                self.mailbox.unwatch(change)
                if line_task in done:
                    break
                self.provider.deliver_due()  # the clock may have moved: deliver what is due, and tell
        finally:
            if not line_task.done():
                line_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await line_task
        line = line_task.result() if not line_task.cancelled() else b""
        if line.strip().upper() != b"DONE":
            await self.send(f"{tag} BAD expected DONE")
            return
        await self.send(f"{tag} OK IDLE terminated")

    # --- selected -----------------------------------------------------------------------------------------------

    async def do_expunge(self, tag: str, args: list[Token]) -> str:
        self._need_writable()
        assert self.mailbox is not None
        self.mailbox.expunge()
        await self._sync(expunges=True)
        return "OK EXPUNGE completed"

    async def do_close(self, tag: str, args: list[Token]) -> str:
        if not self.read_only and self.mailbox is not None:
            self.mailbox.expunge()
        self.selected, self.view = False, []
        return "OK CLOSE completed"

    async def do_unselect(self, tag: str, args: list[Token]) -> str:
        self.selected, self.view = False, []
        return "OK UNSELECT completed"

    async def do_search(self, args: list[Token], *, by_uid: bool) -> None:
        if len(args) >= 2 and isinstance(args[0], str) and args[0].upper() == "CHARSET":
            if text_of(args[1]).upper() not in ("UTF-8", "US-ASCII"):
                raise Bad("[BADCHARSET (UTF-8 US-ASCII)] charset not supported", status="NO")
            args = args[2:]
        predicate = self._criteria(args or ["ALL"])
        found = []
        for seq, message in self._messages():
            if predicate(message, seq):
                found.append(message.uid if by_uid else seq)
        await self.send("* SEARCH" + "".join(f" {n}" for n in found))

    async def do_fetch(self, args: list[Token], *, by_uid: bool) -> None:
        if len(args) != 2:
            raise Bad("FETCH needs a sequence set and items")
        chosen = self._chosen(text_of(args[0]), by_uid)
        items = _fetch_items(args[1])
        if by_uid and "UID" not in items:
            items.insert(0, "UID")
        for seq, message in chosen:
            await self._fetch_one(seq, message, items)

    async def do_store(self, args: list[Token], *, by_uid: bool) -> None:
        self._need_writable()
        if len(args) != 3:
            raise Bad("STORE needs a sequence set, FLAGS/+FLAGS/-FLAGS and a list of flags")
        action = text_of(args[1]).upper()
        silent = action.endswith(".SILENT")
        action = action.removesuffix(".SILENT")
        if action not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise Bad(f"unknown STORE action {action}")
        flags = {_flag(text_of(f)) for f in (args[2] if isinstance(args[2], list) else [args[2]])}
        for seq, message in self._chosen(text_of(args[0]), by_uid):
            if action == "FLAGS":
                message.flags = set(flags)
            elif action == "+FLAGS":
                message.flags |= flags
            else:
                message.flags -= flags
            if not silent:
                uid = f"UID {message.uid} " if by_uid else ""
                await self.send(f"* {seq} FETCH ({uid}FLAGS ({' '.join(sorted(message.flags))}))")

    # --- helpers ------------------------------------------------------------------------------------------------

    def _inbox(self, args: list[Token]) -> Mailbox:
        if not args or text_of(args[0]).upper() != "INBOX":
            raise Bad("[NONEXISTENT] only INBOX exists on this server", status="NO")
        assert self.mailbox is not None
        return self.mailbox

    def _need_selected(self) -> None:
        if self.mailbox is None:
            raise Bad("log in first (LOGIN or AUTHENTICATE PLAIN)", status="NO")
        if not self.selected:
            raise Bad("select a mailbox first (SELECT INBOX)", status="NO")

    def _need_writable(self) -> None:
        if self.read_only:
            raise Bad("the mailbox is open read-only (EXAMINE); SELECT it to change it", status="NO")

    def _messages(self) -> list[tuple[int, StoredMessage]]:
        assert self.mailbox is not None
        found = []
        for index, uid in enumerate(self.view):
            message = self.mailbox.messages.get(uid)
            if message is not None:  # expunged by another session: gone, announced at the next NOOP
                found.append((index + 1, message))
        return found

    def _chosen(self, text: str, by_uid: bool) -> list[tuple[int, StoredMessage]]:
        largest = (self.view[-1] if self.view else 0) if by_uid else len(self.view)
        ranges = parse_set(text, largest)
        return [(seq, m) for seq, m in self._messages() if in_set(m.uid if by_uid else seq, ranges)]

    async def _sync(self, *, expunges: bool) -> None:
        """Tell the client of new messages (always allowed) and of expunged ones (only where the RFC allows)."""
        if not self.selected or self.mailbox is None:
            return
        if expunges:
            for index in range(len(self.view) - 1, -1, -1):
                if self.view[index] not in self.mailbox.messages:
                    del self.view[index]
                    await self.send(f"* {index + 1} EXPUNGE")
        last = self.view[-1] if self.view else 0
        new = [uid for uid in self.mailbox.messages if uid > last]
        if new:
            self.view.extend(new)
            await self.send(f"* {len(self.view)} EXISTS")

    async def _fetch_one(self, seq: int, message: StoredMessage, items: list[str]) -> None:
        parts: list[bytes] = []
        mark_seen = False
        for item in items:
            upper = item.upper()
            if upper == "UID":
                parts.append(f"UID {message.uid}".encode())
            elif upper == "FLAGS":
                continue  # added last, after a BODY[] fetch may have set \Seen
            elif upper == "INTERNALDATE":
                moment = datetime.fromtimestamp(message.internal_date, ROME)
                parts.append(f"INTERNALDATE {internal_date(moment)}".encode())
            elif upper == "RFC822.SIZE":
                parts.append(f"RFC822.SIZE {len(message.raw)}".encode())
            elif upper in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
                data = {"RFC822": message.raw, "RFC822.HEADER": message.header_bytes(),
                        "RFC822.TEXT": message.text_bytes()}[upper]
                mark_seen |= upper != "RFC822.HEADER"
                parts.append(_literal(upper, data))
            else:
                name, data, peek = _section(item, message)
                mark_seen |= not peek
                if len(data) > 1 and self.provider.faults.take("drop_during_fetch"):
                    await self._drop_midway(seq, name, data)
                parts.append(_literal(name, data))
        newly_seen = mark_seen and not self.read_only and "\\Seen" not in message.flags
        if newly_seen:
            message.flags.add("\\Seen")
        if newly_seen or any(i.upper() == "FLAGS" for i in items):  # RFC 3501: a flag change is announced
            parts.append(f"FLAGS ({' '.join(sorted(message.flags))})".encode())
        await self.send(f"* {seq} FETCH (".encode() + b" ".join(parts) + b")")

    async def _drop_midway(self, seq: int, name: str, data: bytes) -> None:
        """Send half of a FETCH literal, then hang up: a connection lost in the middle of a download."""
        self.writer.write(f"* {seq} FETCH (".encode() + _literal(name, data)[: len(name) + 16 + len(data) // 2])
        await self.writer.drain()
        raise ConnectionAbortedError("fault: connection dropped during FETCH")

    def _criteria(self, tokens: list[Token]) -> Predicate:
        position = 0
        predicates = []
        while position < len(tokens):
            predicate, position = self._criterion(tokens, position)
            predicates.append(predicate)
        return lambda m, s: all(p(m, s) for p in predicates)

    def _criterion(self, tokens: list[Token], at: int) -> tuple[Predicate, int]:
        token = tokens[at]
        if isinstance(token, list):
            return self._criteria(token), at + 1
        key = text_of(token).upper()

        def arg(offset: int = 1) -> str:
            if at + offset >= len(tokens):
                raise Bad(f"SEARCH {key} needs an argument")
            return text_of(tokens[at + offset])

        flags = {"SEEN": "\\Seen", "ANSWERED": "\\Answered", "FLAGGED": "\\Flagged", "DELETED": "\\Deleted",
                 "DRAFT": "\\Draft"}
        if key == "ALL":
            return (lambda m, s: True), at + 1
        if key in flags:
            return (lambda m, s: flags[key] in m.flags), at + 1
        if key.startswith("UN") and key[2:] in flags:
            return (lambda m, s: flags[key[2:]] not in m.flags), at + 1
        if key in ("NEW", "RECENT"):
            return (lambda m, s: False), at + 1  # no session sees a message as recent here
        if key == "OLD":
            return (lambda m, s: True), at + 1
        if key == "NOT":
            inner, after = self._criterion(tokens, at + 1)
            return (lambda m, s: not inner(m, s)), after
        if key == "OR":
            left, middle = self._criterion(tokens, at + 1)
            right, after = self._criterion(tokens, middle)
            return (lambda m, s: left(m, s) or right(m, s)), after
        if key == "UID":
            ranges = parse_set(arg(), self.view[-1] if self.view else 0)
            return (lambda m, s: in_set(m.uid, ranges)), at + 2
        if key == "HEADER":
            field, wanted = arg(1), arg(2).lower()
            return (lambda m, s: _header_has(m, field, wanted)), at + 3
        if key in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
            wanted = arg().lower()
            return (lambda m, s: _header_has(m, key, wanted)), at + 2
        if key in ("BODY", "TEXT"):
            needle = arg().lower().encode()
            whole = key == "TEXT"
            return (lambda m, s: needle in (m.raw if whole else m.text_bytes()).lower()), at + 2
        if key in ("SINCE", "BEFORE", "ON"):
            day = parse_date(arg())
            return (lambda m, s: _compare_day(key, _arrival_day(m), day)), at + 2
        if key in ("LARGER", "SMALLER"):
            size = int(arg()) if arg().isdigit() else -1
            if size < 0:
                raise Bad(f"SEARCH {key} needs a number")
            return ((lambda m, s: len(m.raw) > size) if key == "LARGER" else (lambda m, s: len(m.raw) < size)), at + 2
        if re.fullmatch(r"[\d*:,]+", key):
            ranges = parse_set(key, len(self.view))
            return (lambda m, s: in_set(s, ranges)), at + 1
        raise Bad(f"SEARCH key {key} is not supported")


def tokenize_or_none(pieces: list[bytes | str]) -> list[Token] | None:
    try:
        return tokenize(pieces)
    except SyntaxProblem:
        return None


def _fetch_items(token: Token) -> list[str]:
    macros = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"], "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
              "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]}
    if isinstance(token, list):
        items = [text_of(t) for t in token]
    else:
        items = macros.get(text_of(token).upper(), [text_of(token)])
    for item in items:
        upper = item.upper()
        if upper in ("ENVELOPE", "BODYSTRUCTURE", "BODY"):
            raise Bad(f"FETCH {upper} is not supported here; fetch BODY.PEEK[] and parse it")
        if upper not in ("UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "RFC822", "RFC822.HEADER",
                         "RFC822.TEXT") and not _SECTION.match(item):
            raise Bad(f"unknown FETCH item {item}")
    return items


def _section(item: str, message: StoredMessage) -> tuple[str, bytes, bool]:
    """The response name, the bytes and whether it was a PEEK, for BODY[...] and BODY.PEEK[...]."""
    match = _SECTION.match(item)
    assert match is not None
    peek = "PEEK" in match.group(1).upper()
    section = match.group(2)
    upper = section.upper()
    if upper == "":
        data = message.raw
    elif upper == "HEADER":
        data = message.header_bytes()
    elif upper == "TEXT":
        data = message.text_bytes()
    elif upper.startswith("HEADER.FIELDS"):
        names_text = section[section.find("(") + 1 : section.rfind(")")]
        names = {n.strip('"').lower() for n in names_text.split()}
        data = _header_fields(message.header_bytes(), names, exclude=upper.startswith("HEADER.FIELDS.NOT"))
    else:
        raise Bad(f"BODY[{section}] is not supported here; fetch BODY.PEEK[] and parse it")
    name = f"BODY[{section}]"
    if match.group(3) is not None:
        start = int(match.group(3))
        length = int(match.group(4)) if match.group(4) is not None else len(data)
        data = data[start : start + length]
        name += f"<{start}>"
    return name, data, peek


def _header_fields(header: bytes, names: set[str], *, exclude: bool) -> bytes:
    lines = re.split(rb"\r\n(?![ \t])", header.rstrip(b"\r\n"))
    kept = [line for line in lines if (line.split(b":", 1)[0].strip().decode("ascii", "replace").lower() in names)
            != exclude]
    return b"".join(line + b"\r\n" for line in kept if line) + b"\r\n"


def _arrival_day(message: StoredMessage) -> date:
    return datetime.fromtimestamp(message.internal_date, ROME).date()


def _compare_day(key: str, arrival: date, day: date) -> bool:
    if key == "SINCE":
        return arrival >= day
    if key == "BEFORE":
        return arrival < day
    return arrival == day


def _header_has(message: StoredMessage, field: str, wanted: str) -> bool:
    values = message.headers.get_all(field) or []
    return any(wanted in str(value).lower() for value in values)


def _flag(text: str) -> str:
    for flag in SYSTEM_FLAGS:
        if flag.lower() == text.lower():
            return flag
    return text  # a keyword: kept as given


def _literal(name: str, data: bytes) -> bytes:
    return f"{name} {{{len(data)}}}\r\n".encode() + data


async def serve_session(provider: PecProvider, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    session = ImapSession(provider, reader, writer)
    try:
        await session.run()
    except (OSError, asyncio.IncompleteReadError):
        pass  # the client went away (reset, TLS torn down), or a fault dropped the connection
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()

