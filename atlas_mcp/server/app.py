"""The MCP server: an :class:`MCPServer` whose lifespan owns the one Atlas client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.request_state import RequestStateSecurity

from atlas_mcp._version import __version__
from atlas_mcp.atlas import AtlasClient
from atlas_mcp.config import Settings
from atlas_mcp.server.account import register_account_tools
from atlas_mcp.server.capabilities import advertise_only_what_exists
from atlas_mcp.server.catalog import ModelCatalog
from atlas_mcp.server.chat import register_chat_tools
from atlas_mcp.server.gallery import gallery_apps
from atlas_mcp.server.generation import AppState
from atlas_mcp.server.icons import SERVER as SERVER_ICONS
from atlas_mcp.server.outgoing import OutgoingResults
from atlas_mcp.server.previews import DecodeBudget
from atlas_mcp.server.quick import register_quick_generate
from atlas_mcp.server.spending import SpendGuard
from atlas_mcp.server.tools import INSTRUCTIONS, register_tools
from atlas_mcp.server.transcribe import register_transcribe_audio
from atlas_mcp.state import StateStore, open_store

if TYPE_CHECKING:
    import httpx  # the Atlas client imports it with its first request, not before the server answers

__all__ = ["create_server"]


def create_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    store: StateStore | None = None,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    on_state: Callable[[AppState], None] | None = None,
    request_state_security: RequestStateSecurity | None = None,
) -> MCPServer[AppState]:
    """Build the server. Nothing connects until a session starts (and the state store not until the first paid
    call); ``transport`` and ``store`` are for embedding and tests. ``token_verifier`` and ``auth`` make it a
    remote server whose callers present a bearer (see :mod:`atlas_mcp.server.http`); ``on_state`` is handed the
    state once it exists (the HTTP server's readiness probe reads it)."""

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
                state = AppState(
                    settings=settings,
                    atlas=atlas,
                    catalog=ModelCatalog(atlas),
                    previews=DecodeBudget(),
                    spend=SpendGuard(settings, spend_store),
                    payer_key=settings.api_key.get_secret_value() if settings.api_key is not None else None,
                    remote=token_verifier is not None,
                )
                if on_state is not None:
                    on_state(state)
                yield state
        finally:
            if store is None:  # a store handed in belongs to the caller
                await spend_store.aclose()

    server: MCPServer[AppState] = MCPServer(
        "atlascloud-mcp",
        title="Atlas Cloud image generation",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url="https://www.atlascloud.ai",
        icons=SERVER_ICONS,
        lifespan=lifespan,
        log_level=settings.log_level,
        token_verifier=token_verifier,
        auth=auth,
        request_state_security=request_state_security,
        extensions=[gallery_apps(settings)],
        middleware=[OutgoingResults(settings, remote=token_verifier is not None, store_name=_store_name)],
    )
    register_tools(server, settings)
    register_quick_generate(server, settings)
    register_transcribe_audio(server, settings)
    register_chat_tools(server, settings)
    register_account_tools(server, settings)
    advertise_only_what_exists(server)
    return server


def _store_name(state: object) -> str | None:
    return state.spend.store.name if isinstance(state, AppState) else None
