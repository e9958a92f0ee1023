"""Settings: the environment chosen, base URLs, errors that name the key and never the value, masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pec_mcp.config import config_file_warning, load_settings
from pec_mcp.errors import ConfigError

SECRET = "s3cret-v4lue-never-shown"


def _toml(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_without_any_credential_the_environment_is_offline() -> None:
    settings = load_settings(environ={})
    assert settings.env == "offline"
    assert settings.base_url("pecmassiva") is None


@pytest.mark.parametrize(
    "variable",
    ["PEC_MCP_PECMASSIVA__TOKEN", "PEC_MCP_PECMASSIVA__USERNAME", "PEC_MCP_PECMASSIVA__PASSWORD",
     "PEC_MCP_OPENAPI_PEC__TOKEN", "PEC_MCP_MENSATEK__API_USER", "PEC_MCP_MENSATEK__API_TOKEN"],
)
def test_one_credential_in_the_environment_is_enough_for_sandbox(variable: str) -> None:
    settings = load_settings(environ={variable: SECRET})
    assert settings.env == "sandbox"
    assert settings.base_url("pecmassiva") == "https://test.ws.pecmassiva.com"


def test_environment_variable_names_are_case_insensitive() -> None:
    assert load_settings(environ={"pec_mcp_pecmassiva__token": SECRET}).env == "sandbox"


def test_one_credential_in_the_file_is_enough_for_sandbox(tmp_path: Path) -> None:
    path = _toml(tmp_path, f'[openapi_pec]\ntoken = "{SECRET}"\n')
    settings = load_settings(path, environ={})
    assert settings.env == "sandbox"
    assert settings.base_url("openapi_pec") == "https://test.pec.openapi.it"


def test_production_is_used_only_when_named() -> None:
    settings = load_settings(environ={"PEC_MCP_ENVIRONMENT": "production", "PEC_MCP_PECMASSIVA__TOKEN": SECRET})
    assert settings.env == "production"
    assert settings.base_url("pecmassiva") == "https://ws.pecmassiva.com"
    assert settings.base_url("mensatek") == "https://api.mensatek.com/v7"


def test_a_named_offline_environment_stays_offline_even_with_credentials() -> None:
    assert load_settings(environ={"PEC_MCP_ENVIRONMENT": "offline", "PEC_MCP_PECMASSIVA__TOKEN": SECRET}).env == (
        "offline"
    )


def test_mensatek_has_no_sandbox_host_unless_a_base_url_is_given() -> None:
    assert load_settings(environ={"PEC_MCP_MENSATEK__API_USER": "u"}).base_url("mensatek") is None


def test_a_base_url_overrides_the_host_of_every_environment_without_its_trailing_slash() -> None:
    for environment in ("offline", "sandbox", "production"):
        settings = load_settings(environ={"PEC_MCP_ENVIRONMENT": environment,
                                          "PEC_MCP_PECMASSIVA__BASE_URL": "http://127.0.0.1:8025/pecmassiva/"})
        assert settings.base_url("pecmassiva") == "http://127.0.0.1:8025/pecmassiva"


def test_the_environment_overrides_the_file_and_explicit_arguments_override_both(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[sending]\nmax_recipients_per_request = 10\nprice_per_message_eur = 0.5\n")
    settings = load_settings(path, environ={"PEC_MCP_SENDING__MAX_RECIPIENTS_PER_REQUEST": "20"},
                             sending={"price_per_message_eur": 0.1})
    assert settings.sending.max_recipients_per_request == 20
    assert settings.sending.price_per_message_eur == 0.1


def test_the_config_file_may_be_named_by_pec_mcp_config(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'environment = "production"\n')
    assert load_settings(environ={"PEC_MCP_CONFIG": str(path)}).env == "production"


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_lists_come_from_the_environment_as_json(tmp_path: Path) -> None:
    settings = load_settings(environ={"PEC_MCP_ATTACHMENTS__ALLOWED_DIRS": json.dumps([str(tmp_path)]),
                                      "PEC_MCP_SENDING__ALLOWED_RECIPIENT_DOMAINS": '[" @Pec.IT "]'})
    assert settings.attachments.resolved_dirs() == (tmp_path.resolve(),)
    assert settings.sending.allowed_recipient_domains == ("pec.it",)


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"PEC_MCP_PECMASSIVA__TOKNE": SECRET}, "pecmassiva.tokne: is not a known setting"),
        ({"PEC_MCP_ENVIRONMENT": SECRET}, "environment:"),
        ({"PEC_MCP_HTTP__PORT": SECRET}, "http.port:"),
        ({"PEC_MCP_SENDING__CONFIRM": SECRET}, "sending.confirm:"),
        ({"PEC_MCP_SENDING__REQUESTS_PER_SECOND": "0"}, "sending.requests_per_second:"),
        ({"PEC_MCP_ATTACHMENTS__ALLOWED_DIRS": SECRET}, "PEC_MCP_ATTACHMENTS"),
        ({"PEC_MCP_PECMASSIVA": SECRET}, "PEC_MCP_PECMASSIVA"),
    ],
)
def test_a_wrong_environment_variable_names_the_key_and_never_the_value(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=environ)
    assert key in raised.value.message
    assert SECRET not in raised.value.explain()
    assert "None" not in raised.value.message  # no "configuration file None" when the file is not at fault


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f'[pecmassiva]\ntokne = "{SECRET}"\n', "pecmassiva.tokne: is not a known setting"),
        ("[pecmassiva]\ntoken = 123456789\n", "pecmassiva.token:"),
        (f'[sending]\nconfirm = "{SECRET}"\n', "sending.confirm:"),
        (f'[unknown]\nkey = "{SECRET}"\n', "unknown: is not a known setting"),
    ],
)
def test_a_wrong_key_or_value_in_the_file_names_the_key_and_the_file_and_never_the_value(
    tmp_path: Path, text: str, key: str
) -> None:
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    assert key in raised.value.message and str(path) in raised.value.message
    assert SECRET not in raised.value.explain() and "123456789" not in raised.value.explain()


def test_a_file_that_is_not_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, "this is = = not toml\n")
    with pytest.raises(ConfigError, match="Cannot read the configuration file"):
        load_settings(path, environ={})


def test_secrets_are_masked_in_the_printed_settings_and_nothing_else_is() -> None:
    settings = load_settings(environ={"PEC_MCP_PECMASSIVA__TOKEN": SECRET, "PEC_MCP_PECMASSIVA__PASSWORD": SECRET,
                                      "PEC_MCP_PECMASSIVA__USERNAME": "me@pecmassiva.com",
                                      "PEC_MCP_HTTP__AUTH_TOKEN": SECRET, "PEC_MCP_MENSATEK__API_TOKEN": SECRET})
    masked = settings.masked()
    assert SECRET not in json.dumps(masked)
    assert masked["pecmassiva"]["token"] == masked["http"]["auth_token"] == "**********"
    assert masked["pecmassiva"]["username"] == "me@pecmassiva.com"
    assert masked["openapi_pec"]["token"] is None  # unset secrets stay visibly unset
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.secret_values() == [SECRET] * 4


def test_a_config_file_readable_by_others_gives_a_warning_with_the_fix(tmp_path: Path) -> None:
    path = _toml(tmp_path, "", mode=0o644)
    warning = config_file_warning(path)
    assert warning is not None and f"chmod 600 {path}" in warning
    path.chmod(0o600)
    assert config_file_warning(path) is None
    assert config_file_warning(None) is None
