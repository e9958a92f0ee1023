"""The simulator's PEC provider over real SMTP and IMAP on loopback, driven by the standard library's clients."""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pec_mcp.pecmail.compose import OutgoingMessage, compose_message
from pec_mcp.pecmail.message import PecMessage, parse_pec_message
from pec_mcp.pecmail.signature import TrustStore, Verdict
from pec_mcp.receipts import ReceiptKind
from pec_mcp.simulator.clock import Clock
from pec_mcp.simulator.pecmail.authority import SimulatorAuthority, create_authority
from pec_mcp.simulator.pecmail.provider import SUBMISSION, TIMEOUT_SECONDS
from pec_mcp.simulator.pecmail.servers import (
    DOMAIN,
    PecMailAccount,
    PecMailOptions,
    PecMailServers,
    start_pec_mail_provider,
)
from tests.processes import simulate_process

FROZEN_AT = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC).timestamp()
STUDIO = PecMailAccount(f"studio@{DOMAIN}", "pw-studio")
UFFICIO = PecMailAccount(f"ufficio@{DOMAIN}", "pw-ufficio")
PIENA = PecMailAccount(f"piena@{DOMAIN}", "pw-piena")


@pytest.fixture(scope="module")
def authority() -> SimulatorAuthority:
    return create_authority(DOMAIN, now=datetime.fromtimestamp(FROZEN_AT, UTC))


@pytest.fixture
def clock() -> Clock:
    return Clock(frozen_at=FROZEN_AT)


@pytest.fixture
def pec(authority: SimulatorAuthority, clock: Clock) -> Iterator[PecMailServers]:
    options = PecMailOptions(delivery_delay=5.0, accounts=(STUDIO, UFFICIO, PIENA))
    with start_pec_mail_provider(options, clock=clock, authority=authority) as servers:
        servers.provider.mailboxes[PIENA.address].quota_bytes = 1000
        yield servers


def tls(pec: PecMailServers) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pec.endpoints.ca_file))


def send(
    pec: PecMailServers, to: list[str], *, account: PecMailAccount = STUDIO, subject: str = "Atto"
) -> OutgoingMessage:
    message = compose_message(sender=account.address, to=to, subject=subject, text="Si trasmette l'atto.")
    with smtplib.SMTP_SSL(pec.endpoints.host, pec.endpoints.smtp_port, context=tls(pec)) as smtp:
        smtp.login(account.address, account.password)
        smtp.sendmail(account.address, list(message.recipients), message.as_bytes())
    return message


def imap(pec: PecMailServers, account: PecMailAccount = STUDIO) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(pec.endpoints.host, pec.endpoints.imap_port, ssl_context=tls(pec))
    client.login(account.address, account.password)
    client.select("INBOX")
    return client


def inbox(pec: PecMailServers, account: PecMailAccount = STUDIO) -> list[PecMessage]:
    trust = TrustStore.from_file(pec.endpoints.trust_file)
    client = imap(pec, account)
    try:
        _, found = client.uid("SEARCH", None, "ALL")
        messages = []
        for uid in found[0].split():
            _, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
            messages.append(parse_pec_message(data[0][1], trust=trust))
        return messages
    finally:
        client.logout()


def kinds(messages: list[PecMessage]) -> list[tuple[ReceiptKind, Verdict]]:
    return [(m.kind, m.signature.verdict) for m in messages]


def test_a_sending_brings_a_signed_acceptance_at_once_and_a_delivery_after_the_delay(
    pec: PecMailServers, clock: Clock
) -> None:
    message = send(pec, [UFFICIO.address])
    assert kinds(inbox(pec)) == [(ReceiptKind.ACCEPTED, Verdict.VALID)]
    clock.advance(5)
    received = inbox(pec)
    assert kinds(received) == [(ReceiptKind.ACCEPTED, Verdict.VALID), (ReceiptKind.DELIVERED, Verdict.VALID)]
    delivery = received[1]
    assert delivery.daticert is not None and delivery.daticert.msgid == message.message_id
    assert delivery.daticert.delivered_to == UFFICIO.address
    assert delivery.headers.x_riferimento_message_id == message.message_id
    assert delivery.disagreements == ()
    envelope = inbox(pec, UFFICIO)
    assert kinds(envelope) == [(ReceiptKind.ENVELOPE, Verdict.VALID)]
    assert envelope[0].content.sender == STUDIO.address
    assert envelope[0].content.subject == "Atto"
    assert pec.stats.as_dict()["accepted"] == {SUBMISSION: 1}
    assert pec.stats.as_dict()["recipients"] == {UFFICIO.address: 1}


def test_forged_recipients_get_a_consegna_signed_by_an_untrusted_key(pec: PecMailServers, clock: Clock) -> None:
    send(pec, ["forged-ufficio@altro.example"])
    clock.advance(5)
    received = inbox(pec)
    assert kinds(received) == [(ReceiptKind.ACCEPTED, Verdict.VALID), (ReceiptKind.DELIVERED, Verdict.INVALID)]
    assert "not issued by any PEC provider" in received[1].signature.reason
    assert not received[1].counts_as_proof


def test_steering_addresses_give_the_notices_of_the_rules(pec: PecMailServers, clock: Clock) -> None:
    send(pec, ["fail-x@altro.example", "slow-y@altro.example", "timeout-z@altro.example"])
    clock.advance(5)
    assert [m.kind for m in inbox(pec)] == [ReceiptKind.ACCEPTED, ReceiptKind.NOT_DELIVERED]
    clock.advance(50)
    assert [m.kind for m in inbox(pec)][-1] is ReceiptKind.DELIVERED
    clock.advance(TIMEOUT_SECONDS)
    received = inbox(pec)
    assert [m.kind for m in received][-1] is ReceiptKind.NOT_DELIVERED_TIMEOUT
    failure = received[1]
    assert failure.daticert is not None and failure.daticert.error_detail == (
        "5.1.1 - Simulatore PEC - utente inesistente"
    )
    assert all(m.signature.verdict is Verdict.VALID and not m.disagreements for m in received)


def test_a_virus_refuses_the_whole_message(pec: PecMailServers, clock: Clock) -> None:
    send(pec, ["virus-x@altro.example", UFFICIO.address])
    clock.advance(60)
    assert kinds(inbox(pec)) == [(ReceiptKind.NOT_ACCEPTED_VIRUS, Verdict.VALID)]
    assert inbox(pec, UFFICIO) == []


def test_a_full_local_mailbox_gets_no_envelope_and_the_sender_a_failure(pec: PecMailServers, clock: Clock) -> None:
    send(pec, [PIENA.address])
    clock.advance(5)
    failure = inbox(pec)[-1]
    assert failure.kind is ReceiptKind.NOT_DELIVERED
    assert failure.daticert is not None and "casella piena" in (failure.daticert.error_detail or "")


def test_the_sender_must_be_the_authenticated_account(pec: PecMailServers) -> None:
    message = compose_message(sender=STUDIO.address, to=[UFFICIO.address], subject="x", text="y")
    with smtplib.SMTP_SSL(pec.endpoints.host, pec.endpoints.smtp_port, context=tls(pec)) as smtp:
        smtp.login(UFFICIO.address, UFFICIO.password)
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail(STUDIO.address, [UFFICIO.address], message.as_bytes())
        with pytest.raises(smtplib.SMTPDataError, match="From header"):
            smtp.sendmail(UFFICIO.address, [STUDIO.address], message.as_bytes())
    assert pec.stats.as_dict()["accepted"] == {}


def test_wrong_passwords_are_refused_on_both_servers(pec: PecMailServers) -> None:
    with smtplib.SMTP_SSL(pec.endpoints.host, pec.endpoints.smtp_port, context=tls(pec)) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(STUDIO.address, "wrong")
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail(STUDIO.address, [UFFICIO.address], b"Subject: x\r\n\r\ny")
    client = imaplib.IMAP4_SSL(pec.endpoints.host, pec.endpoints.imap_port, ssl_context=tls(pec))
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(STUDIO.address, "wrong")
    client.logout()


def test_starttls_submission_works_and_tls_is_verified_against_the_test_ca(pec: PecMailServers) -> None:
    with smtplib.SMTP(pec.endpoints.host, pec.endpoints.smtp_starttls_port) as smtp:
        smtp.starttls(context=tls(pec))
        smtp.login(STUDIO.address, STUDIO.password)
        smtp.sendmail(STUDIO.address, [UFFICIO.address], compose_message(
            sender=STUDIO.address, to=[UFFICIO.address], subject="x", text="y").as_bytes())
    with socket.create_connection((pec.endpoints.host, pec.endpoints.imap_port)) as raw, pytest.raises(
        ssl.SSLCertVerificationError
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")


def test_imap_search_fetch_store_expunge_status_and_quota(pec: PecMailServers, clock: Clock) -> None:
    first = send(pec, [UFFICIO.address], subject="Primo")
    send(pec, [UFFICIO.address], subject="Secondo è")
    clock.advance(5)
    client = imap(pec)
    try:
        _, found = client.uid("SEARCH", None, "HEADER", "X-Riferimento-Message-ID", first.message_id)
        assert found == [b"1 3"]  # its ACCETTAZIONE and its CONSEGNA
        assert client.uid("SEARCH", None, "HEADER", "X-Ricevuta", "avvenuta-consegna")[1] == [b"3 4"]
        assert client.uid("SEARCH", None, "UID", "2:*")[1] == [b"2 3 4"]
        assert client.uid("SEARCH", None, "SINCE", "2-Mar-2026")[1] == [b"1 2 3 4"]
        assert client.uid("SEARCH", None, "BEFORE", "2-Mar-2026")[1] == [b""]
        assert client.uid("SEARCH", None, "NOT", "SEEN", "SUBJECT", "Secondo")[1] == [b"2 4"]
        _, data = client.uid("FETCH", "3", "(UID FLAGS INTERNALDATE RFC822.SIZE "
                                         "BODY.PEEK[HEADER.FIELDS (X-Ricevuta X-Riferimento-Message-ID)])")
        head, fields = data[0]
        assert b"UID 3" in head and b"RFC822.SIZE" in head and b'INTERNALDATE "02-Mar-2026 10:00:05 +0100"' in head
        assert fields == (f"X-Ricevuta: avvenuta-consegna\r\nX-Riferimento-Message-ID: {first.message_id}\r\n\r\n"
                          .encode())
        _, data = client.uid("FETCH", "1", "(BODY[])")
        assert data[0][1].startswith(b"Date:") and b"FLAGS (\\Seen)" in data[1]
        assert client.uid("STORE", "2", "+FLAGS", "(\\Deleted)")[0] == "OK"
        _, expunged = client.expunge()
        assert expunged == [b"2"]
        _, status = client.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        assert status == [f"INBOX (MESSAGES 3 UIDNEXT 5 UIDVALIDITY {int(FROZEN_AT)} UNSEEN 2)".encode()]
        _, quota = client.getquotaroot("INBOX")
        assert quota[0] == [b'INBOX ""'] and quota[1][0].startswith(b'"" (STORAGE ')
        assert client.list()[1] == [b'(\\HasNoChildren) "/" INBOX']
    finally:
        client.logout()


def test_examine_is_read_only(pec: PecMailServers) -> None:
    send(pec, [UFFICIO.address])
    client = imaplib.IMAP4_SSL(pec.endpoints.host, pec.endpoints.imap_port, ssl_context=tls(pec))
    client.login(STUDIO.address, STUDIO.password)
    client.select("INBOX", readonly=True)
    client.uid("FETCH", "1", "(BODY[])")
    status, answer = client.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    assert status == "NO" and b"read-only" in answer[0]
    assert client.uid("SEARCH", None, "UNSEEN")[1] == [b"1"]
    client.logout()


def test_authenticate_plain_and_literals(pec: PecMailServers) -> None:
    client = imaplib.IMAP4_SSL(pec.endpoints.host, pec.endpoints.imap_port, ssl_context=tls(pec))
    client.authenticate("PLAIN", lambda _: f"\0{UFFICIO.address}\0{UFFICIO.password}".encode())
    assert client.select("INBOX")[0] == "OK"
    client.literal = "Ufficio è".encode()  # a search string sent as a literal, as clients do for UTF-8
    assert client.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT")[0] == "OK"
    client.logout()


def test_idle_announces_new_receipts_without_polling(pec: PecMailServers, clock: Clock) -> None:
    client = imap(pec)
    try:
        client.send(b"A900 IDLE\r\n")
        assert client.readline().startswith(b"+")
        send(pec, [UFFICIO.address])
        assert client.readline() == b"* 1 EXISTS\r\n"
        clock.advance(5)
        assert client.readline() == b"* 2 EXISTS\r\n"
        client.send(b"DONE\r\n")
        assert client.readline() == b"A900 OK IDLE terminated\r\n"
    finally:
        client.logout()


def test_commands_before_login_and_unknown_ones_are_refused(pec: PecMailServers) -> None:
    client = imaplib.IMAP4_SSL(pec.endpoints.host, pec.endpoints.imap_port, ssl_context=tls(pec))
    client.send(b"Z1 SELECT INBOX\r\n")  # imaplib itself refuses this before login; the server must too
    assert client.readline().startswith(b"Z1 NO log in first")
    client.login(STUDIO.address, STUDIO.password)
    status, answer = client.select("Archivio")
    assert status == "NO" and b"only INBOX" in answer[0]
    with pytest.raises(imaplib.IMAP4.error, match="unknown command"):
        client.xatom("FROBNICATE")
    client.logout()


@pytest.mark.slow
def test_the_simulate_command_starts_the_pec_mail_provider_beside_the_http_simulator() -> None:
    with simulate_process() as simulated:
        found = re.search(r"IMAP \(TLS\) (\d+).*trust the test CA (\S+);", simulated.banner)
        assert found, simulated.banner
        context = ssl.create_default_context(cafile=found.group(2))
        client = imaplib.IMAP4_SSL("127.0.0.1", int(found.group(1)), ssl_context=context)
        client.login(f"studio@{DOMAIN}", "sim-studio-password")
        assert client.select("INBOX")[0] == "OK"
        client.logout()


@pytest.mark.slow
def test_the_simulate_command_refuses_a_port_in_use_and_says_what_to_do() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ended = subprocess.run([sys.executable, "-m", "pec_mcp", "simulate", "--port", str(port)],
                               capture_output=True, text=True, timeout=60)
    assert ended.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in ended.stderr and "--port 0 for a free one" in ended.stderr
    assert "Traceback" not in ended.stderr


def test_a_connection_dropped_after_data_still_sends_the_message_once(pec: PecMailServers, clock: Clock) -> None:
    pec.provider.faults.drop_after_data = 1
    message = compose_message(sender=STUDIO.address, to=[UFFICIO.address], subject="x", text="y")
    smtp = smtplib.SMTP_SSL(pec.endpoints.host, pec.endpoints.smtp_port, context=tls(pec))
    smtp.login(STUDIO.address, STUDIO.password)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.sendmail(STUDIO.address, [UFFICIO.address], message.as_bytes())
    smtp.close()
    assert pec.stats.as_dict()["recipients"] == {UFFICIO.address: 1}
    assert [m.kind for m in inbox(pec)] == [ReceiptKind.ACCEPTED]


def test_a_refused_data_sends_nothing(pec: PecMailServers) -> None:
    pec.provider.faults.refuse_data = 1
    with pytest.raises(smtplib.SMTPDataError, match="Temporary failure"):
        send(pec, [UFFICIO.address])
    assert pec.stats.as_dict()["accepted"] == {}
    send(pec, [UFFICIO.address])
    assert pec.stats.as_dict()["accepted"] == {SUBMISSION: 1}


def test_a_connection_dropped_during_fetch_loses_nothing(pec: PecMailServers) -> None:
    send(pec, [UFFICIO.address])
    pec.provider.faults.drop_during_fetch = 1
    client = imap(pec)
    with pytest.raises(imaplib.IMAP4.abort):
        client.uid("FETCH", "1", "(BODY.PEEK[])")
    client.shutdown()
    assert [m.kind for m in inbox(pec)] == [ReceiptKind.ACCEPTED]


def test_messages_can_be_seeded_into_a_mailbox_for_benchmarks(pec: PecMailServers) -> None:
    uids = pec.add_messages(STUDIO.address, [b"Subject: uno\n\nx\n", b"Subject: due\r\n\r\ny\r\n"])
    assert uids == [1, 2]
    client = imap(pec)
    assert client.uid("SEARCH", None, "SUBJECT", "due")[1] == [b"2"]
    client.logout()
    with pytest.raises(KeyError):
        pec.add_messages("nessuno@pec.simulatore.test", [b"x"])


def test_sequence_numbers_and_expunges_seen_by_another_session(pec: PecMailServers) -> None:
    send(pec, [UFFICIO.address], subject="Uno")
    send(pec, [UFFICIO.address], subject="Due")
    watcher, cleaner = imap(pec), imap(pec)
    try:
        assert watcher.search(None, "ALL")[1] == [b"1 2"]
        assert watcher.fetch("2", "(UID)")[1] == [b"2 (UID 2)"]
        cleaner.store("1", "+FLAGS", "(\\Deleted)")
        cleaner.expunge()
        watcher.noop()
        assert watcher.response("EXPUNGE")[1] == [b"1"]
        assert watcher.search(None, "ALL")[1] == [b"1"]
        assert watcher.fetch("1", "(UID)")[1] == [b"1 (UID 2)"]
    finally:
        watcher.logout()
        cleaner.logout()
