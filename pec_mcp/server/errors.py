"""The one place where pec-mcp errors become MCP tool errors, with secrets removed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError

from pec_mcp.errors import NotFound, PecError
from pec_mcp.redaction import Redactor

log = logging.getLogger("pec_mcp.server")

UNEXPECTED = (
    "pec-mcp met an unexpected internal problem ({kind}). Nothing more is known here; the server's log has the "
    "details. If this was a send, check find_pec_sendings before sending again."
)


@contextmanager
def tool_errors(redactor: Redactor) -> Iterator[None]:
    """Run a tool body: a PecError becomes a ToolError the model can act on; anything else is logged and explained."""
    try:
        yield
    except ToolError:
        raise
    except PecError as exc:
        raise ToolError(redactor(exc.explain())) from None
    except Exception as exc:
        log.exception("unexpected error in a tool")
        raise ToolError(UNEXPECTED.format(kind=type(exc).__name__)) from None


@contextmanager
def resource_errors(redactor: Redactor) -> Iterator[None]:
    """The same for resources, which answer with JSON-RPC errors instead of error results."""
    try:
        yield
    except ResourceError:
        raise
    except NotFound as exc:
        raise ResourceNotFoundError(redactor(exc.explain())) from None
    except PecError as exc:
        raise ResourceError(redactor(exc.explain())) from None
    except Exception as exc:
        log.exception("unexpected error in a resource")
        raise ResourceError(UNEXPECTED.format(kind=type(exc).__name__)) from None
