"""Estimated openapi.it PEC prices, and the cost of each paid mailbox action checked against the API's rules.

openapi.it publishes no price list through its API and charges each contract's own price to the wallet, so the
costs shown before a paid action are estimates from this one table (the list prices the simulator charges).
The checks here are the API's own rules (upgrade only, spaces in steps of 1024 or 512 MB): the server needs them
to compute a cost, and a request that the provider would refuse is never put to the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pec_mcp.errors import InputError
from pec_mcp.providers.openapi_pec import (
    CONSERVATION_STEP_MB,
    FIXED_TYPES,
    MAX_USERS,
    SPACE_STEP_MB,
    UPGRADABLE_TYPES,
    Mailbox,
)

# EUR; per year for the mailbox types (registration pays the first year, a renewal pays each year again).
LIST_PRICES_EUR: dict[str, Decimal] = {
    "STANDARD": Decimal("5.00"),
    "BRONZE": Decimal("10.00"),
    "SILVER": Decimal("20.00"),
    "GOLD": Decimal("30.00"),
    "DOMICILIODIGITALE": Decimal("5.00"),
    "PECMASSIVA": Decimal("99.00"),
    "space_1024": Decimal("2.00"),  # each 1024 MB of disk or archive space added
    "conservation_512": Decimal("5.00"),  # each 512 MB of legal conservation
    "filing": Decimal("10.00"),  # one business-register filing (comunica_pec)
    "user": Decimal("1.00"),  # one more user of a mailbox (multiutenza); the API answers 402 on an empty wallet
}

PRICE_NOTE = (
    "estimated from pec-mcp's list prices; openapi.it charges your contract's price to your wallet"
)


def _type_price(mailbox_type: str) -> Decimal:
    return LIST_PRICES_EUR.get(mailbox_type.upper(), Decimal(0))


def registration_cost(mailbox_type: str) -> Decimal:
    """A new mailbox: its first year."""
    return _type_price(mailbox_type)


def renewal_cost(mailbox: Mailbox, years: int) -> Decimal:
    """Renewing (or re-activating a revoked box) costs the type's yearly price for each year."""
    if mailbox.state not in ("evasa", "revocata"):
        raise InputError(
            f"The mailbox {mailbox.address} cannot be renewed while it is '{mailbox.state}': openapi.it renews "
            "only active (evasa) or revoked (revocata) mailboxes",
            hint="Activate it first (activate_mailbox), then wait until get_mailbox says 'evasa'.",
        )
    return _type_price(mailbox.mailbox_type) * years


def check_revocable(mailbox: Mailbox) -> None:
    """openapi.it revokes only an active mailbox, and only once."""
    if mailbox.state == "revocata":
        raise InputError(f"The mailbox {mailbox.address} has already been revoked; nothing to do",
                         hint="renew_mailbox re-activates a revoked mailbox, if that is what the user wants.")
    if mailbox.state != "evasa":
        raise InputError(
            f"openapi.it revokes only an active mailbox (evasa); {mailbox.address} is '{mailbox.state}'",
            hint="Check the state with get_mailbox.",
        )


def _check_upgradable(mailbox: Mailbox, what: str) -> None:
    if mailbox.mailbox_type in FIXED_TYPES:
        raise InputError(f"openapi.it does not allow {what} on {mailbox.mailbox_type} mailboxes "
                         f"({mailbox.address})", hint="Only STANDARD, BRONZE, SILVER and GOLD mailboxes change.")
    if mailbox.state != "evasa":
        raise InputError(f"openapi.it allows {what} only on an active mailbox (evasa); {mailbox.address} is "
                         f"'{mailbox.state}'", hint="Wait until get_mailbox says 'evasa'.")


def user_cost(mailbox: Mailbox) -> Decimal:
    """One more user: only on an active STANDARD..GOLD mailbox, and at most MAX_USERS users."""
    _check_upgradable(mailbox, "extra users")
    if len(mailbox.users) >= MAX_USERS:
        raise InputError(f"{mailbox.address} already has {len(mailbox.users)} users, the most openapi.it allows "
                         f"({MAX_USERS})", hint="No user can be added to this mailbox.")
    return LIST_PRICES_EUR["user"]


def type_change_cost(mailbox: Mailbox, target: str) -> Decimal:
    """An upgrade costs the difference of the yearly prices; a downgrade or a sideways move is refused."""
    _check_upgradable(mailbox, "a type change")
    order = [str(t) for t in UPGRADABLE_TYPES]
    higher = order[order.index(mailbox.mailbox_type) + 1:] if mailbox.mailbox_type in order else []
    if target not in higher:
        allowed = " or ".join(higher) if higher else "nothing (GOLD is the highest)"
        raise InputError(
            f"A downgrade of the mailbox type is not allowed by openapi.it: {mailbox.address} is "
            f"{mailbox.mailbox_type}, it can only become {allowed}",
            hint="Types only go up: STANDARD < BRONZE < SILVER < GOLD.",
        )
    return _type_price(target) - _type_price(mailbox.mailbox_type)


@dataclass(frozen=True)
class SpacePlan:
    """What a space upgrade changes and what it costs."""

    changes: list[str]
    cost: Decimal


def _new_space(name: str, target: int, current: int, step: int) -> int:
    if target <= 0 or target % step:
        raise InputError(f"{name} must be a multiple of {step} MB: openapi.it only takes multiples of {step}, "
                         f"not {target}", hint=f"Use {step}, {2 * step}, {3 * step}...")
    if target <= current:
        raise InputError(f"A downgrade of {name} is not allowed by openapi.it: it is {current} MB now, ask for "
                         f"more than that (e.g. {current + step})", hint="Space only goes up.")
    return target - current


def space_plan(mailbox: Mailbox, *, disk_space_mb: int | None, archive_space_mb: int | None,
               conservation_space_mb: int | None) -> SpacePlan:
    """The new totals checked against the current spaces; each added step priced."""
    _check_upgradable(mailbox, "space changes")
    if disk_space_mb is None and archive_space_mb is None and conservation_space_mb is None:
        raise InputError("No space was given", hint="Pass disk_space_mb, archive_space_mb or conservation_space_mb.")
    changes: list[str] = []
    cost = Decimal(0)
    for name, target, current, step, price in (
        ("disk_space_mb", disk_space_mb, mailbox.disk_space_mb or 0, SPACE_STEP_MB, "space_1024"),
        ("archive_space_mb", archive_space_mb, mailbox.archive_space_mb or 0, SPACE_STEP_MB, "space_1024"),
        ("conservation_space_mb", conservation_space_mb, mailbox.conservation_space_mb or 0,
         CONSERVATION_STEP_MB, "conservation_512"),
    ):
        if target is None:
            continue
        if name == "conservation_space_mb" and not mailbox.conservation_enabled:
            raise InputError("Legal conservation is not enabled on this mailbox",
                             hint="Enable it first with enable_mailbox_conservation.")
        added = _new_space(name, target, current, step)
        changes.append(f"{name.removesuffix('_mb').replace('_', ' ')} {current} → {target} MB")
        cost += LIST_PRICES_EUR[price] * (added // step)
    return SpacePlan(changes, cost)


def conservation_cost(mailbox: Mailbox, space_mb: int) -> Decimal:
    """Legal conservation: each 512 MB."""
    _check_upgradable(mailbox, "legal conservation")
    if mailbox.conservation_enabled:
        raise InputError(f"Legal conservation is already active on {mailbox.address}",
                         hint="Use upgrade_mailbox_space with conservation_space_mb for more space.")
    _new_space("space_mb", space_mb, 0, CONSERVATION_STEP_MB)
    return LIST_PRICES_EUR["conservation_512"] * (space_mb // CONSERVATION_STEP_MB)


def filing_cost() -> Decimal:
    return LIST_PRICES_EUR["filing"]
