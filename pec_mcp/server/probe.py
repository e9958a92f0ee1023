"""``check-config --probe``: one read-only call per configured provider, proving its host and credentials work.

The calls change nothing and cost nothing: PEC Massiva's quota, openapi.it's list of mailboxes, Mensatek's credits.
No store is opened (a running server may be using it), and no send pacer is taken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from pec_mcp.checkup import PROVIDER_TITLES, REQUIRED, configured
from pec_mcp.config import ProviderName, Settings
from pec_mcp.errors import PecError
from pec_mcp.http import ClientOptions, build_client
from pec_mcp.redaction import Redactor
from pec_mcp.server.state import SIMULATOR_ORIGIN, _auth_headers, base_url, pecmassiva_credentials

# A probe waits this long at most per provider: a host that does not answer is a finding, not a hang.
PROBE_DEADLINE = 20.0


@dataclass(frozen=True)
class Verdict:
    provider: ProviderName
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{self.provider}: {'ok' if self.ok else 'FAILED'}: {self.detail}"


async def probe_all(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> list[Verdict]:
    """One verdict per provider that is configured (every provider offline, where the simulator answers)."""
    if transport is None and settings.env == "offline":
        from pec_mcp.server.offline import OfflineTransport

        transport = OfflineTransport(settings)
    redactor = Redactor(settings.secret_values())
    verdicts = []
    for provider in REQUIRED:
        if settings.env != "offline" and not configured(settings, provider):
            continue
        verdicts.append(await _probe(settings, provider, transport, redactor))
    return verdicts


async def _probe(settings: Settings, provider: ProviderName, transport: httpx.AsyncBaseTransport | None,
                 redactor: Redactor) -> Verdict:
    try:
        url = base_url(settings, provider)
        async with build_client(provider=provider, base_url=url, transport=transport,
                                headers=_auth_headers(settings, provider),
                                options=ClientOptions(deadline=PROBE_DEADLINE)) as http:
            detail = await PROBES[provider](settings, http)
    except PecError as exc:
        return Verdict(provider, False, redactor(exc.explain()))
    except httpx.HTTPError as exc:
        return Verdict(provider, False, redactor(f"{PROVIDER_TITLES[provider]} could not be reached at {url}: "
                                                 f"{type(exc).__name__}"))
    where = "the built-in simulator" if url.startswith(SIMULATOR_ORIGIN) else url
    return Verdict(provider, True, redactor(f"{detail} (at {where})"))


async def _pecmassiva(settings: Settings, http: httpx.AsyncClient) -> str:
    from pec_mcp.providers.pecmassiva import PecMassivaClient

    quota = await PecMassivaClient(http, pecmassiva_credentials(settings)).quota()
    return f"the credentials work: the mailbox quota was read ({quota.usage:g} of {quota.limit:g} KB used)"


async def _openapi_pec(settings: Settings, http: httpx.AsyncClient) -> str:
    from pec_mcp.providers.openapi_pec import OpenapiPecClient

    mailboxes = await OpenapiPecClient(http).list_mailboxes()
    return f"the token works: the account lists {len(mailboxes)} mailbox(es)"


async def _mensatek(settings: Settings, http: httpx.AsyncClient) -> str:
    from pec_mcp.providers.mensatek import MensatekClient

    credits = await MensatekClient(http).credits()
    return f"the credentials work: {credits:g} credits left"


PROBES: dict[ProviderName, Callable[[Settings, httpx.AsyncClient], Awaitable[str]]] = {
    "pecmassiva": _pecmassiva, "openapi_pec": _openapi_pec, "mensatek": _mensatek,
}
