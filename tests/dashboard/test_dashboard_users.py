"""With per-user tokens, the dashboard signs each person in with their own token and shows only their accounts."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from pec_mcp.config import Settings
from pec_mcp.dashboard.auth import COOKIE
from tests.dashboard.conftest import Seeded, sign_in

ANNA = "anna-token-for-dashboard-tests-7f3e"  # may use the Mensatek account only
BRUNO = "bruno-token-for-dashboard-tests-2c81"  # every account
SHARED = "shared-token-for-dashboard-tests-9d04"

pytestmark = pytest.mark.anyio


@pytest.fixture
def dashboard_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(http={"auth_token": SHARED, "users": {
        "anna": {"token": ANNA, "accounts": ["mensatek"]},
        "bruno": {"token": BRUNO},
    }})


async def test_each_user_signs_in_with_their_own_token_and_sees_only_their_accounts(
    seeded: Seeded, browserless: httpx.AsyncClient
) -> None:
    assert (await sign_in(browserless, token=ANNA)).status_code == 303
    page = await browserless.get("/dashboard/sendings")
    assert page.status_code == 200 and "anna" in page.text
    assert "Fattura 114 marzo" not in page.text  # a PEC Massiva sending: not one of anna's accounts

    browserless.cookies.clear()
    assert (await sign_in(browserless, token=BRUNO)).status_code == 303
    page = await browserless.get("/dashboard/sendings")
    assert "Fattura 114 marzo" in page.text and "bruno" in page.text


async def test_the_shared_token_no_longer_signs_in_once_users_exist(
    seeded: Seeded, browserless: httpx.AsyncClient
) -> None:
    response = await sign_in(browserless, token=SHARED)
    assert response.status_code == 401 and "Fattura" not in response.text
    assert COOKIE not in browserless.cookies


async def test_costs_and_audit_show_a_user_only_what_concerns_their_accounts(
    seeded: Seeded, browserless: httpx.AsyncClient
) -> None:
    assert (await sign_in(browserless, token=ANNA)).status_code == 303
    costs, audit = await browserless.get("/dashboard/costs"), await browserless.get("/dashboard/audit")
    assert costs.text.count("Nothing spent.") == 3  # PEC Massiva's costs are not anna's to see
    assert "Fattura 114 marzo" not in audit.text and "Nothing recorded yet." in audit.text

    browserless.cookies.clear()
    assert (await sign_in(browserless, token=BRUNO)).status_code == 303
    costs, audit = await browserless.get("/dashboard/costs"), await browserless.get("/dashboard/audit")
    assert costs.text.count("Nothing spent.") == 1  # days and months shown; no bulk job was run
    assert "Fattura 114 marzo" in audit.text and "pecmassiva" in audit.text
