"""A third-party client: the MCP Inspector CLI drives ``python -m pec_mcp serve`` over stdio.

The Inspector is an npm package (``@modelcontextprotocol/inspector@2.12.0``). Point ``PEC_MCP_INSPECTOR`` at its
launcher (``node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js``), or install it with
``npm install --prefix .ci/node @modelcontextprotocol/inspector@2.12.0``. Without it the test is skipped locally,
and fails when ``CI`` is set, so that CI can never skip it silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.inspector]

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = Path("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js")


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the Inspector test (set PEC_MCP_INSPECTOR or install it in .ci/node)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    """The command that starts the Inspector CLI."""
    node = shutil.which("node")
    if node is None:
        _missing("node is not installed")
    given = os.environ.get("PEC_MCP_INSPECTOR")
    launcher = Path(given) if given else ROOT / ".ci" / "node" / LAUNCHER
    if not launcher.is_file():
        _missing(f"the MCP Inspector launcher is not at {launcher}")
    # A loaded two-core machine can take longer than the Inspector's default 15 s to start a Python server.
    return [str(node), str(launcher), "--cli", "--connect-timeout", "90000"]


def _server(tmp_path: Path) -> list[str]:
    """The server command with its environment given explicitly through the Inspector's ``-e`` flags."""
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    env = {
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "PEC_MCP_ENVIRONMENT": "offline",
        "PEC_MCP_STORE__PATH": str(tmp_path / "store.sqlite3"),
        "PEC_MCP_ATTACHMENTS__ALLOWED_DIRS": json.dumps([str(files)]),
    }
    flags = [part for key, value in env.items() for part in ("-e", f"{key}={value}")]
    return [*flags, sys.executable, "-m", "pec_mcp", "serve"]


def _run_all(commands: dict[str, list[str]], tmp_path: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    # Each run spawns node and a Python server (about 1.5 s); running them side by side keeps the suite fast.
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    started = {name: subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for name, cmd in commands.items()}
    done = {}
    for name, process in started.items():
        try:
            out, err = process.communicate(timeout=150)
        finally:
            process.kill()
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


def _result(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stdout + done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert "result" in answer, answer
    return answer["result"]  # type: ignore[no-any-return]


def test_the_inspector_lists_tools_strictly_and_calls_the_quota_and_a_dry_run(
    inspector: list[str], tmp_path: Path
) -> None:
    server = _server(tmp_path)
    dry_run = json.dumps({"recipients": ["mario.rossi@pec.it"], "subject": "Prova", "body": "Testo",
                          "dry_run": True})
    done = _run_all({
        "list": [*inspector, *server, "--method", "tools/list", "--strict", "--format", "json", "-q"],
        "quota": [*inspector, *server, "--method", "tools/call", "--tool-name", "get_pec_quota",
                  "--format", "json", "-q"],
        "send": [*inspector, *server, "--method", "tools/call", "--tool-name", "send_pec",
                 "--tool-args-json", dry_run, "--format", "json", "-q"],
    }, tmp_path)
    tools = {tool["name"] for tool in _result(done["list"])["tools"]}
    assert {"send_pec", "get_pec_quota", "find_pec_sendings"} <= tools
    quota = _result(done["quota"])
    assert quota["isError"] is False and quota["structuredContent"]["mailbox"] == "INBOX"
    preview = _result(done["send"])
    assert preview["isError"] is False
    assert preview["structuredContent"]["status"] == "preview" and preview["structuredContent"]["message_id"] is None
