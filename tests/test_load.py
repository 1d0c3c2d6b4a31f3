"""Load and soak through one stdio session: many concurrent generations, thousands of sequential reads with
flat memory, and cancelled calls that leave no polling behind.

The default run uses small sizes; ``pytest --full-load`` runs the issue's: 200 concurrent generate_image
calls, 5 000 sequential check_prediction calls, 100 cancelled calls. The figures (wall time, the server's
resident memory before and after) are printed in the summary at the end of the run.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from atlas_mcp.emulator import Emulator, PredictionPlan

from .harness import ServerProcess, emulator_env, expect_done

# Load and soak: thousands of calls through a server process, timed and measured (the integration lane).
pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SIZES = {  # default run, --full-load
    "concurrent": (50, 200),
    "sequential": (500, 5000),
    "cancelled": (25, 100),
}
SMALL = {"size": "256*256"}
POLL = "/api/v1/model/prediction/"
SUBMIT = "/api/v1/model/generateImage"
# A steady server's RSS still moves a little (allocator arenas, caches filling); a leak of even 4 KiB a call
# would show as 20 MiB over 5 000 calls.
RSS_GROWTH_LIMIT_KIB = 16 * 1024


@dataclass
class Load:
    client: Client
    server: ServerProcess
    emulator: Emulator
    full: bool

    def size(self, what: str) -> int:
        default, full = SIZES[what]
        return full if self.full else default


@pytest.fixture(scope="module")
async def load(
    emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Load]:
    emulator = emulator_session
    emulator.state.reset()
    emulator.state.config.prediction_seconds = 0.3
    workdir: Path = tmp_path_factory.mktemp("load")
    server = ServerProcess(emulator_env(emulator, workdir, ATLASCLOUD_LOG_LEVEL="INFO"), workdir / "stderr.log")
    try:
        async with Client(server.transport()) as client:
            yield Load(client, server, emulator, bool(request.config.getoption("--full-load")))
        assert server.returncode == 0
        assert "Traceback" not in server.stderr_text()
    finally:
        emulator.state.reset()


async def test_concurrent_generations_are_all_answered(load: Load, figures: list[str]) -> None:
    count = load.size("concurrent")
    load.emulator.state.clear_requests()
    results: dict[int, CallToolResult] = {}

    async def generate(number: int) -> None:
        results[number] = await load.client.call_tool(
            "generate_image", {"prompt": f"concurrent {number}", "seed": number, **SMALL}
        )

    started = time.monotonic()
    with anyio.fail_after(180):
        async with anyio.create_task_group() as group:
            for number in range(count):
                group.start_soon(generate, number)
    wall = time.monotonic() - started
    ids = {expect_done(result)["prediction_id"] for result in results.values()}
    assert len(ids) == count
    posts = [r for r in load.emulator.state.requests if r.method == "POST" and r.path == SUBMIT]
    assert len(posts) == count  # one each, none repeated
    figures.append(f"{count} concurrent generate_image over one stdio session: all answered in {wall:.1f} s")


async def test_sequential_reads_keep_memory_flat(load: Load, figures: list[str]) -> None:
    count = load.size("sequential")
    done = expect_done(await load.client.call_tool("generate_image", {"prompt": "soak", **SMALL}))
    arguments: dict[str, Any] = {"prediction_id": done["prediction_id"]}
    for _ in range(100):  # warm up: caches, pools and arenas reach their working size
        await load.client.call_tool("check_prediction", arguments)
    before = load.server.rss_kib()
    started = time.monotonic()
    samples = []
    for number in range(count):
        result = await load.client.call_tool("check_prediction", arguments)
        assert not result.is_error and result.structured_content is not None
        assert result.structured_content["phase"] == "succeeded"
        if number % max(count // 10, 1) == 0:
            samples.append(load.server.rss_kib())
    wall = time.monotonic() - started
    after = load.server.rss_kib()
    figures.append(
        f"{count} sequential check_prediction in {wall:.1f} s ({1000 * wall / count:.1f} ms each); server RSS "
        f"{before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after ({(after - before) / 1024:+.1f} MiB); "
        f"samples {', '.join(f'{kib / 1024:.1f}' for kib in samples)} MiB"
    )
    assert after - before < RSS_GROWTH_LIMIT_KIB, f"RSS grew from {before} to {after} KiB"


async def test_cancelled_calls_leave_no_polling_behind(load: Load, figures: list[str]) -> None:
    count = load.size("cancelled")
    state = load.emulator.state
    state.clear_requests()
    for _ in range(count):
        state.plan_next(PredictionPlan(seconds=600))

    async def generate(number: int) -> None:
        await load.client.call_tool("generate_image", {"prompt": f"never mind {number}", **SMALL})

    def polled() -> set[str]:
        return {r.path.rsplit("/", 1)[1] for r in state.requests if r.path.startswith(POLL)}

    async with anyio.create_task_group() as group:
        for number in range(count):
            group.start_soon(generate, number)
        with anyio.fail_after(60):  # every call submitted and polling
            while len(polled()) < count:
                await anyio.sleep(0.05)
        group.cancel_scope.cancel()
    cancelled_at = time.monotonic()
    await anyio.sleep(1.0)  # cancellations cross the pipe; a poll already on the wire may still land
    polls = len([r for r in state.requests if r.path.startswith(POLL)])
    await anyio.sleep(3.0)  # longer than any poll interval these calls had reached
    late = [r for r in state.requests if r.path.startswith(POLL)][polls:]
    assert not late, f"{len(late)} polls after the calls were cancelled"
    assert len([r for r in state.requests if r.method == "POST" and r.path == SUBMIT]) == count
    answer = await load.client.call_tool("list_predictions", {"page_size": 1})  # the server is fine
    assert not answer.is_error
    figures.append(
        f"{count} in-flight generate_image cancelled: no prediction GET in the "
        f"{time.monotonic() - cancelled_at - 1.0:.1f} s after the first second"
    )
