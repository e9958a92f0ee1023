"""The listening socket of an HTTP command (``serve --transport http``, ``simulate``), bound before the server runs.

Bound by the command itself rather than by uvicorn: a port in use is one clear line and exit status 2 instead of a
log record, and with ``--port 0`` the system's choice of a free port is known, to print. Tests and scripts start
the commands that way, so that no port is chosen by one process and taken by another before it is bound.
"""

from __future__ import annotations

import socket

from pec_mcp.errors import ConfigError

BACKLOG = 2048  # uvicorn's own: a client that comes while the server finishes starting waits, it is not refused


def listen(host: str, port: int, *, command: str) -> socket.socket:
    """A socket bound to ``host:port`` (0: a free port) and listening; ConfigError when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host.strip("[]"), port))
    except OSError as exc:
        listening.close()
        raise ConfigError(f"{command} cannot listen on {host}:{port} ({exc.strerror or exc}); another program may "
                          "be using that port", hint="Pick another with --port, or --port 0 for a free one.") from None
    listening.listen(BACKLOG)
    return listening


def bound_port(listening: socket.socket) -> int:
    port: int = listening.getsockname()[1]
    return port
