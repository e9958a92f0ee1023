"""The IMAP client against a real Dovecot: login, TLS, headers, header search, append, delete, quota, IDLE, faults."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import anyio
import pytest

from pec_mcp.errors import AuthenticationFailed, ConfigError, ProviderUnavailable, Rejected
from pec_mcp.pecmail.connection import Endpoint, Login
from pec_mcp.pecmail.imap import ImapClient
from tests.pecmail.dovecot import Dovecot, free_port

pytestmark = pytest.mark.anyio
PASSWORD = "Dovecot-s3cret-pw"


def receipt(ref: str, kind: str = "avvenuta-consegna", *, number: int = 1, size: int = 0) -> bytes:
    message = EmailMessage()
    message["From"] = "posta-certificata@pec.test"
    message["To"] = "box@pec.test"
    message["Subject"] = f"CONSEGNA: Diffida n. {number} — città"
    message["Message-ID"] = f"<receipt-{number}-{kind}@pec.test>"
    message["X-Ricevuta"] = kind
    message["X-Riferimento-Message-ID"] = ref
    message.set_content("Il messaggio è stato consegnato.\n" + "x" * size)
    return message.as_bytes()


_TEMPLATE = receipt("<REF-PLACEHOLDER@studio.test>", number=999_999_999)


def many_receipts(count: int) -> Iterator[bytes]:
    """``count`` receipts made from one template (building each with the email package costs milliseconds)."""
    for n in range(count):
        yield (_TEMPLATE.replace(b"REF-PLACEHOLDER", f"m{n}".encode())
               .replace(b"999999999", str(n).encode()))


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user(PASSWORD)


def endpoint(dovecot: Dovecot, *, starttls: bool = False, ca: Path | None = None) -> Endpoint:
    if starttls:
        return Endpoint("127.0.0.1", dovecot.imap_port, "starttls", ca or dovecot.pki.ca_file)
    return Endpoint("127.0.0.1", dovecot.imaps_port, "tls", ca or dovecot.pki.ca_file)


async def test_headers_of_new_mail_are_read_by_uid_after_the_last_one_seen(dovecot: Dovecot, user: str) -> None:
    async with ImapClient(endpoint(dovecot), Login(user, PASSWORD)) as imap:
        for n in range(3):
            await imap.append("INBOX", receipt(f"<sent-{n}@studio.test>", number=n))
        folder = await imap.select("INBOX")
        assert folder.exists == 3 and folder.uidvalidity > 0
        uids = await imap.uids_after(0)
        assert len(uids) == 3
        assert await imap.uids_after(uids[-1]) == []  # "n:*" matches the last message; it is not new
        headers = await imap.headers(uids)
    assert [h.x_riferimento for h in headers] == [f"<sent-{n}@studio.test>" for n in range(3)]
    assert headers[0].x_ricevuta == "avvenuta-consegna"
    assert headers[0].subject == "CONSEGNA: Diffida n. 0 — città"
    assert headers[0].size > 0 and headers[0].internal_date is not None


async def test_a_header_search_finds_the_receipts_of_one_sending(dovecot: Dovecot, user: str) -> None:
    async with ImapClient(endpoint(dovecot, starttls=True), Login(user, PASSWORD)) as imap:
        await imap.append("INBOX", receipt("<a@studio.test>", "accettazione", number=1))
        await imap.append("INBOX", receipt("<b@studio.test>", number=2))
        await imap.append("INBOX", receipt("<a@studio.test>", number=3))
        await imap.select("INBOX")
        found = await imap.search_header("X-Riferimento-Message-ID", "<a@studio.test>")
        assert len(found) == 2
        raw = await imap.message(found[0])
    assert raw is not None and b"X-Ricevuta: accettazione" in raw


async def test_a_deleted_message_is_gone_and_others_stay(dovecot: Dovecot, user: str) -> None:
    async with ImapClient(endpoint(dovecot), Login(user, PASSWORD)) as imap:
        await imap.append("INBOX", receipt("<a@studio.test>", number=1))
        await imap.append("INBOX", receipt("<b@studio.test>", number=2))
        await imap.select("INBOX", readonly=False)
        first, second = await imap.uids_after(0)
        await imap.delete([first])
        assert await imap.uids_after(0) == [second]
        assert await imap.message(first) is None


async def test_quota_comes_from_getquotaroot(dovecot: Dovecot) -> None:
    user = dovecot.add_user(PASSWORD, quota_kib=512)
    async with ImapClient(endpoint(dovecot), Login(user, PASSWORD)) as imap:
        await imap.append("INBOX", receipt("<a@studio.test>", size=100_000))
        quota = await imap.quota("INBOX")
    assert quota is not None and quota.limit_kib == 512 and 90 <= quota.used_kib <= 200


async def test_a_mailbox_over_quota_refuses_with_a_clear_error(dovecot: Dovecot) -> None:
    user = dovecot.add_user(PASSWORD, quota_kib=64)
    async with ImapClient(endpoint(dovecot), Login(user, PASSWORD)) as imap:
        with pytest.raises(Rejected, match="over its quota"):
            await imap.append("INBOX", receipt("<a@studio.test>", size=200_000))
        await imap.select("INBOX")
        assert await imap.uids_after(0) == []


async def test_idle_wakes_up_when_mail_arrives(dovecot: Dovecot, user: str) -> None:
    async with ImapClient(endpoint(dovecot), Login(user, PASSWORD)) as watcher, \
            ImapClient(endpoint(dovecot), Login(user, PASSWORD)) as other:
        assert watcher.supports("IDLE")
        await watcher.select("INBOX")
        news: list[bool] = []

        async def watch() -> None:
            news.append(await watcher.wait_for_news(seconds=15))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(watch)
                await anyio.sleep(0.3)  # let IDLE start; a message before it is found by the next sync anyway
                await other.append("INBOX", receipt("<a@studio.test>"))
        assert news == [True]
        assert len(await watcher.uids_after(0)) == 1


async def test_a_wrong_password_is_an_authentication_error_without_the_password(dovecot: Dovecot, user: str) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        async with ImapClient(endpoint(dovecot), Login(user, "wrong-Passw0rd")):
            pass
    text = caught.value.explain()
    assert user in text and "wrong-Passw0rd" not in text and PASSWORD not in text


async def test_a_certificate_from_an_unknown_ca_is_refused_and_says_how_to_trust_it(dovecot: Dovecot,
                                                                                     user: str) -> None:
    no_extra_ca = Endpoint("127.0.0.1", dovecot.imaps_port, "tls", None)
    with pytest.raises(ProviderUnavailable, match="could not be verified") as caught:
        async with ImapClient(no_extra_ca, Login(user, PASSWORD)):
            pass
    assert "ca_file" in caught.value.explain() and PASSWORD not in caught.value.explain()


async def test_a_certificate_for_another_name_is_refused(dovecot: Dovecot, user: str, tmp_path: Path) -> None:
    from tests.pecmail.tls import make_pki

    other = make_pki(tmp_path, hosts=("mail.example.it",))
    with pytest.raises(ProviderUnavailable, match="could not be verified"):
        async with ImapClient(endpoint(dovecot, ca=other.ca_file), Login(user, PASSWORD)):
            pass


async def test_an_unreadable_ca_file_is_a_configuration_error(dovecot: Dovecot, user: str, tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="CA file"):
        async with ImapClient(endpoint(dovecot, ca=bad), Login(user, PASSWORD)):
            pass


async def test_an_unreachable_host_is_a_clear_error(user: str) -> None:
    closed = Endpoint("127.0.0.1", free_port(), "tls", None)
    with pytest.raises(ProviderUnavailable, match="refused the connection"):
        async with ImapClient(closed, Login(user, PASSWORD)):
            pass


async def test_implicit_tls_against_a_starttls_port_fails_with_a_hint_on_security(dovecot: Dovecot,
                                                                                   user: str) -> None:
    wrong = Endpoint("127.0.0.1", dovecot.imap_port, "tls", dovecot.pki.ca_file)
    with pytest.raises(ProviderUnavailable) as caught:
        async with ImapClient(wrong, Login(user, PASSWORD), timeout=5):
            pass
    assert "security" in caught.value.explain() or "in time" in caught.value.explain()
