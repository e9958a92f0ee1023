"""Secrets in the configuration: a file others can read is flagged, misspelt variables are named, nothing leaks."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from pec_mcp.cli import main
from pec_mcp.config import NON_SETTING_ENV_VARS, config_file_warning, environment_warnings, setting_env_vars

CANARY = "CANARY-config-secret-77d0"
SECRETS_TOML = f"""
environment = "sandbox"
[pecmassiva]
token = "{CANARY}-pm"
username = "demo@pecmassiva.com"
password = "{CANARY}-pw"
[openapi_pec]
token = "{CANARY}-oa"
[mensatek]
api_user = "demo"
api_token = "{CANARY}-mt"
sender = "avisos@example.es"
base_url = "http://127.0.0.1:9/mensatek/v7"
[http]
auth_token = "{CANARY}-auth"
webhook_token = "{CANARY}-hook"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PEC_MCP_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(SECRETS_TOML)
    path.chmod(0o600)
    return path


def check_config(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check-config", "--config", str(config)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_config_file_readable_by_others_draws_a_warning_from_check_config(
    config: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        code, _ = check_config(config, capsys)
    assert code == 0
    assert any(f"chmod 600 {config}" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_private_config_file_draws_no_warning(config: Path, capsys, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        check_config(config, capsys)
    assert not [r for r in caplog.records if "readable by other users" in r.getMessage()]
    assert config_file_warning(config) is None


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_group_readable_file_is_readable_by_others_too(config: Path) -> None:
    config.chmod(0o640)
    assert "chmod 600" in (config_file_warning(config) or "")


def test_check_config_masks_every_secret_from_the_file_and_the_environment(
    config: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEC_MCP_MENSATEK__API_TOKEN", f"{CANARY}-env")
    with caplog.at_level(logging.DEBUG):
        code, output = check_config(config, capsys)
    assert code == 0 and CANARY not in output and CANARY not in caplog.text
    shown = json.loads(output[output.index("{"):output.rindex("}") + 1])
    assert shown["pecmassiva"]["token"] == shown["http"]["webhook_token"] == "**********"
    assert shown["effective_environment"] == "sandbox"


def test_a_misspelt_variable_is_named_in_a_warning_without_its_value(
    config: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PEC_MCP_PECMASSIVA_TOKEN", f"{CANARY}-typo")
    monkeypatch.setenv("PEC_MCP_PECMASIVA__PASSWORD", f"{CANARY}-typo2")
    with caplog.at_level(logging.WARNING):
        code, output = check_config(config, capsys)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert code == 0
    assert any("PEC_MCP_PECMASSIVA_TOKEN" in w and "PEC_MCP_PECMASSIVA__TOKEN" in w for w in warnings)
    assert any("PEC_MCP_PECMASIVA__PASSWORD" in w and "PEC_MCP_PECMASSIVA__PASSWORD" in w for w in warnings)
    assert CANARY not in output and CANARY not in caplog.text


def test_a_wrong_key_in_a_known_section_is_refused_naming_it_without_its_value(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PEC_MCP_PECMASSIVA__TOKNE", CANARY)
    code = main(["check-config", "--config", str(_empty(tmp_path))])
    captured = capsys.readouterr()
    assert code == 2 and "pecmassiva.tokne" in captured.err
    assert CANARY not in captured.out + captured.err + caplog.text


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.toml"
    path.write_text("")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("name", ["PEC_MCP_FOO", "PEC_MCP_ENVIRONMNT", "PEC_MCP_PECMASSIVA_TOKEN",
                                  "PEC_MCP_SENDNG__CONFIRM", "PEC_MCP_HTTP__AUTH__TOKEN", "pec_mcp_tool"])
def test_variables_that_set_nothing_are_warned_about(name: str) -> None:
    [warning] = environment_warnings({name: "s3cret-value"})
    assert name in warning and "s3cret-value" not in warning


def test_settings_and_the_non_setting_variables_draw_no_warning() -> None:
    environ = {name: "x" for name in setting_env_vars() | NON_SETTING_ENV_VARS}
    environ |= {"pec_mcp_sending__confirm": "never", "PATH": "/bin", "PEC_MCPX": "not ours"}
    assert environment_warnings(environ) == []


def test_every_documented_secret_variable_is_a_setting() -> None:
    for name in ["PEC_MCP_PECMASSIVA__TOKEN", "PEC_MCP_PECMASSIVA__PASSWORD", "PEC_MCP_OPENAPI_PEC__TOKEN",
                 "PEC_MCP_MENSATEK__API_TOKEN", "PEC_MCP_HTTP__AUTH_TOKEN", "PEC_MCP_HTTP__WEBHOOK_TOKEN"]:
        assert name in setting_env_vars()
