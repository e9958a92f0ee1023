"""The dashboard in headless chromium: sign in, filter, open a sending, watch a job move, offline and accessible."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import DOCS, PLANTED, SCREENSHOTS, TOKEN, Served, serious_violations

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    # axe-core is injected as an inline script, which the dashboard's own policy (rightly) forbids.
    ctx = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    yield ctx
    ctx.close()


def sign_in(page: Any, served: Served, token: str = TOKEN) -> None:
    page.goto(f"{served.origin}/dashboard")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def requests_of(page: Any) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def test_sign_in_filter_and_open_a_sending_without_leaving_the_origin(context: Any, served: Served) -> None:
    page = context.new_page()
    seen = requests_of(page)
    sign_in(page, served)
    page.wait_for_url(f"{served.origin}/dashboard/sendings")
    assert page.get_by_role("heading", name="Sendings").is_visible()
    assert "3 sendings" in page.locator("#count").inner_text()
    page.get_by_label("Recipient").fill("other.it")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"recipient=other\.it"))
    assert "1 sending" in page.locator("#count").inner_text()
    page.get_by_role("link", name="Convocazione assemblea soci").click()
    page.wait_for_url(re.compile(r"/dashboard/sendings/\d+$"))
    assert page.get_by_role("heading", name="giulia@pec.other.it").is_visible()
    assert served.message_ids["two"] in page.content()
    assert TOKEN not in page.content() and TOKEN not in page.url
    assert TOKEN not in (served.folder / "server.log").read_text()
    assert seen and all(url.startswith(served.origin + "/") for url in seen), seen


def test_a_wrong_token_stays_on_the_sign_in_form(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, served, token="not-the-token")
    assert page.get_by_role("alert").inner_text() == "Sign-in failed."
    assert "Fattura" not in page.content()


def test_a_planted_script_is_shown_as_text(context: Any, served: Served) -> None:
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, served)
    page.get_by_role("link", name=re.compile("Sollecito")).click()
    assert page.get_by_role("heading", level=1).inner_text() == f"Sollecito {PLANTED}"
    assert dialogs == []


def test_a_bulk_job_progress_moves_on_its_page(context: Any, served: Served) -> None:
    job_id = served.start_job("browser-progress")
    page = context.new_page()
    sign_in(page, served)
    page.goto(f"{served.origin}/dashboard/jobs/{job_id}")
    first = int(page.locator("#bar").get_attribute("value") or "0")
    total = int(page.locator("#bar").get_attribute("max") or "0")
    assert total == 16 and first < total
    # The page polls the server; the bar moves without a reload.
    page.wait_for_function(f"Number(document.getElementById('bar').value) > {first}", timeout=60_000)
    page.wait_for_function("document.getElementById('bar').value == 16", timeout=60_000)
    assert page.locator("tr[data-row] .state").first.inner_text() in ("sent", "delivered")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_has_no_serious_accessibility_violation(browser: Any, served: Served,
                                                            viewport: dict[str, int]) -> None:
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{served.origin}/dashboard/signin")
    assert serious_violations(page) == []
    sign_in(page, served)
    page.wait_for_url(f"{served.origin}/dashboard/sendings")
    detail = page.get_by_role("link", name="Fattura 114 marzo").get_attribute("href")
    job = served.start_job("browser-axe", count=2)
    for path in ("/dashboard/sendings", detail, "/dashboard/jobs", f"/dashboard/jobs/{job}", "/dashboard/costs",
                 "/dashboard/audit"):
        page.goto(f"{served.origin}{path}")
        assert serious_violations(page) == [], path
        # Usable on a phone: nothing wider than the screen but the tables, which scroll in their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], path
    context.close()


def test_screenshots_for_the_readme(browser: Any, served: Served) -> None:
    if not SCREENSHOTS:
        pytest.skip("set PEC_MCP_UPDATE_SCREENSHOTS=1 to write docs/*.png")
    DOCS.mkdir(exist_ok=True)
    shots = (("dashboard-desktop", DESKTOP, "Convocazione assemblea soci"), ("dashboard-phone", PHONE, "Sollecito"))
    for name, viewport, link in shots:
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        sign_in(page, served)
        page.get_by_role("link", name=link, exact=False).click()
        page.wait_for_load_state()
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=viewport is PHONE)
        context.close()
