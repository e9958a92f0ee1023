"""Outgoing messages: proper MIME with our Message-ID, exact size known up front, attachments streamed."""

from __future__ import annotations

import io
import os
import tracemalloc
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from pec_mcp.pecmail.compose import AttachmentSource, compose_message


def test_a_message_has_utf8_subject_text_and_html_alternatives_attachments_and_our_message_id(tmp_path: Path) -> None:
    report = tmp_path / "relazione.pdf"
    report.write_bytes(os.urandom(100_001))
    message = compose_message(
        sender="studio@pec.esempio.it", to=["ufficio@pec.esempio.it"], cc=["copia@pec.esempio.it"],
        bcc=["nascosta@pec.esempio.it"], subject="Notifica n. 7 – è urgente", text="Buongiorno,\nsegue atto.",
        html="<p>Buongiorno, segue <b>atto</b>.</p>",
        attachments=[AttachmentSource("relazione.pdf", path=report), AttachmentSource("nota è.txt", data=b"ok")],
        receipt_type="sintetica",
    )
    raw = message.as_bytes()
    assert len(raw) == message.size
    assert message.message_id.startswith("<pec-mcp.") and message.message_id.endswith("@pec.esempio.it>")
    assert message.recipients == ("ufficio@pec.esempio.it", "copia@pec.esempio.it", "nascosta@pec.esempio.it")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "Notifica n. 7 – è urgente"
    assert parsed["Message-ID"] == message.message_id
    assert parsed["X-TipoRicevuta"] == "sintetica"
    assert "nascosta" not in raw.decode("ascii")
    assert raw.isascii()  # 7bit: any SMTP server takes it
    assert parsed.get_body(("plain",)).get_content().splitlines()[:2] == ["Buongiorno,", "segue atto."]
    assert "<b>atto</b>" in parsed.get_body(("html",)).get_content()
    attachments = {a.get_filename(): a.get_payload(decode=True) for a in parsed.iter_attachments()}
    assert attachments == {"relazione.pdf": report.read_bytes(), "nota è.txt": b"ok"}


def test_smtp_data_form_dot_stuffs_lines_that_start_with_a_dot() -> None:
    message = compose_message(sender="a@pec.esempio.it", to=["b@pec.esempio.it"], subject="x",
                              text=".inizio\n..due\nfine\n")
    plain, stuffed = message.as_bytes(), b"".join(message.chunks(smtp_data=True))
    assert b"\r\n.inizio" in plain and b"\r\n..inizio" in stuffed and b"\r\n...due" in stuffed
    assert stuffed.endswith(b"\r\n.\r\n")
    assert stuffed.removesuffix(b".\r\n").replace(b"\r\n..", b"\r\n.") == plain


@pytest.mark.parametrize("size", [0, 1, 56, 57, 58, 57 * 4096, 57 * 4096 + 1])
def test_attachments_of_any_size_survive_the_stream(tmp_path: Path, size: int) -> None:
    data = tmp_path / "file.bin"
    data.write_bytes(os.urandom(size))
    message = compose_message(sender="a@pec.esempio.it", to=["b@pec.esempio.it"], subject="x", text="y",
                              attachments=[AttachmentSource("file.bin", path=data)])
    out = io.BytesIO()
    assert message.write_to(out) == message.size == len(out.getvalue())
    parsed = message_from_bytes(out.getvalue(), policy=policy.default)
    assert next(iter(parsed.iter_attachments())).get_content() == data.read_bytes()


def test_writing_a_large_attachment_holds_only_a_small_buffer(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    tracemalloc.start()
    try:
        message = compose_message(sender="a@pec.esempio.it", to=["b@pec.esempio.it"], subject="x", text="y",
                                  attachments=[AttachmentSource("big.bin", path=big)])
        with (tmp_path / "out.eml").open("wb") as out:
            message.write_to(out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # well under the 8 MiB file, let alone its 11 MiB of base64


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one To"):
        compose_message(sender="a@pec.esempio.it", to=[], subject="x", text="y")
    with pytest.raises(ValueError, match="receipt_type"):
        compose_message(sender="a@pec.esempio.it", to=["b@x.it"], subject="x", text="y", receipt_type="lunga")
