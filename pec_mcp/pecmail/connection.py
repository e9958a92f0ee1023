"""What the IMAP and SMTP clients share: where a server is, how to log in, TLS that is always verified, errors.

Failures of sockets, TLS and mail servers are mapped into the one error tree (``pec_mcp.errors``) here, so that
both clients say the same thing for the same cause, and no message ever carries the password.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from pec_mcp.errors import AuthenticationFailed, ConfigError, PecError, ProviderUnavailable
from pec_mcp.pecmail.presets import Security


@dataclass(frozen=True)
class Endpoint:
    """One server: host, port, implicit TLS or STARTTLS, and extra CA certificates to trust for it."""

    host: str
    port: int
    security: Security
    ca_file: Path | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Login:
    """A mailbox login. The password never appears in a repr, a log line or an error."""

    username: str
    password: str = field(repr=False)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client TLS context that verifies the server's certificate and name, always.

    ``ca_file`` adds trusted CAs (a private or test server) to the system's; it never turns verification off.
    """
    context = ssl.create_default_context()
    if ca_file is not None:
        path = ca_file.expanduser()
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"The CA file {path} cannot be read as PEM certificates ({type(exc).__name__})",
                hint="Set ca_file to a PEM file holding the CA certificate(s) of the mail server.",
            ) from None
    return context


def connection_error(exc: BaseException, endpoint: Endpoint, *, protocol: str, doing: str) -> PecError:
    """A socket or TLS failure as a clear error: what failed, where, and what to do."""
    where = f"the {protocol} server {endpoint.where}"
    provider = f"{protocol} {endpoint.host}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ProviderUnavailable(
            f"The TLS certificate of {where} could not be verified ({exc.verify_message or 'untrusted'})",
            provider=provider, retryable=False,
            hint="Check the host name; for a private server, set ca_file of the account to the PEM of its CA. "
            "Certificate checks cannot be turned off.",
        )
    if isinstance(exc, ssl.SSLError):
        return ProviderUnavailable(
            f"The TLS handshake with {where} failed ({exc.reason or type(exc).__name__})", provider=provider,
            retryable=False,
            hint="Check the port and the security setting of the account (\"tls\" for 993/465, \"starttls\" for "
            "143/587).",
        )
    if isinstance(exc, socket.gaierror):
        return ProviderUnavailable(
            f"The host name of {where} cannot be resolved", provider=provider, retryable=False,
            hint="Check imap_host / smtp_host (or the provider preset) of the account.",
        )
    if isinstance(exc, ConnectionRefusedError):
        return ProviderUnavailable(f"{where} refused the connection", provider=provider,
                                   hint="Check the host and port of the account; the server may be down.")
    if isinstance(exc, TimeoutError | socket.timeout):
        return ProviderUnavailable(f"{where} did not answer in time while {doing}", provider=provider)
    return ProviderUnavailable(f"The connection to {where} was lost while {doing} ({type(exc).__name__})",
                               provider=provider)


def login_refused(endpoint: Endpoint, login: Login, *, protocol: str) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"The {protocol} server {endpoint.where} refused the login of {login.username}",
        provider=f"{protocol} {endpoint.host}",
        hint="Check username and password of the account (PEC_MCP_ACCOUNTS__<NAME>__PASSWORD); some providers "
        "need a separate password for mail programs.",
    )
