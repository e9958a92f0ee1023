"""Dashboard sessions in the store, on both stores: what ends a session, and what the store keeps of one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pec_mcp.config import Settings, load_settings
from pec_mcp.dashboard.auth import MAX_SESSIONS_PER_VIEWER, Sessions, Viewer, authenticate
from pec_mcp.store import Store

ANNA = "anna-session-token-5b1e0c9d"
SHARED = "shared-session-token-77a3e0f1"


def settings_with(**http: Any) -> Settings:
    return load_settings(environ={}, environment="offline", http=http)


@pytest.fixture
def store(store_location: str) -> Iterator[Store]:
    opened = Store(store_location)
    yield opened
    opened.close()


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def sessions(settings: Settings, store: Store, clock: Clock | None = None) -> Sessions:
    return Sessions(settings, lambda: store, lifetime_seconds=3600, clock=clock or Clock())


def test_a_session_carries_the_users_accounts_from_the_config_in_force(store: Store) -> None:
    settings = settings_with(users={"anna": {"token": ANNA, "accounts": ["mensatek"]}})
    viewer = authenticate(settings, ANNA)
    assert viewer == Viewer("anna", frozenset({"mensatek"}))
    session_id, made = sessions(settings, store).create(viewer, ANNA)
    widened = settings_with(users={"anna": {"token": ANNA}})
    found = sessions(widened, store).get(session_id)
    assert found is not None and found.viewer == Viewer("anna", None) and found.csrf == made.csrf


def test_a_new_token_or_a_removed_user_ends_the_session_and_its_row(store: Store) -> None:
    settings = settings_with(users={"anna": {"token": ANNA}, "bruno": {"token": "bruno-session-token-0d2f"}})
    session_id, _ = sessions(settings, store).create(Viewer("anna"), ANNA)
    new_token = settings_with(users={"anna": {"token": ANNA + "-rotated"}})
    assert sessions(new_token, store).get(session_id) is None
    assert sessions(settings, store).get(session_id) is None  # the row went with it: the old token cannot revive it

    session_id, _ = sessions(settings, store).create(Viewer("anna"), ANNA)
    assert sessions(settings_with(users={"bruno": {"token": "bruno-session-token-0d2f"}}), store).get(
        session_id) is None


def test_a_shared_token_session_ends_once_users_replace_that_token(store: Store) -> None:
    shared = settings_with(auth_token=SHARED)
    session_id, _ = sessions(shared, store).create(Viewer("administrator (http.auth_token)"), SHARED)
    assert sessions(shared, store).get(session_id) is not None
    assert sessions(settings_with(auth_token=SHARED, users={"anna": {"token": ANNA}}), store).get(session_id) is None


def test_expired_sessions_are_refused_and_dropped_when_new_ones_are_made(store: Store) -> None:
    settings, clock = settings_with(auth_token=SHARED), Clock()
    kept = sessions(settings, store, clock)
    old, _ = kept.create(Viewer("administrator (http.auth_token)"), SHARED)
    clock.now += 3600
    assert kept.get(old) is None
    kept.create(Viewer("administrator (http.auth_token)"), SHARED)
    with store.transaction() as db:
        assert db.execute("SELECT COUNT(*) FROM dashboard_sessions").fetchone()[0] == 1


def test_one_person_keeps_a_bounded_number_of_sessions_the_newest(store: Store) -> None:
    settings, clock = settings_with(auth_token=SHARED), Clock()
    kept = sessions(settings, store, clock)
    made = []
    for _ in range(MAX_SESSIONS_PER_VIEWER + 2):
        clock.now += 1
        made.append(kept.create(Viewer("administrator (http.auth_token)"), SHARED)[0])
    assert kept.get(made[0]) is None and kept.get(made[1]) is None
    assert all(kept.get(session_id) is not None for session_id in made[2:])


def test_the_store_keeps_neither_the_token_nor_the_session_id(store: Store) -> None:
    settings = settings_with(users={"anna": {"token": ANNA}})
    session_id, made = sessions(settings, store).create(Viewer("anna"), ANNA)
    with store.transaction() as db:
        row = repr([tuple(r) for r in db.execute("SELECT * FROM dashboard_sessions").fetchall()])
    assert ANNA not in row and session_id not in row and made.csrf not in row
