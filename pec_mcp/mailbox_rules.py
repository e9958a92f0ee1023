"""Which PEC addresses openapi.it can register: checked before any preview or question.

openapi.it registers Legalmail mailboxes only under its own domains, one per mailbox type, and its sandbox uses
test domains (reference: pec-domain.md, "Mailbox domains"). An address elsewhere (gmail.com, another provider's
PEC domain) can never be registered here, whatever the availability check says.

The rules follow the host that answers: the production host, the sandbox host (and the offline simulator, which
imitates it), or, for a ``base_url`` pointing elsewhere, either set.
"""

from __future__ import annotations

from pec_mcp.config import PROVIDER_URLS, Settings
from pec_mcp.providers.openapi_pec_models import ADDRESS_PATTERN

LEGALMAIL_TYPES = ("STANDARD", "BRONZE", "SILVER", "GOLD")

# rules -> mailbox type -> the domains its addresses may end with.
DOMAINS: dict[str, dict[str, tuple[str, ...]]] = {
    "production": {**dict.fromkeys(LEGALMAIL_TYPES, ("legalmail.it",)),
                   "DOMICILIODIGITALE": ("domiciliodigitale.com",), "PECMASSIVA": ("pecmassiva.com",)},
    "sandbox": {**dict.fromkeys(LEGALMAIL_TYPES, ("testcert.legalmail.it",)),
                "DOMICILIODIGITALE": ("test.domiciliodigitale.com",), "PECMASSIVA": ("pecmassiva.com",)},
}
DOMAINS["either"] = {kind: DOMAINS["production"][kind] + DOMAINS["sandbox"][kind] for kind in DOMAINS["sandbox"]}


def rules_for(settings: Settings) -> str:
    """Whose rules apply: the host openapi.it PEC calls go to decides."""
    if settings.env == "offline" and not settings.openapi_pec.base_url:
        return "sandbox"
    url = settings.base_url("openapi_pec")
    for environment in ("production", "sandbox"):
        if url == PROVIDER_URLS["openapi_pec"][environment]:
            return environment
    return "either"


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip().lower()


def domains_text(rules: str) -> str:
    """The accepted domains with their types, e.g. '@testcert.legalmail.it (STANDARD, BRONZE, ...)'."""
    by_domain: dict[str, list[str]] = {}
    for kind, domains in DOMAINS[rules].items():
        for domain in domains:
            by_domain.setdefault(domain, []).append(kind)
    return ", ".join(f"@{domain} ({', '.join(kinds)})" for domain, kinds in by_domain.items())


def address_problem(address: str, rules: str) -> str | None:
    """Why openapi.it cannot register this address, or None when its domain is one it uses.

    Not an address at all is left to the availability check, which says so in its own words.
    """
    if not ADDRESS_PATTERN.match(address.strip()):
        return None
    if any(_domain(address) in domains for domains in DOMAINS[rules].values()):
        return None
    where = "" if rules == "either" else f" in {rules}"
    return f"the address {address} cannot be registered through openapi.it{where}: new mailboxes get addresses under " \
           f"{domains_text(rules)}"


def registration_problem(address: str, mailbox_type: str, rules: str) -> str | None:
    """Why this address cannot be registered as this type (domain and type must match), or None."""
    problem = address_problem(address, rules)
    if problem is not None:
        return problem
    wanted = DOMAINS[rules].get(mailbox_type.upper())
    if wanted is not None and _domain(address) not in wanted:
        return (f"a {mailbox_type.upper()} mailbox must have an address ending "
                + " or ".join(f"@{domain}" for domain in wanted) + f"; {address} does not")
    return None
