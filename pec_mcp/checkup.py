"""What ``pec-mcp check-config`` checks: can these settings work in the chosen environment?

Each check is a small function from the settings to findings. A finding names the setting, says what is wrong and
what to do, and never shows a secret. ``error`` means something needed is missing or wrong (the command then exits
non-zero); ``warning`` means it works but probably not as intended.

Settings that gain sections (more accounts, users, stores) add a function to ``CHECKS``; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from pec_mcp.config import PROVIDER_URLS, ProviderName, Settings, is_loopback, leaf_keys
from pec_mcp.store.file import store_file_warning, store_problem

Level = Literal["error", "warning"]

# The credentials each provider needs outside the offline environment.
REQUIRED: dict[ProviderName, tuple[str, ...]] = {
    "pecmassiva": ("token", "username", "password"),
    "openapi_pec": ("token",),
    "mensatek": ("api_user", "api_token"),
}
PROVIDER_TITLES: dict[ProviderName, str] = {
    "pecmassiva": "PEC Massiva", "openapi_pec": "openapi.it PEC", "mensatek": "Mensatek",
}
# Which toolsets stop working without which provider.
TOOLSETS_OF: dict[ProviderName, tuple[str, ...]] = {
    "pecmassiva": ("pec", "bulk"), "openapi_pec": ("mailbox",), "mensatek": ("certified",),
}


@dataclass(frozen=True)
class Finding:
    level: Level
    setting: str
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.setting}: {self.message}"


def configured(settings: Settings, provider: ProviderName) -> bool:
    """Whether any credential of the provider is set (a partly configured provider is an error elsewhere)."""
    section = getattr(settings, provider)
    return any(getattr(section, key) is not None for key in REQUIRED[provider])


def effective_host(settings: Settings, provider: ProviderName) -> str:
    """Where the provider's calls go, as a person reads it."""
    url = settings.base_url(provider)
    if url is not None:
        return url
    if settings.env == "offline":
        return "the built-in simulator (offline: nothing leaves this machine)"
    return f"none: {PROVIDER_TITLES[provider]} has no {settings.env} host; set {provider}.base_url"


def check_providers(settings: Settings) -> Iterator[Finding]:
    if settings.env == "offline":
        return
    ready = []
    for provider, keys in REQUIRED.items():
        section = getattr(settings, provider)
        missing = [key for key in keys if getattr(section, key) is None]
        title = PROVIDER_TITLES[provider]
        if len(missing) == len(keys):
            wanted = [t for t in TOOLSETS_OF[provider] if t in settings.tools.enabled]
            if wanted:
                yield Finding("warning", provider, f"{title} has no credentials, so the {', '.join(wanted)} tools "
                              f"will fail in {settings.env}; set {_names(provider, keys)}, or leave those toolsets "
                              "out of tools.enabled")
            continue
        if missing:
            yield Finding("error", provider, f"{title} is partly configured for {settings.env}: "
                          f"{_names(provider, missing)} missing (it needs {_names(provider, keys)})")
            continue
        if settings.base_url(provider) is None:
            yield Finding("error", f"{provider}.base_url", f"{title} has no known {settings.env} host; set "
                          f"{provider}.base_url, or use environment = \"production\" for "
                          f"{PROVIDER_URLS[provider]['production']}")
            continue
        ready.append(provider)
    if not ready and not settings.accounts:  # a mailbox account of its own serves the PEC tools
        yield Finding("error", "environment", f"environment is {settings.env!r} but no provider is fully "
                      "configured, so every tool would fail; add credentials, or use environment = \"offline\" to "
                      "try everything with the built-in simulator")


def check_base_urls(settings: Settings) -> Iterator[Finding]:
    for provider in REQUIRED:
        url = getattr(settings, provider).base_url
        if not url:
            continue
        if not url.startswith(("https://", "http://")):
            yield Finding("error", f"{provider}.base_url", "must start with https:// (or http:// for a local "
                          "simulator)")
        elif url.startswith("http://") and settings.env == "production" and not _is_loopback_url(url):
            yield Finding("warning", f"{provider}.base_url", "is plain http in production: credentials would "
                          "travel unencrypted; use https://")


def check_sender(settings: Settings) -> Iterator[Finding]:
    if settings.env != "offline" and configured(settings, "mensatek") and not settings.mensatek.sender \
            and "certified" in settings.tools.enabled:
        yield Finding("error", "mensatek.sender", "is needed to send certified email: the sender address "
                      "validated in the Mensatek panel")


def check_store(settings: Settings) -> Iterator[Finding]:
    path = settings.store.path
    problem = store_problem(path)
    if problem is not None:
        yield Finding("error", "store.path", problem.removeprefix(f"store.path ({path.expanduser()}) "))
        return
    readable = store_file_warning(path)
    if readable:
        yield Finding("warning", "store.path", readable)


def check_allowed_dirs(settings: Settings) -> Iterator[Finding]:
    for folder in settings.attachments.allowed_dirs:
        path = folder.expanduser()
        if path.exists() and not path.is_dir():
            yield Finding("error", "attachments.allowed_dirs", f"{path} is a file, not a folder")
        elif not path.exists():
            yield Finding("warning", "attachments.allowed_dirs", f"{path} does not exist; attachments and "
                          "downloads there will be refused until it does")


def check_http(settings: Settings) -> Iterator[Finding]:
    http = settings.http
    if http.auth_token is None and not is_loopback(http.host):
        yield Finding("error", "http.auth_token", f"is needed to listen on {http.host} (beyond loopback); "
                      "`serve --transport http` refuses to start without it")
    callback = settings.openapi_pec.callback_url
    if callback and http.webhook_token is None:
        yield Finding("warning", "http.webhook_token", "openapi_pec.callback_url is set but the webhook routes are "
                      "off until http.webhook_token is set")


# Every check, in the order findings are printed. A new configuration section adds its function here.
CHECKS: list[Callable[[Settings], Iterator[Finding]]] = [
    check_providers, check_base_urls, check_sender, check_store, check_allowed_dirs, check_http,
]


def check(settings: Settings) -> list[Finding]:
    return [finding for run in CHECKS for finding in run(settings)]


def _names(provider: str, keys: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"{provider}.{key}" for key in keys)


def _is_loopback_url(url: str) -> bool:
    host = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    return is_loopback(host)



def report(settings: Settings, *, config_file: str, sources: dict[str, str],
           findings: list[Finding]) -> dict[str, object]:
    """What check-config prints: the effective settings (secrets masked), hosts, sources and findings."""
    masked = settings.masked()
    chosen = sources.get("environment") or ("default: a provider credential is set" if settings.env == "sandbox"
                                             else "default: no provider credential is set")
    return {
        "config_file": config_file,
        "effective_environment": settings.env,
        **masked,
        "hosts": {provider: effective_host(settings, provider) for provider in REQUIRED},
        "sources": {"environment": chosen,
                    **{key: sources.get(key, "default") for key in leaf_keys(masked) if key != "environment"}},
        "findings": [finding.line() for finding in findings],
    }

