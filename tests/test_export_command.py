"""``pec-mcp export``: the ledger to a file or standard output with a progress bar, and the evidence ZIP."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pec_mcp.cli import main
from pec_mcp.config import Settings
from pec_mcp.simulator import Simulator


@pytest.fixture
async def ledger(settings: Settings, connect: Callable[..., Any], simulator: Simulator, tmp_path: Path) -> Path:
    """A config file whose store holds two sendings (three recipients) made by a real server."""
    async with connect(settings) as client:
        for recipients in (["mario@pec.example.it"], ["a@pec.example.it", "b@pec.example.it"]):
            result = await client.call_tool("send_pec", {"recipients": recipients, "subject": "Avviso",
                                                         "body": "Testo", "confirm": True})
            assert not result.is_error
    config = tmp_path / "config.toml"
    config.write_text(f'environment = "offline"\n[store]\npath = "{settings.store.path}"\n')
    config.chmod(0o600)
    return config


@pytest.mark.anyio
async def test_export_writes_a_new_csv_file_and_draws_progress(ledger: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out.csv"
    assert main(["export", "--config", str(ledger), "--output", str(target), "--progress"]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["recipient"] for r in rows] == ["mario@pec.example.it", "a@pec.example.it", "b@pec.example.it"]
    err = capsys.readouterr().err
    assert "100%" in err and "3 of 3 rows" in err and "3 row(s) written" in err
    assert main(["export", "--config", str(ledger), "--output", str(target)]) == 1  # never overwritten
    assert "already exists" in capsys.readouterr().err


@pytest.mark.anyio
async def test_export_to_standard_output_as_json(ledger: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--config", str(ledger), "--format", "json", "--since", "2000-01-01"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("[") and out.count('"recipient"') == 3


@pytest.mark.anyio
async def test_export_evidence_writes_the_zip(ledger: Path, tmp_path: Path, settings: Settings) -> None:
    from pec_mcp.records import Records, SendingFilter
    from pec_mcp.store import Store

    store = Store(settings.store.path)
    message_id = Records(store, price_per_message_eur=0.05).sendings(SendingFilter()).rows[0].message_id
    store.close()
    target = tmp_path / "proof.zip"
    assert main(["export", "--config", str(ledger), "--evidence", str(message_id), "--output", str(target)]) == 0
    with zipfile.ZipFile(target) as pack:
        assert "summary.html" in pack.namelist()


def test_a_bad_date_is_refused_with_the_expected_shape(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--since", "31/03/2026"])
    assert "2026-03-31" in capsys.readouterr().err


def test_export_without_a_ledger_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'environment = "offline"\n[store]\npath = "{tmp_path / "none.sqlite3"}"\n')
    config.chmod(0o600)
    assert main(["export", "--config", str(config)]) == 2
    assert "no ledger" in capsys.readouterr().err
