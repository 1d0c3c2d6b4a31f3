"""The catalogue: list_models finds models, get_model_info shows one's parameters and price. Both free.

No ``from __future__ import annotations``: the SDK reads the tools' signatures at registration.
"""

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult
from pydantic import Field

from atlas_mcp.atlas import ModelEntry
from atlas_mcp.config import Settings
from atlas_mcp.server import icons
from atlas_mcp.server.listing import ModelInfoResult, ModelsResult, model_info_result, models_result
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import (
    LONG_RESULT,
    READING,
    ModelId,
    as_tool_errors,
    state_of,
)

__all__ = ["register_get_model_info", "register_list_models"]


def register_list_models(shelf: ToolShelf, settings: Settings) -> None:
    """Register list_models: the catalogue, filtered and paged (free)."""

    @shelf.tool(
        title="List models",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "List Atlas Cloud models with their type and price (free). Filter by type (Image, Video, Audio, "
            "Text) and a keyword matched against id, name, tags and description; page with offset while has_more. "
            "Then call get_model_info."
        ),
        annotations=READING,
    )
    async def list_models(
        ctx: Context,
        type: Annotated[
            Literal["Image", "Video", "Audio", "Text"] | None, Field(description="Only models of this type.")
        ] = None,
        keyword: Annotated[
            str | None, Field(max_length=100, description="Words that must all appear (case-insensitive).")
        ] = None,
        include_hidden: Annotated[bool, Field(description="Also list models Atlas hides from its console.")] = False,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many models.")] = 50,
        offset: Annotated[
            int, Field(ge=0, le=100_000, description="Skip this many matches (the next page: offset + limit).")
        ] = 0,
    ) -> Annotated[CallToolResult, ModelsResult]:
        state = state_of(ctx)
        with as_tool_errors():
            entries = await state.catalog.models()
        words = (keyword or "").lower().split()
        matching = [
            entry
            for entry in entries
            if (include_hidden or entry.display_console)
            and (type is None or (entry.type or "").lower() == type.lower())
            and all(word in _haystack(entry) for word in words)
        ]
        return models_result(matching[offset : offset + limit], total=len(matching), offset=offset)


def register_get_model_info(shelf: ToolShelf, settings: Settings) -> None:
    """Register get_model_info: one model's parameters and price (free)."""

    @shelf.tool(
        title="Get model info",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "Show one model's parameters (type, range, allowed values, default, required), its price and unit, "
            "and which tool runs it. Free. Use it before generating with a model you have not used yet."
        ),
        annotations=READING,
    )
    async def get_model_info(model: ModelId, ctx: Context) -> Annotated[CallToolResult, ModelInfoResult]:
        state = state_of(ctx)
        with as_tool_errors():
            entry = await state.catalog.entry(model)
            if entry is not None and entry.schema_url is None:  # LLM entries may have none: show what is known
                return model_info_result(entry, None)
            details = await state.catalog.details(model)
            return model_info_result(details.entry, details.schema)


def _haystack(entry: ModelEntry) -> str:
    return " ".join([entry.model, entry.display_name or "", entry.profile or "", *entry.tags]).lower()
