"""What the model reads when something is wrong: refused arguments, unknown tools, prompt arguments, hints that
point only to listed tools and to causes that apply, and rules checked before any preview."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client, MCPError

from pec_mcp.config import Settings
from tests.server.safety_cases import PEC, REGISTRATION

pytestmark = pytest.mark.anyio

LIBRARY_WORDS = ("pydantic", "https://", "validation error", "Arguments", "[type=", "input_value", "Field required")


def text_of(result: Any) -> str:
    assert result.is_error, result
    return str(result.content[0].text)


def plain(text: str) -> None:
    """No library's own wording, type names or documentation URL reaches the model."""
    for word in LIBRARY_WORDS:
        assert word not in text, f"{word!r} in: {text}"


def wrong_value(schema: dict[str, Any]) -> Any:
    """A value of the wrong JSON type for an argument's schema."""
    kinds = {option.get("type") for option in schema.get("anyOf", [schema])}
    if "string" in kinds:
        return {"not": "text"}
    if "array" in kinds:
        return "not a list"
    if "integer" in kinds or "number" in kinds:
        return "many"
    if "boolean" in kinds:
        return "perhaps"
    return 12


async def test_every_tool_explains_each_missing_and_each_wrongly_typed_argument(connect, settings) -> None:
    async with connect(settings) as client:
        tools = (await client.list_tools()).tools
        assert len(tools) > 30
        for tool in tools:
            properties = tool.input_schema.get("properties", {})
            for name in tool.input_schema.get("required", []):
                text = text_of(await client.call_tool(tool.name, {}))
                plain(text)
                assert f"`{name}` is required but was not given" in text, text
                assert f"of the tool {tool.name} were refused" in text and "call again" in text
            for name, schema in properties.items():
                text = text_of(await client.call_tool(tool.name, {name: wrong_value(schema)}))
                plain(text)
                assert f"`{name}` must be" in text and "(given: " in text, (tool.name, name, text)


@pytest.mark.parametrize(("tool", "arguments", "expected"), [
    ("find_pec_sendings", {"since": "last week"},
     ["`since` is not a date (given: 'last week')", "YYYY-MM-DD", "e.g. 2026-03-31"]),
    ("send_pec", {**PEC, "subject": "x" * 300}, ["`subject` is too long (300 characters; at most 250)"]),
    ("send_pec", {**PEC, "body": ""}, ["`body` is empty (given: '')", "Accepted: Message text"]),
    ("send_pec", {**PEC, "recipients": "mario.rossi@pec.it"},
     ["`recipients` must be a list, even for one item", '["mario.rossi@pec.it"]']),
    ("register_mailbox", {**REGISTRATION, "applicant_birth_date": "1980-01-01"},
     ["`applicant_birth_date` is not in the expected format (given: '1980-01-01')", "dd/mm/yyyy, e.g. 31/01/1980"]),
    ("register_mailbox", {**REGISTRATION, "mailbox_type": "PLATINUM"},
     ["`mailbox_type` must be one of: 'STANDARD', 'BRONZE'"]),
    ("send_certified_email", {"recipients": [{"email": "a@example.es", "name": 5}], "subject": "s", "message": "m"},
     ["`recipients[0].name` must be text (given: 5)"]),
    ("list_pec_inbox", {"page": 0}, ["`page` must be at least 1 (given: 0)"]),
])
async def test_argument_errors_name_the_argument_what_was_given_and_what_is_accepted(
    connect, settings, tool: str, arguments: dict[str, Any], expected: list[str]
) -> None:
    async with connect(settings) as client:
        text = text_of(await client.call_tool(tool, arguments))
    plain(text)
    for part in expected:
        assert part in text, text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_unknown_tool_is_a_protocol_error_listing_the_tools_available(
    connect, make_settings: Callable[..., Settings], mode: str
) -> None:
    async with connect(make_settings(tools={"enabled": ["pec"]}), mode=mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("send_pecc", {})
        with pytest.raises(MCPError) as hidden:
            await client.call_tool("start_bulk_pec", {})
    assert raised.value.code == -32602
    assert "Unknown tool: send_pecc. Did you mean send_pec?" in raised.value.message
    assert "find_pec_sendings" in raised.value.message and "start_bulk_pec" not in raised.value.message
    assert hidden.value.code == -32602  # a tool of a toolset left out is not callable either


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_prompt_arguments_are_checked_with_invalid_params_and_the_allowed_values(
    connect, settings, mode: str
) -> None:
    async with connect(settings, mode=mode) as client:
        listed = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
        with pytest.raises(MCPError) as bad_language:
            await client.get_prompt("draft_pec", {"recipient": "Mario", "purpose": "sollecito", "language": "italiano"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("draft_pec", {"recipient": "Mario"})
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("draft", {})
        good = await client.get_prompt("draft_pec", {"recipient": "Mario", "purpose": "sollecito", "language": "en"})
    arguments = {arg.name: arg for arg in listed["draft_pec"].arguments or []}
    assert all(arg.description for arg in arguments.values())
    assert "'it'" in str(arguments["language"].description) and "'en'" in str(arguments["language"].description)
    assert bad_language.value.code == missing.value.code == unknown.value.code == -32602
    assert "`language` must be one of: 'it' or 'en' (given: 'italiano')" in bad_language.value.message
    assert "`purpose` is required but was not given" in missing.value.message
    assert "Unknown prompt: draft. The prompts available are: check_delivery, draft_pec" in unknown.value.message
    plain(bad_language.value.message)
    assert good.messages


async def test_a_send_too_big_for_send_pec_points_to_bulk_only_when_bulk_is_listed(
    connect, make_settings: Callable[..., Settings]
) -> None:
    many = {**PEC, "recipients": [f"r{n}@pec.it" for n in range(51)], "dry_run": True}
    async with connect(make_settings(tools={"enabled": ["pec"]})) as client:
        alone = text_of(await client.call_tool("send_pec", many))
    async with connect(make_settings()) as client:
        with_bulk = text_of(await client.call_tool("send_pec", many))
    assert "start_bulk_pec" not in alone and "at most 50 recipients per send_pec call" in alone
    assert "Use start_bulk_pec" in with_bulk


async def test_hints_name_only_causes_that_apply(connect, settings, files) -> None:
    (files.parent / "a.pdf").write_bytes(b"%PDF-1.4")  # beside the allowed folder, not inside it
    async with connect(settings) as client:
        quota = text_of(await client.call_tool("get_pec_quota", {"mailbox": "../x"}))
        domain = text_of(await client.call_tool("check_pec_domain", {"domain": "@@"}))
        dotted = text_of(await client.call_tool("send_pec", {
            **PEC, "attachments": [f"{files}/../a.pdf"], "dry_run": True}))
        no_folder = text_of(await client.call_tool("get_pec_quota", {"mailbox": "Archivio"}))
    assert "`mailbox` is not in the expected format (given: '../x')" in quota and "list the items" not in quota
    assert "is not a domain name" in domain and "hexadecimal" not in domain
    assert "is outside the allowed folders" in dotted
    assert "a link to" not in dotted and f"(that is {files.parent / 'a.pdf'})" in dotted
    assert "INBOX" in no_folder and "list the items" not in no_folder


async def test_addresses_openapi_cannot_register_are_refused_before_any_preview(connect, settings) -> None:
    async with connect(settings) as client:
        gmail = await client.call_tool("check_pec_address", {"address": "mario@gmail.com"})
        free = await client.call_tool("check_pec_address", {"address": "nuovo@testcert.legalmail.it"})
        registered = await client.call_tool("register_mailbox", {
            **REGISTRATION, "address": "mario@gmail.com", "dry_run": True})
        wrong_type = await client.call_tool("register_mailbox", {
            **REGISTRATION, "mailbox_type": "DOMICILIODIGITALE", "dry_run": True})
    assert gmail.structured_content is not None and free.structured_content is not None
    assert gmail.structured_content["available"] is False
    assert "cannot be registered through openapi.it in sandbox" in gmail.structured_content["note"]
    assert "@testcert.legalmail.it" in gmail.structured_content["note"]
    assert "register_mailbox can register it" not in gmail.structured_content["note"]
    assert free.structured_content["available"] is True
    assert "The address mario@gmail.com cannot be registered" in text_of(registered)
    assert "A DOMICILIODIGITALE mailbox must have an address ending @test.domiciliodigitale.com" in text_of(
        wrong_type)


async def test_argument_errors_reach_a_client_over_stdio_in_plain_words(tmp_path) -> None:
    import sys

    import anyio
    from mcp import StdioServerParameters

    from tests.test_stdio import child_env

    params = StdioServerParameters(command=sys.executable, args=["-m", "pec_mcp", "serve"], cwd=str(tmp_path),
                                   env=child_env(tmp_path))
    with anyio.fail_after(60):
        async with Client(params) as client:
            result = await client.call_tool("find_pec_sendings", {"since": "last week"})
            with pytest.raises(MCPError) as unknown:
                await client.call_tool("nope", {})
    plain(text_of(result))
    assert "`since` is not a date" in text_of(result)
    assert unknown.value.code == -32602
