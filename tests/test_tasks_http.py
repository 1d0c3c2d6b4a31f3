"""MCP Tasks over Streamable HTTP (issue 24, part 2): the console script as a real process, reached by the SDK's HTTP
client with the test client side of the extension (tasks_client.py).

Each caller's task is its own, whether callers bring their own Atlas keys or team tokens; the ``Mcp-Name`` header
the extension has clients send for routing must name the task asked about; a 2025-era connection never gets a
task. The long job (150 s, in real time) is here too, over HTTP and stdio at once. HAProxy replicas: test_scale.py.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import Implementation

from atlas_mcp.emulator import Emulator, PredictionPlan

from .harness import CONSOLE_SCRIPT, emulator_env, expect_done
from .tasks_client import CreatedTask, TasksClient, cancel_task, get_task, poll_task
from .test_http import KEYS, connect, http_env, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.integration]  # HTTP server processes

VIDEO = "alibaba/wan-2.2/t2v-480p"
TOKENS = ["team-token-alpha-0123456789abcdef", "team-token-beta-0123456789abcdef"]
CLAUDE_CODE = Implementation(name="claude-code", version="2.1.330")
LONG_JOB = 150.0


async def _video_task(client: Client) -> CreatedTask:
    arguments = {"model": VIDEO, "prompt": "a heron"}
    created = await client.session.call_tool("generate_video", arguments, allow_claimed=True)
    assert isinstance(created, CreatedTask), created
    return created


async def _refusal(client: Client, task_id: str) -> tuple[int, str]:
    answers = []
    for ask in (get_task, cancel_task):
        with pytest.raises(MCPError) as refused:
            await ask(client.session, task_id)
        answers.append((refused.value.error.code, refused.value.error.message))
    assert answers[0] == answers[1]
    return answers[0]


@pytest.mark.parametrize("mode", ["own keys", "team tokens"])
async def test_each_caller_sees_only_its_own_tasks_over_http(emulator: Emulator, tmp_path: Path, mode: str) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=2.0))
    extra = {"ATLASCLOUD_HTTP_TOKENS": ",".join(TOKENS), "ATLASCLOUD_API_KEY": KEYS[7]} if mode == "team tokens" else {}
    first, second = TOKENS if mode == "team tokens" else KEYS[:2]
    with http_server(http_env(emulator, tmp_path, **extra), tmp_path / "http.log") as origin:
        async with connect(origin, first, "2026", extensions=[TasksClient()]) as client:
            created = await _video_task(client)
        async with connect(origin, second, "2026", extensions=[TasksClient()]) as client:
            theirs = await _refusal(client, created.task_id)
            unknown = await _refusal(client, secrets.token_urlsafe(24))
        async with connect(origin, first, "2026", extensions=[TasksClient()]) as client:
            done = await poll_task(client.session, created.task_id)
    assert theirs == unknown and theirs[0] == -32602
    assert done["status"] == "completed"
    assert done["result"]["structuredContent"]["phase"] == "succeeded"


async def test_the_routing_header_must_name_the_task(emulator: Emulator, tmp_path: Path) -> None:
    """The extension has clients send ``Mcp-Name: <taskId>`` so a balancer can route by it; a request whose header
    names another task is refused rather than answered for the task in its body."""
    emulator.state.plan_next(PredictionPlan(seconds=1.0))

    async def misroute(request: httpx2.Request) -> None:
        if request.headers.get("mcp-method", "").startswith("tasks/"):
            request.headers["mcp-name"] = "some-other-task"

    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        async with connect(origin, KEYS[0], "2026", extensions=[TasksClient()]) as client:
            created = await _video_task(client)
            assert (await get_task(client.session, created.task_id))["taskId"] == created.task_id
        headers = {"Authorization": f"Bearer {KEYS[0]}"}
        async with (
            httpx2.AsyncClient(headers=headers, event_hooks={"request": [misroute]}) as http,
            Client(streamable_http_client(f"{origin}/mcp", http_client=http), extensions=[TasksClient()]) as client,
        ):
            with pytest.raises(MCPError) as refused:
                await get_task(client.session, created.task_id)
    assert refused.value.error.code == -32602
    assert "Mcp-Name" in refused.value.error.message


async def test_a_2025_era_connection_over_http_never_gets_a_task(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=1.0))
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        async with connect(origin, KEYS[0], "2025", extensions=[TasksClient()]) as client:
            answer = await client.session.call_tool(
                "generate_video", {"model": VIDEO, "prompt": "a heron"}, allow_claimed=True
            )
    assert not isinstance(answer, CreatedTask)
    expect_done(answer)  # type: ignore[arg-type]


async def test_a_150_s_job_is_a_task_within_a_second_over_http_and_stdio(
    emulator: Emulator, tmp_path: Path, figures: list[str]
) -> None:
    """The issue's "done when": a 2026-era client that declares the extension (Claude Code, here) gets the task at
    once, on both transports, and tasks/get hands it the finished result when the job is done."""
    handles: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}

    async def run(transport: str, client: Client) -> None:
        emulator.state.plan_next(PredictionPlan(seconds=LONG_JOB))
        started = time.monotonic()
        created = await _video_task(client)
        handles[transport] = time.monotonic() - started
        results[transport] = await poll_task(client.session, created.task_id, timeout=LONG_JOB + 60)

    async def over_http() -> None:
        with http_server(http_env(emulator, tmp_path / "http"), tmp_path / "http.log") as origin:
            async with connect(origin, KEYS[0], "2026", extensions=[TasksClient()], client_info=CLAUDE_CODE) as c:
                await run("http", c)

    async def over_stdio() -> None:
        params = StdioServerParameters(command=CONSOLE_SCRIPT, env=emulator_env(emulator, tmp_path / "stdio"))
        async with Client(params, mode="auto", extensions=[TasksClient()], client_info=CLAUDE_CODE) as client:
            await run("stdio", client)

    (tmp_path / "http").mkdir()
    (tmp_path / "stdio").mkdir()
    async with anyio.create_task_group() as group:
        group.start_soon(over_http)
        group.start_soon(over_stdio)
    for transport in ("http", "stdio"):
        assert results[transport]["status"] == "completed", results[transport]
        assert results[transport]["result"]["structuredContent"]["phase"] == "succeeded"
        assert handles[transport] < 10, handles  # generous: the measured figure is printed below
    figures.append(
        "a 150 s job as a task: handle after "
        + ", ".join(f"{t} {s:.2f} s" for t, s in sorted(handles.items()))
        + "; finished result through tasks/get on both"
    )
