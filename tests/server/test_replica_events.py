"""Change notifications across replicas, over real HTTP: two ``pec-mcp serve --transport http`` processes on one
PostgreSQL database. A client listening on one replica hears about a bulk job another replica runs, and about a
webhook report another replica received, then reads the change through its own replica.

Nothing here waits on a clock: the provider's answers are held (a proxy in front of the simulator) until every
listener has been acknowledged, so the changes happen only once everyone listens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.subscriptions import ResourceUpdated

from tests.bulk.test_bulk_processes import call, simulate, stats
from tests.postgres import Cluster as PgCluster
from tests.proxy import CuttableProxy
from tests.replicas import Replica, client, migrate, replica_env, replicas, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HOOK = "webhook-token-for-replica-events-7c1d"
CONFIG = f"""
[http]
state_key = "replica-events-state-key-0123456789abcdef"
webhook_token = "{HOOK}"
"""
# A loaded machine may take long to answer; no assertion is about how long.
PATIENCE = 180
HTTP_TIMEOUT = httpx.Timeout(60.0)


@dataclass
class Cluster:
    replicas: list[Replica]
    proxy: CuttableProxy  # between the replicas and the provider simulator
    origin: str  # the simulator itself, for its counters


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The module's tests and its shared cluster (whose proxy runs on the event loop) on one event loop."""
    return "asyncio"


@pytest.fixture(scope="module")
def pg_url(postgres: PgCluster) -> Iterator[str]:
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="module")
async def cluster(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """Two replicas, started once for the module: each test follows a resource of its own (a job, a report)."""
    tmp_path = tmp_path_factory.mktemp("replica-events")
    with simulate(rate=1000) as origin:
        async with CuttableProxy(int(origin.rsplit(":", 1)[1])).running() as proxy:
            env = replica_env(origin=f"http://127.0.0.1:{proxy.port}", store=pg_url,
                              config=write_config(tmp_path, CONFIG),
                              extra={"PEC_MCP_SENDING__CONFIRM": "never",
                                     "PEC_MCP_TOOLS__ENABLED": '["pec", "bulk", "certified"]'})
            done = await anyio.to_thread.run_sync(migrate, env)
            assert done.returncode == 0, done.stderr
            async with replicas(2, env, tmp_path) as started:
                yield Cluster(started, proxy, origin)



class Until(Protocol):
    """What a listener reads after each update, and whether what it read is the end it waits for."""

    async def read(self, c: Client) -> dict[str, Any]: ...

    def __call__(self, read: dict[str, Any], /) -> bool: ...


async def hear_until(replica: Replica, uri: str, listening: anyio.Event, done: Until) -> list[dict[str, Any]]:
    """Listen for ``uri`` on ``replica``; after each update read it there, until ``done(read)``; the reads."""
    reads: list[dict[str, Any]] = []
    async with client([replica], None) as c, c.listen(resource_subscriptions=[uri]) as events:
        listening.set()
        async for event in events:
            assert event == ResourceUpdated(uri=uri)
            reads.append(await done.read(c))
            if done(reads[-1]):
                return reads
    raise AssertionError(f"the stream ended before {uri} was done: {reads}")


class JobSent:
    """Done when the job has nothing left to send."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    async def read(self, c: Client) -> dict[str, Any]:
        return await call(c, "get_bulk_pec", {"job_id": self.job_id})

    def __call__(self, job: dict[str, Any]) -> bool:
        return bool(job["status"] != "sending")


async def test_a_client_on_any_replica_hears_the_progress_of_a_job_another_replica_runs(cluster: Cluster) -> None:
    first = cluster.replicas[0]
    people = [{"address": f"socio{i}@pec.example.it", "variables": {}} for i in range(3)]
    cluster.proxy.hold()  # the job's one request (same text for all three) waits until everyone listens
    async with client([first], None) as c:
        started = await call(c, "start_bulk_pec", {"recipients": people, "subject": "Convocazione assemblea",
                                                   "body": "Gentile socio, l'assemblea è convocata.",
                                                   "idempotency_key": "assemblea-2026"})
    assert started["requests"] == 1  # so exactly one replica's runner sends it: the other hears through PostgreSQL
    uri = f"pec://jobs/{started['job_id']}"
    heard: dict[int, list[Any]] = {}
    listening = [anyio.Event(), anyio.Event()]

    async def listen(index: int) -> None:
        heard[index] = await hear_until(cluster.replicas[index], uri, listening[index], JobSent(started["job_id"]))

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listen, 0)
            tasks.start_soon(listen, 1)
            for event in listening:
                await event.wait()
            cluster.proxy.release()
    for index in (0, 1):  # each replica's client heard, and read through its own replica, the job sent
        job = heard[index][-1]
        assert job["status"] != "sending" and job["counts"]["sent"] + job["counts"]["delivered"] == 3, job
    counted = (await stats(cluster.origin))["recipients"]
    assert sorted(counted) == [p["address"] for p in people] and set(counted.values()) == {1}
    assert cluster.proxy.held >= 1  # the request really waited for the listeners


REPORT = {"Servicio": "EMAILCERTIFICADO", "Resultado": "1", "idMensaje": "12345", "Fecha": "2026-03-10 10:00"}


class EventsStored:
    async def read(self, c: Client) -> dict[str, Any]:
        return await call(c, "list_certified_email_events", {"message_id": REPORT["idMensaje"]})

    def __call__(self, listed: dict[str, Any]) -> bool:
        return len(listed["events"]) >= 1


async def test_a_webhook_report_received_by_one_replica_is_announced_and_shown_on_the_other(cluster: Cluster) -> None:
    first, second = cluster.replicas
    uri = f"certified://messages/{REPORT['idMensaje']}"
    listening = anyio.Event()
    heard: list[Any] = []

    async def listen() -> None:
        heard.extend(await hear_until(second, uri, listening, EventsStored()))

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listen)
            await listening.wait()
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
                received = await http.post(f"http://127.0.0.1:{first.port}/webhooks/mensatek",
                                           params={"token": HOOK}, data=REPORT)
            assert received.status_code == 200 and received.json()["stored"] is True
    events = heard[-1]["events"]
    assert [(e["message_id"], e["status_code"]) for e in events] == [("12345", 1)], events
