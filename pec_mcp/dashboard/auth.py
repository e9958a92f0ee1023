"""Who may see the dashboard: the sign-in check, the sessions every replica shares, and CSRF tokens.

A person signs in with the same token an MCP client sends as ``Authorization: Bearer``. The token is checked by
:func:`authenticate` and never kept: the browser holds only a random session id in a ``Secure``, ``HttpOnly``,
``SameSite=Strict`` cookie scoped to ``/dashboard``, and the session is a row in the store (the ``dashboard_sessions``
table), so that behind a round-robin proxy a person signed in through one replica is signed in on all of them.

The row holds no secret: the SHA-256 of the session id, and an HMAC of the user's token keyed by the session id.
Every request checks that row against the config in force (in constant time): a user removed from the config, or
given a new token, is signed out on every replica that runs that config, and signing out deletes the row, so the
id stops working at once everywhere. The CSRF token of a session is derived from its id, never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from pec_mcp.config import Settings
from pec_mcp.store import Store

COOKIE = "pec_dashboard"
SIGNIN_COOKIE = "pec_dashboard_signin"  # the sign-in form's own CSRF token (double submit)
COOKIE_PATH = "/dashboard"


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
        from pec_mcp.server.http.users import TokenTable

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


# Who a session row belongs to: a user's name, or this marker for the single shared token.
ADMINISTRATOR = "#auth_token"
# The most sessions one person keeps at once (one per browser); signing in again past it ends the oldest.
MAX_SESSIONS_PER_VIEWER = 50


def _token_of(settings: Settings, viewer: str) -> str | None:
    """The token configured now for a session's owner; None when the owner is gone from the config."""
    if settings.http.users:  # per-user tokens replace the single shared one
        entry = settings.http.users.get(viewer)
        return None if entry is None else entry.token.get_secret_value()
    if viewer == ADMINISTRATOR and settings.http.auth_token is not None:
        return settings.http.auth_token.get_secret_value()
    return None


def _viewer_of(settings: Settings, owner: str) -> Viewer:
    if owner == ADMINISTRATOR:
        return Viewer("administrator (http.auth_token)")
    from pec_mcp.server.http.users import users_of

    return Viewer(owner, users_of(settings)[owner].accounts)


def _owner(settings: Settings, viewer: Viewer) -> str:
    return viewer.name if settings.http.users else ADMINISTRATOR


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _token_mac(session_id: str, token: str) -> str:
    return hmac.new(session_id.encode(), b"token\x00" + token.encode(), hashlib.sha256).hexdigest()


def _csrf(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"csrf", hashlib.sha256).hexdigest()


class Sessions:
    """Sign-in sessions kept in the store, valid on every replica; expired rows are dropped when new ones are made.

    ``store`` gives the running store (it opens with the server). Each method is one short transaction.
    """

    def __init__(self, settings: Settings, store: Callable[[], Store], *, lifetime_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.lifetime = lifetime_seconds
        self.clock = clock

    def create(self, viewer: Viewer, token: str) -> tuple[str, Session]:
        """A new session for ``viewer``, who signed in with ``token``: its id (for the cookie) and the session."""
        session_id = secrets.token_urlsafe(32)
        owner = _owner(self.settings, viewer)
        now = self.clock()
        expires_at = now + self.lifetime
        with self.store().transaction() as db:
            db.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now,))
            kept = int(db.execute("SELECT COUNT(*) FROM dashboard_sessions WHERE viewer = ?", (owner,)).fetchone()[0])
            if kept >= MAX_SESSIONS_PER_VIEWER:  # a flood of sign-ins must not grow the table without end
                oldest = db.execute("SELECT id_hash FROM dashboard_sessions WHERE viewer = ? ORDER BY created_at "
                                    "LIMIT ?", (owner, kept - MAX_SESSIONS_PER_VIEWER + 1)).fetchall()
                db.executemany("DELETE FROM dashboard_sessions WHERE id_hash = ?", [(r[0],) for r in oldest])
            db.execute("INSERT INTO dashboard_sessions (id_hash, viewer, token_mac, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?)", (_id_hash(session_id), owner, _token_mac(session_id, token), now,
                                                 expires_at))
        return session_id, Session(viewer, _csrf(session_id), expires_at)

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id; None when unknown, expired, or its user or token left the config."""
        if not session_id:
            return None
        with self.store().transaction() as db:
            row = db.execute("SELECT viewer, token_mac, expires_at FROM dashboard_sessions WHERE id_hash = ?",
                             (_id_hash(session_id),)).fetchone()
        if row is None or float(row["expires_at"]) <= self.clock():
            return None
        token = _token_of(self.settings, row["viewer"])
        expected = _token_mac(session_id, token or "")
        if token is None or not hmac.compare_digest(expected.encode(), str(row["token_mac"]).encode()):
            self.end(session_id)  # its user or token was removed: the session ends for good
            return None
        return Session(_viewer_of(self.settings, row["viewer"]), _csrf(session_id), float(row["expires_at"]))

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self.store().transaction() as db:
                db.execute("DELETE FROM dashboard_sessions WHERE id_hash = ?", (_id_hash(session_id),))


def same_token(given: str | None, expected: str | None) -> bool:
    """Compare two CSRF tokens in constant time; a missing one never matches."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given).encode(), str(expected).encode())


def new_csrf() -> str:
    return secrets.token_urlsafe(24)
