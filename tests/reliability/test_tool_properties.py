"""Generated arguments thrown at every tool through the MCP client: a result or a clear error, no crash, no secret.

Arguments come from each tool's input JSON schema (valid-shaped, partly wrong, and wholly wild values: unicode,
NULs, path-like strings, huge numbers), with a few strategies by argument name where the schema is too loose to
get far (addresses, paths, sending codes). The server runs in the sandbox environment pointed at the simulator
with its real credentials, so calls reach the providers; canary secrets are planted in the settings.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import mcp.types as t
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from pec_mcp.config import Settings, load_settings
from pec_mcp.server import build_server
from pec_mcp.simulator import Simulator
from pec_mcp.simulator import credentials as sim
from pec_mcp.simulator.openapi_pec import ACTIVATION_DELAY, make_pdf
from tests.conftest import accept
from tests.reliability.conftest import assert_explained, text_of
from tests.reliability.test_fault_behaviour import REGISTRATION

EXAMPLES = 40  # per tool; the whole file stays well under a minute
FILING: dict[str, Any] = {
    "address": "amministrazione@pec.bianchi-srl.it", "company_name": "Bianchi Srl", "company_tax_id": "01234567890",
    "company_city": "Milano", "company_province": "MI", "applicant_first_name": "Anna",
    "applicant_last_name": "Bianchi", "applicant_tax_code": "BNCNNA80A41F205X", "applicant_role": "director",
    "applicant_email": "anna@bianchi-srl.it", "applicant_mobile": "3331234567",
}
CANARIES = {"auth_token": "canary-auth-7d1e9f0c2b", "webhook_token": "canary-hook-5a3c8e4f61"}
JSON = Any


def _tool_names() -> list[str]:
    """Every tool of a server with every toolset enabled (no lifespan needed just to list them)."""
    server = build_server(load_settings(environ={}, environment="offline", store={"path": "/nonexistent/x.db"}))
    return sorted(tool.name for tool in anyio.run(server.list_tools))


TOOLS = _tool_names()


# -- the server under test ----------------------------------------------------------------------------------------


@dataclass
class Live:
    portal: BlockingPortal
    client: Client
    schemas: dict[str, dict[str, Any]]
    secrets: list[str]
    known: Known

    def call(self, tool: str, args: dict[str, Any]) -> t.CallToolResult:
        async def run() -> t.CallToolResult:
            with anyio.fail_after(20):
                return await self.client.call_tool(tool, args)

        return self.portal.call(run)


def sandbox_settings(tmp_path: Path, files: Path, simulator: Simulator) -> Settings:
    origin = "http://simulator"
    return load_settings(
        environ={},
        environment="sandbox",
        pecmassiva={"token": sim.PECMASSIVA_TOKEN, "username": sim.PECMASSIVA_USERNAME,
                    "password": sim.PECMASSIVA_PASSWORD, "base_url": simulator.base_url("pecmassiva", origin)},
        openapi_pec={"token": sim.OPENAPI_PEC_TOKEN, "base_url": simulator.base_url("openapi_pec", origin)},
        mensatek={"api_user": sim.MENSATEK_API_USER, "api_token": sim.MENSATEK_API_TOKEN,
                  "sender": sim.MENSATEK_SENDER, "base_url": simulator.base_url("mensatek", origin)},
        http=CANARIES,
        store={"path": str(tmp_path / "store.sqlite3")},
        attachments={"allowed_dirs": [str(files)], "max_total_mb": 1},
        sending={"requests_per_second": 1000.0},
    )


def plant_files(files: Path) -> None:
    (files / "atto.pdf").write_bytes(make_pdf(["atto"]))
    (files / "modulo.pdf").write_bytes(make_pdf(["modulo"]))
    (files / "procura.p7m").write_bytes(b"\x30\x82\x01\x00signed")
    (files / "nota.txt").write_text("nota")
    (files / "sub").mkdir()
    (files / "fuga.pdf").symlink_to("/etc/passwd")


def good_arguments(files: Path) -> dict[str, dict[str, Any]]:
    return {
        "send_pec": {"recipients": ["mario.rossi@pec.it"], "subject": "Diffida ad adempiere", "body": "<p>Testo</p>",
                     "attachments": [str(files / "atto.pdf")]},
        "send_certified_email": {"recipients": [{"email": "ana@example.es", "name": "Ana"}],
                                 "subject": "Expediente 7", "message": "<p>Estimada Ana: resolución.</p>"},
        "register_mailbox": REGISTRATION,
        "file_pec_with_business_register": FILING,
    }


async def discover(client: Client, files: Path, simulator: Simulator) -> Known:
    """Make one of each thing (a PEC, an active mailbox, a filing, a certified email); note the ids they carry."""
    good = good_arguments(files)
    ids: dict[str, list[Any]] = {"message_id": [], "mailbox_id": [], "filing_id": [], "inbox_id": []}
    for tool, args in [*good.items(), ("list_pec_inbox", {})]:
        result = await client.call_tool(tool, args)
        assert not result.is_error, text_of(result)
        collect_ids(result.structured_content, ids)
    documents = [str(files / "atto.pdf"), str(files / "modulo.pdf")]
    activated = await client.call_tool("activate_mailbox", {"mailbox_id": ids["mailbox_id"][0], "documents": documents})
    assert not activated.is_error, text_of(activated)
    simulator.clock.advance(ACTIVATION_DELAY + 1)
    return Known(files, {name: sorted(set(values), key=str)[:10] for name, values in ids.items()}, good)


def collect_ids(data: Any, ids: dict[str, list[Any]]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ids and isinstance(value, str | int) and value:
                ids[key].append(value)
            collect_ids(value, ids)
    elif isinstance(data, list):
        for item in data:
            collect_ids(item, ids)


@pytest.fixture
def live(tmp_path: Path, files: Path, simulator: Simulator) -> Iterator[Live]:
    plant_files(files)
    config = sandbox_settings(tmp_path, files, simulator)
    server = build_server(config, transport=httpx.ASGITransport(app=simulator.app))
    with start_blocking_portal("asyncio") as portal:
        client_cm = Client(server, elicitation_callback=accept)  # type: ignore[arg-type]
        with portal.wrap_async_context_manager(client_cm) as client:
            tools = portal.call(client.list_tools).tools
            known = portal.call(discover, client, files, simulator)
            yield Live(portal, client, {tool.name: tool.input_schema for tool in tools}, config.secret_values(), known)


# -- strategies ---------------------------------------------------------------------------------------------------

NASTY_TEXT = ["", " ", "\x00", "a\x00b", "../../etc/passwd", "/etc/shadow", "~/.ssh/id_rsa", "C:\\Windows\\x.ini",
              "\\\\server\\share\\x", "%2e%2e%2f", "{{name}}", "{{", "<script>alert(1)</script>", "'; DROP TABLE x;--",
              "\u202eevil", "😀" * 20, "x" * 5000, "\r\nX-Injected: 1", "null", "NaN"]
HUGE_NUMBERS = [2**63, -(2**63), 2**200, 1e308, -1e308, 0, -1, 10**30]

nasty_text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=40))
wild: st.SearchStrategy[JSON] = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE_NUMBERS),
              st.floats(allow_nan=False, allow_infinity=False), nasty_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)
emails = st.one_of(
    st.sampled_from(["mario.rossi@pec.it", "fail-anna@pec.it", "virus-x@pec.it", "ana@example.es",
                     "nuovo@legalmail.it", "MARIO.ROSSI@PEC.IT", "a@b", "@pec.it", "mario@", "x@y.it\x00"]),
    st.emails().map(str),
    nasty_text,
)
sending_codes = st.one_of(st.sampled_from(["202603101000001", "2026031010000091", "1", "abc", "0" * 40]),
                          st.from_regex(r"\A20\d{12,16}\Z"), nasty_text)
dates = st.one_of(st.dates().map(str), st.datetimes().map(lambda d: d.isoformat() + "Z"),
                  st.sampled_from(["2030-01-15T09:00:00Z", "2020-01-01", "tomorrow", "2026-13-45T99:99:99Z"]),
                  nasty_text)


def paths(files: Path) -> st.SearchStrategy[str]:
    inside = [files / "atto.pdf", files / "procura.p7m", files / "nota.txt", files / "fuga.pdf", files,
              files / "sub", files / "missing.pdf", files / ("x" * 300), files / "sub" / ".." / ".." / "out.pdf"]
    fresh = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20).map(
        lambda name: str(files / "sub" / name))
    return st.one_of(st.sampled_from([str(p) for p in inside]), fresh, nasty_text,
                     st.sampled_from(["/etc/passwd", "/", "/tmp", "relative/file.pdf", "~", "/dev/zero"]))


@dataclass
class Known:
    """Real ids and known-good arguments, made by a few calls before the properties run, so calls get far."""

    files: Path
    ids: dict[str, list[Any]]
    good: dict[str, dict[str, Any]]


def by_name(known: Known) -> dict[str, st.SearchStrategy[Any]]:
    """Strategies for string values (or list items) whose meaning matters to get far, by argument name."""
    path = paths(known.files)
    # Mostly real ids, sometimes nonsense.
    real = {name: st.one_of(st.sampled_from(values), st.sampled_from(values), nasty_text)
            for name, values in known.ids.items() if values}
    return {
        "recipients": emails, "email": emails, "address": emails, "recipient": emails, "applicant_email": emails,
        "attachments": path, "documents": path, "save_to": path, "recipients_csv": path,
        "message_id": st.one_of(real.get("message_id", sending_codes), sending_codes),
        "mailbox_id": real.get("mailbox_id", nasty_text), "filing_id": real.get("filing_id", nasty_text),
        "scheduled_at": dates, "since": dates,
        "domain": st.one_of(st.sampled_from(["legalmail.it", "pec.it", "example.com"]), nasty_text),
    }


def from_schema(schema: dict[str, Any], defs: dict[str, Any], named: dict[str, st.SearchStrategy[Any]],
                name: str | None = None) -> st.SearchStrategy[Any]:
    """Values of the shape a JSON schema describes (bounded in size); ``named`` overrides string values by name."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, named, name)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of(*(from_schema(s, defs, named, name) for s in schema[key]))
    kind = schema.get("type")
    if kind == "string":
        if name in named:
            return named[name]
        if "pattern" in schema:
            matching = st.from_regex(schema["pattern"], fullmatch=True)
            return st.one_of(matching, matching, nasty_text)
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 60), 60))
    if kind == "integer":
        if name == "inbox_id":
            return st.one_of(st.integers(1, 40), st.integers(schema.get("minimum"), schema.get("maximum")))
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs, named, name)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "object" or "properties" in schema:
        return objects(schema, defs, named)
    return wild


def objects(schema: dict[str, Any], defs: dict[str, Any], named: dict[str, st.SearchStrategy[Any]]
            ) -> st.SearchStrategy[dict[str, Any]]:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    values = {key: from_schema(sub, defs, named, key) for key, sub in props.items()}
    if not props and schema.get("additionalProperties") not in (None, False):
        return st.dictionaries(st.text(max_size=10), wild, max_size=3)
    return st.fixed_dictionaries({k: v for k, v in values.items() if k in required},
                                 optional={k: v for k, v in values.items() if k not in required})


def arguments(tool: str, schema: dict[str, Any], known: Known) -> st.SearchStrategy[dict[str, Any]]:
    """Valid-shaped arguments (known-good ones with a few values changed, for tools with many rules), the same
    with some values wild, or a wholly wild object."""
    defs = schema.get("$defs", {})
    named = by_name(known)
    props = schema.get("properties", {})
    valid = objects(schema, defs, named)
    shaped = {key: from_schema(sub, defs, named, key) for key, sub in props.items()}
    if tool in known.good:
        good = known.good[tool]
        valid = st.one_of(valid, st.fixed_dictionaries({}, optional=shaped).map(lambda some: {**good, **some}))
    spoiled = valid.flatmap(lambda args: st.fixed_dictionaries(
        {}, optional={key: wild for key in props}).map(lambda bad: {**args, **bad}))
    anything = st.dictionaries(st.sampled_from([*props, "unexpected"]) if props else st.text(max_size=8), wild,
                               max_size=4)
    # About seven in ten valid-shaped (one_of alone would spend most examples on the wild branches).
    mix = {"valid": valid, "spoiled": spoiled, "anything": anything}
    return st.sampled_from(["valid"] * 7 + ["spoiled"] * 2 + ["anything"]).flatmap(mix.__getitem__)


# -- the properties -----------------------------------------------------------------------------------------------


def check(live: Live, tool: str, args: dict[str, Any]) -> None:
    result = live.call(tool, args)
    dumped = json.dumps(result.model_dump(mode="json"), ensure_ascii=False)
    for secret in live.secrets:
        assert secret not in dumped, f"{tool} leaked a secret"
    if result.is_error:
        assert text_of(result).strip(), f"{tool} failed without a message"
        assert_explained(result)
    else:
        assert result.structured_content is not None, f"{tool} answered without structured content"


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_generated_arguments_with_a_result_or_a_clear_error(live: Live, tool: str) -> None:
    explore(live, tool, lambda args: check(live, tool, args))


def explore(live: Live, tool: str, body: Callable[[dict[str, Any]], None]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(args=arguments(tool, live.schemas[tool], live.known))
    def property_of_tool(args: dict[str, Any]) -> None:
        body(args)

    property_of_tool()


def test_the_property_tests_cover_every_tool_the_server_lists(live: Live) -> None:
    assert sorted(live.schemas) == TOOLS and len(TOOLS) >= 30


def test_files_written_by_tools_stay_inside_the_allowed_folder(live: Live, tmp_path: Path) -> None:
    def listing() -> set[Path]:
        here = {p for p in tmp_path.rglob("*") if live.known.files not in p.parents and p != live.known.files}
        return here | set(Path.cwd().iterdir())

    before = listing()
    for name in [tool for tool in TOOLS if tool.startswith("download_")]:
        explore(live, name, lambda args, name=name: check(live, name, args))  # type: ignore[misc]
    assert {p for p in listing() - before if not p.name.startswith("store.sqlite3")} == set()
