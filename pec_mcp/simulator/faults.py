"""Fault injection for the whole simulator: a plan of what goes wrong, where and how often, seeded to replay.

The plan is applied by :class:`FaultInjector`, an ASGI layer around the simulator app, so one seam serves all
three providers. Some faults answer instead of the provider (nothing happens behind them); others let the
request through first, so the provider does the work, and then spoil or lose its answer (the send happened but
the client cannot know it):

==================  =========================  =============================================================
kind                reaches the provider?      what the client sees
==================  =========================  =============================================================
``429``             no                         429 with ``Retry-After`` (``retry_after=S``, default 1)
``500-html``        no                         a proxy's HTML error page with that status (also 502, 503)
``success-false``   no                         HTTP 200 with the provider's own refusal envelope
``drop``            no                         the connection closes before any answer
``drop-after``      yes                        the provider did the work, then the connection closes
``slow``            yes                        the answer comes ``delay=S`` seconds late (default 2)
``truncated``       yes                        the provider's answer cut in half (invalid JSON)
``invalid-json``    yes                        a PHP warning instead of the provider's JSON, same status
``empty-204``       yes                        204 No Content, whatever the provider answered
``respond``         no                         exactly the answer the rule gives: status, body, content type
==================  =========================  =============================================================

A plan is written as comma-separated rules plus an optional seed, for ``pec-mcp simulate --faults`` and
``POST /__simulator__/faults``::

    pecmassiva:/send:drop-after:0.1, pecmassiva:*:503-html:0.05, mensatek:*:429:next3:retry_after=2, seed=7

Each rule is ``provider:path:kind:chance[:option=value...]``. ``provider`` is ``pecmassiva``, ``openapi_pec``,
``mensatek`` or ``*``. ``path`` is a glob on the path below the provider's mount (``/send``, ``/inbox*``,
``/EnviarEMAILCERTIFICADO``, ``*``). ``chance`` is a probability (``0.1``) or ``nextN``: the next N matching
requests, then the rule is spent. Options: ``method=POST`` (only that method), ``burst=N`` (once it fires, the
rule also hits the following N-1 matching requests: bursts of 429), ``retry_after=S``, ``delay=S``. The first
rule that fires wins. Every injected fault is counted in ``/__simulator__/stats`` under ``faults``.

``respond`` gives a whole answer of its own: a provider's error shape the other kinds do not cover, a foreign
proxy's page, a success envelope with something odd inside. Its options are ``status=N`` (default 200),
``content_type=T`` (default ``application/json``), ``body=B`` (percent-encoded, so that ``,`` and ``:`` can be
written as ``%2C`` and ``%3A``) and ``retry_after=S`` (adds a ``Retry-After`` header)::

    openapi_pec:/pec/*/rinnovo:respond:next1:status=503:body=%7B%22success%22%3Afalse%7D

In code, tests build the same rule with :func:`respond` and a :class:`Reply`::

    simulator.faults = FaultPlan([respond(Reply.json({"success": False, "message": "x"}, 500), "pecmassiva")])
"""

from __future__ import annotations

import fnmatch
import json
import logging
import random
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import anyio
import httpx

if TYPE_CHECKING:
    from pec_mcp.simulator.stats import Stats

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["429", "500-html", "502-html", "503-html", "success-false", "drop", "drop-after", "slow",
                    "truncated", "invalid-json", "empty-204", "respond"]
KINDS: tuple[str, ...] = get_args(FaultKind)
# Faults that let the provider do its work before spoiling the answer.
FORWARDED: frozenset[str] = frozenset({"drop-after", "slow", "truncated", "invalid-json", "empty-204"})
PROVIDERS = ("pecmassiva", "openapi_pec", "mensatek")
ALIASES = {"openapi-pec": "openapi_pec", "openapi": "openapi_pec", "any": "*"}

HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>{status} {reason}</title></head>"
    "<body><center><h1>{status} {reason}</h1></center><hr><center>nginx</center></body></html>"
)
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable"}
PHP_WARNING = (
    "<br />\n<b>Warning</b>:  mysqli_connect(): (HY000/2002): Connection refused in "
    "<b>/var/www/api/db.php</b> on line <b>12</b><br />\n{\"success\":"
)


class FaultSpecError(ValueError):
    """A fault plan that cannot be read; the message names the rule and what is wrong with it."""


@dataclass(frozen=True)
class Reply:
    """The whole answer a ``respond`` rule gives in the provider's place."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, body: str, content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> Reply:
        return cls(status, body.encode(), content_type, tuple((headers or {}).items()))

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls.text(status, json.dumps(data), "application/json", headers)

    def describe(self) -> dict[str, Any]:
        return {"status": self.status, "content_type": self.content_type,
                "body": self.body.decode("utf-8", "replace"), "headers": dict(self.headers)}


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised by the simulator to close a connection without an answer.

    It is httpx's own error so that, in process, ``httpx.ASGITransport`` hands the client exactly what a dropped
    connection gives over the network; under uvicorn any exception after the response started closes the socket.
    """


@dataclass
class FaultRule:
    """One line of a plan: which requests it may hit, what it does, and how often."""

    kind: FaultKind
    provider: str = "*"
    path: str = "*"
    method: str | None = None
    probability: float = 1.0
    count: int | None = None  # the next N matching requests, then spent; None: no limit
    burst: int = 1
    retry_after: float = 1.0
    delay: float = 2.0
    reply: Reply | None = None  # the answer of a ``respond`` rule
    _burst_left: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault {self.kind!r}; known: {', '.join(KINDS)}")
        if self.kind == "respond" and self.reply is None:
            self.reply = Reply()
        if self.kind != "respond" and self.reply is not None:
            raise FaultSpecError(f"only a respond rule gives its own answer, not {self.kind!r}")
        self.provider = ALIASES.get(self.provider, self.provider)
        if self.provider != "*" and self.provider not in PROVIDERS:
            raise FaultSpecError(f"unknown provider {self.provider!r}; known: {', '.join(PROVIDERS)}, *")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError(f"probability {self.probability} is not between 0 and 1")
        if (self.count is not None and self.count < 1) or self.burst < 1:
            raise FaultSpecError("next N and burst need N >= 1")
        if self.method is not None:
            self.method = self.method.upper()

    @property
    def spent(self) -> bool:
        return self.count is not None and self.count <= 0

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.path}:{self.kind}"

    def matches(self, provider: str, method: str, path: str) -> bool:
        return (
            not self.spent
            and self.provider in ("*", provider)
            and (self.method is None or self.method == method)
            and (self.path == "*" or fnmatch.fnmatchcase(path, self.path))
        )

    def fires(self, rng: random.Random) -> bool:
        """Whether this matching request is hit; consumes the count and one random draw as it goes."""
        if self._burst_left > 0:
            self._burst_left -= 1
        elif self.count is None and rng.random() >= self.probability:
            return False
        else:
            self._burst_left = self.burst - 1
        if self.count is not None:
            self.count -= 1
        return True

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "provider": self.provider, "path": self.path, "method": self.method, "kind": self.kind,
            "probability": self.probability, "next": self.count, "burst": self.burst,
            "retry_after": self.retry_after, "delay": self.delay}
        if self.reply is not None:
            described["reply"] = self.reply.describe()
        return described


@dataclass
class FaultPlan:
    """The rules in force and the seeded random source that decides when a probabilistic rule fires."""

    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    seen: Counter[str] = field(default_factory=Counter)  # "provider METHOD /path" -> requests seen under this plan

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """A plan from the text syntax of this module's docstring; an empty text is a plan without faults."""
        rules: list[FaultRule] = []
        seed = 0
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item.startswith("seed="):
                seed = _number(item, item[5:], int)
                continue
            rules.append(parse_rule(item))
        return cls(rules, seed)

    def pick(self, provider: str, method: str, path: str) -> FaultRule | None:
        """The rule that hits this request, if any (the first one that fires)."""
        self.seen[f"{provider} {method} {path}"] += 1
        for rule in self.rules:
            if rule.matches(provider, method, path) and rule.fires(self._rng):
                return rule
        return None

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [r.describe() for r in self.rules], "seen": dict(self.seen)}


def parse_rule(text: str) -> FaultRule:
    """One ``provider:path:kind:chance[:option=value...]`` rule."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) < 4:
        raise FaultSpecError(f"{text!r}: a rule is provider:path:kind:chance[:option=value...]")
    provider, path, kind, chance, *options = parts
    rule: dict[str, Any] = {"provider": provider or "*", "path": path or "*", "kind": kind}
    if chance.lower().startswith("next"):
        rule["count"] = _number(text, chance[4:] or "1", int)
    else:
        rule["probability"] = _number(text, chance, float)
    answer: dict[str, str] = {}
    for option in options:
        key, _, value = option.partition("=")
        if key == "method":
            rule["method"] = value
        elif key == "burst":
            rule["burst"] = _number(text, value, int)
        elif key in ("retry_after", "delay"):
            rule[key] = _number(text, value, float)
            if key == "retry_after":
                answer[key] = value
        elif key in REPLY_OPTIONS and kind == "respond":
            answer[key] = value
        else:
            answers = REPLY_OPTIONS if kind == "respond" else ()
            known = ", ".join(("method", "burst", "retry_after", "delay", *answers))
            raise FaultSpecError(f"{text!r}: unknown option {key!r} ({known})")
    if kind == "respond":
        rule["reply"] = _reply(text, answer)
    return FaultRule(**rule)


REPLY_OPTIONS = ("status", "content_type", "body")


def _reply(text: str, options: dict[str, str]) -> Reply:
    """The answer of a ``respond`` rule written in text: its body is percent-encoded."""
    headers = {"Retry-After": options["retry_after"]} if "retry_after" in options else None
    status = _number(text, options.get("status", "200"), int)
    if not 100 <= status <= 599:
        raise FaultSpecError(f"{text!r}: status {status} is not an HTTP status")
    return Reply.text(status, urllib.parse.unquote(options.get("body", "")),
                      options.get("content_type", "application/json"), headers)


def _number(text: str, value: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise FaultSpecError(f"{text!r}: {value!r} is not a number") from None


def rule(kind: FaultKind, provider: str = "*", path: str = "*", *, times: int | None = None,
         probability: float = 1.0, **options: Any) -> FaultRule:
    """A rule for tests: ``rule("drop-after", "pecmassiva", "/send", times=1)``."""
    return FaultRule(kind=kind, provider=provider, path=path, count=times, probability=probability, **options)


def respond(reply: Reply, provider: str = "*", path: str = "*", *, method: str | None = None,
            times: int | None = None, probability: float = 1.0) -> FaultRule:
    """A rule for tests that answers ``reply`` in the provider's place (to every matching request, or ``times``)."""
    return FaultRule(kind="respond", provider=provider, path=path, method=method, count=times,
                     probability=probability, reply=reply)


class FaultInjector:
    """ASGI layer in front of the simulator that applies ``holder.faults`` to every provider request.

    ``mounts`` maps each provider to its path prefix; requests elsewhere (``/__simulator__``) pass untouched.
    """

    def __init__(self, app: ASGIApp, mounts: dict[str, str], plan: Callable[[], FaultPlan], stats: Stats) -> None:
        self.app = app
        self.mounts = mounts
        self.plan = plan
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        located = self._locate(scope["path"])
        fault = self.plan().pick(located[0], scope["method"], located[1]) if located else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        assert located is not None
        self.stats.faults[f"{located[0]}:{fault.kind}"] += 1
        if fault.kind in FORWARDED:
            await self._spoil(fault, located[0], scope, receive, send)
        else:
            await self._refuse(fault, located[0], send)

    def _locate(self, path: str) -> tuple[str, str] | None:
        for provider, prefix in self.mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                return provider, path[len(prefix):] or "/"
        return None

    async def _refuse(self, fault: FaultRule, provider: str, send: Send) -> None:
        """Answer in the provider's place: nothing reaches it."""
        if fault.kind == "drop":
            raise DroppedConnection("the simulator dropped the connection (fault 'drop')")
        if fault.kind == "429":
            body = json.dumps({"success": False, "message": "Too many requests"}).encode()
            headers = {"content-type": "application/json", "retry-after": f"{fault.retry_after:g}"}
            await _answer(send, 429, headers, body)
        elif fault.kind == "success-false":
            await _answer(send, 200, {"content-type": "application/json"}, refusal(provider))
        elif fault.reply is not None:  # respond
            reply = fault.reply
            await _answer(send, reply.status, {"content-type": reply.content_type, **dict(reply.headers)}, reply.body)
        else:
            status = int(fault.kind.split("-")[0])
            page = HTML_PAGE.format(status=status, reason=REASONS[status]).encode()
            await _answer(send, status, {"content-type": "text/html"}, page)

    async def _spoil(self, fault: FaultRule, provider: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the provider answer, keep its answer here, then lose, delay or garble it."""
        captured = _Captured()
        await self.app(scope, receive, captured)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in captured.headers}
        body = captured.body
        if fault.kind == "drop-after":
            await send({"type": "http.response.start", "status": captured.status,
                        "headers": [(b"content-length", str(max(len(body), 1)).encode())]})
            raise DroppedConnection("the simulator dropped the connection after the request was handled")
        if fault.kind == "slow":
            await anyio.sleep(fault.delay)  # real time, on purpose: the client's timeout is what is under test
            await _answer(send, captured.status, headers, body)
            return
        headers.pop("content-length", None)
        if fault.kind == "empty-204":
            await _answer(send, 204, {}, b"")
        elif fault.kind == "truncated":
            await _answer(send, captured.status, headers, body[: max(1, len(body) // 2)])
        else:  # invalid-json
            headers["content-type"] = "application/json"
            await _answer(send, captured.status, headers, PHP_WARNING.encode())


def refusal(provider: str) -> bytes:
    """The provider's own "it did not work" envelope, as it sends it with HTTP 200."""
    if provider == "mensatek":
        data: dict[str, Any] = {"Res": "-3", "Error": "Error temporal del servicio, inténtelo más tarde"}
    elif provider == "openapi_pec":
        data = {"success": False, "message": "Servizio temporaneamente non disponibile", "error": 500, "data": None}
    else:
        data = {"success": False, "message": "Servizio temporaneamente non disponibile"}
    return json.dumps(data).encode()


class _Captured:
    """An ASGI ``send`` that keeps the response instead of sending it."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


async def _answer(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items() if k.lower() != "content-length"]
    if status != 204:
        raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body if status != 204 else b""})


class QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for every connection the simulator drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, DroppedConnection)

