"""Accounts: [accounts.<name>] settings, presets, passwords as secrets, the default account, resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from pec_mcp.accounts import (
    OFFLINE_ACCOUNT,
    default_account_name,
    list_accounts,
    mail_endpoints,
    resolve_account,
)
from pec_mcp.config import environment_warnings, load_settings
from pec_mcp.errors import ConfigError, InputError
from pec_mcp.pecmail.presets import PRESETS
from pec_mcp.redaction import Redactor

SECRET = "Acc0unt-pa55word-never-shown"
STUDIO = {"PEC_MCP_ACCOUNTS__STUDIO__ADDRESS": "Studio.Rossi@LegalMail.it",
          "PEC_MCP_ACCOUNTS__STUDIO__PROVIDER": "legalmail",
          "PEC_MCP_ACCOUNTS__STUDIO__PASSWORD": SECRET}


def test_an_account_from_the_environment_uses_its_provider_preset_and_the_address_as_username() -> None:
    settings = load_settings(environ=STUDIO)
    assert settings.env == "sandbox"  # a password is a credential: never silently offline
    studio = resolve_account(settings, "studio")
    endpoints = mail_endpoints(studio)
    assert (endpoints.imap.host, endpoints.imap.port, endpoints.imap.security) == ("mbox.cert.legalmail.it", 993,
                                                                                     "tls")
    assert (endpoints.smtp.host, endpoints.smtp.port) == ("sendm.cert.legalmail.it", 465)
    assert endpoints.login.username == "Studio.Rossi@legalmail.it"
    assert SECRET not in repr(endpoints) and SECRET not in repr(settings)


def test_hosts_ports_and_security_override_the_preset(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[accounts.ufficio]
address = "ufficio@pec.it"
provider = "aruba"
username = "ufficio-login"
password = "{SECRET}"
imap_host = "imap.example.it"
security = "starttls"
ca_file = "{tmp_path / 'ca.pem'}"
requests_per_second = 0.5
""")
    config.chmod(0o600)
    account = resolve_account(load_settings(config, environ={}), "ufficio")
    endpoints = mail_endpoints(account)
    assert (endpoints.imap.host, endpoints.imap.port, endpoints.imap.security) == ("imap.example.it", 143,
                                                                                     "starttls")
    assert (endpoints.smtp.host, endpoints.smtp.port) == ("smtps.pec.aruba.it", 587)
    assert endpoints.imap.ca_file == tmp_path / "ca.pem" and endpoints.login.username == "ufficio-login"
    assert account.requests_per_second == 0.5


def test_every_preset_cites_its_source() -> None:
    assert set(PRESETS) == {"aruba", "legalmail", "namirial", "poste", "register"}
    assert all(p.source.startswith("http") and p.imap_port and p.smtp_port for p in PRESETS.values())


def test_a_custom_account_needs_its_hosts() -> None:
    with pytest.raises(ConfigError, match=r"accounts\.x: .*imap_host and smtp_host"):
        load_settings(environ={"PEC_MCP_ACCOUNTS__X__ADDRESS": "x@pec.example.it"})


@pytest.mark.parametrize("name", ["pecmassiva", "mensatek"])
def test_reserved_names_cannot_name_an_imap_account(tmp_path: Path, name: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[accounts.{name}]\naddress = "a@pec.it"\nprovider = "aruba"\n')
    with pytest.raises(ConfigError, match="another name"):
        load_settings(config, environ={})


def test_the_password_is_masked_redacted_and_never_in_errors() -> None:
    settings = load_settings(environ=STUDIO)
    assert settings.masked()["accounts"]["studio"]["password"] == "**********"
    assert SECRET in settings.secret_values()
    assert SECRET not in Redactor(settings.secret_values())(f"login failed for {SECRET}")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={**STUDIO, "PEC_MCP_ACCOUNTS__STUDIO__SECURITY": "none"})
    assert SECRET not in str(caught.value) and "accounts.studio.security" in str(caught.value)


def test_account_variables_are_known_settings_and_a_misspelt_key_is_flagged() -> None:
    assert environment_warnings(STUDIO) == []
    [warning] = environment_warnings({"PEC_MCP_ACCOUNTS__STUDIO__PASWORD": "x"})
    assert "PEC_MCP_ACCOUNTS__STUDIO__PASWORD" in warning


def test_the_default_is_pecmassiva_when_configured_else_the_only_imap_account() -> None:
    assert default_account_name(load_settings(environ=STUDIO)) == "studio"
    with_both = {**STUDIO, "PEC_MCP_PECMASSIVA__TOKEN": "t", "PEC_MCP_PECMASSIVA__USERNAME": "u@pecmassiva.com",
                 "PEC_MCP_PECMASSIVA__PASSWORD": "p"}
    assert default_account_name(load_settings(environ=with_both)) == "pecmassiva"
    named = load_settings(environ={**with_both, "PEC_MCP_DEFAULT_ACCOUNT": "studio"})
    assert resolve_account(named, None).name == "studio"


def test_several_accounts_and_no_default_ask_for_a_name_listing_them() -> None:
    two = {**STUDIO, "PEC_MCP_ACCOUNTS__CASA__ADDRESS": "casa@pec.it", "PEC_MCP_ACCOUNTS__CASA__PROVIDER": "aruba"}
    settings = load_settings(environ=two)
    with pytest.raises(InputError, match="none is the default") as caught:
        resolve_account(settings, None)
    assert "casa" in caught.value.explain() and "studio" in caught.value.explain()
    with pytest.raises(InputError, match="no PEC account named 'nope'"):
        resolve_account(settings, "nope")


def test_an_unknown_default_account_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="default_account 'nope' is not a configured account"):
        load_settings(environ={"PEC_MCP_DEFAULT_ACCOUNT": "nope"})


def test_an_account_without_password_is_listed_as_unable_to_send_or_read() -> None:
    settings = load_settings(environ={"PEC_MCP_ENVIRONMENT": "sandbox", "PEC_MCP_ACCOUNTS__CASA__ADDRESS": "c@pec.it",
                                      "PEC_MCP_ACCOUNTS__CASA__PROVIDER": "aruba"})
    casa = resolve_account(settings, "casa")
    assert not casa.can_send and not casa.can_read and "PEC_MCP_ACCOUNTS__CASA__PASSWORD" in casa.note
    with pytest.raises(ConfigError, match="no password"):
        mail_endpoints(casa)


def test_offline_has_pecmassiva_and_one_simulated_imap_account() -> None:
    accounts = list_accounts(load_settings(environ={}))
    assert [(a.name, a.kind, a.environment) for a in accounts] == [
        ("pecmassiva", "pecmassiva", "offline"), (OFFLINE_ACCOUNT, "imap", "offline")]
    assert all(a.can_send and a.can_read for a in accounts)


def test_offline_a_configured_imap_account_is_served_by_the_simulator() -> None:
    settings = load_settings(environ={**STUDIO, "PEC_MCP_ENVIRONMENT": "offline"})
    studio = resolve_account(settings, "studio")
    assert studio.simulated and studio.provider == "simulator" and "instead of Legalmail" in studio.note
