"""The baseline for start-up and shutdown: a bare one-tool MCPServer on stdio, as the SDK's docs write it."""

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("bare")


@mcp.tool()
def echo(text: str) -> str:
    """Return the text."""
    return text


if __name__ == "__main__":
    mcp.run()
