"""A call waits as long as its client allows (issue 24, part 1): one table, docs/clients.md.

Claude Code resets its timeouts on progress, claude.ai gives a call 300 s, and an unknown client gets the safe
bound; ATLASCLOUD_WAIT_SECONDS, when set, is every client's bound. The long waits (a 150 s job through in one
call, progress never more than 10 s apart) run in the integration lane, over stdio and over HTTP.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Literal

import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import Implementation

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, PredictionPlan
from atlas_mcp.server import create_server
from atlas_mcp.server.clients import CLIENTS, SAFE_WAIT_SECONDS, identify, wait_bound

from .conftest import TEST_KEY
from .harness import CONSOLE_SCRIPT, emulator_env, expect_done, text_of
from .test_http import http_env, http_server

pytestmark = pytest.mark.anyio

Mode = Literal["legacy", "auto"]
CLAUDE_CODE = Implementation(name="claude-code", version="2.1.320")
LONG_JOB = 150.0  # seconds: a 3D model or a song


def _settings(emulator: Emulator, tmp_path: Path, **values: object) -> Settings:
    # No wait_seconds: the bound comes from the client table unless a test sets it.
    base = {"api_key": TEST_KEY, "base_url": emulator.url, "state_url": f"sqlite:///{tmp_path / 'state.db'}"}
    return Settings.model_validate(base | values)


def test_clients_are_known_by_name_or_user_agent() -> None:
    assert identify("claude-code") is not None and identify("Claude-Code") == identify("claude-code")
    assert identify(None, {"User-Agent": "claude-code/2.1.320 (external, cli)"}) == identify("claude-code")
    assert identify("claude-ai") is not None and identify("claude-ai") != identify("claude-code")
    assert identify("some-agent") is None and identify(None, {"user-agent": "python-httpx/0.28"}) is None
    assert identify("", None) is None


def test_the_bound_is_the_clients_unless_the_operator_set_one() -> None:
    claude_code = identify("claude-code")
    assert claude_code is not None and claude_code.wait_seconds >= 2 * LONG_JOB
    assert wait_bound(Settings(), claude_code) == claude_code.wait_seconds
    assert wait_bound(Settings(), None) == SAFE_WAIT_SECONDS
    assert wait_bound(Settings(wait_seconds=20), claude_code) == 20  # ATLASCLOUD_WAIT_SECONDS wins
    claude_ai = identify("claude-ai")
    assert claude_ai is not None and claude_ai.wait_seconds <= 300 - 30  # its limit, with a margin


def test_every_row_says_where_its_limit_comes_from_and_docs_list_it() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "clients.md").read_text(encoding="utf-8")
    for client in CLIENTS:
        assert client.evidence and client.names
        assert client.label in docs, f"docs/clients.md has no row for {client.label}"
        assert f"{client.wait_seconds:g} s" in docs


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize(
    ("name", "capped_at"), [("claude-code", None), ("claude-ai", 240.0), ("an-unknown-agent", SAFE_WAIT_SECONDS)]
)
async def test_the_bound_a_call_gets_follows_its_client(
    emulator: Emulator, tmp_path: Path, mode: Mode, name: str, capped_at: float | None
) -> None:
    """Asking to wait 300 s: Claude Code may; claude.ai is capped below its 300 s; an unknown client at 45 s."""
    server = create_server(_settings(emulator, tmp_path))
    async with Client(server, mode=mode, client_info=Implementation(name=name, version="1")) as client:
        result = await client.call_tool("generate_image", {"prompt": "a heron", "max_wait_seconds": 300})
    expect_done(result)
    text = text_of(result)
    if capped_at is None:
        assert "was capped" not in text, text
    else:
        assert f"max_wait_seconds=300 was capped at this server's {capped_at:g} s" in text, text
        assert "the longest your MCP client is known to allow a call" in text


async def test_ATLASCLOUD_WAIT_SECONDS_is_every_clients_bound(emulator: Emulator, tmp_path: Path) -> None:
    server = create_server(_settings(emulator, tmp_path, wait_seconds=20))
    async with Client(server, client_info=CLAUDE_CODE) as client:
        result = await client.call_tool("generate_image", {"prompt": "a heron", "max_wait_seconds": 300})
    assert "capped at this server's 20 s (ATLASCLOUD_WAIT_SECONDS)" in text_of(result)


def _gaps(stamps: list[float], started: float, ended: float) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise([started, *stamps, ended])]


@pytest.mark.integration  # a 150 s job, in real time
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_claude_code_over_stdio_waits_through_a_long_job_in_one_call(
    emulator: Emulator, tmp_path: Path, mode: Mode
) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=LONG_JOB))
    stamps: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        stamps.append(time.monotonic())

    params = StdioServerParameters(command=CONSOLE_SCRIPT, env=emulator_env(emulator, tmp_path))
    async with Client(params, mode=mode, client_info=CLAUDE_CODE, read_timeout_seconds=LONG_JOB * 2) as client:
        started = time.monotonic()
        result = await client.call_tool("generate_image", {"prompt": "a heron"}, progress_callback=on_progress)
        ended = time.monotonic()
    expect_done(result)
    assert ended - started >= LONG_JOB - 1
    assert max(_gaps(stamps, started, ended)) <= 10, _gaps(stamps, started, ended)


@pytest.mark.integration  # 45 s of a long job, in real time
async def test_an_unknown_client_over_stdio_gets_the_safe_bound_and_an_id(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=LONG_JOB))
    params = StdioServerParameters(command=CONSOLE_SCRIPT, env=emulator_env(emulator, tmp_path))
    async with Client(params, client_info=Implementation(name="an-unknown-agent", version="1")) as client:
        started = time.monotonic()
        result = await client.call_tool("generate_image", {"prompt": "a heron"})
        waited = time.monotonic() - started
    structured = result.structured_content
    assert structured is not None and structured["phase"] == "running", text_of(result)
    assert SAFE_WAIT_SECONDS - 1 <= waited <= SAFE_WAIT_SECONDS + 10
    assert "check_prediction" in text_of(result)


@pytest.mark.integration  # a 150 s job, in real time, through an HTTP server process
@pytest.mark.parametrize("era", ["2025", "2026"])
async def test_claude_code_over_http_waits_through_a_long_job_in_one_call(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    """Over stateless HTTP a 2025-era call carries no clientInfo: Claude Code is known by its User-Agent; a
    2026-era call names itself in its envelope."""
    emulator.state.plan_next(PredictionPlan(seconds=LONG_JOB))
    stamps: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        stamps.append(time.monotonic())

    headers = {"Authorization": f"Bearer {TEST_KEY}", "User-Agent": "claude-code/2.1.320 (external, cli)"}
    mode: Mode = "legacy" if era == "2025" else "auto"
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
            Client(streamable_http_client(f"{origin}/mcp", http_client=http), mode=mode, client_info=CLAUDE_CODE) as c,
        ):
            started = time.monotonic()
            result = await c.call_tool("generate_image", {"prompt": "a heron"}, progress_callback=on_progress)
            ended = time.monotonic()
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["phase"] == "succeeded"
    assert max(_gaps(stamps, started, ended)) <= 10, _gaps(stamps, started, ended)
