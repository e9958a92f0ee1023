"""Settings: one immutable object read from a TOML file and ``PEC_MCP_*`` environment variables."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from pec_mcp.config_wording import describe_validation_error, usable_header_text, usable_secret
from pec_mcp.errors import ConfigError
from pec_mcp.pecmail.presets import ProviderPreset, Security

Environment = Literal["offline", "sandbox", "production"]
Toolset = Literal["pec", "bulk", "mailbox", "certified"]
ProviderName = Literal["pecmassiva", "openapi_pec", "mensatek"]

ENV_PREFIX = "PEC_MCP_"
CONFIG_ENV_VAR = "PEC_MCP_CONFIG"
# PEC_MCP_* variables that are not settings: the config file's path, and switches of the test suite.
NON_SETTING_ENV_VARS = frozenset({CONFIG_ENV_VAR, "PEC_MCP_INSPECTOR", "PEC_MCP_UPDATE_SNAPSHOTS"})
DEFAULT_CONFIG_PATH = Path("~/.config/pec-mcp/config.toml")
# Tables of named entries, whose variables carry the entry's name: PEC_MCP_HTTP__USERS__<NAME>__<KEY>.
NAMED_TABLES = ("HTTP__USERS",)

# Production and sandbox hosts. Mensatek publishes no sandbox: there, a base_url must be given explicitly.
PROVIDER_URLS: dict[ProviderName, dict[str, str | None]] = {
    "pecmassiva": {"production": "https://ws.pecmassiva.com", "sandbox": "https://test.ws.pecmassiva.com"},
    "openapi_pec": {"production": "https://pec.openapi.it", "sandbox": "https://test.pec.openapi.it"},
    "mensatek": {"production": "https://api.mensatek.com/v7", "sandbox": None},
}


# A secret that can be sent: printable ASCII, not empty, not a placeholder copied from the documentation.
# Every secret setting uses this type, so that each is checked the same way at start-up and by check-config.
Secret = Annotated[SecretStr, AfterValidator(usable_secret)]
# Text that travels in an HTTP header (PEC Massiva's x-username): ASCII only.
HeaderText = Annotated[str, AfterValidator(usable_header_text)]


class _Section(BaseModel):
    # A misspelt key is an error, not silently ignored: "tokne" must not leave a provider unauthenticated.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PecMassivaSettings(_Section):
    token: Secret | None = None
    username: HeaderText | None = None
    password: Secret | None = None
    sender: str | None = None
    base_url: str | None = None


class OpenapiPecSettings(_Section):
    token: Secret | None = None
    base_url: str | None = None
    callback_url: str | None = None


class MensatekSettings(_Section):
    api_user: HeaderText | None = None
    api_token: Secret | None = None
    sender: str | None = None
    base_url: str | None = None


class SendingSettings(_Section):
    requests_per_second: float = Field(1.0, gt=0, le=1000)
    max_recipients_per_request: int = Field(50, ge=1, le=500)
    max_request_mb: float = Field(30.0, gt=0, le=1024)
    price_per_message_eur: float = Field(0.05, ge=0)
    confirm: Literal["always", "bulk", "never"] = "always"
    allowed_recipient_domains: tuple[str, ...] = ()
    max_recipients_per_call: int = Field(10_000, ge=1)

    @field_validator("allowed_recipient_domains")
    @classmethod
    def _lowercase_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower().lstrip("@") for d in value if d.strip())


class AttachmentSettings(_Section):
    allowed_dirs: tuple[Path, ...] = (Path("~/Documents"),)
    max_total_mb: float = Field(30.0, gt=0, le=1024)

    def resolved_dirs(self) -> tuple[Path, ...]:
        """The allowed folders with ``~`` expanded and symlinks resolved, as they are compared."""
        return tuple(d.expanduser().resolve() for d in self.allowed_dirs)


class StoreSettings(_Section):
    path: Path = Path("~/.local/share/pec-mcp/pec-mcp.sqlite3")
    # postgresql://user:password@host:port/db: when set, the store is PostgreSQL and ``path`` is unused. Secret,
    # since the password is part of it; shown by check-config with the password masked.
    url: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        scheme = value.get_secret_value().split("://", 1)[0].lower()
        if scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL (postgresql://user:password@host:5432/database)")
        return value


class ToolsSettings(_Section):
    enabled: tuple[Toolset, ...] = ("pec", "bulk", "mailbox", "certified")


class UserSettings(_Section):
    """One person or agent reaching the HTTP transport with their own bearer token (``[http.users.<name>]``)."""

    token: SecretStr
    toolsets: tuple[Toolset, ...] | None = None  # None: every toolset of tools.enabled
    read_only: bool = False  # only tools annotated read-only are listed and callable
    accounts: tuple[str, ...] | None = None  # None: every account

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < 16:
            raise ValueError("must be at least 16 characters (e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))')")
        return value


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    auth_token: Secret | None = None
    webhook_token: Secret | None = None
    max_body_mb: float = Field(1.0, gt=0, le=64)
    # Seals the confirmations a replica asks for, so that any replica sharing the key can take the answer.
    state_key: SecretStr | None = None
    users: dict[str, UserSettings] = Field(default_factory=dict)

    @field_validator("state_key")
    @classmethod
    def _state_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters of secret randomness (e.g. python -c 'import "
                             "secrets; print(secrets.token_hex(32))'), the same on every replica")
        return value

    @model_validator(mode="after")
    def _distinct_tokens(self) -> HttpSettings:
        seen: dict[str, str] = {}
        for name, user in self.users.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
                raise ValueError(f"users.{name}: a user name is letters, digits, '.', '_' or '-' (at most 64)")
            other = seen.setdefault(user.token.get_secret_value(), name)
            if other != name:
                raise ValueError(f"users.{other} and users.{name} have the same token; give each their own")
        return self


class DashboardSettings(_Section):
    enabled: bool = True
    session_minutes: int = Field(60, ge=1, le=7 * 24 * 60)


class SimulatorSettings(_Section):
    delivery_delay: float = Field(2.0, ge=0)
    rate: float = Field(1.0, gt=0)


# Names of the accounts that are not [accounts.<name>] sections: PEC Massiva's mailbox and Mensatek's sender.
RESERVED_ACCOUNT_NAMES = frozenset({"pecmassiva", "mensatek"})
_ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AccountSettings(_Section):
    """A PEC mailbox reached over IMAP and SMTP (``[accounts.<name>]``)."""

    address: str
    provider: ProviderPreset = "custom"
    username: str | None = None  # default: the address
    password: SecretStr | None = None
    imap_host: str | None = None
    imap_port: int | None = Field(None, ge=1, le=65535)
    smtp_host: str | None = None
    smtp_port: int | None = Field(None, ge=1, le=65535)
    security: Security | None = None
    # Extra CA certificates (PEM) trusted for this account's servers, on top of the system's: for a private or
    # test server. Certificates are always verified; there is no switch that turns verification off.
    ca_file: Path | None = None
    # Providers throttle SMTP (Legalmail: 6 messages a minute per mailbox); bulk jobs on this account keep to it.
    requests_per_second: float = Field(0.1, gt=0, le=100)

    @field_validator("address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.match(value):
            raise ValueError("must be an email address, e.g. studio.rossi@legalmail.it")
        local, domain = value.rsplit("@", 1)
        return f"{local}@{domain.lower()}"

    @model_validator(mode="after")
    def _custom_needs_hosts(self) -> AccountSettings:
        if self.provider == "custom" and not (self.imap_host and self.smtp_host):
            raise ValueError('provider "custom" needs imap_host and smtp_host (or name a provider preset: aruba, '
                             "legalmail, namirial, poste, register)")
        return self

    @property
    def login(self) -> str:
        return self.username or self.address


class TrustSettings(_Section):
    # A PEM bundle with the certificates of the accredited PEC providers: a receipt signed by one of them is
    # "valid" (legal proof); without a bundle an intact signature is only "valid_untrusted".
    pec_providers: Path | None = None


class Settings(BaseSettings):
    """Everything pec-mcp reads from its configuration; build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False,
        # MCP Bundle hosts (Claude Desktop) pass an empty variable for a setting left blank: that means unset.
        env_ignore_empty=True,
    )

    environment: Environment | None = None
    default_account: str | None = None
    pecmassiva: PecMassivaSettings = PecMassivaSettings()
    openapi_pec: OpenapiPecSettings = OpenapiPecSettings()
    mensatek: MensatekSettings = MensatekSettings()
    sending: SendingSettings = SendingSettings()
    attachments: AttachmentSettings = AttachmentSettings()
    store: StoreSettings = StoreSettings()
    tools: ToolsSettings = ToolsSettings()
    http: HttpSettings = HttpSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    dashboard: DashboardSettings = DashboardSettings()
    accounts: dict[str, AccountSettings] = {}
    trust: TrustSettings = TrustSettings()

    @model_validator(mode="after")
    def _users_within_enabled_toolsets(self) -> Settings:
        for name, user in self.http.users.items():
            beyond = [t for t in user.toolsets or () if t not in self.tools.enabled]
            if beyond:
                raise ValueError(f"http.users.{name}.toolsets names {', '.join(beyond)}, not in tools.enabled "
                                 f"({', '.join(self.tools.enabled)}); enable it there or remove it from the user")
        return self

    @field_validator("accounts")
    @classmethod
    def _account_names(cls, value: dict[str, AccountSettings]) -> dict[str, AccountSettings]:
        for name in value:
            if name in RESERVED_ACCOUNT_NAMES:
                raise ValueError(f"{name!r} is the name of the {name} account; give this mailbox another name")
            if not _ACCOUNT_NAME.match(name):
                raise ValueError(f"account name {name!r} must be lower-case letters, digits, - or _ "
                                 "(at most 40), starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _default_account_exists(self) -> Settings:
        from pec_mcp.accounts import OFFLINE_ACCOUNT  # accounts builds on this module

        name = self.default_account
        # The offline environment always has the simulator's mailbox; other environments do not.
        offline = self.environment == "offline" or (self.environment is None and not self.has_credentials())
        offline_box = name == OFFLINE_ACCOUNT and offline
        if name is not None and name != "pecmassiva" and name not in self.accounts and not offline_box:
            known = ", ".join(["pecmassiva", *sorted(self.accounts)])
            raise ValueError(f"default_account {name!r} is not a configured account (known: {known})")
        return self

    @model_validator(mode="after")
    def _choose_environment(self) -> Settings:
        # Offline only when nothing points at a real account: a user who set only environment variables
        # must never be silently talking to the simulator.
        if self.environment is None:
            chosen: Environment = "sandbox" if self.has_credentials() else "offline"
            object.__setattr__(self, "environment", chosen)
        return self

    def has_credentials(self) -> bool:
        return any(
            value is not None
            for value in (
                self.pecmassiva.token,
                self.pecmassiva.username,
                self.pecmassiva.password,
                self.openapi_pec.token,
                self.mensatek.api_user,
                self.mensatek.api_token,
                *(account.password for account in self.accounts.values()),
            )
        )

    @property
    def env(self) -> Environment:
        """The effective environment (never None after validation)."""
        assert self.environment is not None
        return self.environment

    def base_url(self, provider: ProviderName) -> str | None:
        """The provider's base URL: the explicit override, else the host of the environment (None offline)."""
        override: str | None = getattr(self, provider).base_url
        if override:
            return override.rstrip("/")
        if self.env == "offline":
            return None
        return PROVIDER_URLS[provider][self.env]

    def secret_values(self) -> list[str]:
        """Every configured secret in clear, for the log and error redactor. Never print this."""
        secrets = (
            self.pecmassiva.token,
            self.pecmassiva.password,
            self.openapi_pec.token,
            self.mensatek.api_token,
            self.http.auth_token,
            self.http.webhook_token,
            self.http.state_key,
            *(user.token for user in self.http.users.values()),
            store_password(self.store.url),
            *(account.password for account in self.accounts.values()),
        )
        return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets shown as ``**********`` (for ``check-config``)."""
        data: dict[str, Any] = self.model_dump(mode="json")
        _mask(data)
        if self.store.url is not None:
            data["store"]["url"] = masked_url(self.store.url.get_secret_value())
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what load_settings passes in: explicit arguments first, then the environment, then the file.
        return (init_settings,)


SECRET_KEYS = frozenset({"token", "password", "api_token", "auth_token", "webhook_token", "state_key", "url"})
MASK = "**********"


def store_password(url: SecretStr | None) -> SecretStr | None:
    """The password inside ``store.url``, for the redactor (the rest of the URL is not secret)."""
    if url is None:
        return None
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url.get_secret_value()).password
    except ValueError:
        return None
    return SecretStr(unquote(password)) if password else None


def masked_url(url: str) -> str:
    """A database URL with its password replaced by the mask, fit to print."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _mask(data: dict[str, Any]) -> None:
    # Sections nest ([accounts.<name>]), so secrets are masked at any depth.
    for key, value in data.items():
        if isinstance(value, dict):
            _mask(value)
        elif key in SECRET_KEYS and value is not None:
            data[key] = MASK


class _MappingEnvSource(EnvSettingsSource):
    """Environment variables read from a given mapping, so tests never touch ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine's loopback (only this machine can reach it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def environment_label(environment: str) -> str:
    """How an environment is named wherever a user must not mistake it (instructions, confirmation questions)."""
    if environment == "production":
        return "PRODUCTION: real, paid, with legal value"
    if environment == "sandbox":
        return "sandbox (the provider's test service)"
    return "offline (built-in simulator, nothing leaves this machine)"


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """Which TOML file to read: ``--config``, else ``$PEC_MCP_CONFIG``, else the default if it exists."""
    if explicit is not None:
        path = explicit.expanduser()
        if not path.is_file():
            raise ConfigError(f"The configuration file {path} does not exist", hint="Give an existing file.")
        return path
    if environ.get(CONFIG_ENV_VAR):
        return config_path(Path(environ[CONFIG_ENV_VAR]), environ)
    default = DEFAULT_CONFIG_PATH.expanduser()
    return default if default.is_file() else None


def load_settings(
    path: Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Read the settings once; a wrong key or value raises ConfigError naming it."""
    environ = os.environ if environ is None else environ
    file = config_path(path, environ)
    try:
        env_values = _MappingEnvSource(Settings, environ)()
    except SettingsError as exc:
        raise ConfigError(_describe_env_error(exc)) from None
    try:
        file_values = TomlConfigSettingsSource(Settings, toml_file=file)() if file else {}
        return Settings(**_deep_merge(_deep_merge(file_values, env_values), overrides))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, file, Settings)) from None
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise ConfigError(f"Cannot read the configuration file {file}: {exc}") from None


def setting_sources(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each setting that is set came from: ``file``, ``environment (PEC_MCP_...)``; others are defaults.

    Read again from the two sources (not from the merged settings), so that the answer matches what won.
    """
    environ = os.environ if environ is None else environ
    file = config_path(path, environ)
    sources: dict[str, str] = {}
    if file is not None:
        for key in leaf_keys(TomlConfigSettingsSource(Settings, toml_file=file)()):
            sources[key] = "file"
    for key in leaf_keys(_MappingEnvSource(Settings, environ)()):
        sources[key] = f"environment ({ENV_PREFIX}{key.upper().replace('.', '__')})"
    return sources


def leaf_keys(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of every value in nested mappings (``sending.confirm``), an empty table counting as one."""
    keys = []
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            keys.extend(leaf_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe_env_error(exc: SettingsError) -> str:
    # pydantic-settings names the section whose variable is not valid JSON; the value itself is never shown.
    match = re.search(r'field "([a-z_]+)"', str(exc))
    where = f"a {ENV_PREFIX}{match.group(1).upper()}* variable" if match else f"a {ENV_PREFIX}* variable"
    return (
        f"Invalid configuration in the {ENV_PREFIX}* environment: {where} is not valid JSON "
        """(lists are written as JSON, e.g. PEC_MCP_ATTACHMENTS__ALLOWED_DIRS='["/home/me/Documents"]')"""
    )


def config_file_warning(path: Path | None) -> str | None:
    """A warning when a config file holding secrets can be read by other users of the machine."""
    if path is None or os.name != "posix":
        return None
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"{path} is readable by other users; it may hold secrets. Run: chmod 600 {path}"
    return None


def setting_env_vars() -> set[str]:
    """Every variable name that sets something: PEC_MCP_<KEY>, PEC_MCP_<SECTION>, PEC_MCP_<SECTION>__<KEY>."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        names.add(f"{ENV_PREFIX}{name.upper()}")
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names.update(f"{ENV_PREFIX}{name.upper()}__{key.upper()}" for key in section.model_fields)
    return names


def _is_account_variable(name: str) -> bool:
    """PEC_MCP_ACCOUNTS__<NAME>__<KEY>, with KEY a setting of an account."""
    parts = name.split("__")
    return (len(parts) == 3 and parts[0] == f"{ENV_PREFIX}ACCOUNTS" and bool(parts[1])
            and parts[2].lower() in AccountSettings.model_fields)


def environment_warnings(environ: Mapping[str, str]) -> list[str]:
    """A warning for each PEC_MCP_* variable that sets nothing (a misspelling would otherwise be ignored).

    Names only, never values (they may be secrets). A wrong key inside a known section is not listed here:
    loading the settings refuses it with its own error.
    """
    known = setting_env_vars()
    sections = {f"{ENV_PREFIX}{name.upper()}__" for name in Settings.model_fields}
    by_squashed = {n.replace("_", ""): n for n in known}
    warnings = []
    for raw in sorted(environ):
        name = raw.upper()
        if not name.startswith(ENV_PREFIX) or name in known or name in NON_SETTING_ENV_VARS:
            continue
        if _is_account_variable(name):
            continue
        if any(name.startswith(s) for s in sections) and name.count("__") == 1:
            continue
        if any(name.startswith(f"{ENV_PREFIX}{table}__") and name.count("__") == 3 for table in NAMED_TABLES):
            continue  # a key of one named entry, e.g. PEC_MCP_HTTP__USERS__ANNA__TOKEN
        guess = by_squashed.get(name.replace("_", "")) or _close_match(name, known)
        hint = f" Did you mean {guess}?" if guess else " Sections and keys are joined by two underscores, e.g. " \
            f"{ENV_PREFIX}PECMASSIVA__TOKEN."
        warnings.append(f"The environment variable {raw} is not a pec-mcp setting and is ignored.{hint}")
    return warnings


def _close_match(name: str, known: set[str]) -> str | None:
    # Compared without the common prefix, which would make every name look alike.
    tails = {n.removeprefix(ENV_PREFIX): n for n in known}
    matches = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), sorted(tails), n=1, cutoff=0.8)
    return tails[matches[0]] if matches else None
