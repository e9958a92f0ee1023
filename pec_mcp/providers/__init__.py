"""Small client libraries for the three provider APIs; they know nothing of MCP."""
