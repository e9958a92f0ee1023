"""The SMTP client against a real SMTP server: TLS and STARTTLS, AUTH, streaming, refusals, drops, never twice."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from pec_mcp.errors import AuthenticationFailed, OutcomeUnknown, ProviderUnavailable, Rejected
from pec_mcp.pecmail.connection import Endpoint, Login
from pec_mcp.pecmail.smtp import SmtpClient, stuffed_chunks
from tests.pecmail.dovecot import free_port
from tests.pecmail.smtp_server import Recorder, SmtpServer, start_smtp
from tests.pecmail.tls import MailPki, make_pki

pytestmark = pytest.mark.anyio
USER, PASSWORD = "studio@pec.test", "Smtp-s3cret-pw"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> MailPki:
    return make_pki(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def server(request: pytest.FixtureRequest, pki: MailPki) -> Iterator[SmtpServer]:
    options = getattr(request, "param", {})
    recorder = Recorder(USER, PASSWORD, fault=options.get("fault", "none"), refuse=options.get("refuse", set()))
    running = start_smtp(pki, recorder, security=options.get("security", "tls"),
                         max_bytes=options.get("max_bytes", 40 * 1024 * 1024))
    yield running
    running.stop()


def client(server: SmtpServer, pki: MailPki, password: str = PASSWORD) -> SmtpClient:
    return SmtpClient(Endpoint("127.0.0.1", server.port, server.security, pki.ca_file), Login(USER, password),
                      timeout=10)


def message(body: str = "Gentile Comune,\n.una riga che inizia con un punto\nSaluti", attach: bytes = b"") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = USER, "comune@pec.test", "Diffida — città"
    m["Message-ID"] = "<abc@studio.test>"
    m.set_content(body)
    if attach:
        m.add_attachment(attach, maintype="application", subtype="pdf", filename="atto.pdf")
    return m.as_bytes()


@pytest.mark.parametrize("server", [{"security": "tls"}, {"security": "starttls"}], indirect=True)
async def test_a_message_is_submitted_once_with_its_lines_intact(server: SmtpServer, pki: MailPki) -> None:
    dispatched: list[bool] = []

    async def on_dispatch() -> None:
        dispatched.append(True)

    result = await client(server, pki).submit(sender=USER, recipients=["comune@pec.test"], message=message(),
                                              on_dispatch=on_dispatch)
    assert dispatched == [True] and "queued" in result.reply
    [(sender, recipients, content)] = server.recorder.messages
    assert (sender, recipients) == (USER, ["comune@pec.test"])
    received = email.message_from_bytes(content)
    assert ".una riga che inizia con un punto" in received.get_payload(decode=True).decode()


async def test_a_large_attachment_streams_from_a_file(server: SmtpServer, pki: MailPki, tmp_path: Path) -> None:
    attachment = bytes(range(256)) * 20_000  # 5 MB of every byte value
    path = tmp_path / "message.eml"
    path.write_bytes(message(attach=attachment))
    await client(server, pki).submit(sender=USER, recipients=["comune@pec.test"], message=path)
    [(_, _, content)] = server.recorder.messages
    received = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    part = next(iter(received.iter_attachments()))
    assert part.get_payload(decode=True) == attachment


@pytest.mark.parametrize("server", [{"max_bytes": 100_000}], indirect=True)
async def test_a_message_over_the_servers_size_limit_is_refused_before_anything_goes(server: SmtpServer,
                                                                                      pki: MailPki) -> None:
    dispatched: list[bool] = []

    async def on_dispatch() -> None:
        dispatched.append(True)

    with pytest.raises(Rejected, match="accepts at most"):
        await client(server, pki).submit(sender=USER, recipients=["comune@pec.test"],
                                         message=message(attach=b"x" * 200_000), on_dispatch=on_dispatch)
    assert dispatched == [] and server.recorder.messages == []


@pytest.mark.parametrize("server", [{"refuse": {"nessuno@pec.test"}}], indirect=True)
async def test_a_refused_recipient_sends_nothing_to_anyone_and_is_named(server: SmtpServer, pki: MailPki) -> None:
    with pytest.raises(Rejected, match=r"nessuno@pec\.test") as caught:
        await client(server, pki).submit(sender=USER, recipients=["comune@pec.test", "nessuno@pec.test"],
                                         message=message())
    assert "Nothing was sent" in caught.value.explain()
    assert server.recorder.messages == []


async def test_a_wrong_password_is_an_authentication_error_without_the_password(server: SmtpServer,
                                                                                 pki: MailPki) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        await client(server, pki, password="wrong-Passw0rd").submit(
            sender=USER, recipients=["comune@pec.test"], message=message())
    assert "wrong-Passw0rd" not in caught.value.explain() and PASSWORD not in caught.value.explain()
    assert server.recorder.messages == []


@pytest.mark.parametrize("server", [{"fault": "drop_after_data"}], indirect=True)
async def test_a_connection_dropped_after_the_data_is_unknown_and_the_server_has_it(server: SmtpServer,
                                                                                    pki: MailPki) -> None:
    with pytest.raises(OutcomeUnknown, match="may or may not"):
        await client(server, pki).submit(sender=USER, recipients=["comune@pec.test"], message=message())
    assert len(server.recorder.messages) == 1  # which is why it must never be sent again by itself


@pytest.mark.parametrize("server", [{"fault": "drop_while_streaming"}], indirect=True)
async def test_a_connection_dropped_before_the_final_dot_is_a_plain_failure(server: SmtpServer,
                                                                            pki: MailPki) -> None:
    with pytest.raises(ProviderUnavailable, match="lost while sending"):
        await client(server, pki).submit(sender=USER, recipients=["comune@pec.test"],
                                         message=message(attach=b"y" * 2_000_000))
    assert server.recorder.messages == []


@pytest.mark.parametrize("server", [{"fault": "refuse_data"}], indirect=True)
async def test_a_refusal_after_the_data_means_not_sent(server: SmtpServer, pki: MailPki) -> None:
    with pytest.raises(Rejected, match="554"):
        await client(server, pki).submit(sender=USER, recipients=["comune@pec.test"], message=message())


@pytest.mark.parametrize("server", [{"fault": "mailbox_full"}], indirect=True)
async def test_a_mailbox_over_quota_552_is_a_clear_refusal_not_an_unknown_outcome(server: SmtpServer,
                                                                                  pki: MailPki) -> None:
    with pytest.raises(Rejected, match="over its limit") as caught:
        await client(server, pki).submit(sender=USER, recipients=["comune@pec.test"], message=message())
    assert "552" in caught.value.explain() and PASSWORD not in caught.value.explain()
    assert server.recorder.messages == []


async def test_an_unreachable_smtp_host_is_a_clear_error(pki: MailPki) -> None:
    smtp = SmtpClient(Endpoint("127.0.0.1", free_port(), "tls", pki.ca_file), Login(USER, PASSWORD), timeout=5)
    with pytest.raises(ProviderUnavailable, match="refused the connection") as caught:
        await smtp.submit(sender=USER, recipients=["comune@pec.test"], message=message())
    assert PASSWORD not in caught.value.explain()


async def test_an_untrusted_certificate_is_refused(server: SmtpServer, tmp_path: Path) -> None:
    other = make_pki(tmp_path)
    smtp = SmtpClient(Endpoint("127.0.0.1", server.port, "tls", other.ca_file), Login(USER, PASSWORD), timeout=5)
    with pytest.raises(ProviderUnavailable, match="could not be verified"):
        await smtp.submit(sender=USER, recipients=["comune@pec.test"], message=message())


def test_dot_stuffing_doubles_leading_dots_and_ends_every_line_with_crlf() -> None:
    import io

    data = b".start\nmiddle\r\n..two\nlast"
    assert b"".join(stuffed_chunks(io.BytesIO(data), chunk=4)) == b"..start\r\nmiddle\r\n...two\r\nlast\r\n"


def test_a_composed_message_is_sent_without_its_own_end_of_data_line() -> None:
    from pec_mcp.pecmail.compose import compose_message
    from pec_mcp.pecmail.smtp import _data_chunks

    composed = compose_message(sender=USER, to=["comune@pec.test"], subject="Atto", text=".inizia con un punto")
    data = b"".join(_data_chunks(composed))
    assert data.endswith(b"\r\n") and not data.endswith(b"\r\n.\r\n") and b"\r\n..inizia" in data
