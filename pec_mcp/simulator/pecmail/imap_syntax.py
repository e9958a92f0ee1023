"""IMAP4rev1 command syntax (RFC 3501 §9): reading a command with its literals, tokens, sequence sets, dates."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime

MAX_LINE = 64 * 1024
MAX_LITERAL = 64 * 1024 * 1024
_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r?\n$")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Token = str | bytes | list["Token"]  # atom or quoted string | literal | parenthesized list


class SyntaxProblem(Exception):
    """The command cannot be parsed; answered with BAD."""


async def read_command(
    reader: asyncio.StreamReader, continue_literal: Callable[[], Awaitable[None]]
) -> list[bytes | str] | None:
    """One command as text pieces and literal bytes, alternating; None at end of stream."""
    pieces: list[bytes | str] = []
    while True:
        line = await reader.readline()
        if not line:
            return None
        if len(line) > MAX_LINE:
            raise SyntaxProblem("command line too long")
        match = _LITERAL.search(line)
        if not match:
            pieces.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
            return pieces
        size = int(match.group(1))
        if size > MAX_LITERAL:
            raise SyntaxProblem("literal too large")
        pieces.append(line[: match.start()].decode("utf-8", "replace"))
        if not match.group(2):
            await continue_literal()
        pieces.append(await reader.readexactly(size))


def tokenize(pieces: list[bytes | str]) -> list[Token]:
    """Tokens of a command: atoms (BODY.PEEK[HEADER.FIELDS (A B)] stays one atom), quoted strings, literals, lists."""
    stack: list[list[Token]] = [[]]
    for piece in pieces:
        if isinstance(piece, bytes):
            stack[-1].append(piece)
            continue
        index = 0
        while index < len(piece):
            char = piece[index]
            if char == " ":
                index += 1
            elif char == "(":
                stack.append([])
                index += 1
            elif char == ")":
                if len(stack) == 1:
                    raise SyntaxProblem("unbalanced parenthesis")
                done = stack.pop()
                stack[-1].append(done)
                index += 1
            elif char == '"':
                text, index = _quoted(piece, index)
                stack[-1].append(text)
            else:
                atom, index = _atom(piece, index)
                stack[-1].append(atom)
    if len(stack) != 1:
        raise SyntaxProblem("unbalanced parenthesis")
    return stack[0]


def _quoted(text: str, index: int) -> tuple[str, int]:
    out = []
    index += 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            out.append(text[index + 1])
            index += 2
        elif char == '"':
            return "".join(out), index + 1
        else:
            out.append(char)
            index += 1
    raise SyntaxProblem("unterminated quoted string")


def _atom(text: str, index: int) -> tuple[str, int]:
    start = index
    depth = 0
    while index < len(text):
        char = text[index]
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif depth == 0 and char in " ()":
            break
        index += 1
    return text[start:index], index


def text_of(token: Token) -> str:
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    if isinstance(token, list):
        raise SyntaxProblem("a list where a string was expected")
    return token


def parse_set(text: str, largest: int) -> list[tuple[int, int]]:
    """A sequence set (``1:4,7,9:*``) as inclusive ranges; ``*`` is ``largest``."""
    ranges = []
    for part in text.split(","):
        ends = part.split(":")
        if not 1 <= len(ends) <= 2 or not all(_is_number(e) for e in ends):
            raise SyntaxProblem(f"invalid sequence set {text!r}")
        values = [largest if e == "*" else int(e) for e in ends]
        ranges.append((min(values), max(values)))
    return ranges


def in_set(value: int, ranges: list[tuple[int, int]]) -> bool:
    return any(low <= value <= high for low, high in ranges)


def _is_number(text: str) -> bool:
    return text == "*" or (text.isdigit() and int(text) > 0)


def parse_date(text: str) -> date:
    """``1-Feb-2026`` (RFC 3501 date)."""
    try:
        day, month, year = text.split("-")
        return date(int(year), MONTHS.index(month.capitalize()) + 1, int(day))
    except ValueError as exc:
        raise SyntaxProblem(f"invalid date {text!r}: use d-Mon-yyyy, e.g. 1-Feb-2026") from exc


def internal_date(moment: datetime) -> str:
    """``"01-Feb-2026 10:00:00 +0100"``, quoted, as FETCH INTERNALDATE answers."""
    return f'"{moment.day:02d}-{MONTHS[moment.month - 1]}-{moment.year} {moment:%H:%M:%S %z}"'

