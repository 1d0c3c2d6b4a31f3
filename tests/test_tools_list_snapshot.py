"""``tools/list`` is what every client reads first, and what a refactor must not change by a byte.

The snapshots in ``tests/snapshots/`` were taken before the house was redrawn (issue 23) and are compared whole, in
both protocol eras. Rewrite them only on purpose: ``ATLAS_MCP_UPDATE_SNAPSHOTS=1 uv run pytest
tests/test_tools_list_snapshot.py``, and let the diff of the snapshot show what a client will now see.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import pytest
from mcp import Client

from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

from .conftest import settings_for

pytestmark = pytest.mark.anyio

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_list_is_byte_identical_to_its_snapshot(
    emulator: Emulator, tmp_path: Path, mode: Literal["legacy", "auto"]
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=mode) as client:
        listed = await client.list_tools()
    text = json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True), indent=1, ensure_ascii=False)
    snapshot = SNAPSHOTS / f"tools-list-{mode}.json"
    if os.environ.get("ATLAS_MCP_UPDATE_SNAPSHOTS"):
        snapshot.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == snapshot.read_text(encoding="utf-8"), f"tools/list changed: see {snapshot.name}"
