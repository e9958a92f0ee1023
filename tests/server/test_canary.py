"""Canary secrets: a distinct string planted in every secret setting appears nowhere the model or a log can see.

The server runs in the sandbox environment with every provider's base_url on the simulator, so the secrets really
are sent to it: once as canaries (the simulator refuses them: every error path) and once as the simulator's own
credentials (the happy paths). Every tool from ``tools/list`` is called with good and with bad arguments, and
every resource and prompt is read, with logs captured at DEBUG.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import mcp.types as t
import pytest
from mcp import Client
from pydantic import SecretStr

from pec_mcp.config import Settings
from pec_mcp.server import build_server
from pec_mcp.simulator import Simulator, credentials
from pec_mcp.simulator.openapi_pec import ACTIVATION_DELAY, FILING_DELAY
from tests.conftest import FROZEN_AT, accept
from tests.server.safety_cases import BULK, CERTIFIED, FILING, PEC, REGISTRATION, pdf

pytestmark = pytest.mark.anyio

CANARIES = {
    ("pecmassiva", "token"): "CANARY-pecmassiva-token-5e1f",
    ("pecmassiva", "password"): "CANARY-pecmassiva-password-a7c2",
    ("openapi_pec", "token"): "CANARY-openapi-token-93bd",
    ("mensatek", "api_token"): "CANARY-mensatek-token-04e8",
    ("http", "auth_token"): "CANARY-http-auth-token-c61a",
    ("http", "webhook_token"): "CANARY-http-webhook-token-2f97",
    ("http", "state_key"): "CANARY-http-state-key-7b3e-0123456789abcdef",
}
REAL = {
    ("pecmassiva", "token"): credentials.PECMASSIVA_TOKEN,
    ("pecmassiva", "password"): credentials.PECMASSIVA_PASSWORD,
    ("openapi_pec", "token"): credentials.OPENAPI_PEC_TOKEN,
    ("mensatek", "api_token"): credentials.MENSATEK_API_TOKEN,
    ("http", "auth_token"): CANARIES[("http", "auth_token")],
    ("http", "webhook_token"): CANARIES[("http", "webhook_token")],
    ("http", "state_key"): CANARIES[("http", "state_key")],
}
# Secret settings whose canaries live in their own tests: the password inside store.url needs a PostgreSQL
# server (tests/test_store_postgres.py), and user tokens are a table (tests/server/test_users_http.py).
COVERED_ELSEWHERE = {("store", "url")}
P7M = b"\x30\x82\x01\x00signed power of attorney"

# Ids the tools use when a previous call did not produce one (the canary run: every provider call is refused).
SOME_MESSAGE_ID = "2020082610003492"
SOME_OBJECT_ID = "5f0c5b4a8e2d4c0012345678"


def secret_fields() -> set[tuple[str, str]]:
    """Every SecretStr setting, found from the Settings model, so that a new secret cannot be forgotten here."""
    found = set()
    for section, info in Settings.model_fields.items():
        model = info.annotation
        for key, inner in getattr(model, "model_fields", {}).items():
            members = getattr(inner.annotation, "__args__", (inner.annotation,))
            # A secret setting may be SecretStr itself or SecretStr with validators (Annotated).
            if any(member is SecretStr or getattr(member, "__origin__", None) is SecretStr for member in members):
                found.add((section, key))
    return found


def test_every_secret_setting_has_a_canary() -> None:
    assert secret_fields() - COVERED_ELSEWHERE == set(CANARIES) == set(REAL)


@dataclass
class Run:
    """What a walk through the tools has produced so far: ids for the next tools, and everything seen."""

    simulator: Simulator
    files: Path
    ids: dict[str, Any] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    failed: list[str] = field(default_factory=list)

    def id(self, name: str, default: Any) -> Any:
        return self.ids.get(name, default)


def _soon() -> str:  # the scheduled-time check reads the real clock, the simulator its own: far enough for both
    return (max(datetime.now(UTC), datetime.fromtimestamp(FROZEN_AT, UTC)) + timedelta(days=30)).isoformat()


def _later() -> str:
    return (max(datetime.now(UTC), datetime.fromtimestamp(FROZEN_AT, UTC)) + timedelta(days=31)).isoformat()


# tool -> good arguments (from what earlier tools returned); the walk follows this order.
GOOD: dict[str, Callable[[Run], dict[str, Any]]] = {
    "send_pec": lambda r: {**PEC, "idempotency_key": "canary-1"},
    "get_pec_receipts": lambda r: {"message_id": r.id("message_id", SOME_MESSAGE_ID)},
    "list_pec_inbox": lambda r: {},
    "read_pec_message": lambda r: {"inbox_id": r.id("inbox_id", 1)},
    "get_pec_quota": lambda r: {},
    "find_pec_sendings": lambda r: {"recipient": "mario.rossi@pec.it"},
    "export_pec_sendings": lambda r: {"save_to": str(r.files)},
    "export_pec_evidence": lambda r: {"message_id": r.id("message_id", SOME_MESSAGE_ID), "save_to": str(r.files)},
    "delete_pec_message": lambda r: {"inbox_id": r.id("inbox_id", 1)},
    "delete_pec_receipts": lambda r: {"message_id": r.id("message_id", SOME_MESSAGE_ID)},
    "check_pec_address": lambda r: {"address": REGISTRATION["address"]},
    "check_pec_domain": lambda r: {"domain": "legalmail.it"},
    "register_mailbox": lambda r: dict(REGISTRATION),
    "list_mailboxes": lambda r: {},
    "get_mailbox": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID)},
    "download_mailbox_form": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID), "save_to": str(r.files)},
    "activate_mailbox": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID),
                                   "documents": [pdf(r.files, "form.pdf"), pdf(r.files, "id.pdf")]},
    "renew_mailbox": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID)},
    "upgrade_mailbox_space": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID), "disk_space_mb": 4096},
    "upgrade_mailbox_type": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID), "mailbox_type": "GOLD"},
    "enable_mailbox_conservation": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID),
                                              "documents": [pdf(r.files, "conservation.pdf")]},
    "file_pec_with_business_register": lambda r: dict(FILING),
    "list_business_register_filings": lambda r: {},
    "get_business_register_filing": lambda r: {"filing_id": r.id("filing_id", SOME_OBJECT_ID)},
    "download_business_register_proxy": lambda r: {"filing_id": r.id("filing_id", SOME_OBJECT_ID),
                                                   "save_to": str(r.files)},
    "upload_business_register_documents": lambda r: {"filing_id": r.id("filing_id", SOME_OBJECT_ID),
                                                     "documents": [_p7m(r.files)]},
    "add_mailbox_user": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID), "first_name": "Luca",
                                   "last_name": "Bianchi", "description": "segreteria",
                                   "password_email": "luca@example.com"},
    "revoke_mailbox": lambda r: {"mailbox_id": r.id("mailbox_id", SOME_OBJECT_ID)},
    "get_certified_email_credits": lambda r: {},
    "send_certified_email": lambda r: {**CERTIFIED, "scheduled_at": _soon(), "idempotency_key": "canary-2"},
    "get_certified_email_report": lambda r: {"message_id": r.id("certified_id", "1234")},
    "list_certified_email_events": lambda r: {},
    "reschedule_certified_email": lambda r: {"message_id": r.id("certified_id", "1234"), "scheduled_at": _later()},
    "download_certified_email_certificate": lambda r: {"message_id": r.id("certified_id", "1234"),
                                                       "save_to": str(r.files)},
    "cancel_certified_email": lambda r: {"message_id": r.id("certified_id", "1234")},
    "start_bulk_pec": lambda r: {**BULK, "idempotency_key": "canary-3"},
    "get_bulk_pec": lambda r: {"job_id": r.id("job_id", "job-20260310-00000000")},
    "list_bulk_pec": lambda r: {},
    "list_pec_accounts": lambda r: {},
    "retry_bulk_pec": lambda r: {"job_id": r.id("job_id", "job-20260310-00000000")},
    "cancel_bulk_pec": lambda r: {"job_id": r.id("job_id", "job-20260310-00000000")},
}

# tool -> bad arguments: invalid by the schema, refused by our checks, or unknown to the provider.
BAD: dict[str, dict[str, Any]] = {
    "send_pec": {**PEC, "recipients": ["not-an-address"]},
    "get_pec_receipts": {"message_id": "0000000000000000"},
    "list_pec_inbox": {"page": 0},
    "read_pec_message": {"inbox_id": 999_999},
    "get_pec_quota": {"mailbox": "../../etc"},
    "find_pec_sendings": {"since": "yesterday"},
    "export_pec_sendings": {"save_to": "/etc/passwd", "format": "xlsx"},
    "export_pec_evidence": {"message_id": "0000000000000000", "save_to": "/etc"},
    "delete_pec_message": {"inbox_id": 999_999},
    "delete_pec_receipts": {"message_id": ""},
    "check_pec_address": {"address": "@@"},
    "check_pec_domain": {"domain": ""},
    "register_mailbox": {**REGISTRATION, "applicant_birth_date": "1982-04-11"},
    "list_mailboxes": {"unexpected": 1},
    "get_mailbox": {"mailbox_id": "nope"},
    "download_mailbox_form": {"mailbox_id": SOME_OBJECT_ID, "save_to": "/etc/passwd"},
    "activate_mailbox": {"mailbox_id": SOME_OBJECT_ID, "documents": ["/etc/hosts"]},
    "renew_mailbox": {"mailbox_id": SOME_OBJECT_ID, "years": 99},
    "upgrade_mailbox_space": {"mailbox_id": SOME_OBJECT_ID, "disk_space_mb": 1000},
    "upgrade_mailbox_type": {"mailbox_id": SOME_OBJECT_ID, "mailbox_type": "PLATINUM"},
    "enable_mailbox_conservation": {"mailbox_id": SOME_OBJECT_ID, "documents": []},
    "file_pec_with_business_register": {**FILING, "applicant_role": "king"},
    "list_business_register_filings": {"unexpected": 1},
    "get_business_register_filing": {"filing_id": SOME_OBJECT_ID},
    "download_business_register_proxy": {"filing_id": SOME_OBJECT_ID, "save_to": "/tmp/../etc/x.pdf"},
    "upload_business_register_documents": {"filing_id": SOME_OBJECT_ID, "documents": ["/nonexistent.p7m"]},
    "revoke_mailbox": {"mailbox_id": SOME_OBJECT_ID},
    "add_mailbox_user": {"mailbox_id": SOME_OBJECT_ID, "first_name": "", "last_name": "x", "description": "x",
                         "password_email": "x@example.com"},
    "get_certified_email_credits": {"unexpected": 1},
    "send_certified_email": {**CERTIFIED, "message": "Hola {{apellido}}"},
    "get_certified_email_report": {"message_id": "no/such"},
    "list_certified_email_events": {"limit": 0},
    "reschedule_certified_email": {"message_id": "1234", "scheduled_at": "2026-01-01T10:00:00"},
    "download_certified_email_certificate": {"message_id": "999999", "save_to": "/root"},
    "cancel_certified_email": {"message_id": "999999"},
    "start_bulk_pec": {**BULK, "recipients": [{"address": "not-an-address", "variables": {}}]},
    "get_bulk_pec": {"job_id": "no such job"},
    "list_bulk_pec": {"limit": 0},
    "list_pec_accounts": {"unexpected": 1},
    "retry_bulk_pec": {"job_id": "job-x", "which": "unknown"},
    "cancel_bulk_pec": {"job_id": "no such job"},
}

PROMPT_ARGS: dict[str, dict[str, str]] = {
    "draft_pec": {"recipient": "mario.rossi@pec.it", "purpose": "sollecito di pagamento"},
    "check_delivery": {"message_id": SOME_MESSAGE_ID},
}


def _p7m(folder: Path) -> str:
    path = folder / "procura.p7m"
    path.write_bytes(P7M)
    return str(path)


def harvest(run: Run, tool: str, data: dict[str, Any]) -> None:
    """Remember the ids later tools need, and move the simulator's clock where a provider would take time."""
    if tool == "send_pec" and data.get("message_id"):
        run.ids["message_id"] = data["message_id"]
    elif tool == "list_pec_inbox" and data.get("messages"):
        run.ids["inbox_id"] = data["messages"][-1]["inbox_id"]
    elif tool == "register_mailbox" and data.get("mailbox"):
        run.ids["mailbox_id"] = data["mailbox"]["mailbox_id"]
    elif tool == "activate_mailbox":
        run.simulator.clock.advance(ACTIVATION_DELAY + 1)
    elif tool == "file_pec_with_business_register" and data.get("filing"):
        run.ids["filing_id"] = data["filing"]["filing_id"]
        run.simulator.clock.advance(FILING_DELAY + 1)
    elif tool == "send_certified_email" and data.get("message_id"):
        run.ids["certified_id"] = data["message_id"]
    elif tool == "start_bulk_pec" and data.get("job_id"):
        run.ids["job_id"] = data["job_id"]


def result_texts(result: t.CallToolResult) -> Iterator[str]:
    for content in result.content:
        yield content.model_dump_json()
    if result.structured_content is not None:
        yield json.dumps(result.structured_content, ensure_ascii=False)


class Recording(httpx.AsyncBaseTransport):
    """The simulator's transport, keeping every request as text, to prove the secrets were really sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        headers = " ".join(f"{k}: {v}" for k, v in request.headers.items())
        self.requests.append(f"{request.url} {headers} {request.content.decode('latin-1')}")
        return await self.inner.handle_async_request(request)


def sandbox_settings(make_settings: Callable[..., Settings], secrets: dict[tuple[str, str], str]) -> Settings:
    sections: dict[str, dict[str, Any]] = {
        "pecmassiva": {"username": credentials.PECMASSIVA_USERNAME, "base_url": "http://simulator/pecmassiva"},
        "openapi_pec": {"base_url": "http://simulator/openapi-pec",
                        "callback_url": "https://pec-mcp.example.org/webhooks/openapi"},
        "mensatek": {"api_user": credentials.MENSATEK_API_USER, "sender": credentials.MENSATEK_SENDER,
                     "base_url": "http://simulator/mensatek/v7"},
        "http": {},
    }
    for (section, key), value in secrets.items():
        sections[section][key] = value
    return make_settings(environment="sandbox", **sections)


def forbidden(secrets: dict[tuple[str, str], str]) -> list[str]:
    """Each secret as it is, URL-encoded, and inside the Basic header it is sent in."""
    values = set(secrets.values())
    basic = base64.b64encode(f"{credentials.MENSATEK_API_USER}:{secrets[('mensatek', 'api_token')]}".encode())
    return sorted(values | {quote(v, safe="") for v in values} | {quote_plus(v) for v in values} | {basic.decode()})


async def walk(client: Client, run: Run) -> None:
    """Every tool with good then bad arguments, every resource and prompt; everything seen goes to ``run.seen``."""
    schemas = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
    listed = set(schemas)
    missing = sorted((listed - set(GOOD)) | (listed - set(BAD)))
    assert not missing, f"tools without a canary table entry (add them to GOOD and BAD): {missing}"
    for tool in [name for name in GOOD if name in listed]:
        result = await client.call_tool(tool, GOOD[tool](run))
        run.seen.extend((tool, text) for text in result_texts(result))
        if result.is_error:
            run.failed.append(tool)
        else:
            harvest(run, tool, result.structured_content or {})
    for tool in [name for name in BAD if name in listed]:
        result = await client.call_tool(tool, BAD[tool])
        # A tool without parameters ignores unknown arguments: for it, "bad" can only mean "unexpected".
        assert result.is_error or not schemas[tool].get("properties"), f"{tool} accepted bad arguments"
        run.seen.extend((f"{tool} (bad)", text) for text in result_texts(result))
    await read_everything(client, run)


async def read_everything(client: Client, run: Run) -> None:
    uris = [str(r.uri) for r in (await client.list_resources()).resources]
    fill = {"inbox_id": str(run.id("inbox_id", 1)), "message_id": str(run.id("message_id", SOME_MESSAGE_ID)),
            "mailbox_id": str(run.id("mailbox_id", SOME_OBJECT_ID)), "job_id": "1"}
    for template in (await client.list_resource_templates()).resource_templates:
        uri = template.uri_template
        for name, value in fill.items():
            uri = uri.replace("{" + name + "}", value)
        if uri.startswith("certified://"):
            uri = f"certified://messages/{run.id('certified_id', '1234')}"
        uris += [uri, template.uri_template.split("{")[0] + "999999"]
    for uri in uris:
        try:
            resource = await client.read_resource(uri)
            run.seen.extend((uri, c.model_dump_json()) for c in resource.contents)
        except Exception as exc:  # a refused read: its message is what the model would see
            run.seen.append((uri, f"{type(exc).__name__}: {exc}"))
    for prompt in (await client.list_prompts()).prompts:
        got = await client.get_prompt(prompt.name, PROMPT_ARGS[prompt.name])
        run.seen.extend((prompt.name, m.model_dump_json()) for m in got.messages)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every log record at DEBUG, formatted with its traceback, from a handler on the root logger."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


async def run_everything(settings: Settings, simulator: Simulator, files: Path) -> tuple[Run, Recording]:
    transport = Recording(httpx.ASGITransport(app=simulator.app))
    callbacks: list[httpx.Request] = []

    async def keep_callback(request: httpx.Request) -> None:  # the callback URL is on the internet: not dialled
        callbacks.append(request)

    simulator.openapi_pec.send_callback = keep_callback  # type: ignore[assignment]
    run = Run(simulator=simulator, files=files)
    async with Client(build_server(settings, transport=transport), elicitation_callback=accept) as client:
        await walk(client, run)
    return run, transport


def assert_nowhere(run: Run, logs: io.StringIO, caplog: pytest.LogCaptureFixture, secrets: list[str]) -> None:
    records = [f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    places = [*run.seen, ("log", logs.getvalue()), *(("caplog", r) for r in records)]
    leaks = [(where, secret) for where, text in places for secret in secrets if secret in text]
    assert not leaks, leaks


async def test_canary_secrets_are_sent_to_the_provider_but_appear_in_no_result_resource_prompt_or_log(
    make_settings, simulator, files, logs, caplog
) -> None:
    settings = sandbox_settings(make_settings, CANARIES)
    run, transport = await run_everything(settings, simulator, files)
    sent = " ".join(transport.requests)
    for section, key in [("pecmassiva", "token"), ("pecmassiva", "password"), ("openapi_pec", "token")]:
        assert CANARIES[(section, key)] in sent, f"{section}.{key} never reached the simulator"
    assert len(run.seen) > 70
    assert set(run.failed) >= {"send_pec", "register_mailbox", "send_certified_email"}  # refused: wrong secrets
    assert_nowhere(run, logs, caplog, forbidden(CANARIES))


async def test_the_real_credentials_appear_in_no_result_resource_prompt_or_log_on_the_happy_paths(
    make_settings, simulator, files, logs, caplog
) -> None:
    settings = sandbox_settings(make_settings, REAL)
    run, transport = await run_everything(settings, simulator, files)
    assert CANARIES[("http", "webhook_token")] in " ".join(transport.requests)  # inside the callback URL
    # Every good call succeeds, but the certificate of a message still scheduled (it has not been delivered).
    assert run.failed == ["download_certified_email_certificate"], run.failed
    assert_nowhere(run, logs, caplog, forbidden(REAL))
