"""The dashboard without a browser: sign-in and sessions, filters and paging, escaping, jobs, costs and audit."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pec_mcp.config import Settings
from pec_mcp.dashboard.auth import COOKIE
from tests.dashboard.conftest import PLANTED, TOKEN, FakeClock, Seeded, sign_in

pytestmark = pytest.mark.anyio


async def test_pages_without_a_session_show_no_data_and_lead_to_sign_in(
    seeded: Seeded, browserless: httpx.AsyncClient
) -> None:
    for path in ("/dashboard", "/dashboard/sendings", "/dashboard/sendings/1", "/dashboard/jobs", "/dashboard/costs",
                 "/dashboard/audit"):
        response = await browserless.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/dashboard/signin"
        assert "Fattura" not in response.text


async def test_signing_in_with_the_token_sets_a_strict_http_only_secure_cookie(browserless: httpx.AsyncClient) -> None:
    response = await sign_in(browserless)
    assert response.status_code == 303
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE + "="))
    assert all(flag in cookie.lower() for flag in ("httponly", "secure", "samesite=strict", "path=/dashboard",
                                                    "max-age=3600"))
    assert TOKEN not in cookie and TOKEN not in response.headers["location"]


async def test_a_wrong_token_shows_no_data_and_no_hint(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    response = await sign_in(browserless, token=TOKEN[:-1])
    assert response.status_code == 401
    assert "Sign-in failed." in response.text
    assert "Fattura" not in response.text and TOKEN[:-1] not in response.text and "auth_token" in response.text
    assert COOKIE not in browserless.cookies
    assert (await browserless.get("/dashboard/sendings")).status_code == 303


async def test_the_sign_in_form_refuses_a_post_from_another_site(browserless: httpx.AsyncClient) -> None:
    form = await browserless.get("/dashboard/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    foreign = await browserless.post("/dashboard/signin", data={"csrf": csrf.group(1), "token": TOKEN},
                                     headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    browserless.cookies.clear()
    without_form_cookie = await browserless.post("/dashboard/signin", data={"csrf": csrf.group(1), "token": TOKEN})
    assert without_form_cookie.status_code == 403


async def test_the_token_never_appears_in_a_page(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    for path in ("/dashboard/sendings", "/dashboard/jobs", "/dashboard/costs", "/dashboard/audit",
                 "/dashboard/signin"):
        assert TOKEN not in (await browserless.get(path)).text


async def test_an_expired_session_goes_back_to_sign_in(
    seeded: Seeded, browserless: httpx.AsyncClient, session_clock: FakeClock
) -> None:
    await sign_in(browserless)
    assert (await browserless.get("/dashboard/sendings")).status_code == 200
    session_clock.now += 3601
    response = await browserless.get("/dashboard/sendings")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/signin?ended=1"
    assert "ended" in (await browserless.get(response.headers["location"])).text


async def test_signing_out_ends_the_session_for_good(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    page = await browserless.get("/dashboard/sendings")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    stolen = browserless.cookies[COOKIE]
    await browserless.post("/dashboard/signout", data={"csrf": csrf.group(1)},
                           headers={"origin": "https://127.0.0.1:8000"})
    browserless.cookies.set(COOKIE, stolen, domain="127.0.0.1", path="/dashboard")
    assert (await browserless.get("/dashboard/sendings")).status_code == 303


async def test_sendings_are_listed_and_filtered(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    everything = (await browserless.get("/dashboard/sendings")).text
    assert "3 sendings" in everything and "Fattura 114 marzo" in everything
    by_recipient = (await browserless.get("/dashboard/sendings", params={"recipient": "other.it"})).text
    assert "1 sending" in by_recipient and "Convocazione" in by_recipient and "Fattura" not in by_recipient
    by_words = (await browserless.get("/dashboard/sendings", params={"q": "fattura marzo"})).text
    assert "1 sending" in by_words and "Fattura 114 marzo" in by_words
    by_status = (await browserless.get("/dashboard/sendings", params={"status": "delivered"})).text
    assert "Fattura 114 marzo" in by_status and "Sollecito" not in by_status
    other_env = (await browserless.get("/dashboard/sendings", params={"environment": "production"})).text
    assert "0 sendings" in other_env
    future = (await browserless.get("/dashboard/sendings", params={"since": "2999-01-01"})).text
    assert "0 sendings" in future
    bad_date = (await browserless.get("/dashboard/sendings", params={"until": "31/03/2026"})).text
    assert "must look like 2026-03-31" in bad_date and "3 sendings" in bad_date


async def test_planted_html_is_shown_as_text_everywhere(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    listing = await browserless.get("/dashboard/sendings")
    assert PLANTED not in listing.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in listing.text
    link = re.search(r'href="(/dashboard/sendings/\d+)">Sollecito', listing.text)
    assert link is not None
    detail = await browserless.get(link.group(1))
    assert PLANTED not in detail.text
    # The title, the heading, and the two receipts' provider texts that quote the subject: all of them escaped.
    assert detail.text.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") == 4
    assert "AVVISO DI MANCATA CONSEGNA" in detail.text and "utente inesistente" in detail.text


async def test_one_sending_shows_each_recipient_with_its_outcome(seeded: Seeded,
                                                                 browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    listing = (await browserless.get("/dashboard/sendings", params={"q": "Fattura"})).text
    link = re.search(r'href="(/dashboard/sendings/\d+)"', listing)
    assert link is not None
    detail = (await browserless.get(link.group(1))).text
    assert "mario.rossi@pec.example.it" in detail
    assert seeded.message_ids["delivered"] in detail
    steps = re.findall(r'class="step-name">(\w+)', detail)
    assert steps == ["ACCETTAZIONE", "CONSEGNA"]
    assert "legal proof that the message was sent" in detail and "legal proof of delivery" in detail


async def test_pages_forbid_scripts_and_styles_from_anywhere_else(seeded: Seeded,
                                                                  browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    response = await browserless.get("/dashboard/sendings")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert re.search(r'(src|href|action)="(https?:)?//', response.text) is None


async def test_paging_keeps_the_filters(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    page = (await browserless.get("/dashboard/sendings", params={"page": "99", "q": "a"})).text
    assert "page=" not in page or "q=a" in page


async def test_costs_and_audit_pages_answer(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    costs = (await browserless.get("/dashboard/costs")).text
    assert "Per month" in costs and "€0.20" in costs  # four recipients at the list price of €0.05
    audit = (await browserless.get("/dashboard/audit")).text
    assert "send_pec" in audit and "user confirmed" in audit


async def test_an_unknown_sending_or_job_is_a_plain_404(seeded: Seeded, browserless: httpx.AsyncClient) -> None:
    await sign_in(browserless)
    assert (await browserless.get("/dashboard/sendings/99999")).status_code == 404
    assert (await browserless.get("/dashboard/jobs/job-nope")).status_code == 404
    assert (await browserless.get("/dashboard/jobs/job-nope/progress")).status_code == 404


async def test_a_bulk_job_has_its_page_and_a_progress_feed(
    dashboard_settings: Settings, connect: Callable[..., Any], browserless: httpx.AsyncClient
) -> None:
    async with connect(dashboard_settings) as client:
        started = await client.call_tool("start_bulk_pec", {
            "recipients": [{"address": "a@pec.example.it", "variables": {"n": PLANTED}},
                           {"address": "b@pec.example.it", "variables": {"n": "2"}}],
            "subject": "Avviso {{n}}", "body": "Testo {{n}}", "confirm": True})
        job_id = started.structured_content["job_id"]
        await client.call_tool("cancel_bulk_pec", {"job_id": job_id})
    await sign_in(browserless)
    jobs = (await browserless.get("/dashboard/jobs")).text
    assert job_id in jobs and "Avviso {{n}}" in jobs
    page = (await browserless.get(f"/dashboard/jobs/{job_id}")).text
    assert "a@pec.example.it" in page and f"/dashboard/jobs/{job_id}/progress" in page
    progress = (await browserless.get(f"/dashboard/jobs/{job_id}/progress")).json()
    assert progress["total"] == 2 and sum(progress["counts"].values()) == 2
    assert [r["row"] for r in progress["recipients"]] == [1, 2]
    browserless.cookies.clear()
    assert (await browserless.get(f"/dashboard/jobs/{job_id}/progress")).status_code == 401
