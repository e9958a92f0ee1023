"""PEC Massiva (ws.pecmassiva.com): send PEC, read the receipts of a sending, the inbox and the quota.

Quirks of the real API, all handled here:
- a successful send answers HTTP 201; a failure may answer ``success: false`` with any status, 200 included;
- a failed send may carry an SMTP error text in ``message_id`` instead of a code;
- the receipts of a sending use the key ``data`` for the date, ``object`` for the subject, ``message`` for the body;
  the inbox uses ``date``; some clients in the wild see ``date``/``subject``/``body``, so both are read;
- message bodies from ``/inbox/{id}`` are x-www-form-urlencoded;
- mailbox credentials go in ``x-username``/``x-password`` headers, except for ``POST /send`` (in the JSON body);
- the send endpoint takes one request per second (paced by the transport, see ``pec_mcp.http``).
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from pec_mcp.errors import (
    AuthenticationFailed,
    BadResponse,
    InputError,
    NotFound,
    OutcomeUnknown,
    PecError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    Rejected,
)
from pec_mcp.http import ON_DISPATCH, PACE, retry_after_seconds
from pec_mcp.providers.wire import call, message_of, read_json

PROVIDER = "PEC Massiva"
PAGE_SIZE = 25
_SEND_CODE = re.compile(r"^\s*([0-9A-Za-z_-]{6,64})\s*$")


class _Wire(BaseModel):
    # Answers may grow new fields; we never fail on what we do not use.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ReceiptEmail(_Wire):
    """One email related to a sending: a receipt, a notice, or the transport envelope."""

    sender: str = ""
    recipient: str = ""
    date: str = Field("", validation_alias=AliasChoices("data", "date"))
    subject: str = Field("", validation_alias=AliasChoices("object", "subject"))
    body: str = Field("", validation_alias=AliasChoices("message", "body"))


class InboxItem(_Wire):
    id: int
    sender: str = ""
    recipient: str = ""
    date: str = Field("", validation_alias=AliasChoices("date", "data"))
    subject: str = Field("", validation_alias=AliasChoices("object", "subject"))


class InboxPage(BaseModel):
    items: list[InboxItem]
    page: int
    total: int
    pages: int


class InboxMessage(_Wire):
    sender: str = ""
    recipient: str = ""
    date: str = Field("", validation_alias=AliasChoices("date", "data"))
    subject: str = Field("", validation_alias=AliasChoices("object", "subject"))
    body: str = Field("", validation_alias=AliasChoices("body", "message"))


class Quota(_Wire):
    usage: float
    limit: float


class SendResult(BaseModel):
    message_id: str
    sent: int


@dataclass(frozen=True)
class Attachment:
    """A file to attach, read and encoded only when the request body is built."""

    path: Path
    name: str
    size: int

    @property
    def data_prefix(self) -> str:
        mime = mimetypes.guess_type(self.name)[0] or "application/octet-stream"
        return f"data:{mime};base64,"

    def data_uri(self) -> str:
        """The whole file as a data URI in memory (small files, tests); sends stream it, see :class:`SendBody`."""
        return self.data_prefix + base64.b64encode(self.path.read_bytes()).decode("ascii")


# A multiple of 3, so that every chunk but the last encodes to base64 without padding.
_READ_CHUNK = 3 * 64 * 1024


def _json(value: Any) -> str:
    # The encoding httpx applies to json=...: the streamed body is byte for byte what json=payload would send.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class SendBody:
    """The POST /send JSON body as a byte stream: the fields, then each attachment's base64 read from its file.

    Attachments are never held whole in memory (neither the file nor its base64 text): the body is produced in
    chunks while the request goes out, with its exact length known up front, so the request is not chunked.
    """

    def __init__(self, fields: dict[str, Any], attachments: Sequence[Attachment]) -> None:
        self._parts: list[bytes | tuple[Path, int]] = []
        head = _json(fields)
        if not attachments:
            self._parts.append(head.encode())
            return
        self._parts.append(head[:-1].encode() + b',"attachments":[')
        for number, attachment in enumerate(attachments):
            opening = ("," if number else "") + '{"name":' + _json(attachment.name) + ',"file":"'
            self._parts.append((opening + attachment.data_prefix).encode())
            self._parts.append((attachment.path, _file_size(attachment.path)))
            self._parts.append(b'"}')
        self._parts.append(b"]}")

    @property
    def length(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else 4 * -(-p[1] // 3) for p in self._parts)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            if isinstance(part, bytes):
                yield part
            else:
                for chunk in _base64_chunks(*part):
                    yield chunk

    async def read(self) -> bytes:
        """The whole body at once (tests)."""
        return b"".join([chunk async for chunk in self])


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise InputError(f"Cannot read the attachment {path.name}: {exc.strerror}") from None


def _base64_chunks(path: Path, size: int) -> Iterator[bytes]:
    """The base64 of exactly ``size`` bytes of a file, a chunk at a time."""
    left = size
    with open(path, "rb") as file:
        while left > 0:
            chunk = file.read(min(_READ_CHUNK, left))
            if not chunk:
                # Content-Length is already on the wire: a shorter body must fail, never pass as a smaller file.
                raise InputError(f"The attachment {path.name} changed while it was being sent")
            left -= len(chunk)
            yield base64.b64encode(chunk)


@dataclass(frozen=True)
class Credentials:
    token: str
    username: str
    password: str


class PecMassivaClient:
    """The seven PEC Massiva endpoints. Every method raises a ``pec_mcp.errors`` error on failure."""

    def __init__(self, http: httpx.AsyncClient, credentials: Credentials) -> None:
        self._http = http
        self._creds = credentials
        self._headers = {
            "Authorization": f"Bearer {credentials.token}",
            "x-username": credentials.username,
            "x-password": credentials.password,
        }

    @property
    def mailbox(self) -> str:
        return self._creds.username

    async def send(
        self,
        *,
        sender: str,
        recipients: Sequence[str],
        subject: str,
        body: str,
        attachments: Sequence[Attachment] = (),
        on_dispatch: Callable[[], Awaitable[None]] | None = None,
    ) -> SendResult:
        """POST /send: one message to one or many recipients, paced to the provider's limit.

        ``on_dispatch`` is awaited after the pacing wait, right before the request goes out: the send path uses it
        to record that the request is on its way. Raises OutcomeUnknown if the answer is lost after that.
        """
        payload = SendBody(self.send_fields(sender=sender, recipients=recipients, subject=subject, body=body),
                           attachments)
        headers = {"Authorization": self._headers["Authorization"], "Content-Type": "application/json",
                   "Content-Length": str(payload.length)}
        extensions: dict[str, Any] = {PACE: True}
        if on_dispatch is not None:
            extensions[ON_DISPATCH] = on_dispatch
        response = await call(
            PROVIDER,
            is_send=True,
            request=lambda: self._http.post("/send", content=payload, headers=headers, extensions=extensions),
        )
        data = _checked_send(response)
        return _send_result(data, response.status_code)

    def send_fields(self, *, sender: str, recipients: Sequence[str], subject: str, body: str) -> dict[str, Any]:
        """The POST /send fields other than the attachments, in the order they go on the wire."""
        return {
            "sender": sender,
            "recipient": list(recipients),
            "subject": subject,
            "body": body,
            "username": self._creds.username,
            "password": self._creds.password,
        }

    async def receipts(self, *, message_id: str) -> list[ReceiptEmail]:
        """GET /send/{code}: every receipt received so far; an empty list while none has arrived."""
        code = _code(message_id)
        try:
            data = await self._get(f"/send/{code}")
        except NotFound as exc:
            if "empty" in exc.message.lower():
                return []  # "Result empty": no receipt yet, or an unknown code; the caller tells them apart
            raise
        return _parse_list(ReceiptEmail, data.get("data"))

    async def delete_receipts(self, *, message_id: str) -> None:
        """DELETE /send/{code}: remove the receipts of a sending from the inbox."""
        await self._delete(f"/send/{_code(message_id)}")

    async def inbox(self, *, query: str | None = None, page: int = 1) -> InboxPage:
        """GET /inbox: one page of 25 messages, optionally filtered by ``query``."""
        params: dict[str, Any] = {"page": page}
        if query:
            params["q"] = query
        data = await self._get("/inbox", params=params)
        items = _parse_list(InboxItem, data.get("data"))
        total = _as_int(data.get("total"), default=len(items))
        pages = _as_int(data.get("n_of_pages"), default=-(-total // PAGE_SIZE))
        return InboxPage(items=items, page=_as_int(data.get("page"), default=page), total=total, pages=pages)

    async def message(self, *, inbox_id: int) -> InboxMessage:
        """GET /inbox/{id}: one message, its url-encoded body decoded."""
        data = await self._get(f"/inbox/{int(inbox_id)}")
        try:
            message = InboxMessage.model_validate(data.get("data") or {})
        except ValidationError as exc:
            raise BadResponse(f"{PROVIDER} sent a message in an unexpected shape", provider=PROVIDER) from exc
        return message.model_copy(update={"body": unquote_plus(message.body)})

    async def delete_message(self, *, inbox_id: int) -> None:
        """DELETE /inbox/{id}."""
        await self._delete(f"/inbox/{int(inbox_id)}")

    async def quota(self, *, mailbox: str = "INBOX") -> Quota:
        """GET /quota/{mailbox}: usage and limit as the provider gives them."""
        data = await self._get(f"/quota/{mailbox}")
        try:
            return Quota.model_validate(data.get("data") or {})
        except ValidationError as exc:
            raise BadResponse(f"{PROVIDER} sent a quota in an unexpected shape", provider=PROVIDER) from exc

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await call(
            PROVIDER, is_send=False, request=lambda: self._http.get(path, params=params, headers=self._headers)
        )
        return _checked(response)

    async def _delete(self, path: str) -> dict[str, Any]:
        response = await call(PROVIDER, is_send=False, request=lambda: self._http.delete(path, headers=self._headers))
        return _checked(response)


def _code(message_id: str) -> str:
    match = _SEND_CODE.match(message_id)
    if not match:
        raise NotFound(f"{message_id!r} is not a PEC Massiva sending code", provider=PROVIDER, status=None)
    return match.group(1)


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON envelope of a successful answer, or the matching error raised."""
    return _success(response, read_json(response, PROVIDER))


def _success(response: httpx.Response, data: Any) -> dict[str, Any]:
    if response.is_success and isinstance(data, dict) and data.get("success") is not False:
        return data
    raise provider_error(response, data)


def _checked_send(response: httpx.Response) -> dict[str, Any]:
    """:func:`_checked` for POST /send, where an answer that is not the provider's own may hide a sent message.

    A 5xx that is not the provider's JSON envelope (a proxy's HTML 502/504, an empty or invalid body) and a 2xx
    that cannot be read both mean the request reached something that may have processed it: OutcomeUnknown.
    The provider's own envelope (500 "MySQL Error", ``success: false``) and any 4xx say it was not sent.
    """
    status = response.status_code
    try:
        data = read_json(response, PROVIDER)
    except PecError as exc:
        if status >= 500 or response.is_success:
            raise _lost_answer(status, exc.message) from exc
        raise
    envelope = isinstance(data, dict) and "success" in data
    if (status >= 500 or response.is_success) and not envelope and not _looks_sent(data):
        raise _lost_answer(status, f"{PROVIDER} answered HTTP {status} with an unexpected body")
    return _success(response, data)


def _looks_sent(data: Any) -> bool:
    # A success answer without the ``success`` key but with a sending code is still an answer we can read.
    return isinstance(data, dict) and bool(data.get("message_id"))


def _lost_answer(status: int, what: str) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"{what.rstrip('.')}, not its own answer: the request may have been processed behind it, so the message "
        "may or may not have been sent",
        provider=PROVIDER,
    )


def provider_error(response: httpx.Response, data: Any) -> ProviderError:
    """Map one failed answer (any status, ``success:false`` included) to the error tree.

    Hints depend on the endpoint that failed, so that each names a cause that can apply to that call.
    """
    status = response.status_code
    text = message_of(data) or f"HTTP {status}"
    said = f"{PROVIDER} said: {text}"
    method, path = _request_of(response)
    is_send = method == "POST" and path.endswith("/send")
    if status in (401, 403) or "authorization" in text.lower():
        return AuthenticationFailed(
            f"{said} (token or mailbox credentials refused)", provider=PROVIDER, status=status,
            hint="Check pecmassiva.token and the mailbox credentials pecmassiva.username and pecmassiva.password "
            "(or PEC_MCP_PECMASSIVA__TOKEN, ...): sandbox credentials work only on the sandbox host.")
    if status == 404 or (not is_send and ("not found" in text.lower() or "result empty" in text.lower())):
        return NotFound(said, provider=PROVIDER, status=status, hint=_not_found_hint(path))
    if status == 429:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        return RateLimited(said, provider=PROVIDER, status=status, retry_after=wait)
    if status >= 500:
        return ProviderUnavailable(said, provider=PROVIDER, status=status)
    if 400 <= status < 500:
        return Rejected(said, provider=PROVIDER, status=status, hint=_rejection_hint(path, is_send, text))
    return Rejected(said, provider=PROVIDER, status=status)


def _request_of(response: httpx.Response) -> tuple[str, str]:
    try:
        return response.request.method, response.request.url.path
    except RuntimeError:  # a response built without its request (never the case for a client's answers)
        return "", ""


def _not_found_hint(path: str) -> str | None:
    if "/send/" in path:
        return "Check the message_id (find_pec_sendings lists the sendings made through pec-mcp)."
    if "/inbox/" in path:
        return "Check the inbox_id (list_pec_inbox shows the ids of the messages in the inbox)."
    return None


def _rejection_hint(path: str, is_send: bool, text: str) -> str | None:
    if "/quota/" in path:
        return "PEC Massiva reports the quota of the mailbox named INBOX only: call it with mailbox INBOX."
    if is_send and "sender" in text.lower():
        return ("PEC Massiva sends only from the account's own mailbox (pecmassiva.username): remove "
                "pecmassiva.sender or set it to that mailbox. Nothing was sent.")
    if is_send:
        return "Check the addresses, subject, body and attachments. Nothing was sent."
    return None


def _send_result(data: dict[str, Any], status: int) -> SendResult:
    raw_id = str(data.get("message_id") or "").strip()
    if not _SEND_CODE.match(raw_id):
        # The provider reports some delivery failures as text in message_id ("error occurred connecting to SMTP").
        problem = raw_id or "no sending code"
        raise ProviderUnavailable(
            f"{PROVIDER} accepted the request (HTTP {status}) but returned no sending code: {problem[:200]}",
            provider=PROVIDER,
            status=status,
            hint="Check the inbox for an ACCETTAZIONE receipt before sending again.",
        )
    return SendResult(message_id=raw_id, sent=_as_int(data.get("sent"), default=0))


def _parse_list(model: type[_Wire], raw: Any) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raw = [raw]
    try:
        return [model.model_validate(item) for item in raw]
    except ValidationError as exc:
        raise BadResponse(f"{PROVIDER} sent a list in an unexpected shape", provider=PROVIDER) from exc


def _as_int(value: Any, *, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default
