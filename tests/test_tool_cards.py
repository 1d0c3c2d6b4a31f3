"""The server lists its tools from ``atlas_mcp/server/tool_cards.json`` and builds each on its first call (issue 26:
building them, and importing their modules, was most of our start beyond the bare SDK server's).

This keeps the cards equal to the tools built fresh: the file to what the SDK derives (with the marks), the listing
to a fresh build's for several settings, and no setting but the marked ones may shape a tool. ``uv run python -m
tests.test_tool_cards`` writes the file afresh after a tool or an output model changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from pydantic import SecretStr

from atlas_mcp.config import Settings
from atlas_mcp.server.shelf import CARDS_FILE, MARKS, ToolShelf, derived_output_schema, output_model_of
from atlas_mcp.server.tools import REGISTRY, build_tool, built_tools

pytestmark = pytest.mark.anyio


def fresh_cards() -> str:
    """The cards file as the SDK derives it today, with the marks where the settings' values go."""
    cards: list[dict[str, Any]] = []
    outputs: dict[str, Any] = {}
    for name, _module in REGISTRY:
        tool = build_tool(name, MARKS, ToolShelf(derived_output_schema))
        model = output_model_of(tool.fn)
        if model is not None:
            outputs.setdefault(model.__name__, tool.output_schema)
        card: dict[str, Any] = {"name": tool.name, "title": tool.title, "description": tool.description}
        card |= {"inputSchema": tool.parameters, "outputModel": model.__name__ if model is not None else None}
        if tool.annotations is not None:
            card["annotations"] = tool.annotations.model_dump(mode="json", by_alias=True, exclude_none=True)
        if tool.icons is not None:
            card["icons"] = [icon.model_dump(mode="json", by_alias=True, exclude_none=True) for icon in tool.icons]
        card["_meta"] = tool.meta
        cards.append(card)
    return json.dumps({"tools": cards, "outputs": outputs}, indent=1, ensure_ascii=False) + "\n"


def test_the_stored_cards_are_what_the_sdk_derives_from_the_tools() -> None:
    # Key order too: tools/list must stay byte-identical (tests/test_tools_list_snapshot.py).
    assert CARDS_FILE.read_text(encoding="utf-8") == fresh_cards(), "run: uv run python -m tests.test_tool_cards"


async def listed(tools: list[Tool]) -> str:
    answer = await MCPServer("cards", tools=tools).list_tools()
    return json.dumps([tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in answer])


SHAPES = [
    Settings(),
    Settings(wait_seconds=10),
    Settings(wait_seconds=0.5, default_model='acme/"quoted"\\model-é'),
    Settings(default_model="bytedance/seedream-v4"),
]


@pytest.mark.parametrize("settings", SHAPES, ids=["defaults", "wait set", "odd model id", "another model"])
async def test_the_cards_list_what_building_every_tool_lists(settings: Settings) -> None:
    fresh = [build_tool(name, settings) for name, _module in REGISTRY]
    assert await listed(built_tools(settings)) == await listed(fresh)


# A value other than the default for every setting: a setting added without a line here fails the test below.
OTHER_VALUES: dict[str, Any] = {
    "api_key": SecretStr("k-other"),
    "base_url": "https://example.test",
    "http_timeout": 12.0,
    "wait_seconds": 20.0,
    "output_dir": Path("/tmp/elsewhere"),
    "upload_roots": (Path("/tmp"),),
    "max_upload_mb": 1.0,
    "preview_max_side": 256,
    "preview_budget_kb": 0,
    "default_model": "acme/other",
    "state_url": SecretStr("sqlite:////tmp/other.db"),
    "budget_usd": 5.0,
    "budget_account_usd": 50.0,
    "confirm_above_usd": None,
    "repeat_window_s": 0.0,
    "http_allowed_hosts": ("example.test",),
    "http_tokens": (SecretStr("t" * 32),),
    "http_share_account_usage": True,
    "http_public_url": "https://example.test/mcp",
    "oauth_secret": SecretStr("s" * 44),
    "http_state_keys": (SecretStr("x" * 32),),
    "http_max_body_mb": 1.0,
    "http_body_timeout": 5.0,
    "log_level": "DEBUG",
}
MARKED = {"default_model", "wait_seconds"}  # the settings the cards carry marks for (atlas_mcp.server.shelf)


async def test_no_setting_but_the_marked_ones_shapes_a_tool() -> None:
    assert set(OTHER_VALUES) == set(Settings.model_fields), "give the new setting another value here"
    baseline = await listed([build_tool(name, Settings()) for name, _module in REGISTRY])
    shaping = set()
    for field, value in OTHER_VALUES.items():
        settings = Settings(**{field: value})
        if await listed([build_tool(name, settings) for name, _module in REGISTRY]) != baseline:
            shaping.add(field)
    assert shaping == MARKED


if __name__ == "__main__":
    CARDS_FILE.write_text(fresh_cards(), encoding="utf-8")
    print(f"wrote {CARDS_FILE}", file=sys.stderr)
