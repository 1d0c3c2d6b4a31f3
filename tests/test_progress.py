"""Progress values are what hosts print: seconds to a tenth, each larger than the last (issue 28).

The MCP Inspector showed "— 1.6700615969994033"; rounding alone sent equal values in a row (two reports in the
same tenth of a second), which the protocol does not allow. Checked in both eras, for a generation and for
check_prediction's wait.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

import pytest
from mcp import Client

from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

from .conftest import settings_for

pytestmark = pytest.mark.anyio

Mode = Literal["legacy", "auto"]


def _counts_up_in_tenths(values: list[float]) -> None:
    assert values, "no progress was reported"
    assert all(value == round(value, 1) for value in values), values
    assert all(later > earlier for earlier, later in itertools.pairwise(values)), values


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_generation_reports_tenths_that_only_go_up(emulator: Emulator, tmp_path: Path, mode: Mode) -> None:
    emulator.state.config.prediction_seconds = 0.8
    values: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        values.append(done)

    async with Client(create_server(settings_for(emulator, tmp_path)), mode=mode) as client:
        result = await client.call_tool("generate_image", {"prompt": "a heron"}, progress_callback=on_progress)
    assert not result.is_error
    assert len(values) >= 3  # the submit, the id, the polls, the fetch: several within the same tenth
    _counts_up_in_tenths(values)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_check_prediction_reports_tenths_that_only_go_up(emulator: Emulator, tmp_path: Path, mode: Mode) -> None:
    emulator.state.config.prediction_seconds = 0.8
    values: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        values.append(done)

    async with Client(create_server(settings_for(emulator, tmp_path)), mode=mode) as client:
        started = await client.call_tool("generate_image", {"prompt": "a heron", "wait": False})
        assert started.structured_content is not None
        prediction_id = started.structured_content["prediction_id"]
        done = await client.call_tool(
            "check_prediction", {"prediction_id": prediction_id, "wait": True}, progress_callback=on_progress
        )
    assert done.structured_content is not None and done.structured_content["phase"] == "succeeded"
    _counts_up_in_tenths(values)
