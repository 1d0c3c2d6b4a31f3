"""The floor for cold start: a bare MCPServer with one trivial tool, in the same environment as ours."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("floor")


@server.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["http"]:  # the floor for section 9: the same, stateless over Streamable HTTP
        import uvicorn

        app = server.streamable_http_app(stateless_http=True)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        server.run("stdio")
