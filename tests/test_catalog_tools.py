"""Beyond three tools: the catalogue, validation before paying, dry runs, history, video and audio."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult, ImageContent, TextContent
from PIL import Image

from atlas_mcp.core.catalog import InputSchema
from atlas_mcp.core.validation import find_problems
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.server import create_server

from .conftest import settings_for

pytestmark = pytest.mark.anyio

VIDEO = "alibaba/wan-2.2/t2v-480p"
AUDIO = "minimax/speech-2.5-hd"
FLUX = "black-forest-labs/flux-schnell"


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def posts(emulator: Emulator) -> list[Any]:
    """The billable submits (quotes are POSTs too, and free)."""
    return [r for r in emulator.state.requests if r.method == "POST" and "/generate" in r.path]


async def call(
    emulator: Emulator, tmp_path: Path, tool: str, arguments: dict[str, Any], **settings: Any
) -> CallToolResult:
    async with Client(create_server(settings_for(emulator, tmp_path, **settings))) as client:
        return await client.call_tool(tool, arguments)


async def test_list_models_filters_by_type_and_keyword(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        videos = await client.call_tool("list_models", {"type": "Video"})
        flux = await client.call_tool("list_models", {"keyword": "FLUX dev"})
        hidden = await client.call_tool("list_models", {"keyword": "legacy", "include_hidden": True})
        visible = await client.call_tool("list_models", {"keyword": "legacy"})
    assert [m["model"] for m in videos.structured_content["models"]] == [VIDEO]  # type: ignore[index]
    assert {m["model"] for m in flux.structured_content["models"]} == {"black-forest-labs/flux-dev"}  # type: ignore[index]
    assert hidden.structured_content["total"] == 1 and visible.structured_content["total"] == 0  # type: ignore[index]
    assert "$0.15/video" in text_of(videos)


async def test_get_model_info_shows_parameters_price_and_tool(emulator: Emulator, tmp_path: Path) -> None:
    result = await call(emulator, tmp_path, "get_model_info", {"model": FLUX})
    info = result.structured_content
    assert info is not None
    assert (info["price_usd"], info["unit"], info["tool"]) == (0.003, "image", "generate_image")
    parameters = {p["name"]: p for p in info["parameters"]}
    assert parameters["prompt"]["required"] is True
    assert parameters["size"]["default"] == "1024*1024"
    assert (parameters["num_images"]["minimum"], parameters["num_images"]["maximum"]) == (1, 4)
    assert list(parameters)[:4] == ["prompt", "size", "num_images", "seed"]  # x-order-properties respected
    text = text_of(result)  # ranges as the schema writes them, and no "default None"
    assert "- num_images (integer; default 1; range 1–4)" in text and "range -1–2147483647" in text
    assert "default None" not in text and "1.0–4.0" not in text
    unknown = await call(emulator, tmp_path, "get_model_info", {"model": "nobody/nothing"})
    assert unknown.is_error and "list_models" in text_of(unknown)


async def test_catalogue_and_schemas_are_fetched_once_under_concurrency(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(client.call_tool, "get_model_info", {"model": FLUX})
        await client.call_tool("generate_image", {"prompt": "after the cache is warm", "dry_run": True})
    paths = [r.path for r in emulator.state.requests]
    assert paths.count("/api/v1/models") == 1
    assert len([p for p in paths if p.startswith("/emulator-storage/schemas/")]) == 1


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("generate_image", {"prompt": "x", "params": {"colour": "red"}}, "colour is not a parameter of this model"),
        ("generate_image", {"prompt": "x", "params": {"enable_safety_checker": "no"}}, "must be a boolean"),
        ("generate_image", {"prompt": "x" * 2500}, "prompt must be at most 2000 characters"),
        ("generate_video", {"model": VIDEO, "prompt": "x", "params": {"duration": 7}}, "duration must be one of 5, 8"),
        ("generate_video", {"model": VIDEO}, "prompt is required"),
        ("generate_audio", {"model": AUDIO, "text": "hi", "params": {"speed": 5}}, "speed must be at most 2"),
        ("generate_image", {"prompt": "x", "model": VIDEO}, "is a Video model: use generate_video"),
        ("generate_image", {"prompt": "x", "model": "nobody/nothing"}, "no model"),
        ("generate_audio", {"model": AUDIO, "text": "hi", "params": {"text": "other"}}, "params cannot contain text"),
    ],
)
async def test_validation_failures_send_nothing(
    emulator: Emulator, tmp_path: Path, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    result = await call(emulator, tmp_path, tool, arguments)
    assert result.is_error
    assert expected in text_of(result), text_of(result)
    assert posts(emulator) == []
    if "parameter of this model" in expected:
        assert "nothing was spent" in text_of(result)
        assert "size (string, default '1024*1024')" in text_of(result)  # the allowed parameters are listed


def test_find_problems_covers_arrays_lengths_and_required() -> None:
    schema = InputSchema(
        properties={
            "prompt": {"type": "string", "minLength": 3},
            "images": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 5}},
            "count": {"type": "integer", "minimum": 1},
        },
        required=("prompt",),
    )
    assert find_problems({"prompt": "a cat", "images": ["a"], "count": 1}, schema) == []
    problems = find_problems({"images": ["abcdef", "b", "c"], "count": 1.5}, schema)
    assert "prompt is required" in problems
    assert "images takes at most 2 items, got 3" in problems
    assert "images[0] must be at most 5 characters long, got 6" in problems
    assert "count must be an integer, got number 1.5" in problems
    assert find_problems({"prompt": "abc", "count": 2.0}, schema) == []
    assert find_problems({"prompt": "ab", "count": True}, schema) == [
        "prompt must be at least 3 characters long",
        "count must be an integer, got boolean true",
    ]


@pytest.mark.parametrize("broken", ["/api/v1/models", "/emulator-storage/schemas/"])
async def test_an_unreadable_schema_refuses_unless_the_caller_opts_out(
    emulator: Emulator, tmp_path: Path, broken: str
) -> None:
    emulator.state.add_fault(Fault(path=broken, kind="status", status=503, times=None))
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        refused = await client.call_tool("generate_image", {"prompt": "x"})
        assert refused.is_error
        assert "could not be read" in text_of(refused) and "skip_validation=true" in text_of(refused)
        assert posts(emulator) == []
        sent = await client.call_tool("generate_image", {"prompt": "x", "skip_validation": True})
    assert not sent.is_error, text_of(sent)
    assert len(posts(emulator)) == 1


async def test_dry_runs_work_without_a_key_and_send_nothing(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, api_key=None))) as client:
        image = await client.call_tool(
            "generate_image", {"prompt": "a fox", "width": 768, "height": 512, "num_images": 2, "dry_run": True}
        )
        video = await client.call_tool("generate_video", {"model": VIDEO, "prompt": "waves", "dry_run": True})
    assert not image.is_error, text_of(image)
    structured = image.structured_content
    assert structured is not None and structured["phase"] == "dry_run" and structured["prediction_id"] is None
    assert structured["request"]["url"] == f"{emulator.url}/api/v1/model/generateImage"
    assert structured["request"]["body"] == {"model": FLUX, "prompt": "a fox", "size": "768*512", "num_images": 2}
    assert structured["quote"] == {"price_usd": pytest.approx(0.006), "source": "catalogue", "estimate": True}
    assert "about $0.006 (estimated from the catalogue price)" in text_of(image)
    assert "nothing was sent" in text_of(image)
    assert video.structured_content is not None
    assert video.structured_content["request"]["url"].endswith("/api/v1/model/generateVideo")
    assert posts(emulator) == []
    assert all("authorization" not in r.headers for r in emulator.state.requests)


async def test_history_pages_and_filters(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0, fail="boom"))
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        for index in range(3):
            await client.call_tool("generate_image", {"prompt": f"history {index}", "wait": False})
        first = await client.call_tool("list_predictions", {"page_size": 2, "model": FLUX})
        second = await client.call_tool("list_predictions", {"page_size": 2, "page": 2, "model": FLUX})
        failed = await client.call_tool("list_predictions", {"state": "failed"})
    page_one = first.structured_content
    assert page_one is not None and len(page_one["predictions"]) == 2 and page_one["has_more"]
    assert "page=2" in text_of(first)
    assert second.structured_content is not None
    ids = [p["prediction_id"] for p in page_one["predictions"] + second.structured_content["predictions"]]
    assert len(set(ids)) == len(ids)
    failures = failed.structured_content["predictions"]  # type: ignore[index]
    assert failures and all(p["status"] == "failed" for p in failures)
    assert any(p["error"] == "boom" for p in failures)


async def test_a_video_outlives_the_wait_and_check_prediction_finishes_it(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=2.0))
    async with Client(create_server(settings_for(emulator, tmp_path, wait_seconds=0.6))) as client:
        started = await client.call_tool("generate_video", {"model": VIDEO, "prompt": "waves at night"})
        assert started.structured_content is not None and started.structured_content["phase"] == "running"
        prediction_id = started.structured_content["prediction_id"]
        with anyio.fail_after(10):
            done = await client.call_tool("check_prediction", {"prediction_id": prediction_id, "wait": True})
            while done.structured_content is not None and done.structured_content["phase"] == "running":
                done = await client.call_tool("check_prediction", {"prediction_id": prediction_id, "wait": True})
    assert done.structured_content is not None and done.structured_content["phase"] == "succeeded", text_of(done)
    output = done.structured_content["outputs"][0]
    assert output["url"] in text_of(done)
    assert Path(output["saved_path"]).is_file()
    # The video is linked and saved, never inlined; the still Atlas gives with it is the preview (and not saved).
    [still] = [b for b in done.content if isinstance(b, ImageContent)]
    picture = Image.open(io.BytesIO(base64.b64decode(still.data)))
    assert still.mime_type == "image/jpeg" and max(picture.size) <= 320
    assert [p.name for p in Path(output["saved_path"]).parent.iterdir()] == [Path(output["saved_path"]).name]


async def test_audio_is_saved_and_linked(emulator: Emulator, tmp_path: Path) -> None:
    result = await call(emulator, tmp_path, "generate_audio", {"model": AUDIO, "text": "Welcome to Atlas Cloud"})
    assert not result.is_error, text_of(result)
    output = result.structured_content["outputs"][0]  # type: ignore[index]
    saved = Path(output["saved_path"])
    assert saved.suffix == ".wav" and saved.read_bytes()[:4] == b"RIFF"
    assert not [b for b in result.content if isinstance(b, ImageContent)]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(path="/api/v1/model/calculate", kind="status", status=503, times=None),
        # Waits out the server's 5 s quote bound on purpose: the integration lane.
        pytest.param(
            Fault(path="/api/v1/model/calculate", kind="delay", seconds=60, times=None), marks=pytest.mark.integration
        ),
    ],
    ids=["failing", "hanging"],
)
async def test_without_atlass_quote_the_catalogue_price_stands_as_an_estimate(
    emulator: Emulator, tmp_path: Path, fault: Fault
) -> None:
    """A quote is information: without one from Atlas (within 5 s) the generation goes on, priced from the list."""
    emulator.state.add_fault(fault)
    started = time.monotonic()
    result = await call(emulator, tmp_path, "generate_image", {"prompt": "a fox", "num_images": 2})
    assert time.monotonic() - started < 20
    assert not result.is_error, text_of(result)
    structured = result.structured_content or {}
    assert structured["phase"] == "succeeded"
    assert structured["quote"] == {"price_usd": pytest.approx(0.006), "source": "catalogue", "estimate": True}
    assert structured["price_usd"] == pytest.approx(0.006)
    assert len(posts(emulator)) == 1
