"""Settings of users, the state key and the PostgreSQL URL: masked, redacted, checked with clear errors."""

from __future__ import annotations

import json

import pytest

from pec_mcp.config import environment_warnings, load_settings
from pec_mcp.errors import ConfigError

ANNA = "anna-token-0123456789abcdef"
KEY = "state-key-0123456789abcdef0123456789"
URL = "postgresql://pec:db-Secret%2Fpw@db.example:5432/pec"


def test_user_tokens_the_state_key_and_the_database_password_are_masked_and_redacted() -> None:
    settings = load_settings(environ={}, http={"state_key": KEY, "users": {"anna": {"token": ANNA}}},
                             store={"url": URL})
    shown = json.dumps(settings.masked())
    assert ANNA not in shown and KEY not in shown and "db-Secret" not in shown
    assert settings.masked()["store"]["url"] == "postgresql://pec:**********@db.example:5432/pec"
    assert {ANNA, KEY, "db-Secret/pw"} <= set(settings.secret_values())


def test_users_come_from_the_environment_without_warnings() -> None:
    environ = {"PEC_MCP_HTTP__USERS__ANNA__TOKEN": ANNA, "PEC_MCP_HTTP__USERS__ANNA__READ_ONLY": "true"}
    settings = load_settings(environ=environ)
    assert settings.http.users["anna"].read_only and environment_warnings(environ) == []


@pytest.mark.parametrize(("http", "tools", "message"), [
    ({"users": {"anna": {"token": ANNA, "toolsets": ["mailbox"]}}}, ["pec"], "not in tools.enabled"),
    ({"users": {"anna": {"token": ANNA}, "bruno": {"token": ANNA}}}, ["pec"], "the same token"),
    ({"users": {"anna": {"token": "short"}}}, ["pec"], "at least 16 characters"),
    ({"state_key": "short"}, ["pec"], "at least 32 characters"),
])
def test_bad_user_settings_are_refused_saying_what_to_do(http: dict[str, object], tools: list[str],
                                                         message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(environ={}, http=http, tools={"enabled": tools})
    assert ANNA not in str(refused.value)


def test_a_store_url_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        load_settings(environ={}, store={"url": "mysql://x@y/z"})
