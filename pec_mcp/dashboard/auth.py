"""Who may see the dashboard: the sign-in check, the server-side sessions and their cookie, and CSRF tokens.

A person signs in with the same token an MCP client sends as ``Authorization: Bearer``. The token is checked once,
by :func:`authenticate`, and never kept: the browser holds only a random session id in a ``Secure``, ``HttpOnly``,
``SameSite=Strict`` cookie scoped to ``/dashboard``, and the session lives in the server's memory with an expiry.
Server-side sessions (rather than a signed cookie) make signing out final: the id stops working at once.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pec_mcp.config import Settings

COOKIE = "pec_dashboard"
SIGNIN_COOKIE = "pec_dashboard_signin"  # the sign-in form's own CSRF token (double submit)
COOKIE_PATH = "/dashboard"
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Viewer:
    """A signed-in person: a name for the pages, and the accounts whose sendings they may see (None: all)."""

    name: str
    accounts: frozenset[str] | None = None


def sign_in_possible(settings: Settings) -> bool:
    """Whether any token exists to sign in with; without one the dashboard stays closed."""
    return settings.http.auth_token is not None or bool(settings.http.users)


def authenticate(settings: Settings, token: str) -> Viewer | None:
    """The person a token belongs to, or None. The one place a dashboard token is checked (in constant time)."""
    if not token:
        return None
    if settings.http.users:  # per-user tokens replace the single shared one, as on /mcp
        from pec_mcp.server.users import TokenTable

        user = TokenTable(settings).find(b"Bearer " + token.encode())
        return None if user is None else Viewer(user.name, user.accounts)
    expected = settings.http.auth_token
    if expected is not None and hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        return Viewer("administrator (http.auth_token)")
    return None


@dataclass
class Session:
    viewer: Viewer
    csrf: str
    expires_at: float


class Sessions:
    """Session ids to sessions, in memory; expired ones are dropped when seen and when new ones are made."""

    def __init__(self, *, lifetime_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime_seconds
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, viewer: Viewer) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(viewer, secrets.token_urlsafe(24), self.clock() + self.lifetime)
        with self._lock:
            self._prune()
            if len(self._sessions) >= MAX_SESSIONS:  # a flood of sign-ins must not grow memory without end
                oldest = min(self._sessions, key=lambda key: self._sessions[key].expires_at)
                del self._sessions[oldest]
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id; None when unknown or expired (an expired one is forgotten)."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= self.clock():
                del self._sessions[session_id]
                return None
            return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]


def same_token(given: str | None, expected: str | None) -> bool:
    """Compare two CSRF tokens in constant time; a missing one never matches."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given).encode(), str(expected).encode())


def new_csrf() -> str:
    return secrets.token_urlsafe(24)
