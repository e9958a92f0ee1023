"""Following a real Dovecot mailbox: UID-based incremental sync, UIDVALIDITY, deletions, drops, IDLE, size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from imapclient import IMAPClient

from pec_mcp.errors import ProviderUnavailable
from pec_mcp.pecmail.connection import Endpoint, Login
from pec_mcp.pecmail.imap import ImapClient, MessageHeaders
from pec_mcp.pecmail.index import IndexedMail, MailIndex
from pec_mcp.pecmail.sync import MailboxSync
from pec_mcp.store import Store
from tests.pecmail.dovecot import Dovecot
from tests.pecmail.test_imap_dovecot import PASSWORD, many_receipts, receipt

pytestmark = pytest.mark.anyio


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user(PASSWORD)


@pytest.fixture
def store(store_location: str) -> Iterator[Store]:
    """The index on each backend: SQLite and PostgreSQL."""
    handle = Store(store_location)
    yield handle
    handle.close()


def session(dovecot: Dovecot, user: str) -> ImapClient:
    return ImapClient(Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file), Login(user, PASSWORD))


def index(store: Store, folder: str = "INBOX") -> MailIndex:
    return MailIndex(store, environment="sandbox", account="studio", folder=folder)


async def append(dovecot: Dovecot, user: str, *refs: str, folder: str = "INBOX") -> None:
    async with session(dovecot, user) as imap:
        for n, ref in enumerate(refs):
            await imap.append(folder, receipt(ref, number=n))


async def test_each_sync_fetches_only_what_arrived_since_the_last(dovecot: Dovecot, user: str, store: Store) -> None:
    await append(dovecot, user, "<a@studio.test>", "<b@studio.test>")
    sync = MailboxSync(index(store))
    async with session(dovecot, user) as imap:
        first = await sync.sync(imap)
        await append(dovecot, user, "<a@studio.test>")
        second = await sync.sync(imap)
        third = await sync.sync(imap)
    assert (first.added, first.restarted, second.added, second.restarted, third.added) == (2, True, 1, False, 0)
    assert [m.refers_to for m in index(store).referring_to("<a@studio.test>")] == ["a@studio.test"] * 2
    assert index(store).page(query="b@studio.test").total == 1


async def test_a_new_uidvalidity_reindexes_from_the_start_and_keeps_the_old_rows(dovecot: Dovecot, user: str,
                                                                                   store: Store) -> None:
    raw = IMAPClient("127.0.0.1", port=dovecot.imaps_port,
                     ssl_context=__import__("ssl").create_default_context(cafile=str(dovecot.pki.ca_file)))
    raw.login(user, PASSWORD)
    raw.create_folder("Ricevute")
    await append(dovecot, user, "<old@studio.test>", folder="Ricevute")
    sync = MailboxSync(index(store, "Ricevute"))
    async with session(dovecot, user) as imap:
        await sync.sync(imap)
        raw.delete_folder("Ricevute")
        raw.create_folder("Ricevute")
        await append(dovecot, user, "<new@studio.test>", folder="Ricevute")
        report = await sync.sync(imap)
    raw.logout()
    assert report.restarted and report.added == 1
    assert [m.refers_to for m in index(store, "Ricevute").page().messages] == ["new@studio.test"]
    with store.transaction() as db:  # what was seen once is not forgotten
        kept = db.execute("SELECT COUNT(*) FROM mail_index WHERE refers_to = 'old@studio.test'").fetchone()[0]
    assert kept == 1


async def test_messages_deleted_by_another_client_leave_the_answers(dovecot: Dovecot, user: str,
                                                                   store: Store) -> None:
    await append(dovecot, user, "<a@studio.test>", "<b@studio.test>")
    sync = MailboxSync(index(store))
    async with session(dovecot, user) as imap, session(dovecot, user) as other:
        await sync.sync(imap)
        await other.select("INBOX", readonly=False)
        await other.delete([min(await other.uids_after(0))])
        report = await sync.sync(imap)
    assert report.removed == 1 and index(store).count() == 1


class _DropsOnSecondBatch(ImapClient):
    """A session whose connection is cut (for real: the socket is shut) before its second header FETCH."""

    fetches = 0

    async def headers(self, uids: list[int]) -> list[MessageHeaders]:  # type: ignore[override]
        self.fetches += 1
        if self.fetches == 2 and self._client is not None:
            self._client.socket().shutdown(2)
        return await super().headers(uids)


async def test_a_connection_dropped_in_the_middle_of_a_fetch_loses_nothing(dovecot: Dovecot, user: str,
                                                                           store: Store) -> None:
    await append(dovecot, user, *[f"<m{n}@studio.test>" for n in range(5)])
    sync = MailboxSync(index(store), batch=2)
    dropping = _DropsOnSecondBatch(Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file),
                                   Login(user, PASSWORD))
    await dropping.connect()
    with pytest.raises(ProviderUnavailable, match="lost while fetching headers"):
        await sync.sync(dropping)
    await dropping.close()
    assert index(store).count() == 2  # the first batch is kept, with the last UID it reached
    async with session(dovecot, user) as imap:
        report = await sync.sync(imap)
    assert report.added == 3 and index(store).count() == 5


async def test_a_receipt_that_cannot_be_read_now_stays_pending_for_the_next_sync(dovecot: Dovecot, user: str,
                                                                                 store: Store) -> None:
    await append(dovecot, user, "<a@studio.test>")
    seen: list[bytes] = []
    fail = [True]

    async def on_receipts(imap: ImapClient, pending: list[IndexedMail]) -> list[int]:
        if fail.pop():
            return []
        raws = [await imap.message(m.uid) for m in pending]
        seen.extend(r for r in raws if r)
        return [m.uid for m in pending]

    fail.insert(0, False)
    sync = MailboxSync(index(store), on_receipts=on_receipts)
    async with session(dovecot, user) as imap:
        assert (await sync.sync(imap)).receipts == 0
        assert (await sync.sync(imap)).receipts == 1
        assert (await sync.sync(imap)).receipts == 0
    assert len(seen) == 1 and b"X-Riferimento-Message-ID: <a@studio.test>" in seen[0]


async def test_following_with_idle_indexes_mail_as_it_arrives(dovecot: Dovecot, user: str, store: Store) -> None:
    sync = MailboxSync(index(store))
    synced, arrived = anyio.Event(), anyio.Event()

    async def on_synced(report: object) -> None:
        synced.set()
        if index(store).referring_to("late@studio.test"):
            arrived.set()

    def connect() -> AbstractAsyncContextManager[ImapClient]:
        return session(dovecot, user)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            # IDLE is re-issued every 5 s here: a message that lands just before IDLE starts is found then.
            tasks.start_soon(lambda: sync.follow(connect, on_synced=on_synced, idle_seconds=5))
            await synced.wait()
            await append(dovecot, user, "<late@studio.test>")
            await arrived.wait()
            tasks.cancel_scope.cancel()


async def test_a_big_mailbox_is_indexed_in_batches_and_answers_from_the_index(dovecot: Dovecot,
                                                                              store: Store) -> None:
    # 1,500 messages in two batches here; the 20,000-message test below and bench/mail_index.py go further.
    user = dovecot.add_mbox_user(PASSWORD, many_receipts(1_500))
    sync = MailboxSync(index(store))
    async with session(dovecot, user) as imap:
        report = await sync.sync(imap)
    assert report.added == 1_500 and index(store).count() == 1_500
    [found] = index(store).referring_to("m1234@studio.test")
    assert found.subject.startswith("CONSEGNA: Diffida n. 1234 ")



def envelope_headers(n: int) -> bytes:
    """An incoming PEC's transport envelope (headers and a short text: its parts do not matter to the index)."""
    return (f"From: \"Per conto di: mittente{n}@pec.esempio.it\" <posta-certificata@pec.test>\r\n"
            f"Reply-To: mittente{n}@pec.esempio.it\r\nTo: box@pec.test\r\n"
            f"Subject: POSTA CERTIFICATA: Fattura {n}\r\nMessage-ID: <env-{n}@pec.test>\r\n"
            "X-Trasporto: posta-certificata\r\nX-Riferimento-Message-ID: <orig-{n}@pec.esempio.it>\r\n"
            "\r\nMessaggio di posta certificata.\r\n").encode()


@pytest.mark.slow
async def test_a_20000_message_mailbox_is_indexed_whole_and_then_followed_one_message_at_a_time(
        dovecot: Dovecot, store: Store) -> None:
    # Written to disk as one mbox (no 20,000 APPENDs): 19,000 receipts and 1,000 incoming PEC.
    def mailbox() -> Iterator[bytes]:
        receipts = many_receipts(19_000)
        for n in range(20_000):
            yield envelope_headers(n) if n % 20 == 0 else next(receipts)

    user = dovecot.add_mbox_user(PASSWORD, mailbox())
    sync = MailboxSync(index(store))
    async with ImapClient(Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file),
                          Login(user, PASSWORD), timeout=300) as imap:
        report = await sync.sync(imap)
        assert (report.added, report.restarted, index(store).count()) == (20_000, True, 20_000)
        await imap.append("INBOX", receipt("<late@studio.test>", number=20_001))
        again = await sync.sync(imap)
    assert (again.added, again.restarted, index(store).count()) == (1, False, 20_001)
    [late] = index(store).referring_to("<late@studio.test>")
    assert late.uid == 20_001
    [envelope] = index(store).page(query="mittente1000@").messages
    assert (envelope.sender, envelope.subject) == ("mittente1000@pec.esempio.it", "Fattura 1000")
    first_page = index(store).page()
    assert (first_page.total, first_page.pages, first_page.messages[0].uid) == (20_001, 801, 20_001)
