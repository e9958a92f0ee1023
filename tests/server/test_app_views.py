"""MCP App views: declared on their tools, served as ui:// resources, self-contained, and invisible to other hosts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from pec_mcp.config import Settings
from pec_mcp.server import build_server
from pec_mcp.server.views import BULK_JOB_VIEW, RECEIPTS_VIEW
from pec_mcp.simulator import Simulator

pytestmark = pytest.mark.anyio


class AppsHost(ClientExtension):
    """What a host that renders MCP App views declares."""

    identifier = EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        return {"mimeTypes": [APP_MIME_TYPE]}


def _result(result: Any) -> tuple[list[dict[str, Any]], Any, bool]:
    return [c.model_dump(mode="json") for c in result.content], result.structured_content, result.is_error


async def _status(client: Client, job_id: str) -> str:
    return str((await client.call_tool("get_bulk_pec", {"job_id": job_id})).structured_content["status"])


async def test_the_two_tools_name_their_views(settings: Settings, connect: Callable[..., Any]) -> None:
    async with connect(settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["get_pec_receipts"].meta == {"ui": {"resourceUri": RECEIPTS_VIEW}}
        assert tools["get_bulk_pec"].meta == {"ui": {"resourceUri": BULK_JOB_VIEW}}
        assert EXTENSION_ID in (client.server_capabilities.extensions or {})


async def test_a_remembered_catalogue_keeps_the_views(settings: Settings, simulator: Simulator,
                                                      tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    for _ in range(2):  # the first start remembers, the second answers from what it remembered
        server = build_server(settings, transport=httpx.ASGITransport(app=simulator.app), catalogue_dir=cache)
        async with Client(server) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            assert tools["get_pec_receipts"].meta == {"ui": {"resourceUri": RECEIPTS_VIEW}}
    [remembered] = cache.glob("tools-*.json")
    assert RECEIPTS_VIEW in remembered.read_text()


@pytest.mark.parametrize("uri", [RECEIPTS_VIEW, BULK_JOB_VIEW])
async def test_each_view_is_a_self_contained_mcp_app_resource(
    uri: str, settings: Settings, connect: Callable[..., Any]
) -> None:
    async with connect(settings) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert listed[uri].mime_type == APP_MIME_TYPE
        [content] = (await client.read_resource(uri)).contents
    assert content.mime_type == APP_MIME_TYPE
    html = content.text
    assert html.startswith("<!doctype html>") and "ui/initialize" in html and "<!-- bridge -->" not in html
    # Nothing is loaded from anywhere and nothing is asked of the network: the host's CSP would block it anyway.
    assert re.search(r"https?://|\bsrc=|<link|fetch\(|XMLHttpRequest|WebSocket|EventSource|innerHTML", html) is None
    assert len(html.encode()) < 16_000


async def test_views_are_left_out_with_their_toolset(make_settings: Callable[..., Settings],
                                                     connect: Callable[..., Any]) -> None:
    async with connect(make_settings(tools={"enabled": ["mailbox"]})) as client:
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
    assert RECEIPTS_VIEW not in uris and BULK_JOB_VIEW not in uris


async def test_hosts_without_apps_get_exactly_the_same_results(settings: Settings, simulator: Simulator) -> None:
    transport = httpx.ASGITransport(app=simulator.app)
    async with Client(build_server(settings, transport=transport), extensions=[AppsHost()]) as apps, \
            Client(build_server(settings, transport=transport)) as plain:
        sent = await plain.call_tool("send_pec", {"recipients": ["mario.rossi@pec.example.it"], "subject": "Fattura",
                                                  "body": "Gentile cliente", "confirm": True})
        message_id = sent.structured_content["message_id"]
        job = await plain.call_tool("start_bulk_pec", {"recipients": [{"address": "a@pec.example.it"}],
                                                       "subject": "Avviso", "body": "Testo", "confirm": True})
        job_id = job.structured_content["job_id"]
        await plain.call_tool("cancel_bulk_pec", {"job_id": job_id})  # so that no runner changes it between calls
        with anyio.fail_after(10):
            while await _status(plain, job_id) == "sending":  # noqa: ASYNC110 (the runner is another task)
                await anyio.sleep(0.05)
        for name, arguments in (("get_pec_receipts", {"message_id": message_id}), ("get_bulk_pec", {"job_id": job_id})):
            with_apps = _result(await apps.call_tool(name, arguments))
            without = _result(await plain.call_tool(name, arguments))
            assert with_apps == without
            assert not without[2] and json.loads(without[0][0]["text"]) == without[1]
