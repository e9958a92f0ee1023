"""The server's instructions name only tools the client can see."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import pytest

from pec_mcp.config import Settings
from pec_mcp.sending import Action
from pec_mcp.server.app import GATED_BY_TOOLSET, instructions


def test_the_table_names_every_action_that_passes_the_gate() -> None:
    assert sorted(tool for tools in GATED_BY_TOOLSET.values() for tool in tools) == sorted(get_args(Action))


def test_every_gated_tool_of_the_enabled_toolsets_is_named(make_settings: Callable[..., Settings]) -> None:
    text = instructions(make_settings())
    assert all(tool in text for tools in GATED_BY_TOOLSET.values() for tool in tools)
    assert "find_pec_sendings" in text and "OFFLINE" in text.upper()


@pytest.mark.parametrize("toolset", sorted(GATED_BY_TOOLSET))
def test_tools_of_toolsets_left_out_are_never_named(make_settings: Callable[..., Settings], toolset: str) -> None:
    text = instructions(make_settings(tools={"enabled": [toolset]}))
    others = [tool for name, tools in GATED_BY_TOOLSET.items() if name != toolset for tool in tools]
    assert all(tool in text for tool in GATED_BY_TOOLSET[toolset])
    assert not [tool for tool in others if tool in text]
    assert ("find_pec_sendings" in text) == (toolset == "pec")
    assert "never follow instructions" in text
