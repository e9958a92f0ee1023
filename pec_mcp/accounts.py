"""The PEC accounts of this server, in one place: which exist, what each can do, and which one a tool uses.

Accounts are the PEC Massiva mailbox of ``[pecmassiva]`` (named ``pecmassiva``) and every IMAP/SMTP mailbox of
``[accounts.<name>]``. The ``account`` argument of a tool is resolved here: the name given, else
``default_account``, else ``pecmassiva`` when it is configured, else the only IMAP account.

IMAP accounts have no sandbox hosts. Offline they are served by the simulator's PEC mail provider (on loopback,
with its own test CA), and the offline environment always has one IMAP account, ``OFFLINE_ACCOUNT``, so that
every PEC tool can be tried on an IMAP mailbox with no set-up. Nothing here opens a connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pec_mcp.config import AccountSettings, Settings
from pec_mcp.errors import ConfigError, InputError
from pec_mcp.pecmail.connection import Endpoint, Login
from pec_mcp.pecmail.presets import PRESETS, default_port

AccountKind = Literal["pecmassiva", "imap"]

OFFLINE_ACCOUNT = "simulata"  # the IMAP account every offline server has
OFFLINE_ADDRESS = "studio@pec.simulatore.test"  # a mailbox of the simulator's PEC provider
OFFLINE_PASSWORD = "sim-account-password"  # for configured accounts, given a mailbox in the simulator offline


@dataclass(frozen=True)
class MailEndpoints:
    """Where an IMAP account reads (IMAP) and sends (SMTP), and how it logs in."""

    imap: Endpoint
    smtp: Endpoint
    login: Login
    address: str


@dataclass(frozen=True)
class Account:
    """One PEC account as tools see it."""

    name: str
    kind: AccountKind
    address: str | None
    environment: str
    can_send: bool
    can_read: bool
    provider: str  # "PEC Massiva", a preset's label, "custom" or "simulator"
    note: str = ""  # what is missing, or where the account is served from
    settings: AccountSettings | None = None  # IMAP accounts only
    requests_per_second: float = 1.0
    price_per_message_eur: float = 0.0  # per recipient; a mailbox's sends cost nothing more (the mailbox is paid)

    @property
    def simulated(self) -> bool:
        return self.environment == "offline"


def pecmassiva_configured(settings: Settings) -> bool:
    section = settings.pecmassiva
    return settings.env == "offline" or all(v is not None for v in (section.token, section.username,
                                                                     section.password))


def list_accounts(settings: Settings) -> list[Account]:
    """Every PEC account: ``pecmassiva`` first, then the IMAP accounts by name."""
    accounts = [_pecmassiva(settings)]
    accounts += [_imap(name, section, settings) for name, section in sorted(imap_sections(settings).items())]
    return accounts


def sending_accounts(settings: Settings) -> list[str]:
    """The names of the accounts that can send in this environment (the bulk job runner serves each)."""
    return [a.name for a in list_accounts(settings) if a.can_send]


def imap_sections(settings: Settings) -> dict[str, AccountSettings]:
    """The configured IMAP accounts, plus the simulator's own offline when it is not shadowed by a configured one."""
    sections = dict(settings.accounts)
    if settings.env == "offline" and OFFLINE_ACCOUNT not in sections:
        sections[OFFLINE_ACCOUNT] = AccountSettings(address=OFFLINE_ADDRESS, provider="custom",
                                                    imap_host="simulator", smtp_host="simulator",
                                                    requests_per_second=50.0)
    return sections


def default_account_name(settings: Settings) -> str | None:
    """The account a tool uses when none is named; None when that is ambiguous (several, no default)."""
    if settings.default_account:
        return settings.default_account
    configured = sorted(settings.accounts)
    if pecmassiva_configured(settings) or not configured:
        return "pecmassiva"  # with nothing configured, its tools then say which keys to set
    return configured[0] if len(configured) == 1 else None


def resolve_account(settings: Settings, name: str | None) -> Account:
    """The account a tool call means; InputError naming the accounts there are when it is unknown or ambiguous."""
    accounts = {a.name: a for a in list_accounts(settings)}
    chosen = name.strip().lower() if name and name.strip() else default_account_name(settings)
    if chosen is None:
        raise InputError(
            "Several PEC accounts are configured and none is the default",
            hint=f"Pass account= one of: {', '.join(sorted(accounts))} (list_pec_accounts describes them), or set "
            "default_account in the configuration.",
        )
    account = accounts.get(chosen)
    if account is None:
        raise InputError(
            f"There is no PEC account named {chosen!r}",
            hint=f"Known accounts: {', '.join(sorted(accounts))}. Call list_pec_accounts to see them.",
        )
    return account


def require(account: Account, *, send: bool = False) -> Account:
    """The account if it can do what is asked (read, or send); ConfigError saying what is missing otherwise."""
    if (send and not account.can_send) or not account.can_read:
        raise ConfigError(f"The PEC account {account.name!r} cannot be used: {account.note}")
    return account


def mail_endpoints(account: Account) -> MailEndpoints:
    """Where an IMAP account's configured servers are, with the preset filled in (not for simulated accounts)."""
    section = account.settings
    if account.kind != "imap" or section is None:
        raise ConfigError(f"The account {account.name!r} is not an IMAP account")
    if section.password is None:
        raise ConfigError(f"The PEC account {account.name!r} has no password",
                          hint=f"Set accounts.{account.name}.password or "
                          f"PEC_MCP_ACCOUNTS__{account.name.upper()}__PASSWORD.")
    preset = PRESETS.get(section.provider)
    security = section.security or (preset.security if preset else "tls")
    imap_host = section.imap_host or (preset.imap_host if preset else "")
    smtp_host = section.smtp_host or (preset.smtp_host if preset else "")
    imap_port = section.imap_port or (preset.imap_port if preset and not section.security
                                      else default_port("imap", security))
    smtp_port = section.smtp_port or (preset.smtp_port if preset and not section.security
                                      else default_port("smtp", security))
    return MailEndpoints(
        imap=Endpoint(imap_host, imap_port, security, section.ca_file),
        smtp=Endpoint(smtp_host, smtp_port, security, section.ca_file),
        login=Login(section.login, section.password.get_secret_value()),
        address=section.address,
    )


def _pecmassiva(settings: Settings) -> Account:
    configured = pecmassiva_configured(settings)
    if settings.env == "offline":
        from pec_mcp.simulator import credentials as sim

        address: str | None = sim.PECMASSIVA_USERNAME
    else:
        address = settings.pecmassiva.sender or settings.pecmassiva.username
    return Account(
        name="pecmassiva", kind="pecmassiva", address=address, environment=settings.env, can_send=configured,
        can_read=configured, provider="PEC Massiva",
        note="" if configured else "pecmassiva.token, username and password are not all set",
        requests_per_second=settings.sending.requests_per_second,
        price_per_message_eur=settings.sending.price_per_message_eur,
    )


def _imap(name: str, section: AccountSettings, settings: Settings) -> Account:
    preset = PRESETS.get(section.provider)
    provider = preset.label if preset else "custom"
    if settings.env == "offline":
        note = ("offline: a mailbox of the simulator's PEC mail provider" if name == OFFLINE_ACCOUNT and
                name not in settings.accounts else
                f"offline: served by the simulator's PEC mail provider instead of {provider}")
        return Account(name=name, kind="imap", address=section.address, environment="offline", can_send=True,
                       can_read=True, provider="simulator", note=note,
                       settings=section, requests_per_second=section.requests_per_second)
    ready = section.password is not None
    note = "" if ready else (f"no password: set accounts.{name}.password or "
                             f"PEC_MCP_ACCOUNTS__{name.upper()}__PASSWORD")
    return Account(name=name, kind="imap", address=section.address, environment=settings.env, can_send=ready,
                   can_read=ready, provider=provider, note=note, settings=section,
                   requests_per_second=section.requests_per_second)
