"""The reuse of what the SDK derives from a tool's signature (tests/tool_models.py) changes nothing a client sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.server import build_server
from tests.tool_models import derived_afresh

pytestmark = pytest.mark.anyio


async def listing(settings: Settings) -> str:
    async with Client(build_server(settings)) as client:  # type: ignore[arg-type]
        tools = (await client.list_tools()).tools
    return json.dumps([tool.model_dump(mode="json") for tool in tools], sort_keys=True)


async def test_a_server_built_with_reused_tool_models_lists_exactly_what_a_fresh_build_lists(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sending={"confirm": "never"})
    await listing(settings)  # the first build of the run may be the one that derives everything
    reused = await listing(settings)
    with derived_afresh():
        fresh = await listing(settings)
    assert reused == fresh and '"send_pec"' in fresh


async def test_a_tool_of_a_reused_model_runs_the_closure_of_its_own_server(
        connect: Callable[..., Any], make_settings: Callable[..., Settings]) -> None:
    # Two servers on two stores: each send lands in its own server's store, not in the first server's.
    counts = []
    for name in ("one", "two"):
        settings = make_settings(store={"path": str(make_settings().store.path.parent / f"{name}.sqlite3")})
        async with connect(settings) as client:
            sent = await client.call_tool("send_pec", {"recipients": ["mario.rossi@pec.example.it"], "subject": name,
                                                       "body": "Testo", "idempotency_key": "same-key",
                                                       "confirm": True})
            assert not sent.is_error, sent.content
            found = await client.call_tool("find_pec_sendings", {})
            assert found.structured_content is not None
            counts.append([s["subject"] for s in found.structured_content["sendings"]])
    assert counts == [["one"], ["two"]]
