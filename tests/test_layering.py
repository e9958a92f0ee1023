"""The contract of the package's shape: providers never import MCP, and the tool catalogue changes only on purpose."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pec_mcp"
SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "tools.json"
UPDATE = os.environ.get("PEC_MCP_UPDATE_SNAPSHOTS") == "1"

# Toolsets whose catalogue is the public contract; add a name here when its toolset lands.
SNAPSHOTTED = ("pec",)

# Everything below the MCP layer: none of it may pull in the SDK.
BELOW_MCP = ["pec_mcp.config", "pec_mcp.errors", "pec_mcp.http", "pec_mcp.paths", "pec_mcp.receipts",
             "pec_mcp.store", "pec_mcp.sending"]
BELOW_MCP += [f"pec_mcp.pecmail.{name}" for name in ("daticert", "signature", "message", "compose", "trustlist")]

pytestmark = pytest.mark.anyio


def _provider_modules() -> list[str]:
    return sorted(f"pec_mcp.providers.{p.stem}" for p in (PACKAGE / "providers").glob("*.py"))


def test_no_provider_and_nothing_below_the_server_imports_mcp_at_runtime() -> None:
    modules = _provider_modules() + BELOW_MCP
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types'))\n"
        "print(','.join(leaked))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"these modules pulled in the MCP SDK: {done.stdout.strip()}"
    assert "pec_mcp.providers.pecmassiva" in modules


def test_no_provider_source_mentions_an_mcp_import() -> None:
    pattern = re.compile(r"^\s*(from\s+mcp(_types)?[\s.]|import\s+mcp(_types)?\b)", re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in (PACKAGE / "providers").rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []


# -- the tool catalogue snapshot -----------------------------------------------------------------------------------


async def _catalogue(toolset: str, make_settings: Any, connect: Any) -> list[dict[str, Any]]:
    settings = make_settings(tools={"enabled": [toolset]})
    async with connect(settings) as client:
        tools = (await client.list_tools()).tools
    return [
        {
            "name": tool.name,
            "title": tool.title,
            "input_schema": tool.input_schema,
            "output_schema": tool.output_schema,
            "annotations": tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
            if tool.annotations else None,
        }
        for tool in sorted(tools, key=lambda tool: tool.name)
    ]


async def test_the_tool_catalogue_matches_its_snapshot(make_settings, connect) -> None:
    current = {toolset: await _catalogue(toolset, make_settings, connect) for toolset in SNAPSHOTTED}
    text = json.dumps(current, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if UPDATE or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text)
        if not UPDATE:
            pytest.fail(f"{SNAPSHOT} did not exist and was written; check it and commit it")
    stored = json.loads(SNAPSHOT.read_text())
    for toolset in SNAPSHOTTED:
        assert toolset in stored, f"no snapshot for the {toolset} toolset: run with PEC_MCP_UPDATE_SNAPSHOTS=1"
        assert current[toolset] == stored[toolset], (
            f"The {toolset} tool catalogue (a public contract) changed. If that is intended, regenerate "
            "tests/snapshots/tools.json with PEC_MCP_UPDATE_SNAPSHOTS=1 and review the diff."
        )


def test_the_snapshot_holds_no_secret_and_no_local_path() -> None:
    text = SNAPSHOT.read_text()
    assert str(Path.home()) not in text and "sim-pecmassiva" not in text
