"""Receipts of one sending in a 10,000-message IMAP mailbox: the local index against an IMAP SEARCH per lookup.

A real Dovecot (started here on loopback, as the tests start it) holds 10,000 messages: two receipts (ACCETTAZIONE
and CONSEGNA) for each of 5,000 sendings, in one mbox. The first sync indexes it (its time is reported: the one
cost of the index). Then the receipts of randomly chosen sendings are looked up both ways, on one warm IMAP
session: the index answers with a query on the store; the baseline asks the server, ``UID SEARCH HEADER
X-Riferimento-Message-ID`` and a FETCH of the found headers, as a client without an index must. Both answers
must name the same UIDs. A second mailbox of 20,000 messages gives the first sync of a mailbox twice that size.
``--quick`` uses 2,000 messages and no second mailbox.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from common import median, ms, row

LOOKUPS = 40


def run(quick: bool = False) -> list[dict[str, Any]]:
    from tests.pecmail.dovecot import start_dovecot
    from tests.pecmail.test_imap_dovecot import PASSWORD, receipt

    messages = 2_000 if quick else 10_000
    dovecot = start_dovecot()
    try:
        template_a = receipt("<REF@studio.test>", "accettazione", number=999_999_999)
        template_c = receipt("<REF@studio.test>", "avvenuta-consegna", number=999_999_999)

        def mailbox() -> Any:
            for n in range(messages // 2):
                for template in (template_a, template_c):
                    yield template.replace(b"REF", f"s{n}".encode()).replace(b"999999999", str(n).encode())

        user = dovecot.add_mbox_user(PASSWORD, mailbox())
        rows = anyio.run(_measure, dovecot, user, messages)
        if not quick:
            big = dovecot.add_mbox_user(PASSWORD, (template_a.replace(b"999999999", str(n).encode())
                                                   for n in range(20_000)))
            rows.append(anyio.run(_first_sync, dovecot, big, 20_000))
        return rows
    finally:
        dovecot.stop()


def _open(dovecot: Any, user: str, account: str) -> tuple[Any, Any]:
    """A fresh index in a store of its own, and an IMAP session (not yet open) to the user's mailbox."""
    from pec_mcp.pecmail.connection import Endpoint, Login
    from pec_mcp.pecmail.imap import ImapClient
    from pec_mcp.pecmail.index import MailIndex
    from pec_mcp.store import Store
    from tests.pecmail.test_imap_dovecot import PASSWORD

    store = Store(Path(tempfile.mkdtemp(prefix="bench-mail-")) / "store.sqlite3")
    endpoint = Endpoint("127.0.0.1", dovecot.imaps_port, "tls", dovecot.pki.ca_file)
    return MailIndex(store, environment="sandbox", account=account), ImapClient(endpoint, Login(user, PASSWORD),
                                                                                 timeout=300)


async def _timed_first_sync(index: Any, imap: Any, messages: int) -> float:
    from pec_mcp.pecmail.sync import MailboxSync

    started = time.perf_counter()
    report = await MailboxSync(index).sync(imap)
    took = time.perf_counter() - started
    assert report.added == messages, report
    return took


async def _first_sync(dovecot: Any, user: str, messages: int) -> dict[str, Any]:
    from pec_mcp.pecmail.imap import FETCH_BATCH

    index, session = _open(dovecot, user, "big")
    async with session as imap:
        took = await _timed_first_sync(index, imap, messages)
    return row("mail", f"first sync of a {messages:,}-message mailbox (headers into the index)", took, None,
               unit="s", target="reported", met=None, n=1,
               note=f"{messages / took:.0f} messages/s, batches of {FETCH_BATCH:,} UIDs")


async def _measure(dovecot: Any, user: str, messages: int) -> list[dict[str, Any]]:
    from pec_mcp.pecmail.imap import FETCH_BATCH

    index, session = _open(dovecot, user, "studio")
    async with session as imap:
        first_sync = await _timed_first_sync(index, imap, messages)
        await imap.select("INBOX")
        chosen = random.Random(7).sample(range(messages // 2), LOOKUPS)
        local, remote, same = [], [], 0
        for n in chosen:
            ref = f"<s{n}@studio.test>"
            started = time.perf_counter()
            from_index = index.referring_to(ref)
            local.append(time.perf_counter() - started)
            started = time.perf_counter()
            uids = await imap.search_header("X-Riferimento-Message-ID", ref)
            from_server = await imap.headers(uids)
            remote.append(time.perf_counter() - started)
            same += sorted(m.uid for m in from_index) == sorted(h.uid for h in from_server) and len(uids) == 2
    ratio = median(remote) / median(local)
    note = f"same answers {same}/{LOOKUPS}"
    return [
        row("mail", f"receipts of one sending, {messages:,}-message IMAP mailbox (index)", ms(median(local)),
            ms(median(remote)), unit="ms", target="≥ 50× faster, same answers",
            met=ratio >= 50 and same == LOOKUPS, n=LOOKUPS,
            note=f"{ratio:.0f}× faster than UID SEARCH HEADER + FETCH on Dovecot; {note}"),
        row("mail", f"first sync of the {messages:,}-message mailbox (headers into the index)", first_sync, None,
            unit="s", target="reported", met=None, n=1,
            note=f"{messages / first_sync:.0f} messages/s, batches of {FETCH_BATCH:,} UIDs"),
    ]


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for r in run(quick="--quick" in sys.argv):
        print(r)
