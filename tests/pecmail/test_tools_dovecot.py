"""The PEC tools on an IMAP account served by a real Dovecot, through the in-memory MCP client."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from pec_mcp.config import Settings
from pec_mcp.pecmail.connection import Endpoint, Login
from pec_mcp.pecmail.imap import ImapClient
from tests.pecmail.dovecot import Dovecot, free_port
from tests.pecmail.test_imap_dovecot import PASSWORD, receipt

pytestmark = pytest.mark.anyio


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user(PASSWORD, quota_kib=2048)


@pytest.fixture
def imap_settings(make_settings: Callable[..., Settings], dovecot: Dovecot, user: str) -> Settings:
    return make_settings(environment="sandbox", default_account="studio", accounts={"studio": {
        "address": user, "provider": "custom", "password": PASSWORD,
        "imap_host": "127.0.0.1", "imap_port": dovecot.imaps_port,
        "smtp_host": "127.0.0.1", "smtp_port": free_port(), "ca_file": str(dovecot.pki.ca_file)}})


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def error_of(client: Client, tool: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error
    return json.dumps([c.model_dump() for c in result.content])


async def put(dovecot: Dovecot, user: str, *refs: str, size: int = 1000) -> None:
    async with ImapClient(Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file),
                          Login(user, PASSWORD)) as imap:
        for n, ref in enumerate(refs):
            await imap.append("INBOX", receipt(ref, "accettazione" if n == 0 else "avvenuta-consegna", number=n,
                                               size=size))


async def test_list_pec_accounts_names_the_imap_account_as_default(connect: Any, imap_settings: Settings,
                                                                   user: str) -> None:
    async with connect(imap_settings) as client:
        answer = await call(client, "list_pec_accounts", {})
    assert answer["default_account"] == "studio"
    studio = next(a for a in answer["accounts"] if a["name"] == "studio")
    assert (studio["kind"], studio["address"], studio["can_send"], studio["default"]) == ("imap", user, True, True)
    massiva = next(a for a in answer["accounts"] if a["name"] == "pecmassiva")
    assert not massiva["can_send"] and "not all set" in massiva["note"]
    assert PASSWORD not in json.dumps(answer)


async def test_the_inbox_of_an_imap_account_is_listed_searched_read_and_deleted(
        connect: Any, imap_settings: Settings, dovecot: Dovecot, user: str) -> None:
    await put(dovecot, user, "<sent-1@studio.test>", "<sent-1@studio.test>", "<other@studio.test>")
    async with connect(imap_settings) as client:
        page = await call(client, "list_pec_inbox", {})
        assert (page["total"], page["account"], page["source"]) == (3, "studio", "index")
        newest = page["messages"][0]
        assert (newest["kind"], newest["message_id"]) == ("delivered", "other@studio.test")
        found = await call(client, "list_pec_inbox", {"query": "<sent-1@studio.test>", "account": "studio"})
        assert [m["kind"] for m in found["messages"]] == ["delivered", "accepted"]
        message = await call(client, "read_pec_message", {"inbox_id": newest["inbox_id"]})
        assert "consegnato" in message["body"] and message["account"] == "studio"
        deleted = await call(client, "delete_pec_message", {"inbox_id": newest["inbox_id"], "confirm": True})
        assert deleted["deleted"]
        assert (await call(client, "list_pec_inbox", {}))["total"] == 2
        gone = await error_of(client, "read_pec_message", {"inbox_id": newest["inbox_id"]})
        assert "list_pec_inbox" in gone


async def test_the_quota_of_an_imap_account_comes_from_imap_quota(connect: Any, imap_settings: Settings,
                                                                 dovecot: Dovecot, user: str) -> None:
    await put(dovecot, user, "<a@studio.test>", size=300_000)
    async with connect(imap_settings) as client:
        quota = await call(client, "get_pec_quota", {"account": "studio"})
    assert quota["limit"] == 2.0 and 0.2 < quota["usage"] < 0.5 and "QUOTA" in quota["unit"]


async def test_an_unknown_account_is_refused_naming_the_known_ones(connect: Any, imap_settings: Settings) -> None:
    async with connect(imap_settings) as client:
        text = await error_of(client, "list_pec_inbox", {"account": "nope"})
    assert "no PEC account named 'nope'" in text and "studio" in text and "list_pec_accounts" in text


async def test_a_wrong_password_says_so_and_never_shows_it(connect: Any, make_settings: Callable[..., Settings],
                                                           dovecot: Dovecot, user: str) -> None:
    settings = make_settings(environment="sandbox", accounts={"studio": {
        "address": user, "password": "Wr0ng-pass-word", "imap_host": "127.0.0.1", "imap_port": dovecot.imaps_port,
        "smtp_host": "127.0.0.1", "ca_file": str(dovecot.pki.ca_file)}})
    async with connect(settings) as client:
        text = await error_of(client, "list_pec_inbox", {"account": "studio"})
    assert "refused the login" in text and "Wr0ng-pass-word" not in text


async def test_a_message_with_a_30_mb_attachment_is_listed_read_and_saved_without_copies_of_it_in_memory(
        connect: Any, make_settings: Callable[..., Settings], dovecot: Dovecot, files: Path) -> None:
    from email.message import EmailMessage

    user = dovecot.add_user(PASSWORD)  # the default quota (100 MB)
    imap_settings = make_settings(environment="sandbox", default_account="studio", accounts={"studio": {
        "address": user, "password": PASSWORD, "imap_host": "127.0.0.1", "imap_port": dovecot.imaps_port,
        "smtp_host": "127.0.0.1", "ca_file": str(dovecot.pki.ca_file)}})

    size = 30 * 1024 * 1024 + 9
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = "tribunale@pec.test", user, "Atto con allegato grande"
    big.set_content("In allegato l'atto.")
    big.add_attachment(b"%PDF-1.4\n" + b"0" * (size - 9), maintype="application", subtype="pdf",
                       filename="atto.pdf")
    async with ImapClient(Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file),
                          Login(user, PASSWORD), timeout=120) as imap:
        await imap.append("INBOX", big.as_bytes())
    del big
    async with connect(imap_settings) as client:
        [entry] = (await call(client, "list_pec_inbox", {}))["messages"]
        tracemalloc.start()
        try:
            message = await call(client, "read_pec_message", {"inbox_id": entry["inbox_id"],
                                                              "save_attachments_to": str(files)})
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert message["attachments"] == [{"name": "atto.pdf", "size_bytes": size, "content_type": "application/pdf",
                                       "saved_to": str(files / "atto.pdf")}]
    assert message["body"].strip() == "In allegato l'atto." and len(json.dumps(message)) < 10_000
    assert message["signature"] is None and "Ordinary email" in message["note"]
    assert (files / "atto.pdf").stat().st_size == size
    # The message travels base64-encoded (4/3 of the file). The IMAP library holds it about three times while
    # reading it off the socket; parsing, listing and saving add no copy of it (before, the peak was 12x).
    assert peak < 5 * size, f"peak {peak / size:.1f}x the file"
