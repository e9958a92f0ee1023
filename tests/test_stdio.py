"""The real command line: ``python -m pec_mcp serve`` over stdio with the SDK client, and the other commands' guards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "planted-secret-4f2a9c"


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Only what the server needs, given explicitly: the caller's PEC_MCP_* variables must not leak in."""
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    return {
        "HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "PEC_MCP_ENVIRONMENT": "offline",
        "PEC_MCP_STORE__PATH": str(tmp_path / "store.sqlite3"),
        "PEC_MCP_ATTACHMENTS__ALLOWED_DIRS": json.dumps([str(files)]),
        "PEC_MCP_SIMULATOR__DELIVERY_DELAY": "0",  # receipts at once: the child's simulator runs on real time
        **extra,
    }


def run_cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pec_mcp", *args], cwd=tmp_path, env=child_env(tmp_path, **extra),
                          capture_output=True, text=True, timeout=60)


async def test_the_server_over_stdio_lists_tools_sends_with_confirm_and_reads_receipts(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    attachment = tmp_path / "files" / "diffida.pdf"
    attachment.write_bytes(b"%PDF-1.4 stdio")
    params = StdioServerParameters(command=sys.executable, args=["-m", "pec_mcp", "serve"], cwd=str(tmp_path),
                                   env=child_env(tmp_path))
    with anyio.fail_after(30):
        async with Client(params) as client:  # no elicitation callback: the confirm argument is the fallback
            tools = {tool.name for tool in (await client.list_tools()).tools}
            sent = await client.call_tool("send_pec", {
                "recipients": ["mario.rossi@pec.it"], "subject": "Diffida via stdio", "body": "Testo",
                "attachments": [str(attachment)], "idempotency_key": "stdio-1", "confirm": True})
            message_id = (sent.structured_content or {}).get("message_id")
            receipts = await client.call_tool("get_pec_receipts", {"message_id": str(message_id)})
            ledger = await client.read_resource("pec://ledger")
    assert {"send_pec", "get_pec_receipts", "find_pec_sendings"} <= tools
    assert not sent.is_error and sent.structured_content is not None
    assert sent.structured_content["status"] == "sent" and sent.structured_content["environment"] == "offline"
    assert sent.structured_content["attachments"] == [{"name": "diffida.pdf", "size_bytes": 14}]
    assert not receipts.is_error and receipts.structured_content is not None
    assert receipts.structured_content["status"] == "delivered"
    assert message_id in ledger.contents[0].text  # type: ignore[union-attr]


async def test_a_second_start_lists_the_remembered_catalogue_and_its_tools_work(tmp_path: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "pec_mcp", "serve"], cwd=str(tmp_path),
                                   env=child_env(tmp_path))
    listed = []
    with anyio.fail_after(60):
        for _ in range(2):
            async with Client(params) as client:
                listed.append([tool.model_dump(by_alias=True) for tool in (await client.list_tools()).tools])
                quota = await client.call_tool("get_pec_quota", {})
                assert not quota.is_error
    assert listed[0] == listed[1] and len(listed[0]) > 30
    assert len(list((tmp_path / ".cache" / "pec-mcp").glob("tools-*.json"))) == 1


def test_check_config_prints_the_settings_with_secrets_masked(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "check-config", PEC_MCP_PECMASSIVA__TOKEN=SECRET, PEC_MCP_HTTP__AUTH_TOKEN=SECRET)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout and SECRET not in done.stderr
    report = json.loads(done.stdout)
    assert report["pecmassiva"]["token"] == report["http"]["auth_token"] == "**********"
    assert report["effective_environment"] == "offline"


def test_check_config_names_a_wrong_key_without_its_value_and_fails(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "check-config", PEC_MCP_PECMASSIVA__TOKNE=SECRET)
    assert done.returncode == 2
    assert "pecmassiva.tokne: is not a known setting" in done.stderr and SECRET not in done.stderr + done.stdout


def test_check_config_warns_about_a_config_file_readable_by_others(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[pecmassiva]\npassword = "{SECRET}"\n')
    config.chmod(0o644)
    done = run_cli(tmp_path, "check-config", "--config", str(config))
    assert done.returncode == 0
    assert f"chmod 600 {config}" in done.stderr and SECRET not in done.stdout + done.stderr


def test_serving_http_on_a_port_in_use_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(tmp_path, "serve", "--transport", "http", "--port", str(port))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"serve cannot listen on 127.0.0.1:{port}" in lines[0], done.stderr
    assert "--port 0 for a free one" in lines[0]


def test_serving_http_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "1")
    assert done.returncode != 0
    assert "Refusing to listen on 0.0.0.0 without http.auth_token" in done.stderr
    assert "PEC_MCP_HTTP__AUTH_TOKEN" in done.stderr
