"""The dashboard's routes: sign in and out, and the pages, each a read of :mod:`pec_mcp.records` put in a template."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import date
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import anyio
from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pec_mcp.config import Settings, environment_label
from pec_mcp.dashboard.auth import (
    COOKIE,
    COOKIE_PATH,
    SIGNIN_COOKIE,
    Session,
    Sessions,
    authenticate,
    new_csrf,
    same_token,
    sign_in_possible,
)
from pec_mcp.records import DELIVERY_STATES, PRICED_PROVIDER, SEND_STATES, Records, SendingFilter, split_actor
from pec_mcp.server.state import StateHolder

# Nothing but our own origin: no CDN, no inline script, no framing by other sites.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on our own form posts.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
NAV = {"sendings.html": "sendings", "sending.html": "sendings", "jobs.html": "jobs", "job.html": "jobs",
       "costs.html": "costs", "audit.html": "audit"}
FILTERS = ("account", "environment", "recipient", "q", "status", "since", "until")
# A failed sign-in answers after this pause, so that guessing tokens over the network is slow.
FAILED_SIGNIN_PAUSE = 0.5

ISO_DATE = re.compile(r"\d{4}-\d\d-\d\dT")

Handler = Callable[[Request], Awaitable[Response]]


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("pec_mcp.dashboard", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["environment_label"] = environment_label
    env.filters["when"] = when
    env.filters["actor"] = actor
    return env


def when(text: str) -> str:
    """An ISO timestamp as "2026-03-10 09:00:00"; a provider's own date format is shown as it came."""
    return text.replace("T", " ", 1) if ISO_DATE.match(text) else text


def actor(text: str) -> str:
    """Who acted and how it was approved, in words: "Claude 1.2 (approved: user confirmed)"."""
    who, how = split_actor(text)
    return f"{who} (approved: {how.replace('_', ' ')})" if how else who


class Dashboard:
    """The dashboard of one server: its settings, the running state (for the store) and the sessions."""

    def __init__(self, settings: Settings, holder: StateHolder, *, clock: Callable[[], float] = time.time,
                 failed_signin_pause: float = FAILED_SIGNIN_PAUSE) -> None:
        self.settings = settings
        self.holder = holder
        # In the store, so that every replica behind a proxy knows every session.
        self.sessions = Sessions(settings, lambda: holder.get().store,
                                 lifetime_seconds=settings.dashboard.session_minutes * 60, clock=clock)
        self.templates = _templates()
        self.pause = failed_signin_pause
        self._static = {name: resources.files("pec_mcp.dashboard").joinpath("static", name).read_bytes()
                        for name in STATIC}

    def records(self) -> Records:
        state = self.holder.get()
        return Records(state.store, price_per_message_eur=self.settings.sending.price_per_message_eur)

    # -- responses

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("environment", self.settings.env)
        context.setdefault("nav", NAV.get(name, ""))
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def _cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=True, httponly=True,
                            samesite="strict")

    # -- sign in and out

    async def signin_form(self, request: Request, *, status: int = 200, message: str | None = None) -> Response:
        if not sign_in_possible(self.settings):
            return self.page("closed.html", status=403)
        csrf = new_csrf()
        if message is None and request.query_params.get("ended"):
            message = "Your session has ended. Sign in again."
        response = self.page("signin.html", status=status, csrf=csrf, message=message)
        self._cookie(response, SIGNIN_COOKIE, csrf, max_age=3600)
        return response

    async def signin(self, request: Request) -> Response:
        if not sign_in_possible(self.settings):
            return self.page("closed.html", status=403)
        form = await request.form()
        token = str(form.get("token") or "")
        if not _same_origin(request) or not same_token(str(form.get("csrf") or ""),
                                                        request.cookies.get(SIGNIN_COOKIE)):
            return await self.signin_form(request, status=403, message="The sign-in form expired. Try again.")
        viewer = authenticate(self.settings, token)
        if viewer is None:
            await anyio.sleep(self.pause)
            return await self.signin_form(request, status=401, message="Sign-in failed.")
        session_id, _ = await anyio.to_thread.run_sync(self.sessions.create, viewer, token)
        response = RedirectResponse(f"{COOKIE_PATH}/sendings", status_code=303, headers=SECURITY_HEADERS)
        self._cookie(response, COOKIE, session_id, max_age=int(self.sessions.lifetime))
        response.delete_cookie(SIGNIN_COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict")
        return response

    async def signout(self, request: Request) -> Response:
        form = await request.form()
        cookie = request.cookies.get(COOKIE)
        session = await anyio.to_thread.run_sync(self.sessions.get, cookie)
        if session is not None and _same_origin(request) and same_token(str(form.get("csrf") or ""), session.csrf):
            await anyio.to_thread.run_sync(self.sessions.end, cookie)
        response = RedirectResponse(f"{COOKIE_PATH}/signin", status_code=303, headers=SECURITY_HEADERS)
        response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=True, httponly=True, samesite="strict")
        return response

    def signed_in(self, handler: Callable[[Request, Session], Awaitable[Response]]) -> Handler:
        """Run ``handler`` for a live session; anyone else goes to the sign-in form and sees no data."""

        async def guarded(request: Request) -> Response:
            cookie = request.cookies.get(COOKIE)
            session = await anyio.to_thread.run_sync(self.sessions.get, cookie)
            if session is None:
                target = f"{COOKIE_PATH}/signin" + ("?ended=1" if cookie else "")
                if request.url.path.endswith("/progress"):
                    return JSONResponse({"signed_in": False, "signin": target}, status_code=401,
                                        headers=SECURITY_HEADERS)
                return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
            return await handler(request, session)

        return guarded

    # -- pages

    async def home(self, request: Request) -> Response:
        return RedirectResponse(f"{COOKIE_PATH}/sendings", status_code=303, headers=SECURITY_HEADERS)

    async def sendings(self, request: Request, session: Session) -> Response:
        params = request.query_params
        problems: list[str] = []
        flt = SendingFilter(
            account=params.get("account") or None, environment=params.get("environment") or None,
            recipient=params.get("recipient") or None, words=params.get("q") or None,
            status=params.get("status") or None, since=_date(params.get("since"), "from", problems),
            until=_date(params.get("until"), "to", problems), accounts_allowed=session.viewer.accounts,
        )
        records = self.records()
        result = await anyio.to_thread.run_sync(lambda: records.sendings(flt, page=_int(params.get("page"), 1)))
        kept = {k: params[k] for k in FILTERS if params.get(k)}
        return self.page(
            "sendings.html", session=session, page=result, filters=kept, problems=problems,
            accounts=records.accounts(), environments=records.environments(),
            statuses=[*SEND_STATES, *DELIVERY_STATES],
            prev_url=_page_url(kept, result.page - 1) if result.page > 1 else None,
            next_url=_page_url(kept, result.page + 1) if result.page < result.pages else None,
        )

    async def sending(self, request: Request, session: Session) -> Response:
        records = self.records()
        row = records.sending(_int(request.path_params["sending_id"], 0), accounts_allowed=session.viewer.accounts)
        if row is None:
            return self.page("missing.html", status=404, session=session, what="sending")
        timeline = records.timeline(row)
        audit = (records.audit(ref=row.message_id, limit=20, accounts_allowed=session.viewer.accounts)
                 if row.message_id else [])
        return self.page("sending.html", session=session, sending=row, timeline=timeline, audit=audit)

    async def jobs(self, request: Request, session: Session) -> Response:
        return self.page("jobs.html", session=session, jobs=self._visible_jobs(session))

    def _visible_jobs(self, session: Session) -> list[Any]:
        allowed = session.viewer.accounts
        return [j for j in self.records().jobs() if allowed is None or j.account in allowed]

    async def job(self, request: Request, session: Session) -> Response:
        records = self.records()
        job = records.job(request.path_params["job_id"])
        if job is None or (session.viewer.accounts is not None and job.account not in session.viewer.accounts):
            return self.page("missing.html", status=404, session=session, what="bulk job")
        return self.page("job.html", session=session, job=job, recipients=records.job_recipients(job.id),
                         rate=self.settings.sending.requests_per_second)

    async def job_progress(self, request: Request, session: Session) -> Response:
        records = self.records()
        job = records.job(request.path_params["job_id"])
        if job is None or (session.viewer.accounts is not None and job.account not in session.viewer.accounts):
            return JSONResponse({"error": "not found"}, status_code=404, headers=SECURITY_HEADERS)
        rows = records.job_recipients(job.id)
        return JSONResponse({
            "job_id": job.id, "status": job.status, "total": job.total, "done": job.done, "counts": job.counts,
            "recipients": [{"row": r, "state": s, "reason": why} for r, _, s, why in rows],
        }, headers=SECURITY_HEADERS)

    async def costs(self, request: Request, session: Session) -> Response:
        records = self.records()
        env = request.query_params.get("environment") or self.settings.env
        allowed = session.viewer.accounts
        # The costs are PEC Massiva's: shown to people who may see that account; jobs, each to whoever sees its own.
        priced = allowed is None or PRICED_PROVIDER in allowed
        jobs = {j.id for j in self._visible_jobs(session)}
        return self.page("costs.html", session=session, shown_environment=env, environments=records.environments(),
                         days=records.costs("day", environment=env) if priced else [],
                         months=records.costs("month", environment=env) if priced else [],
                         jobs=[c for c in records.job_costs(environment=env) if c.period in jobs],
                         price=self.settings.sending.price_per_message_eur)

    async def audit(self, request: Request, session: Session) -> Response:
        page = _int(request.query_params.get("page"), 1)
        size = 100
        rows = self.records().audit(limit=size + 1, offset=(page - 1) * size,
                                    accounts_allowed=session.viewer.accounts)
        return self.page("audit.html", session=session, rows=rows[:size], page=page,
                         prev_url=f"?page={page - 1}" if page > 1 else None,
                         next_url=f"?page={page + 1}" if len(rows) > size else None)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response(status_code=404)
        return Response(self._static[name], media_type=STATIC[name],
                        headers={"x-content-type-options": "nosniff", "cache-control": "no-cache"})

    def routes(self) -> list[Route]:
        base = COOKIE_PATH
        return [
            Route(base, self.signed_in(lambda r, s: self.home(r)), methods=["GET"]),
            Route(f"{base}/signin", self.signin_form, methods=["GET"]),
            Route(f"{base}/signin", self.signin, methods=["POST"]),
            Route(f"{base}/signout", self.signout, methods=["POST"]),
            Route(f"{base}/sendings", self.signed_in(self.sendings), methods=["GET"]),
            Route(f"{base}/sendings/{{sending_id}}", self.signed_in(self.sending), methods=["GET"]),
            Route(f"{base}/jobs", self.signed_in(self.jobs), methods=["GET"]),
            Route(f"{base}/jobs/{{job_id}}", self.signed_in(self.job), methods=["GET"]),
            Route(f"{base}/jobs/{{job_id}}/progress", self.signed_in(self.job_progress), methods=["GET"]),
            Route(f"{base}/costs", self.signed_in(self.costs), methods=["GET"]),
            Route(f"{base}/audit", self.signed_in(self.audit), methods=["GET"]),
            Route(f"{base}/static/{{name}}", self.static, methods=["GET"]),
        ]


def dashboard_routes(settings: Settings, holder: StateHolder) -> list[Route]:
    """The dashboard's routes for the HTTP app, or none when ``dashboard.enabled`` is false."""
    if not settings.dashboard.enabled:
        return []
    return Dashboard(settings, holder).routes()


def _same_origin(request: Request) -> bool:
    """A form post must come from our own pages: an Origin header, when the browser sends one, names this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # a browser that sends none still needs the CSRF token, which another site cannot read
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


def _date(raw: str | None, name: str, problems: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append(f"The '{name}' date must look like 2026-03-31; it was ignored.")
        return None


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def _page_url(filters: dict[str, str], page: int) -> str:
    return "?" + urlencode({**filters, "page": page})
