"""Advertise only what the server has: ``prompts`` and ``resources`` when something of that kind is registered.

``MCPServer`` always registers its prompt and resource handlers, so the SDK derives both capabilities for every
server, even one with neither; a client then lists them for nothing, and a user reads that the server offers
prompts it does not have. A middleware (the SDK's public seam around every request) takes them out of the two
answers that carry capabilities, ``initialize`` (the 2025 handshake) and ``server/discover`` (2026), judged at
answer time from what is registered then: a resource added later (the gallery's ``ui://`` page) is advertised
without anything here changing.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer

__all__ = ["advertise_only_what_exists"]

_ANSWERS_WITH_CAPABILITIES = frozenset({"initialize", "server/discover"})


def advertise_only_what_exists(server: MCPServer[Any]) -> None:
    """Install the middleware on ``server``."""

    async def trim_capabilities(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method not in _ANSWERS_WITH_CAPABILITIES or not isinstance(result, dict):
            return result
        capabilities = result.get("capabilities")
        if not isinstance(capabilities, dict):
            return result
        trimmed = dict(capabilities)
        if not await server.list_prompts():
            trimmed.pop("prompts", None)
        if not await server.list_resources() and not await server.list_resource_templates():
            trimmed.pop("resources", None)
        return {**result, "capabilities": trimmed}

    server.middleware.append(trim_capabilities)
