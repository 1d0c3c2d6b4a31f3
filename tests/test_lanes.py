"""create_server's poll policy: an embedder (or a test against a fast emulator) chooses how often to look."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from atlas_mcp.atlas import PollPolicy
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

from .conftest import settings_for
from .harness import expect_done

pytestmark = pytest.mark.anyio


def _polls(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.method == "GET" and "/prediction/" in r.path])


@pytest.mark.parametrize("era", ["legacy", "auto"])
async def test_a_poll_policy_handed_to_create_server_sets_how_often_a_running_prediction_is_looked_at(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    emulator.state.config.prediction_seconds = 0.5
    often = PollPolicy(min_interval=0.02, ratio=0.0, max_interval=0.02)
    async with Client(create_server(settings_for(emulator, tmp_path), poll=often), mode=era) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "a lighthouse"}))
    # The default policy looks at most three times in half a second (0.2 s apart); this one about 25.
    assert _polls(emulator) >= 8, _polls(emulator)


async def test_the_suites_servers_poll_at_the_test_hooks_pace(emulator: Emulator, tmp_path: Path) -> None:
    """conftest sets ATLAS_MCP_TEST_POLL_SECONDS for the session, and create_server reads it when handed no policy:
    without it every generation in the suite would wait at least 0.2 s per look (the fast lane's time)."""
    emulator.state.config.prediction_seconds = 0.3
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "a lighthouse"}))
    assert _polls(emulator) >= 5, _polls(emulator)  # the default policy looks twice in 0.3 s
