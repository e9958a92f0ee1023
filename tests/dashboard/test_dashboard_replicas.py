"""Dashboard sessions behind a round-robin proxy: two real replicas on one PostgreSQL database. A person signed in
through one replica is signed in on the other; signing out through either ends the session on both; a user
removed from the config is signed out everywhere once the replicas run that config; the store keeps no token and
no session id."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.bulk.test_bulk_processes import simulate
from tests.replicas import Browser, Replica, migrate, replica_env, replicas, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ANNA = "anna-dashboard-token-0c7d41e9a2"
BRUNO = "bruno-dashboard-token-5e19b3f7d8"
USERS = f"""
[http]
state_key = "dashboard-replicas-state-key-0123456789"

[http.users.anna]
token = "{ANNA}"
"""
WITH_BRUNO = USERS + f"""
[http.users.bruno]
token = "{BRUNO}"
"""


def origin(replica: Replica) -> str:
    return f"http://127.0.0.1:{replica.port}"


def signed_in_as(response: httpx.Response, name: str) -> bool:
    return response.status_code == 200 and f'<span class="who">{name}</span>' in response.text


def signed_out(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/dashboard/signin")


def stored_sessions(url: str) -> list[Mapping[str, object]]:
    with psycopg.connect(url) as db, db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute("SELECT * FROM dashboard_sessions").fetchall()


async def test_a_session_made_on_one_replica_works_on_the_other_until_signed_out_or_its_user_removed(
    pg_url: str, tmp_path: Path
) -> None:
    with simulate(rate=1000) as sim:
        def env(config: str) -> dict[str, str]:
            return replica_env(origin=sim, store=pg_url, config=write_config(tmp_path, config))

        assert migrate(env(WITH_BRUNO)).returncode == 0
        async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
            anna, bruno = Browser(http), Browser(http)
            async with replicas(2, env(WITH_BRUNO), tmp_path) as (one, two):
                assert (await anna.sign_in(origin(one), ANNA)).status_code == 303
                assert (await bruno.sign_in(origin(one), BRUNO)).status_code == 303
                assert signed_in_as(await anna.get(origin(two), "/dashboard/sendings"), "anna")
                assert signed_in_as(await bruno.get(origin(two), "/dashboard/jobs"), "bruno")

                rows = stored_sessions(pg_url)
                kept = repr(rows)
                assert len(rows) == 2 and {r["viewer"] for r in rows} == {"anna", "bruno"}
                for secret in (ANNA, BRUNO, *anna.cookies.values(), *bruno.cookies.values()):
                    assert secret not in kept  # neither the tokens nor the session ids (the cookies) are stored

                before = dict(anna.cookies)
                assert signed_out(await anna.sign_out(origin(two)))
                assert not anna.cookies  # the browser was told to forget the cookie
                anna.cookies.update(before)  # and if it kept it anyway, the session is over on every replica
                assert signed_out(await anna.get(origin(one), "/dashboard/sendings"))
                assert signed_in_as(await bruno.get(origin(one), "/dashboard/sendings"), "bruno")

            # The replicas restart with bruno removed from the config: his session ends on both.
            async with replicas(2, env(USERS), tmp_path) as (one, two):
                for replica in (one, two):
                    assert signed_out(await bruno.get(origin(replica), "/dashboard/sendings"))
                    feed = await bruno.get(origin(replica), "/dashboard/jobs/any/progress")
                    assert feed.status_code == 401 and feed.json()["signed_in"] is False
                assert (await bruno.sign_in(origin(one), BRUNO)).status_code == 401
                assert (await anna.sign_in(origin(two), ANNA)).status_code == 303
                assert signed_in_as(await anna.get(origin(one), "/dashboard/sendings"), "anna")
        assert [r["viewer"] for r in stored_sessions(pg_url)] == ["anna"]
