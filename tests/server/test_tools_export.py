"""export_pec_sendings and export_pec_evidence: files inside the allowed folders, one row per recipient, proof packs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pec_mcp.config import Settings
from pec_mcp.simulator import Simulator
from pec_mcp.store import Receipt, Store

pytestmark = pytest.mark.anyio
PLANTED = "<script>alert('x')</script>"


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _empty(folder: Path) -> bool:
    return not list(folder.iterdir())


async def _send(client: Any, recipients: list[str], subject: str) -> str:
    result = await client.call_tool("send_pec", {"recipients": recipients, "subject": subject, "body": "Testo",
                                                 "confirm": True})
    assert not result.is_error, result.content
    return str(result.structured_content["message_id"])


async def _ledger(client: Any, simulator: Simulator) -> dict[str, str]:
    ids = {"two": await _send(client, ["mario@pec.example.it", "fail-anna@pec.example.it"], f"Diffida {PLANTED}"),
           "formula": await _send(client, ["luca@pec.example.it"], "=HYPERLINK(\"x\")")}
    simulator.clock.advance(10)
    for message_id in ids.values():
        assert not (await client.call_tool("get_pec_receipts", {"message_id": message_id})).is_error
    return ids


async def test_csv_export_has_one_row_per_recipient(settings: Settings, connect: Callable[..., Any],
                                                    simulator: Simulator, files: Path) -> None:
    async with connect(settings) as client:
        ids = await _ledger(client, simulator)
        result = await client.call_tool("export_pec_sendings", {"save_to": str(files)})
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["rows"] == 3 and data["environment"] == "offline"
    rows = _csv(Path(data["path"]))
    assert [r["recipient"] for r in rows] == ["mario@pec.example.it", "fail-anna@pec.example.it",
                                               "luca@pec.example.it"]
    assert {r["message_id"] for r in rows} == set(ids.values())
    assert rows[0]["subject"] == f"Diffida {PLANTED}" and rows[0]["account"] and rows[0]["cost_eur"] == "0.05"
    assert rows[2]["subject"].startswith("'=")  # a spreadsheet shows it, never runs it
    assert [r["outcome"] for r in rows] == ["delivered", "not_delivered", "delivered"]
    assert rows[0]["accepted_at"] and rows[0]["delivered_at"] and not rows[0]["failed_at"]
    assert rows[1]["failed_at"] and rows[1]["reason"] == "utente inesistente"


async def test_json_export_is_one_valid_document(settings: Settings, connect: Callable[..., Any],
                                                 simulator: Simulator, files: Path) -> None:
    async with connect(settings) as client:
        await _ledger(client, simulator)
        result = await client.call_tool("export_pec_sendings", {"save_to": str(files / "out.json"), "format": "json",
                                                                "since": "2000-01-01", "until": "2999-12-31"})
    rows = json.loads((files / "out.json").read_text(encoding="utf-8"))
    assert len(rows) == result.structured_content["rows"] == 3
    assert rows[0]["subject"] == f"Diffida {PLANTED}"


async def test_an_export_of_another_environment_is_empty(settings: Settings, connect: Callable[..., Any],
                                                         simulator: Simulator, files: Path) -> None:
    async with connect(settings) as client:
        await _ledger(client, simulator)
        every = await client.call_tool("export_pec_sendings", {"save_to": str(files / "a.csv"), "environment": "all"})
        result = await client.call_tool("export_pec_sendings", {"save_to": str(files / "p.csv"),
                                                                "environment": "production"})
    assert every.structured_content["rows"] == 3 and every.structured_content["environment"] == "all"
    assert result.structured_content["rows"] == 0
    assert _csv(files / "p.csv") == []


@pytest.mark.parametrize("tool", ["export_pec_sendings", "export_pec_evidence"])
async def test_save_to_outside_the_allowed_folders_is_refused(
    tool: str, settings: Settings, connect: Callable[..., Any], tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    async with connect(settings) as client:
        result = await client.call_tool(tool, {"save_to": str(outside / "x.zip"), "message_id": "202603101000001"})
    assert result.is_error
    assert "outside the allowed folders" in result.content[0].text
    assert not list(outside.iterdir())


async def test_an_existing_file_is_never_overwritten(settings: Settings, connect: Callable[..., Any],
                                                     files: Path) -> None:
    (files / "keep.csv").write_text("precious")
    async with connect(settings) as client:
        result = await client.call_tool("export_pec_sendings", {"save_to": str(files / "keep.csv")})
    assert result.is_error and "already exists" in result.content[0].text
    assert (files / "keep.csv").read_text() == "precious"


async def test_evidence_pack_holds_receipts_verification_ledger_audit_and_a_summary(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    async with connect(settings) as client:
        ids = await _ledger(client, simulator)
        result = await client.call_tool("export_pec_evidence", {"message_id": ids["two"], "save_to": str(files)})
    assert not result.is_error, result.content
    data = result.structured_content
    with zipfile.ZipFile(data["path"]) as pack:
        names = set(pack.namelist())
        assert {"summary.html", "ledger.json", "audit.json", "verification.json", "SHA256SUMS"} <= names
        texts = sorted(name for name in names if name.startswith("receipts/"))
        # PEC Massiva gives receipts as text only: one file each, with the provider's own words.
        assert len(texts) == len(json.loads(pack.read("verification.json"))["receipts"]) >= 3
        assert all(name.endswith(".txt") for name in texts)
        assert any("AVVISO-DI-MANCATA-CONSEGNA".lower() in name for name in texts)
        assert names == set(data["files"])
        for line in pack.read("SHA256SUMS").decode().splitlines():
            digest, name = line.split("  ", 1)
            assert hashlib.sha256(pack.read(name)).hexdigest() == digest
        summary = pack.read("summary.html").decode()
        ledger = json.loads(pack.read("ledger.json"))
        audit = json.loads(pack.read("audit.json"))
    assert PLANTED not in summary and "&lt;script&gt;" in summary
    assert "no legal value" in summary  # an offline sending proves nothing, and the summary says so
    assert ledger["message_id"] == ids["two"] and set(ledger["outcomes"]) == {"mario@pec.example.it",
                                                                               "fail-anna@pec.example.it"}
    assert audit and audit[0]["action"] == "send_pec"
    assert data["signed_originals"] == 0 and data["receipts"] >= 3


async def test_evidence_of_an_unknown_sending_is_a_clear_error(settings: Settings, connect: Callable[..., Any],
                                                               files: Path) -> None:
    async with connect(settings) as client:
        result = await client.call_tool("export_pec_evidence", {"message_id": "999", "save_to": str(files)})
    assert result.is_error and "not in the local ledger" in result.content[0].text
    assert _empty(files)


async def test_a_signed_receipt_goes_in_as_received_and_a_forged_one_proves_nothing(
    settings: Settings, connect: Callable[..., Any], simulator: Simulator, files: Path
) -> None:
    forged = b"From: posta-certificata@pec.example.it\r\nSubject: CONSEGNA: Diffida\r\n\r\nforged delivery\r\n"
    async with connect(settings) as client:
        message_id = await _send(client, ["fail-mario@pec.example.it"], "Diffida")
        simulator.clock.advance(10)
        assert not (await client.call_tool("get_pec_receipts", {"message_id": message_id})).is_error
        _record_imap_receipt(settings, message_id, forged)
        result = await client.call_tool("export_pec_evidence", {"message_id": message_id, "save_to": str(files)})
    data = result.structured_content
    assert data["signed_originals"] == 1
    with zipfile.ZipFile(data["path"]) as pack:
        [eml] = [name for name in pack.namelist() if name.endswith(".eml")]
        assert pack.read(eml) == forged  # byte for byte
        verdicts = json.loads(pack.read("verification.json"))["receipts"]
        ledger = json.loads(pack.read("ledger.json"))
        summary = pack.read("summary.html").decode()
    [checked] = [v for v in verdicts if v["file"] == eml]
    assert checked["signature"] == "invalid" and checked["counts_as_proof"] is False
    assert ledger["outcomes"] == {"fail-mario@pec.example.it": "not_delivered"}  # the forged CONSEGNA is ignored
    assert "signature invalid" in summary


def _record_imap_receipt(settings: Settings, message_id: str, raw: bytes) -> None:
    store = Store(settings.store.path)
    try:
        sending = store.sending_by_message_id(message_id)
        assert sending is not None
        store.record_receipts(environment=sending.environment, account=sending.account, message_id=message_id,
                              sending_id=sending.id, receipts=[Receipt(
                                  kind="delivered", date="Tue, 10 Mar 2026 10:00:05 +0100",
                                  provider_text="CONSEGNA: Diffida", source="imap",
                                  recipient="fail-mario@pec.example.it", signature="invalid",
                                  signature_detail="the content changed after it was signed", raw=raw)])
    finally:
        store.close()
