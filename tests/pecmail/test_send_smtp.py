"""send_pec on an IMAP/SMTP account: composed, recorded with its Message-ID before submission, never sent twice."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pec_mcp.config import Settings
from tests.pecmail.dovecot import Dovecot
from tests.pecmail.smtp_server import Recorder, SmtpServer, start_smtp
from tests.pecmail.test_imap_dovecot import PASSWORD
from tests.pecmail.test_tools_dovecot import call, error_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user(PASSWORD)


@pytest.fixture
def smtp(request: pytest.FixtureRequest, dovecot: Dovecot, user: str) -> Iterator[SmtpServer]:
    fault = getattr(request, "param", "none")
    server = start_smtp(dovecot.pki, Recorder(user, PASSWORD, fault=fault))
    yield server
    server.stop()


@pytest.fixture
def mail_settings(make_settings: Callable[..., Settings], dovecot: Dovecot, user: str, smtp: SmtpServer) -> Settings:
    return make_settings(environment="sandbox", default_account="studio", accounts={"studio": {
        "address": user, "password": PASSWORD, "imap_host": "127.0.0.1", "imap_port": dovecot.imaps_port,
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "ca_file": str(dovecot.pki.ca_file),
        "requests_per_second": 100}})


SEND = {"recipients": ["comune@pec.esempio.it"], "subject": "Istanza — città", "confirm": True,
        "body": "<p>Gentile Comune,</p><p>si trasmette l'istanza.</p>", "idempotency_key": "istanza-1"}


async def test_a_pec_is_composed_recorded_and_submitted_once(connect: Any, mail_settings: Settings,
                                                             smtp: SmtpServer, files: Path, user: str) -> None:
    letter = files / "istanza.pdf"
    letter.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 100)
    async with connect(mail_settings) as client:
        sent = await call(client, "send_pec", {**SEND, "attachments": [str(letter)]})
        again = await call(client, "send_pec", {**SEND, "attachments": [str(letter)]})
        found = await call(client, "find_pec_sendings", {"account": "studio"})
    assert sent["status"] == "sent" and again["status"] == "duplicate" and again["message_id"] == sent["message_id"]
    [(sender, recipients, raw)] = smtp.recorder.messages
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert (sender, recipients) == (user, ["comune@pec.esempio.it"])
    assert message["Message-ID"].strip("<>") == sent["message_id"] and message["Subject"] == "Istanza — città"
    assert message.get_body(("plain",)).get_content().strip().startswith("Gentile Comune,")
    [attachment] = list(message.iter_attachments())
    assert attachment.get_payload(decode=True) == letter.read_bytes()
    assert [s["message_id"] for s in found["sendings"]] == [sent["message_id"]]
    assert found["sendings"][0]["account"] == "studio"


@pytest.mark.parametrize("smtp", ["drop_after_data"], indirect=True)
async def test_an_answer_lost_after_the_data_is_unknown_and_never_resent(connect: Any, mail_settings: Settings,
                                                                         smtp: SmtpServer) -> None:
    async with connect(mail_settings) as client:
        first = await call(client, "send_pec", SEND)
        second = await call(client, "send_pec", SEND)
    assert first["status"] == "unknown" and second["status"] == "duplicate"
    assert len(smtp.recorder.messages) == 1


@pytest.mark.parametrize("smtp", ["refuse_data"], indirect=True)
async def test_a_refused_message_is_a_failure_and_the_same_key_may_try_again(connect: Any, mail_settings: Settings,
                                                                             smtp: SmtpServer) -> None:
    async with connect(mail_settings) as client:
        text = await error_of(client, "send_pec", SEND)
        smtp.recorder.fault = "none"
        again = await call(client, "send_pec", SEND)
    assert "554" in text and again["status"] == "sent" and len(smtp.recorder.messages) == 1
