"""The MCP server: an :class:`MCPServer` whose lifespan owns the one Atlas client."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity

from atlas_mcp._version import __version__
from atlas_mcp.atlas import AtlasClient, PollPolicy
from atlas_mcp.config import Settings
from atlas_mcp.core.catalog import ModelCatalog
from atlas_mcp.media.previews import DecodeBudget
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.background import Background
from atlas_mcp.server.caller import KEY_CLAIM, Caller
from atlas_mcp.server.capabilities import advertise_only_what_exists
from atlas_mcp.server.gallery import gallery_apps
from atlas_mcp.server.icons import SERVER as SERVER_ICONS
from atlas_mcp.server.outgoing import OutgoingResults
from atlas_mcp.server.tasks import Tasks
from atlas_mcp.server.tools import INSTRUCTIONS, built_tools
from atlas_mcp.spend.policy import SpendGuard
from atlas_mcp.state import StateStore, open_store

if TYPE_CHECKING:
    import httpx  # the Atlas client imports it with its first request, not before the server answers

__all__ = ["create_server"]


def create_server(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    store: StateStore | None = None,
    remote: bool = False,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
    auth_server_provider: Any = None,
    on_state: Callable[[AppState], None] | None = None,
    request_state_security: RequestStateSecurity | None = None,
    poll: PollPolicy | None = None,
) -> MCPServer[AppState]:
    """Build the server. Nothing connects until a session starts (and the state store not until the first paid
    call); ``transport`` and ``store`` are for embedding and tests. ``remote``: its callers are elsewhere and
    bring a bearer (:mod:`atlas_mcp.server.http` checks it, or the SDK's OAuth support with ``token_verifier`` and
    ``auth``); ``on_state`` is handed the state once it exists (for the HTTP readiness probe). ``poll`` replaces
    the default :class:`PollPolicy` (a test against a fast emulator looks more often than Atlas deserves)."""
    poll = poll if poll is not None else _test_poll_policy()
    remote = remote or token_verifier is not None or auth_server_provider is not None

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AppState]) -> AsyncIterator[AppState]:
        state_url = settings.state_url.get_secret_value() if settings.state_url is not None else None
        spend_store = store if store is not None else open_store(state_url)
        try:
            async with (
                AtlasClient(
                    api_key=settings.api_key,
                    base_url=settings.base_url,
                    timeout=settings.http_timeout,
                    transport=transport,
                    poll=poll,
                ) as atlas,
                anyio.create_task_group() as group,
            ):
                state = AppState(
                    settings=settings,
                    atlas=atlas,
                    catalog=ModelCatalog(atlas),
                    previews=DecodeBudget(),
                    spend=SpendGuard(settings, spend_store),
                    caller=Caller.of_server(settings),
                    remote=remote,
                    background=(background := Background(spend_store, group)),
                )
                if on_state is not None:
                    on_state(state)
                try:
                    yield state
                finally:
                    # Tasks' waiters and collectors end with the server; a task's record stays in the store, and
                    # the next process asked about it waits for it again.
                    await background.let_go()
                    group.cancel_scope.cancel()
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
        auth_server_provider=auth_server_provider,
        request_state_security=request_state_security,
        extensions=[gallery_apps(settings), Tasks()],
        middleware=[OutgoingResults(settings, remote=remote, store_name=_store_name)],
        tools=built_tools(settings),
    )
    _install_per_request(server)
    advertise_only_what_exists(server)
    return server


# A test hook, not a setting (hence not ATLASCLOUD_*): the test suite's emulator finishes a prediction in
# milliseconds, and its servers, in memory and over stdio (a child inherits the variable), look that often rather
# than every 0.2 s. The interval still grows with the wait, so a long prediction is not hammered.
TEST_POLL_SECONDS = "ATLAS_MCP_TEST_POLL_SECONDS"


def _test_poll_policy() -> PollPolicy | None:
    value = os.environ.get(TEST_POLL_SECONDS, "").strip()
    return PollPolicy().quicker(max(float(value), 0.001)) if value else None


def _install_per_request(server: MCPServer[AppState]) -> None:
    """Outside the SDK's request-state boundary, so that it sees a 2026-era answer's state still sealed."""
    layers = server.middleware
    layers.insert(next(i for i, layer in enumerate(layers) if isinstance(layer, RequestStateBoundary)), _per_request)


async def _per_request(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Give each request its own copy of the state, built once: who it is (an HTTP request's bearer) and, for a
    2026-era call coming back with the user's answer, a digest of the sealed state it brought. The sealed form is
    unique to one question asked; what it unseals to is the same for every copy, so only it can be spent once."""
    state = ctx.lifespan_context
    if isinstance(state, AppState):
        access = get_access_token()
        wire = ctx.params.get("requestState") if ctx.params is not None else None
        # A lone surrogate is valid JSON text: hashed as it is, it must not be an encoding error here.
        sealed = hashlib.sha256(wire.encode("utf-8", "surrogatepass")).hexdigest() if isinstance(wire, str) else None
        key = (access.claims or {}).get(KEY_CLAIM) if access is not None else None
        mine = state.for_request(
            bearer=access.token if access is not None else None,
            sealed_state=f"answer:{sealed}" if sealed is not None else None,
            caller=Caller.signed_in(key, str(access.subject)) if access is not None and key is not None else None,
        )
        ctx = dataclasses.replace(ctx, lifespan_context=mine)
    return await call_next(ctx)


def _store_name(state: object) -> str | None:
    return state.spend.store.name if isinstance(state, AppState) else None
