"""The MCP server: an :class:`MCPServer` whose lifespan owns the one Atlas client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from mcp.server.mcpserver import MCPServer

from atlas_mcp._version import __version__
from atlas_mcp.atlas import AtlasClient
from atlas_mcp.config import Settings
from atlas_mcp.server.catalog import ModelCatalog
from atlas_mcp.server.generation import AppState
from atlas_mcp.server.previews import DecodeBudget
from atlas_mcp.server.spending import SpendGuard
from atlas_mcp.server.tools import INSTRUCTIONS, register_tools
from atlas_mcp.state import StateStore, open_store

__all__ = ["create_server"]


def create_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    store: StateStore | None = None,
) -> MCPServer[AppState]:
    """Build the server. Nothing connects until a session starts (and the state store not until the first paid
    call); ``transport`` and ``store`` are for embedding and tests."""

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        state_url = settings.state_url.get_secret_value() if settings.state_url is not None else None
        spend_store = store if store is not None else open_store(state_url)
        try:
            async with AtlasClient(
                api_key=settings.api_key,
                base_url=settings.base_url,
                timeout=settings.http_timeout,
                transport=transport,
            ) as atlas:
                yield AppState(
                    settings=settings,
                    atlas=atlas,
                    catalog=ModelCatalog(atlas),
                    previews=DecodeBudget(),
                    spend=SpendGuard(settings, spend_store),
                )
        finally:
            if store is None:  # a store handed in belongs to the caller
                await spend_store.aclose()

    server: MCPServer[AppState] = MCPServer(
        "atlascloud-mcp",
        title="Atlas Cloud image generation",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://www.atlascloud.ai",
        lifespan=lifespan,
        log_level=settings.log_level,
    )
    register_tools(server, settings)
    return server
