"""The MCP face of pec-mcp: ``build_server(settings)`` returns a ready MCPServer."""

from pec_mcp.server.app import build_server

__all__ = ["build_server"]
