"""Finding every receipt of one sending in an inbox of 5,000 messages: the provider's search against the index.

The simulator runs as ``pec-mcp simulate`` and is filled through ``POST /__simulator__/pecmassiva/seed``. The
provider way walks ``GET /inbox?q=<code>`` page by page; the index way syncs once (timed and shown in the note),
then answers each lookup locally. Every lookup checks that both give the same messages in the same order.
"""

from __future__ import annotations

import random
import time
from typing import Any

import anyio
import httpx
from common import median, ms, row, simulator, temp_dir

MESSAGES = 5000


async def _measure(origin: str, store_path: str, count: int) -> tuple[list[float], list[float], float, int]:
    from pec_mcp.http import build_client
    from pec_mcp.inbox_index import InboxIndex
    from pec_mcp.providers.pecmassiva import Credentials, PecMassivaClient
    from pec_mcp.simulator import credentials as sim
    from pec_mcp.store import Store

    async with httpx.AsyncClient() as plain:
        seeded = await plain.post(origin + "/__simulator__/pecmassiva/seed", params={"count": MESSAGES})
        seeded.raise_for_status()
    credentials = Credentials(sim.PECMASSIVA_TOKEN, sim.PECMASSIVA_USERNAME, sim.PECMASSIVA_PASSWORD)
    store = Store(store_path)
    async with build_client(provider="pecmassiva", base_url=origin + "/pecmassiva") as http:
        client = PecMassivaClient(http, credentials)
        index = InboxIndex(store, client, "pecmassiva", environment="offline")
        started = time.perf_counter()
        await index.sync()
        sync_seconds = time.perf_counter() - started

        async def by_provider(code: str) -> list[int]:
            ids, page = [], 1
            while True:
                listing = await client.inbox(query=code, page=page)
                ids += [item.id for item in listing.items]
                if page >= listing.pages:
                    return ids
                page += 1

        async def by_index(code: str) -> list[int]:
            found = await index.find(query=code)
            return [m.inbox_id for m in found.messages] if found else []

        codes = [f"2026010100{k:06d}" for k in random.Random(7).sample(range(MESSAGES // 2), count)]
        provider_times, index_times = [], []
        for code in codes:
            started = time.perf_counter()
            expected = await by_provider(code)
            provider_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            got = await by_index(code)
            index_times.append(time.perf_counter() - started)
            if got != expected or not got:
                raise RuntimeError(f"the index answered {got} for {code}, the provider {expected}")
    total = index.count()
    store.close()
    return provider_times, index_times, sync_seconds, total


def run(quick: bool = False) -> list[dict[str, Any]]:
    count = 20 if quick else 60
    with temp_dir() as tmp, simulator() as origin:
        provider, index, sync_seconds, total = anyio.run(_measure, origin, str(tmp / "store.sqlite3"), count)
    provider_ms, index_ms = ms(median(provider)), ms(median(index))
    speedup = provider_ms / index_ms
    return [row("inbox", f"receipts of one sending, {total} messages", index_ms, provider_ms, unit="ms",
                target=">= 20x faster", met=speedup >= 20, n=count,
                note=f"{speedup:.0f}x faster, same answers; first sync {ms(sync_seconds):.0f} ms")]
