"""MCP Tasks (issue 24, part 2): a long job answers with a task at once, and the client fetches the result later.

Only a 2026-era request whose client declared ``io.modelcontextprotocol/tasks`` in that request gets a task, and only
once the paid submit is recorded; a task's id is bound to its payer; tasks live in the state store, so another
process on the same store (a replica, or this one restarted) answers for them and finishes them. A call that stopped
waiting still has its outputs saved once Atlas is done (part 3). HTTP and HAProxy replicas: test_tasks_http.py.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from pydantic import SecretStr

from atlas_mcp.core.outputs import usual_duration
from atlas_mcp.emulator import Emulator, PredictionPlan
from atlas_mcp.server import create_server

from .conftest import settings_for
from .harness import CONSOLE_SCRIPT, emulator_env, expect_done, text_of
from .tasks_client import CreatedTask, TasksClient, cancel_task, get_task, poll_task

pytestmark = pytest.mark.anyio

VIDEO = "alibaba/wan-2.2/t2v-480p"
TASKS = "io.modelcontextprotocol/tasks"
OTHER_KEY = "sk-test-another-payer-0000000000"


def _running(emulator: Emulator, prediction_id: str) -> bool:
    found = emulator.state.predictions.get(prediction_id)
    return found is not None and time.monotonic() - found.started < found.seconds


async def _task_for_a_video(client: Client, emulator: Emulator) -> tuple[CreatedTask, str]:
    """A generate_video call answered with a task, and the id of the one prediction it made."""
    before = set(emulator.state.predictions)
    created = await client.session.call_tool(
        "generate_video", {"model": VIDEO, "prompt": "a heron"}, allow_claimed=True
    )
    assert isinstance(created, CreatedTask), created
    (prediction_id,) = set(emulator.state.predictions) - before
    return created, prediction_id


async def test_a_long_job_becomes_a_task_at_once_and_its_result_comes_with_tasks_get(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=2.0))
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[TasksClient()]) as client:
        assert client.server_capabilities.extensions is not None
        assert TASKS in client.server_capabilities.extensions  # server/discover advertises it
        created, prediction_id = await _task_for_a_video(client, emulator)
        assert created.status == "working" and created.ttl_ms and created.poll_interval_ms
        assert _running(emulator, prediction_id), "the task must come before the job is done"
        assert prediction_id in (created.status_message or "")
        working = await get_task(client.session, created.task_id)
        assert working["status"] == "working" and "result" not in working
        done = await poll_task(client.session, created.task_id)
    assert done["status"] == "completed"
    result = done["result"]
    assert result.get("isError") is not True
    assert prediction_id in result["content"][0]["text"]
    assert result["structuredContent"]["phase"] == "succeeded"
    assert list((tmp_path / "out").glob(f"{prediction_id}-0.*")), "the task saved the output, as the call would"
    posts = [r for r in emulator.state.requests if r.method == "POST" and r.path.endswith("/generateVideo")]
    assert len(posts) == 1


async def test_a_client_that_resolves_tasks_gets_the_same_result_as_a_waiting_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    tasks = TasksClient()
    emulator.state.plan_next(PredictionPlan(seconds=1.0))
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[tasks]) as client:
        result = await client.call_tool("generate_video", {"model": VIDEO, "prompt": "a heron"})
    assert len(tasks.seen) == 1
    done = expect_done(result)
    assert done["phase"] == "succeeded"
    assert "Done: 1 output" in text_of(result)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_no_task_for_a_client_that_did_not_declare_the_extension(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    """Never on a legacy connection (the client's extension cannot even be declared there), never to a 2026
    request without the declaration: those calls wait, as before."""
    emulator.state.plan_next(PredictionPlan(seconds=1.0))
    extensions = [TasksClient()] if mode == "legacy" else []
    server = create_server(settings_for(emulator, tmp_path))
    async with Client(server, mode=mode, extensions=extensions) as client:
        extensions_advertised = client.server_capabilities.extensions or {}
        result = await client.session.call_tool(
            "generate_video", {"model": VIDEO, "prompt": "a heron"}, allow_claimed=True
        )
    assert not isinstance(result, CreatedTask)
    expect_done(result)  # type: ignore[arg-type]
    if mode == "legacy":
        assert TASKS not in extensions_advertised


async def test_an_image_done_within_seconds_is_answered_in_the_call(emulator: Emulator, tmp_path: Path) -> None:
    tasks = TasksClient()
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[tasks]) as client:
        result = await client.call_tool("generate_image", {"prompt": "a heron"})
    expect_done(result)
    assert tasks.seen == []


async def test_a_transcript_made_as_a_task_still_says_which_model_was_chosen(
    emulator: Emulator, tmp_path: Path
) -> None:
    tasks = TasksClient()
    emulator.state.plan_next(PredictionPlan(seconds=1.0))
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[tasks]) as client:
        result = await client.call_tool("transcribe_audio", {"audio_url": "https://example.com/talk.mp3"})
    assert len(tasks.seen) == 1
    expect_done(result)
    assert text_of(result).startswith("Model: "), text_of(result)


async def test_check_prediction_waits_as_a_task_and_a_call_that_asked_not_to_wait_gets_none(
    emulator: Emulator, tmp_path: Path
) -> None:
    tasks = TasksClient()
    emulator.state.plan_next(PredictionPlan(seconds=1.5))
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[tasks]) as client:
        started = await client.call_tool("generate_video", {"model": VIDEO, "prompt": "a heron", "wait": False})
        assert started.structured_content is not None and started.structured_content["phase"] == "running"
        assert tasks.seen == []  # it asked not to wait: its answer is the id, at once
        prediction_id = started.structured_content["prediction_id"]
        result = await client.call_tool("check_prediction", {"prediction_id": prediction_id, "wait": True})
    assert len(tasks.seen) == 1
    assert expect_done(result)["prediction_id"] == prediction_id


async def test_a_task_belongs_to_its_payer_and_outlives_the_process_that_made_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Three servers on one state store, one after the other: the first makes the task and stops; a second with
    another key is told the task does not exist, exactly as for an id never issued; a third with the first key (the
    first process, restarted) takes the task over at once and finishes it."""
    emulator.state.plan_next(PredictionPlan(seconds=2.0))
    first = settings_for(emulator, tmp_path)
    async with Client(create_server(first), extensions=[TasksClient()]) as client:
        created, _ = await _task_for_a_video(client, emulator)
    other = first.model_copy(update={"api_key": SecretStr(OTHER_KEY)})
    async with Client(create_server(other), extensions=[TasksClient()]) as client:
        refusals = []
        for task_id in (created.task_id, secrets.token_urlsafe(24)):
            for ask in (get_task, cancel_task):
                with pytest.raises(MCPError) as refused:
                    await ask(client.session, task_id)
                refusals.append((refused.value.error.code, refused.value.error.message))
    assert len(set(refusals)) == 1, refusals  # another payer's task and no task at all: the same answer
    assert refusals[0][0] == -32602
    async with Client(create_server(first), extensions=[TasksClient()]) as client:
        done = await poll_task(client.session, created.task_id)
    assert done["status"] == "completed", done
    assert expect_done_dict(done["result"])["phase"] == "succeeded"


def expect_done_dict(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("isError") is not True, result
    structured = result["structuredContent"]
    assert isinstance(structured, dict)
    return structured


async def test_cancelling_a_task_stops_the_waiting_and_says_what_atlas_may_still_bill(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=600))
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[TasksClient()]) as client:
        created, prediction_id = await _task_for_a_video(client, emulator)
        acknowledged = await cancel_task(client.session, created.task_id)
        cancelled = await get_task(client.session, created.task_id)
        polls = _polls(emulator, prediction_id)
        await anyio.sleep(1.0)
        assert _polls(emulator, prediction_id) == polls, "the waiter kept polling after the cancel"
        again = await cancel_task(client.session, created.task_id)  # a second cancel: acknowledged, nothing changes
    assert cancelled["status"] == "cancelled"
    assert "bill" in cancelled["statusMessage"] and prediction_id in cancelled["statusMessage"]
    assert "result" not in cancelled
    for ack in (acknowledged, again):
        assert {key: value for key, value in ack.items() if key != "_meta"} == {"resultType": "complete"}


def _polls(emulator: Emulator, prediction_id: str) -> int:
    return sum(1 for r in emulator.state.requests if r.method == "GET" and r.path.endswith(prediction_id))


async def test_a_call_that_stopped_waiting_still_gets_its_outputs_saved(emulator: Emulator, tmp_path: Path) -> None:
    """Part 3: a call capped at its wait bound answers "still running"; once Atlas finishes, the output is saved to
    the output folder with nobody asking again, under the name check_prediction would use."""
    emulator.state.plan_next(PredictionPlan(seconds=2.0))
    settings = settings_for(emulator, tmp_path, wait_seconds=0.3)
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("generate_video", {"model": VIDEO, "prompt": "a heron"})
        assert result.structured_content is not None and result.structured_content["phase"] == "running"
        assert "Videos usually take 1–5 minutes" in text_of(result)  # not taken for a hung job
        prediction_id = result.structured_content["prediction_id"]
        with anyio.fail_after(20):
            while not list((tmp_path / "out").glob(f"{prediction_id}-0.*")):
                await anyio.sleep(0.1)
        listed = await client.call_tool("list_predictions", {})
    assert prediction_id in text_of(listed)


async def test_tasks_work_over_stdio_in_the_2026_era_and_not_in_the_2025_era(
    emulator: Emulator, tmp_path: Path
) -> None:
    params = StdioServerParameters(command=CONSOLE_SCRIPT, env=emulator_env(emulator, tmp_path))
    for mode in ("auto", "legacy"):
        emulator.state.plan_next(PredictionPlan(seconds=1.5))
        async with Client(params, mode=mode, extensions=[TasksClient()]) as client:
            answer = await client.session.call_tool(
                "generate_video", {"model": VIDEO, "prompt": "a heron"}, allow_claimed=True
            )
            if mode == "auto":
                assert isinstance(answer, CreatedTask), answer
                done = await poll_task(client.session, answer.task_id)
                assert expect_done_dict(done["result"])["phase"] == "succeeded"
            else:
                assert not isinstance(answer, CreatedTask)
                expect_done(answer)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("family", "model", "said"),
    [
        ("3d", "tencent/hunyuan3d-v2.1/image-to-3d", "3D models usually take 2–5 minutes"),
        ("audio", "minimax/music-2.6", "Songs usually take"),
        ("audio", "minimax/speech-2.5-hd", "Speech usually takes"),
        ("text", "bytedance/seed-asr-2.0/speech-to-text", "Transcripts"),
        ("image", "black-forest-labs/flux-schnell", "Images usually take seconds"),
    ],
)
def test_a_running_job_says_what_its_family_usually_takes(family: Any, model: str, said: str) -> None:
    assert usual_duration(family, model).startswith(said)
