"""pec-mcp: an MCP server for Italian certified email (PEC) and Spanish certified email."""

__version__ = "0.1.0"
