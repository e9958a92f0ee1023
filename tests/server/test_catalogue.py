"""The remembered tools/list answer: the same catalogue as a fresh build, and a server that registers late works."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp
import mcp_types
import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.server import app, build_server
from pec_mcp.server.app import TOOLSETS
from pec_mcp.server.catalogue import KEEP, Catalogue, _installed, _stamps, fingerprint
from pec_mcp.simulator import Simulator

pytestmark = pytest.mark.anyio


@pytest.fixture
def open_client(simulator: Simulator, tmp_path: Path) -> Callable[..., Any]:
    """``async with open_client(settings) as client``: a server that remembers its catalogue in tmp_path/cache."""

    @asynccontextmanager
    async def opened(settings: Settings, cache: Path = tmp_path / "cache") -> AsyncIterator[Client]:
        server = build_server(settings, transport=httpx.ASGITransport(app=simulator.app), catalogue_dir=cache)
        async with Client(server) as client:
            yield client

    return opened


async def _listed(client: Client) -> list[dict[str, Any]]:
    return [tool.model_dump(mode="json", by_alias=True, exclude_none=True)
            for tool in (await client.list_tools()).tools]


def _remembered(cache: Path) -> Path:
    [path] = cache.glob("tools-*.json")
    return path


@pytest.mark.parametrize("enabled", [list(TOOLSETS), *([name] for name in TOOLSETS)], ids=lambda e: "+".join(e))
async def test_a_remembered_catalogue_lists_exactly_what_a_fresh_build_lists(
    enabled: list[str], make_settings: Callable[..., Settings], open_client: Callable[..., Any], tmp_path: Path,
) -> None:
    settings = make_settings(tools={"enabled": enabled})
    async with open_client(settings) as first:
        built = await _listed(first)
    assert json.loads(_remembered(tmp_path / "cache").read_text()) == built
    async with open_client(settings) as second:
        assert await _listed(second) == built
    async with Client(build_server(settings, transport=httpx.MockTransport(lambda r: httpx.Response(500)))) as plain:
        assert await _listed(plain) == built  # and a server without a catalogue lists the same


def _tamper(cache: Path) -> str:
    """Change the first remembered description, so that an answer from the catalogue shows; returns the real one."""
    remembered = _remembered(cache)
    tools = json.loads(remembered.read_text())
    real: str = tools[0]["description"]
    tools[0]["description"] = "remembered"
    remembered.write_text(json.dumps(tools))
    return real


async def test_tools_list_answers_from_the_catalogue_until_a_tool_is_called(
    make_settings: Callable[..., Settings], open_client: Callable[..., Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "REGISTER_AFTER", 3600.0)
    settings = make_settings()
    async with open_client(settings) as first:
        await first.list_tools()
    real = _tamper(tmp_path / "cache")
    async with open_client(settings) as client:
        assert (await client.list_tools()).tools[0].description == "remembered"
        quota = await client.call_tool("get_pec_quota", {})
        assert not quota.is_error and quota.structured_content is not None
        assert (await client.list_tools()).tools[0].description == real  # registered now: the live answer


async def test_the_toolsets_are_registered_a_moment_after_start_up_without_any_request(
    settings: Settings, open_client: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_client(settings) as first:
        await first.list_tools()
    real = _tamper(tmp_path / "cache")
    monkeypatch.setattr(app, "REGISTER_AFTER", 0.0)
    async with open_client(settings) as client:
        with anyio.fail_after(10):
            while (await client.list_tools()).tools[0].description != real:  # noqa: ASYNC110 (no event to wait on)
                await anyio.sleep(0.01)


@pytest.mark.parametrize("first_request", ["call", "resources", "templates", "read", "prompts", "prompt"])
async def test_every_kind_of_first_request_works_on_a_server_that_registers_late(
    first_request: str, settings: Settings, open_client: Callable[..., Any],
) -> None:
    async with open_client(settings) as first:
        await first.list_tools()
    async with open_client(settings) as client:
        match first_request:
            case "call":
                result = await client.call_tool("find_pec_sendings", {"recipient": "nobody@pec.it"})
                assert not result.is_error
            case "resources":
                assert "pec://ledger" in {str(r.uri) for r in (await client.list_resources()).resources}
            case "templates":
                assert (await client.list_resource_templates()).resource_templates
            case "read":
                assert (await client.read_resource("pec://ledger")).contents
            case "prompts":
                assert (await client.list_prompts()).prompts
            case "prompt":
                assert (await client.get_prompt("check_delivery", {"message_id": "4021"})).messages


async def test_an_unreadable_catalogue_is_built_afresh_and_replaced(
    settings: Settings, open_client: Callable[..., Any], tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    broken = cache / f"tools-{fingerprint(settings.tools.enabled)}.json"
    broken.write_text('[{"name": "send_pec", "descr')
    async with open_client(settings) as client:
        listed = await _listed(client)
    assert json.loads(broken.read_text()) == listed


async def test_a_cache_folder_that_cannot_be_written_only_costs_time(
    settings: Settings, open_client: Callable[..., Any], tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    async with open_client(settings, cache=blocker / "cache") as client:
        assert len(await _listed(client)) > 30
        assert not (await client.call_tool("get_pec_quota", {})).is_error


def test_a_changed_source_file_or_toolset_choice_names_another_catalogue(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "module.py"
    source.parent.mkdir()
    source.write_text("A = 1\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    before = list(_stamps(tmp_path / "pkg"))
    source.write_text("A = 12\n")
    assert list(_stamps(tmp_path / "pkg")) != before and len(before) == 1
    assert fingerprint(["pec"]) != fingerprint(["pec", "bulk"]) != fingerprint(["bulk", "pec"])
    assert fingerprint(["pec"]) == fingerprint(["pec"])


def test_the_fingerprint_follows_the_installed_versions_of_the_sdk() -> None:
    for package in (mcp, mcp_types):
        assert f"{package.__name__}-{version(package.__name__)}.dist-info" in _installed(package)


def test_only_the_newest_catalogues_are_kept(tmp_path: Path) -> None:
    for age in range(KEEP + 3):
        old = tmp_path / f"tools-old{age}.json"
        old.write_text("[]")
        os.utime(old, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))
    Catalogue(tmp_path, "new").remember([{"name": "x"}])
    kept = {path.name for path in tmp_path.glob("tools-*.json")}
    assert "tools-new.json" in kept and len(kept) == KEEP
    assert {f"tools-old{age}.json" for age in range(KEEP - 1)} <= kept
    assert not list(tmp_path.glob("*.tmp"))
