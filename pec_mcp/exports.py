"""Files people keep: the sendings as CSV or JSON (one row per recipient), and the evidence pack of one sending.

Both are written to a new file only (never over an existing one, never through a symlink), read from the store
through :mod:`pec_mcp.records` a page at a time, so that memory stays flat whatever the size of the ledger.
The evidence pack is a ZIP a lawyer can be handed: the receipts as received, their verification, the ledger and
audit entries, a one-page HTML summary, and the SHA-256 of every file in it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pec_mcp.errors import NotFound, PathNotAllowed
from pec_mcp.records import ExportRow, ReceiptRow, Records, SendingFilter, SendingRow, step_meaning

if TYPE_CHECKING:
    from jinja2 import Environment

Format = Literal["csv", "json"]
Progress = Callable[[int, int], None]  # (rows written, rows in all)
PROGRESS_EVERY = 5000
# Where a receipt's raw bytes are the signed message itself (an IMAP mailbox), not a provider's text.
MESSAGE_SOURCES = frozenset({"imap"})
FORMULA_STARTS = frozenset("=+-@\t\r")


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    rows: int
    bytes: int


@dataclass(frozen=True)
class EvidenceSummary:
    path: Path
    bytes: int
    files: list[str]
    receipts: int
    originals: int
    sending: SendingRow


def open_new(target: Path) -> IO[bytes]:
    """Create ``target`` for writing: never an existing file, never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise PathNotAllowed(f"{target} already exists", hint="Choose another file name; files are never "
                             "overwritten.") from None
    return os.fdopen(fd, "wb")


def export_sendings(records: Records, flt: SendingFilter, fmt: Format, out: IO[bytes], *,
                    progress: Progress | None = None) -> int:
    """Write one row per recipient of every sending that matches, oldest first; returns the rows written."""
    total = records.count_export_rows(flt) if progress else 0
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    written = 0
    try:
        writer: CsvRows | JsonRows = CsvRows(text) if fmt == "csv" else JsonRows(text)
        for row in records.export_rows(flt):
            writer.write(row)
            written += 1
            if progress and written % PROGRESS_EVERY == 0:
                progress(written, total)
        writer.close()
        if progress:
            progress(written, total)
    finally:
        text.flush()
        text.detach()
    return written


class CsvRows:
    """A header, then one line per row; text that a spreadsheet would run as a formula is quoted."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self.writer = csv.writer(text)
        self.writer.writerow(ExportRow.FIELDS)

    def write(self, row: ExportRow) -> None:
        self.writer.writerow(map(_cell, row.values()))

    def close(self) -> None:
        pass


def _cell(value: Any) -> Any:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: subjects are written by people.
    if value.__class__ is str and value and value[0] in FORMULA_STARTS:
        return "'" + value
    return value


class JsonRows:
    """One JSON array, written an object at a time."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self.text = text
        self.first = True
        text.write("[")

    def write(self, row: ExportRow) -> None:
        item = json.dumps(dict(zip(ExportRow.FIELDS, row.values(), strict=True)), ensure_ascii=False)
        self.text.write(("\n" if self.first else ",\n") + item)
        self.first = False

    def close(self) -> None:
        self.text.write("\n]\n")


def export_sendings_to(records: Records, flt: SendingFilter, fmt: Format, target: Path, *,
                       progress: Progress | None = None) -> ExportSummary:
    with open_new(target) as out:
        rows = export_sendings(records, flt, fmt, out, progress=progress)
    return ExportSummary(target, rows, target.stat().st_size)


# -- the evidence pack


def _templates() -> Environment:
    from jinja2 import Environment, PackageLoader  # only when a pack is made: a stdio server need not load it

    return Environment(loader=PackageLoader("pec_mcp", "templates"), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True)


def evidence_pack(records: Records, message_id: str, target: Path, *, environment: str,
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> EvidenceSummary:
    """Write the evidence ZIP of one sending (looked up by its message_id in the ledger) to ``target``."""
    sending = records.sending_by_message_id(message_id)
    if sending is None:
        raise NotFound(f"The sending {message_id!r} is not in the local ledger", provider="pec-mcp",
                       hint="Only sendings made through pec-mcp on this store can be exported; find_pec_sendings "
                       "lists them.")
    audit = records.audit(ref=message_id, limit=1000)
    hashes: dict[str, str] = {}
    with open_new(target) as out, zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as pack:

        def put(name: str, data: bytes) -> None:
            hashes[name] = hashlib.sha256(data).hexdigest()
            pack.writestr(name, data)

        originals = 0
        verification = []
        for number, (receipt, raw) in enumerate(records.receipts_as_received(sending), start=1):
            name = f"receipts/{number:02d}-{_slug(receipt.label)}" + (f"-{_slug(receipt.recipient)}"
                                                                    if receipt.recipient else "")
            file = None
            if raw is not None and receipt.source in MESSAGE_SOURCES:
                file = f"{name}.eml"
                put(file, raw)  # the signed message, byte for byte as the provider delivered it
                originals += 1
            elif raw is not None or receipt.text:
                file = f"{name}.txt"
                put(file, _receipt_text(receipt, raw).encode("utf-8"))
            verification.append(_verified(receipt, file))
        put("verification.json", _json({"sending": message_id, "receipts": verification}))
        put("ledger.json", _json(_ledger(sending, records)))
        put("audit.json", _json([asdict(a) | {"when": a.when} for a in audit]))
        summary = _templates().get_template("evidence.html").render(
            sending=sending, timeline=records.timeline(sending), audit=audit, files=sorted(hashes),
            environment=environment, made_at=now().isoformat(timespec="seconds"), verification=verification)
        put("summary.html", summary.encode("utf-8"))
        put("SHA256SUMS", "".join(f"{digest}  {name}\n" for name, digest in sorted(hashes.items())).encode())
    files = sorted(hashes)
    return EvidenceSummary(target, target.stat().st_size, files, len(verification), originals, sending)


def _receipt_text(receipt: ReceiptRow, raw: bytes | None) -> str:
    """A receipt the provider gave as text (PEC Massiva: its subject and body), with what the ledger knows of it."""
    body = raw.decode("utf-8", errors="replace") if raw is not None else ""
    return (f"{receipt.label}\nDate: {receipt.date}\nRecipient: {receipt.recipient or '(the whole message)'}\n"
            f"Source: {receipt.source or 'provider'}\nSubject: {receipt.text or ''}\n\n{body}\n")


def _verified(receipt: ReceiptRow, file: str | None) -> dict[str, Any]:
    return {
        "file": file,
        "kind": receipt.kind, "step": receipt.label, "meaning": step_meaning(receipt.kind), "date": receipt.date,
        "recipient": receipt.recipient, "source": receipt.source,
        "signature": receipt.signature or ("not verified" if receipt.source in MESSAGE_SOURCES
                                           else "not applicable: the provider gives receipts as text, unsigned"),
        "signature_detail": receipt.signature_detail,
        "counts_as_proof": receipt.signature != "invalid",
    }


def _ledger(sending: SendingRow, records: Records) -> dict[str, Any]:
    data = asdict(sending)
    data["created"] = sending.created
    data["outcomes"] = {line.address: line.outcome for line in records.timeline(sending)}
    return data


def _json(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _slug(text: str | None) -> str:
    return re.sub(r"[^a-z0-9@.]+", "-", (text or "").lower()).strip("-.")[:60] or "x"
