"""Run in a fresh interpreter by the start-up benchmark: where our start-up time goes beyond the floor's.

Prints one JSON object of seconds. ``serve-path``: the floor's imports, ours on top, building our server,
building the floor's, and the Atlas client our lifespan creates before the first answer. ``httpx``:
importing httpx on top of the floor and making a first client (``--no-pygments`` as in a clean install,
where the dev-only pygments is absent and httpx's CLI import gives up sooner).
"""

from __future__ import annotations

import json
import sys
import time


def _floor_imports() -> float:
    started = time.perf_counter()
    import anyio._backends._asyncio  # noqa: F401  (the floor loads it when it starts serving)
    from mcp.server.mcpserver import MCPServer  # noqa: F401

    return time.perf_counter() - started


def _serve_path() -> dict[str, float]:
    floor_import = _floor_imports()
    started = time.perf_counter()
    import atlas_mcp.__main__
    import atlas_mcp.config
    import atlas_mcp.server  # noqa: F401

    ours_import = time.perf_counter() - started
    from mcp.server.mcpserver import MCPServer

    from atlas_mcp.config import Settings
    from atlas_mcp.server import create_server

    started = time.perf_counter()
    create_server(Settings.from_env({"ATLASCLOUD_API_KEY": "probe"}))
    ours_build = time.perf_counter() - started

    started = time.perf_counter()
    floor = MCPServer("floor")

    @floor.tool()
    def ping() -> str:
        return "pong"

    floor_build = time.perf_counter() - started

    from atlas_mcp.atlas import AtlasClient

    started = time.perf_counter()
    AtlasClient(api_key="probe", base_url="http://127.0.0.1:9")  # what our lifespan does before serving
    ours_client = time.perf_counter() - started
    return {
        "floor_import": floor_import,
        "ours_import": ours_import,
        "ours_build": ours_build,
        "floor_build": floor_build,
        "ours_client": ours_client,
    }


def _httpx(hide_pygments: bool) -> dict[str, float]:
    _floor_imports()
    if hide_pygments:
        sys.modules["pygments"] = None  # type: ignore[assignment]
    started = time.perf_counter()
    import httpx

    imported = time.perf_counter()
    httpx.AsyncClient(trust_env=False)
    return {"import": imported - started, "client": time.perf_counter() - imported}


if __name__ == "__main__":
    serve_path = sys.argv[1] == "serve-path"
    result = _serve_path() if serve_path else _httpx(hide_pygments="--no-pygments" in sys.argv)
    print(json.dumps(result))
