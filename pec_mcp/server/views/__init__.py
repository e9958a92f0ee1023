"""MCP App views (the MCP Apps extension): HTML that hosts with Apps show next to a tool's result.

``get_pec_receipts`` is drawn as a receipt timeline and ``get_bulk_pec`` as a job's progress. Each view is one
self-contained HTML document (its style and script inline, no request to anyone), served as a ``ui://`` resource
of type ``text/html;profile=mcp-app`` through the SDK's own :class:`mcp.server.apps.Apps`. The tools name their view
in ``_meta.ui.resourceUri``; their results are the same for every client, so a host without Apps shows exactly
the text and structured result it always did.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from typing import Any

from mcp.server.apps import Apps

RECEIPTS_VIEW = "ui://pec-mcp/receipts.html"
BULK_JOB_VIEW = "ui://pec-mcp/bulk-job.html"

# view URI -> (the toolset whose tool shows it, file, title)
VIEWS = {
    RECEIPTS_VIEW: ("pec", "receipts.html", "Receipt timeline of a PEC sending"),
    BULK_JOB_VIEW: ("bulk", "bulk-job.html", "Progress of a bulk PEC job"),
}
BRIDGE_MARK = "<!-- bridge -->"


def view_html(file: str) -> str:
    """A view's document with the shared postMessage bridge put inline (a view may load nothing)."""
    folder = resources.files("pec_mcp.server").joinpath("views")
    bridge = folder.joinpath("bridge.js").read_text(encoding="utf-8")
    return folder.joinpath(file).read_text(encoding="utf-8").replace(BRIDGE_MARK, f"<script>\n{bridge}</script>")


def views_extension(enabled: Iterable[str]) -> Apps:
    """The Apps extension with the views of the enabled toolsets (advertised to clients at the handshake)."""
    apps = Apps()
    toolsets = set(enabled)
    for uri, (toolset, file, title) in VIEWS.items():
        if toolset in toolsets:
            apps.add_html_resource(uri, view_html(file), name=file.removesuffix(".html"), title=title,
                                   description=f"{title}: an MCP App view; it makes no network request")
    return apps


def view_meta(uri: str) -> dict[str, Any]:
    """The tool ``_meta`` that names its view, as ``Apps.tool`` writes it.

    ``Apps.tool`` registers its tools when the server is built, while pec-mcp registers its toolsets later (see
    :mod:`pec_mcp.server.catalogue`); the tools carry the same ``_meta.ui`` through ``MCPServer.tool``.
    """
    return {"ui": {"resourceUri": uri}}
