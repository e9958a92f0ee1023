"""The PEC Massiva send body is streamed from the files, byte for byte what ``json=`` would have sent."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from pec_mcp.providers.pecmassiva import Attachment, Credentials, PecMassivaClient, SendBody
from pec_mcp.simulator import Simulator
from pec_mcp.simulator.credentials import PECMASSIVA_PASSWORD, PECMASSIVA_TOKEN, PECMASSIVA_USERNAME

pytestmark = pytest.mark.anyio

CREDENTIALS = Credentials(PECMASSIVA_TOKEN, PECMASSIVA_USERNAME, PECMASSIVA_PASSWORD)


def _client(http: httpx.AsyncClient | None = None) -> PecMassivaClient:
    return PecMassivaClient(http or httpx.AsyncClient(), CREDENTIALS)


def _attachment(folder: Path, name: str, content: bytes) -> Attachment:
    path = folder / name
    path.write_bytes(content)
    return Attachment(path=path, name=name, size=len(content))


def _expected(fields: dict, attachments: list[Attachment]) -> bytes:
    payload = dict(fields)
    if attachments:
        payload["attachments"] = [{"name": a.name, "file": a.data_uri()} for a in attachments]
    return httpx.Request("POST", "http://x/send", json=payload).content


@pytest.mark.parametrize("sizes", [[], [0], [1], [2], [3], [196_608], [196_609, 5], [700_001, 1, 65_536 * 3 + 2]])
async def test_the_streamed_body_is_identical_to_the_json_of_the_same_payload(tmp_path: Path, sizes) -> None:
    files = [_attachment(tmp_path, f"file {i} è\"x\".pdf" if i else "a.png", os.urandom(n))
             for i, n in enumerate(sizes)]
    fields = _client().send_fields(sender="me@pec.it", recipients=["a@pec.it", "b@pec.it"],
                                   subject="Oggetto «prova» \"1\"", body="<p>Testo\n€</p>\u2028")
    body = SendBody(fields, files)
    data = await body.read()
    assert data == _expected(fields, files)
    assert body.length == len(data)


async def test_a_large_attachment_is_sent_with_a_content_length_not_chunked(tmp_path: Path, simulator: Simulator):
    seen: dict[str, str] = {}

    async def spy(request: httpx.Request) -> None:
        seen.update(request.headers)

    attachment = _attachment(tmp_path, "big.bin", os.urandom(3_000_001))
    transport = httpx.ASGITransport(app=simulator.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator/pecmassiva",
                                 event_hooks={"request": [spy]}) as http:
        result = await _client(http).send(sender=PECMASSIVA_USERNAME, recipients=["mario.rossi@pec.it"],
                                          subject="Allegato", body="Testo", attachments=[attachment])
    assert result.sent == 1
    assert "transfer-encoding" not in seen
    assert int(seen["content-length"]) > 4_000_000
    assert simulator.pecmassiva.sendings[result.message_id].attachment_bytes == 3_000_001
