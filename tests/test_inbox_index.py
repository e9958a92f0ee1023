"""The local inbox index answers as the provider does: searches and receipt lookups, after arrivals and deletions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from pec_mcp.inbox_index import InboxIndex
from pec_mcp.providers.pecmassiva import Credentials, InboxPage, PecMassivaClient
from pec_mcp.server.app import build
from pec_mcp.server.state import SIMULATOR_MOUNTS, AppState
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.app import MOUNTS, seed_messages
from pec_mcp.simulator.credentials import PECMASSIVA_PASSWORD, PECMASSIVA_TOKEN, PECMASSIVA_USERNAME
from pec_mcp.simulator.pecmassiva import Incoming
from pec_mcp.store import Store

pytestmark = pytest.mark.anyio

ME = PECMASSIVA_USERNAME


class CountingSource:
    """The real client, counting the inbox pages it reads."""

    def __init__(self, client: PecMassivaClient) -> None:
        self.client = client
        self.pages = 0

    async def inbox(self, *, query: str | None = None, page: int = 1) -> InboxPage:
        self.pages += 1
        return await self.client.inbox(query=query, page=page)


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[PecMassivaClient]:
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator/pecmassiva") as http:
        yield PecMassivaClient(http, Credentials(PECMASSIVA_TOKEN, PECMASSIVA_USERNAME, PECMASSIVA_PASSWORD))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.sqlite3")


@pytest.fixture
def source(client: PecMassivaClient) -> CountingSource:
    return CountingSource(client)


@pytest.fixture
def index(store: Store, source: CountingSource, simulator: Simulator) -> InboxIndex:
    return InboxIndex(store, source, "pecmassiva", environment="offline", max_age=0.0, clock=simulator.clock.now)


async def _send(client: PecMassivaClient, subject: str, recipients: list[str], simulator: Simulator) -> str:
    simulator.clock.advance(1)  # the frozen clock would keep the send rate gate shut
    result = await client.send(sender=ME, recipients=recipients, subject=subject, body="Testo")
    return result.message_id


async def _provider(client: PecMassivaClient, query: str) -> list[int]:
    ids: list[int] = []
    page = 1
    while True:
        listing = await client.inbox(query=query, page=page)
        ids += [item.id for item in listing.items]
        if page >= listing.pages:
            return ids
        page += 1


def _indexed(index: InboxIndex, query: str) -> list[int]:
    return [m.inbox_id for m in index.search(query=query, page_size=100_000).messages]


async def _fill(simulator: Simulator, client: PecMassivaClient) -> list[str]:
    """A mailbox of a few hundred messages: seeded receipts, incoming PEC, and real sendings with receipts."""
    simulator.pecmassiva.add_incoming(seed_messages(300, simulator.clock.now()))
    codes = [await _send(client, f"Sollecito pagamento {n}", [f"cliente{n}@pec.it", f"fail-{n}@pec.it"], simulator)
             for n in range(4)]
    simulator.clock.advance(3)
    return codes


QUERIES = ["Sollecito", "sollecito pagamento 2", "avviso n. 12", "CONSEGNA", "comune.esempio", "pecmassiva.com",
           "2026010100000042", "nothing like this"]


async def test_searches_and_receipt_lookups_give_the_providers_answer(index, client, simulator) -> None:
    codes = await _fill(simulator, client)
    report = await index.sync()
    assert report.added == index.count() > 300
    for query in [*QUERIES, *codes]:
        assert _indexed(index, query) == await _provider(client, query), query
    receipts = await index.receipts_of(codes[0])
    assert [m.kind for m in receipts] == ["accepted", "delivered", "not_delivered"]
    assert {m.message_id for m in receipts} == {codes[0]}


async def test_a_sync_after_new_arrivals_reads_only_the_new_pages(index, client, simulator, source) -> None:
    await _fill(simulator, client)
    await index.sync()
    before = source.pages
    code = await _send(client, "Nuovo invio", ["nuovo@pec.it"], simulator)
    simulator.pecmassiva.add_incoming([Incoming("ente@pec.ente.it", "Risposta al sollecito")])
    simulator.clock.advance(3)
    report = await index.sync()
    assert (report.added, report.full_walk, source.pages - before) == (3, False, 1)
    for query in ["sollecito", code, "Nuovo invio"]:
        assert _indexed(index, query) == await _provider(client, query)


async def test_messages_deleted_at_the_provider_leave_the_index_at_the_next_sync(index, client, simulator) -> None:
    codes = await _fill(simulator, client)
    await index.sync()
    victim = _indexed(index, "avviso n. 12")[0]
    await client.delete_message(inbox_id=victim)
    await client.delete_receipts(message_id=codes[1])
    report = await index.sync()
    assert report.full_walk and report.removed == 4
    for query in ["avviso n. 12", codes[1], "Sollecito"]:
        assert _indexed(index, query) == await _provider(client, query)
    assert index.count() == (await client.inbox()).total


async def test_a_message_that_arrives_out_of_order_is_found_by_the_count_check(index, client, simulator) -> None:
    await _fill(simulator, client)
    await index.sync()
    old = simulator.clock.now() - 86_400 * 30
    simulator.pecmassiva.add_incoming([Incoming("archivio@pec.it", "Messaggio arretrato", at=old)])
    report = await index.sync()
    assert report.full_walk
    assert _indexed(index, "arretrato") == await _provider(client, "arretrato") != []


async def test_a_fresh_index_answers_without_asking_the_provider(store, source, simulator, client) -> None:
    index = InboxIndex(store, source, "pecmassiva", environment="offline", max_age=60.0, clock=simulator.clock.now)
    await _fill(simulator, client)
    assert await index.find(query="Sollecito") is not None
    pages = source.pages
    await _send(client, "Sollecito tardivo", ["tardivo@pec.it"], simulator)
    found = await index.find(query="Sollecito")
    assert source.pages == pages and found is not None and found.total == 4 * 3  # stale, within a minute
    simulator.clock.advance(61)
    found = await index.find(query="Sollecito")
    assert found is not None and found.total == 4 * 3 + 2  # the new sending's ACCETTAZIONE and CONSEGNA


async def test_the_server_and_the_simulator_agree_on_where_providers_are_mounted() -> None:
    assert SIMULATOR_MOUNTS == MOUNTS


# -- through the MCP tools --------------------------------------------------------------------------------------


@asynccontextmanager
async def _server(settings, simulator: Simulator) -> AsyncIterator[tuple[Client, AppState]]:
    built = build(settings, transport=httpx.ASGITransport(app=simulator.app))
    async with Client(built.mcp) as mcp_client:  # type: ignore[arg-type]
        yield mcp_client, built.holder.get()


async def _tool(mcp_client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await mcp_client.call_tool(name, args)
    assert not result.is_error, result.content
    return result.structured_content or {}


async def test_list_pec_inbox_answers_a_query_from_the_index(settings, simulator, client) -> None:
    codes = await _fill(simulator, client)
    async with _server(settings, simulator) as (mcp_client, _):
        data = await _tool(mcp_client, "list_pec_inbox", {"query": codes[2]})
        assert data["source"] == "index" and data["index_synced_at"]
        assert [m["inbox_id"] for m in data["messages"]] == await _provider(client, codes[2])
        assert {m["message_id"] for m in data["messages"] if m["kind"] != "envelope"} == {codes[2]}
        plain = await _tool(mcp_client, "list_pec_inbox", {})
        assert plain["source"] == "provider" and plain["index_synced_at"] is None


async def test_a_query_found_only_in_bodies_is_asked_of_the_provider(settings, simulator, client) -> None:
    await _fill(simulator, client)
    async with _server(settings, simulator) as (mcp_client, _):
        data = await _tool(mcp_client, "list_pec_inbox", {"query": "Interscambio"})
    assert data["source"] == "provider" and data["total"] == 1


async def test_deleting_through_the_tools_updates_the_index_at_once(settings, simulator, client) -> None:
    codes = await _fill(simulator, client)
    async with _server(settings, simulator) as (mcp_client, state):
        first = await _tool(mcp_client, "list_pec_inbox", {"query": "avviso n. 12"})
        victim = first["messages"][0]["inbox_id"]
        await _tool(mcp_client, "delete_pec_message", {"inbox_id": victim, "confirm": True})
        await _tool(mcp_client, "delete_pec_receipts", {"message_id": codes[3], "confirm": True})
        synced = state.inbox_index().synced_at
        after = await _tool(mcp_client, "list_pec_inbox", {"query": "avviso n. 12"})
        gone = await _tool(mcp_client, "list_pec_inbox", {"query": codes[3]})
        assert state.inbox_index().synced_at == synced  # answered without a new sync
    assert after["source"] == "index"
    assert [m["inbox_id"] for m in after["messages"]] == await _provider(client, "avviso n. 12")
    assert gone["source"] == "provider" and gone["total"] == 0 == len(await _provider(client, codes[3]))


async def test_new_messages_are_found_once_the_index_is_older_than_its_window(settings, simulator, client) -> None:
    await _fill(simulator, client)
    async with _server(settings, simulator) as (mcp_client, state):
        await _tool(mcp_client, "list_pec_inbox", {"query": "sollecito"})
        simulator.pecmassiva.add_incoming([Incoming("ente@pec.ente.it", "Risposta al sollecito")])
        state.inbox_index().max_age = 0.0
        data = await _tool(mcp_client, "list_pec_inbox", {"query": "sollecito"})
    assert [m["inbox_id"] for m in data["messages"]] == await _provider(client, "sollecito")
    assert data["total"] == 4 * 3 + 1
