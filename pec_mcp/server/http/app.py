"""The HTTP face: ``/mcp`` (streamable HTTP) behind a bearer token, the webhook receivers and the dashboard."""

from __future__ import annotations

import hmac
import json
import logging
import sys
from collections.abc import Callable

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pec_mcp.config import Settings, is_loopback
from pec_mcp.dashboard import dashboard_routes
from pec_mcp.errors import ConfigError
from pec_mcp.paths import MB
from pec_mcp.server.app import build
from pec_mcp.server.http.users import SCOPE_KEY, TokenTable
from pec_mcp.server.http.webhooks import webhook_routes

log = logging.getLogger("pec_mcp.http")

MCP_PATH = "/mcp"
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def transport_security(host: str) -> TransportSecuritySettings:
    """DNS-rebinding protection (the Host and Origin checks) for the address the server listens on.

    Loopback: only loopback names, as the SDK does (and also for 127.0.0.2 or [::1], which the SDK misses). A
    specific non-loopback address or name: that name, on any port. A wildcard bind (0.0.0.0, ::) has no one name
    to check, since clients reach it by any of the machine's names: there the bearer token, required beyond
    loopback, is the protection (a page in a browser cannot learn it), and the Host check is off.
    """
    if host in WILDCARD_HOSTS:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    name = f"[{host.strip('[]')}]" if ":" in host else host
    names = [*LOOPBACK_NAMES, name] if is_loopback(host) else [name]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[entry for n in dict.fromkeys(names) for entry in (n, f"{n}:*")],
        allowed_origins=[entry for n in dict.fromkeys(names) for scheme in ("http", "https")
                         for entry in (f"{scheme}://{n}", f"{scheme}://{n}:*")],
    )


class BearerAuth:
    """Every request under ``/mcp`` must carry a known token as ``Authorization: Bearer <token>``.

    With ``[http.users.*]`` each token names its user, who is put in the ASGI scope for the MCP layer (see
    :mod:`pec_mcp.server.http.users`); otherwise the single ``http.auth_token``. Tokens are compared in constant time
    and never logged.
    """

    def __init__(self, app: ASGIApp, *, token: str | None = None, users: TokenTable | None = None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(MCP_PATH):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if self.users:
                user = self.users.find(given)
                if user is None:
                    await _unauthorized(send)
                    return
                scope = {**scope, SCOPE_KEY: user}
            elif self.expected is not None and not hmac.compare_digest(given, self.expected):
                await _unauthorized(send)
                return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send) -> None:
    await _json(send, 401, {"error": "unauthorized",
                            "message": "Send your token as 'Authorization: Bearer <token>'."},
                extra=[(b"www-authenticate", b'Bearer realm="pec-mcp"')])


class BodyLimit:
    """Refuse request bodies over the limit with 413, by Content-Length and while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _json(send, 413, {"error": "payload_too_large", "message": f"Bodies are limited to "
                                    f"{self.max_bytes} bytes."})
            return
        seen = 0
        too_large = False
        started = False

        async def limited() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Tell the app the client went away; the 413 is sent below, once the app has stopped.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if too_large:
                return  # whatever the app answers to a vanished client is replaced by the 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited, tracked)
        if too_large and not started:
            await _json(send, 413, {"error": "payload_too_large", "message": "The body is too large."})


async def _json(send: Send, status: int, body: dict[str, str], extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def build_http_app(settings: Settings, *, host: str) -> ASGIApp:
    """The whole HTTP app; refuses to listen beyond loopback without ``http.auth_token`` or ``http.users``."""
    users = TokenTable(settings)
    token = settings.http.auth_token.get_secret_value() if settings.http.auth_token else None
    if users and token:
        log.warning("http.users is set: the single http.auth_token is not accepted; give its holder a user")
        token = None
    if not is_loopback(host) and not token and not users:
        raise ConfigError(
            f"Refusing to listen on {host} without http.auth_token: anyone on the network could send PEC",
            hint="Set http.auth_token (or PEC_MCP_HTTP__AUTH_TOKEN) or [http.users.<name>], or listen on "
            "127.0.0.1.",
        )
    built = build(settings, replica=True)
    max_bytes = int(settings.http.max_body_mb * MB)
    mcp_app: Starlette = built.mcp.streamable_http_app(
        streamable_http_path=MCP_PATH, host=host, max_request_body_size=max_bytes,
        transport_security=transport_security(host),
    )
    for route in [*webhook_routes(settings, built.holder), *dashboard_routes(settings, built.holder)]:
        mcp_app.router.routes.append(route)
    app: ASGIApp = BodyLimit(mcp_app, max_bytes)
    if token or users:
        app = BearerAuth(app, token=token, users=users)
    return app


def preflight(settings: Settings, *, replica: bool) -> None:
    """Before serving: the store is reachable, its schema fits, and (HTTP) no live replica holds another state key.

    Done before the server starts so that a problem is one clear line and exit status 2, not a traceback.
    """
    from pec_mcp.server.http.replicas import Replica, state_key_id
    from pec_mcp.store import Store, store_location

    store = Store(store_location(settings.store), upgrade=settings.store.url is None)
    try:
        if replica:
            Replica(store, state_key_id(settings)).check()
    finally:
        store.close()


def serve_http(settings: Settings, *, host: str, port: int, built: Callable[[], None] = lambda: None) -> None:
    """Build the app, check the store, bind the port (0: a free one) and say where, call ``built`` (the server is
    whole: start-up is over) and serve."""
    import uvicorn

    from pec_mcp.listening import bound_port, listen

    app = build_http_app(settings, host=host)
    preflight(settings, replica=True)
    listening = listen(host, port, command="serve")
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    print(f"pec-mcp serving MCP on http://{shown}:{bound_port(listening)}{MCP_PATH}", file=sys.stderr)
    built()
    # log_config=None: uvicorn's records go to the root handler, where the redacting filter removes secrets (the
    # access log, at INFO, is off at this level anyway; a webhook token in its query string would be a secret).
    config = uvicorn.Config(app, host=host, port=bound_port(listening), log_level="warning", log_config=None)
    uvicorn.Server(config).run(sockets=[listening])
