"""Who a bulk job goes to: recipients given in the call, or read from a CSV file (encoding and delimiter guessed)."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pec_mcp.errors import InputError
from pec_mcp.paths import allowed_file


@dataclass(frozen=True)
class RecipientRow:
    """One recipient as given: where it came from (CSV line or list position), its address and variables."""

    row: int
    address: str
    variables: dict[str, str]


def inline_recipients(items: Sequence[Mapping[str, Any]]) -> list[RecipientRow]:
    """Recipients given in the call, numbered from 1; variable names are case-insensitive."""
    rows = []
    for number, item in enumerate(items, start=1):
        variables = item.get("variables") or {}
        rows.append(RecipientRow(number, str(item.get("address") or ""),
                                 {str(k).strip().lower(): str(v) for k, v in variables.items() if str(v) != ""}))
    return rows


def decode_csv(raw: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, and Latin-1 for what is not UTF-8 (old Excel exports)."""
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("The CSV file starts with a UTF-8 mark but is not valid UTF-8",
                             hint="Save it again as CSV UTF-8.") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sniff_delimiter(header: str) -> str:
    """The delimiter of the header row: whichever of ``;``, ``,`` and tab it uses most (``,`` when none)."""
    counts = {d: header.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_recipients_csv(raw: str, folders: Sequence[Path]) -> list[RecipientRow]:
    """The recipients of a CSV file inside ``folders``; rows are numbered by their line in the file."""
    path = allowed_file(raw, folders)
    return parse_recipients_csv(path.read_bytes(), name=path.name)


def parse_recipients_csv(data: bytes, *, name: str = "the CSV file") -> list[RecipientRow]:
    """Parse CSV bytes: a header row naming ``address`` and the variables, then one recipient per row."""
    text = decode_csv(data)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first:
        raise InputError(f"{name} is empty", hint="The first row names the columns, one of them 'address'.")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first))
    try:
        header = next(row for row in reader if any(cell.strip() for cell in row))
        names = [cell.strip().lower() for cell in header]
        _check_header(names, name)
        rows = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names) and any(c.strip() for c in cells[len(names):]):
                raise InputError(f"{name}, row {reader.line_num}: {len(cells)} cells for {len(names)} columns",
                                 hint="A value probably contains the delimiter: put it in double quotes.")
            values = {names[i]: cell.strip() for i, cell in enumerate(cells[: len(names)]) if names[i]}
            address = values.pop("address", "")
            rows.append(RecipientRow(reader.line_num, address, {k: v for k, v in values.items() if v != ""}))
    except csv.Error as exc:
        raise InputError(f"{name} cannot be read as CSV (row {reader.line_num}: {exc})") from None
    return rows


def _check_header(names: list[str], name: str) -> None:
    if "address" not in names:
        found = ", ".join(repr(n) for n in names if n) or "none"
        raise InputError(f"{name} has no 'address' column (columns found: {found})",
                         hint="The first row must name the columns, one of them 'address'; separate them with "
                         "';' or ','.")
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise InputError(f"{name} names the column(s) {', '.join(repeated)} more than once")
