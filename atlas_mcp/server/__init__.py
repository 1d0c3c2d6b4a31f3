"""Everything MCP, nothing of HTTP."""

from atlas_mcp.server.app import create_server

__all__ = ["create_server"]
