"""The floor: a bare MCPServer in the same environment as ours, with a trivial tool and one that makes the one GET
a ``check_prediction`` makes (to ``ATLAS_BENCH_ORIGIN`` with ``ATLAS_BENCH_KEY``), and hands back its JSON as is.

Over stdio it runs on the SDK's own transport; ``wire`` runs it on ours (:mod:`atlas_mcp.server.stdio`), for the
one comparison that must leave the transport out; ``http PORT`` serves it over stateless Streamable HTTP."""

import os
from typing import Any

from mcp.server.mcpserver import MCPServer

server = MCPServer("floor")
_clients: list[Any] = []  # httpx is imported on the first call: the cold-start floor must not pay for it


@server.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


@server.tool()
async def get_prediction(prediction_id: str) -> str:
    """Read one prediction from Atlas."""
    if not _clients:  # one client for the server's life, made on the first call as ours is used
        import httpx

        headers = {"Authorization": f"Bearer {os.environ['ATLAS_BENCH_KEY']}"}
        _clients.append(httpx.AsyncClient(base_url=os.environ["ATLAS_BENCH_ORIGIN"], headers=headers))
    answer = await _clients[0].get(f"/api/v1/model/prediction/{prediction_id}")
    answer.raise_for_status()
    text: str = answer.text
    return text


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["http"]:  # the floor for section 9: the same, stateless over Streamable HTTP
        import uvicorn

        app = server.streamable_http_app(stateless_http=True)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    elif sys.argv[1:2] == ["wire"]:  # section 9's stdio row: this server over our stdio transport, as ours runs
        import anyio

        from atlas_mcp.server.stdio import serve_stdio

        anyio.run(serve_stdio, server)
    else:
        server.run("stdio")
