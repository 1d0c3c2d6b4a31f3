"""The MCP server through the official MCP client, in memory, against the emulator."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult, ImageContent, ListRootsResult, ResourceLink, Root, TextContent
from PIL import Image

from atlas_mcp.atlas import AtlasClient, HistoryItem
from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.server import create_server

from .conftest import ALL_TOOLS, TEST_KEY

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n"


def settings_for(emulator: Emulator, tmp_path: Path, **overrides: Any) -> Settings:
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "api_key": TEST_KEY,
        "base_url": emulator.url,
        "output_dir": tmp_path / "out",
        "upload_roots": (uploads.resolve(),),
        "wait_seconds": 10,
    }
    values.update(overrides)
    return Settings(**values)


async def history(emulator: Emulator) -> list[HistoryItem]:
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url) as atlas:
        return list((await atlas.list_predictions(size=50)).items)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def images_of(result: CallToolResult) -> list[ImageContent]:
    return [block for block in result.content if isinstance(block, ImageContent)]


async def test_tools_are_listed_with_schemas_and_honest_annotations(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert client.instructions is not None and "check_prediction" in client.instructions
    assert set(listed) == ALL_TOOLS
    generate = listed["generate_image"]
    assert generate.title and generate.annotations is not None
    assert generate.annotations.idempotent_hint is False and generate.annotations.read_only_hint is False
    assert "COSTS MONEY" in (generate.description or "")
    check = listed["check_prediction"]
    assert check.annotations is not None and check.annotations.read_only_hint is True
    properties = generate.input_schema["properties"]
    # prompt is optional: image-to-3D models, upscalers and background removal take none (the schema decides)
    assert "required" not in generate.input_schema and "prompt" in properties
    assert properties["num_images"]["maximum"] == 4
    assert properties["model"]["default"] == "black-forest-labs/flux-schnell"
    assert "client_roots" not in listed["upload_media"].input_schema["properties"]
    for tool in listed.values():
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"


async def test_generate_image_waits_with_progress_and_returns_everything(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.config.prediction_seconds = 1.2
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a blue heron", "width": 768, "height": 512}, progress_callback=on_progress
        )
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert structured is not None
    assert structured["phase"] == "succeeded"
    assert structured["price_usd"] == pytest.approx(0.003)
    output = structured["outputs"][0]
    assert output["url"] in text_of(result)
    assert (output["width"], output["height"]) == (768, 512)
    saved = Path(output["saved_path"])
    assert saved.parent == (tmp_path / "out").resolve() and saved.name.startswith(structured["prediction_id"])
    assert saved.read_bytes().startswith(PNG)
    [preview] = images_of(result)
    assert Image.open(io.BytesIO(base64.b64decode(preview.data))).size == (768, 512)
    # The full-size file is also a resource link: its URL, its type as judged from its bytes, its size.
    [link] = [block for block in result.content if isinstance(block, ResourceLink)]
    assert str(link.uri) == output["url"] and link.mime_type == "image/png" == output["media_type"]
    assert link.size == output["size_bytes"] == saved.stat().st_size
    assert link.name == f"{structured['prediction_id']}-1"
    assert len(progress) >= 3
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    submitted = [r for r in emulator.state.requests if r.method == "POST" and "/generate" in r.path]
    assert len(submitted) == 1
    # Every message after the submit names the job, in a few human words.
    messages = [message or "" for _, message in progress]
    assert messages[0].startswith("Submitting to black-forest-labs/flux-schnell")
    named = f"Prediction {structured['prediction_id']}: "
    assert all(message.startswith(named) for message in messages[1:]), messages
    assert messages[1] == f"{named}submitted (created)" and messages[-1] == f"{named}fetching 1 output"
    assert any(message[len(named) :].startswith(("running ", "queued")) for message in messages), messages


@pytest.mark.parametrize("num_images", [1, 4])
async def test_previews_of_2048_outputs_stay_within_budget(emulator: Emulator, tmp_path: Path, num_images: int) -> None:
    emulator.state.config.prediction_seconds = 0.1
    settings = settings_for(emulator, tmp_path)
    async with Client(create_server(settings)) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "a detailed city at night", "size": "2048*2048", "num_images": num_images}
        )
    assert not result.is_error, text_of(result)
    previews = images_of(result)
    assert len(previews) == num_images
    assert sum(len(p.data) for p in previews) <= settings.preview_budget_kb * 1024
    for preview in previews:
        image = Image.open(io.BytesIO(base64.b64decode(preview.data)))
        assert image.format == "JPEG" and max(image.size) <= settings.preview_max_side
    whole = len(result.model_dump_json(by_alias=True))
    assert whole < 1024 * 1024, f"result is {whole} bytes"
    assert all(o["width"] == 2048 for o in result.structured_content["outputs"])  # type: ignore[index]


async def test_the_wait_bound_hands_back_an_id_that_check_prediction_resolves(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=2.5))
    async with Client(create_server(settings_for(emulator, tmp_path, wait_seconds=0.8))) as client:
        with anyio.fail_after(3):
            pending = await client.call_tool("generate_image", {"prompt": "slow"})
        assert not pending.is_error
        assert pending.structured_content is not None
        assert pending.structured_content["phase"] == "running"
        prediction_id = pending.structured_content["prediction_id"]
        assert "check_prediction" in text_of(pending) and prediction_id in text_of(pending)
        assert images_of(pending) == []
        await anyio.sleep(1.0)
        still = await client.call_tool("check_prediction", {"prediction_id": prediction_id})
        assert still.structured_content is not None and still.structured_content["phase"] == "running"
        with anyio.fail_after(10):  # each call waits at most the server's 0.8 s bound
            done = await client.call_tool("check_prediction", {"prediction_id": prediction_id, "wait": True})
            while done.structured_content is not None and done.structured_content["phase"] == "running":
                done = await client.call_tool("check_prediction", {"prediction_id": prediction_id, "wait": True})
    assert done.structured_content is not None and done.structured_content["phase"] == "succeeded", text_of(done)
    assert len(images_of(done)) == 1
    assert len([r for r in emulator.state.requests if r.method == "POST" and "/generate" in r.path]) == 1


async def test_a_failed_prediction_is_a_tool_error_with_atlas_reason(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0.2, fail="content flagged by the safety checker"))
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool("generate_image", {"prompt": "x"})
    assert result.is_error
    assert "content flagged by the safety checker" in text_of(result)


async def test_cancelling_the_call_stops_the_polling(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=60))
    async with Client(create_server(settings_for(emulator, tmp_path, wait_seconds=30))) as client:
        with anyio.move_on_after(1.0):
            await client.call_tool("generate_image", {"prompt": "never mind"})
        polls = len([r for r in emulator.state.requests if "/prediction/" in r.path])
        assert polls >= 1
        await anyio.sleep(1.5)
        assert len([r for r in emulator.state.requests if "/prediction/" in r.path]) == polls
        listed = await client.list_tools()  # the session is still fine
    assert listed.tools


async def test_inputs_map_to_the_models_schema_and_unused_ones_are_reported(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool(
            "generate_image",
            {"prompt": "x", "width": 512, "height": 512, "steps": 20, "guidance_scale": 7.5, "seed": 3},
        )
        dev = await client.call_tool(
            "generate_image",
            {"model": "black-forest-labs/flux-dev", "prompt": "x", "steps": 20, "guidance_scale": 7.5},
        )
    assert not result.is_error, text_of(result)
    not_used = result.structured_content["not_used"]  # type: ignore[index]
    assert any(item.startswith("steps") for item in not_used)
    assert any(item.startswith("guidance_scale") for item in not_used)
    assert "Not used: steps" in text_of(result)
    assert not dev.is_error and dev.structured_content["not_used"] == []  # type: ignore[index]
    dev_body, schnell_body = (item.request_body or {} for item in (await history(emulator))[:2])
    assert schnell_body == {"model": "black-forest-labs/flux-schnell", "prompt": "x", "size": "512*512", "seed": 3}
    assert dev_body["num_inference_steps"] == 20 and dev_body["guidance_scale"] == 7.5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"prompt": "x", "params": {"model": "other/expensive"}}, "params cannot contain model"),
        ({"prompt": "x", "width": 512}, "both width and height"),
        ({"prompt": "x", "seed": 1, "params": {"seed": 2}}, "seed is given twice"),
        ({"prompt": "x", "num_images": 9}, "num_images"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "model": "../../etc"}, "model"),
        ({"prompt": "x", "image": "file:///etc/passwd"}, "image"),
    ],
)
async def test_bad_inputs_are_refused_before_anything_is_paid(
    emulator: Emulator, tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool("generate_image", arguments)
    assert result.is_error
    assert message in text_of(result)
    assert not [r for r in emulator.state.requests if r.method == "POST" and "/generate" in r.path]


async def test_check_prediction_refuses_traversal_ids(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool("check_prediction", {"prediction_id": "x/../../history"})
    assert result.is_error and "not a prediction id" in text_of(result)
    assert emulator.state.requests == []


async def test_upload_media_round_trip(emulator: Emulator, tmp_path: Path) -> None:
    picture = tmp_path / "uploads" / "cat.png"
    settings = settings_for(emulator, tmp_path)
    Image.new("RGB", (64, 48), "orange").save(picture)
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("upload_media", {"path": str(picture)})
        relative = await client.call_tool("upload_media", {"path": "cat.png"})
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert structured is not None and structured["content_type"] == "image/png"
    assert structured["size_bytes"] == picture.stat().st_size
    assert structured["url"] in text_of(result)
    assert not relative.is_error


def _refused_paths(tmp_path: Path) -> dict[str, str]:
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    (uploads / "link.png").symlink_to(outside)
    (uploads / ".ssh").mkdir()
    Image.new("RGB", (8, 8)).save(uploads / ".ssh" / "id_rsa.png")
    (uploads / ".env").write_text("ATLASCLOUD_API_KEY=x")
    os.mkfifo(uploads / "pipe.png")
    (uploads / "folder.png").mkdir()
    (uploads / "notes.txt").write_text("hello")
    with open(uploads / "big.png", "wb") as handle:
        handle.write(PNG)
        handle.truncate(3 * 1024 * 1024)
    return {
        str(outside): "outside the folders",
        str(uploads / ".." / "secret.png"): "outside the folders",
        str(uploads / "link.png"): "outside the folders",
        str(uploads / ".ssh" / "id_rsa.png"): "hidden",
        str(uploads / ".env"): "hidden",
        str(uploads / "pipe.png"): "not a regular file",
        str(uploads / "folder.png"): "a folder",
        str(uploads / "notes.txt"): "not an image, video or audio file",
        str(uploads / "big.png"): "over the 2 MiB limit",
        "/etc/passwd": "outside the folders",
        "~/.ssh/id_rsa": "outside the folders",
        str(uploads / "missing.png"): "does not exist",
    }


async def test_every_refused_upload_path_says_why(emulator: Emulator, tmp_path: Path) -> None:
    cases = _refused_paths(tmp_path)
    settings = settings_for(emulator, tmp_path, max_upload_mb=2)
    async with Client(create_server(settings)) as client:
        for path, reason in cases.items():
            with anyio.fail_after(5):  # a FIFO must not hang the call
                result = await client.call_tool("upload_media", {"path": path})
            assert result.is_error, path
            assert reason in text_of(result), (path, text_of(result))
    assert not [r for r in emulator.state.requests if r.path.endswith("uploadMedia")]


async def test_refusals_name_the_allowed_roots_and_how_to_configure(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        refused = await client.call_tool("upload_media", {"path": "/etc/hostname"})
    async with Client(create_server(settings_for(emulator, tmp_path, upload_roots=()))) as client:
        disabled = await client.call_tool("upload_media", {"path": "/etc/hostname"})
    assert str((tmp_path / "uploads").resolve()) in text_of(refused)
    assert "ATLASCLOUD_UPLOAD_ROOTS" in text_of(refused)
    assert "ATLASCLOUD_UPLOAD_ROOTS" in text_of(disabled)


async def test_client_roots_are_used_when_none_are_configured(emulator: Emulator, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    Image.new("RGB", (16, 16), "green").save(workspace / "in.png")
    (tmp_path / "elsewhere.png").write_bytes((workspace / "in.png").read_bytes())

    async def list_roots(_context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=workspace.as_uri(), name="workspace")])

    settings = settings_for(emulator, tmp_path, upload_roots=())
    async with Client(create_server(settings), list_roots_callback=list_roots) as client:
        inside = await client.call_tool("upload_media", {"path": str(workspace / "in.png")})
        outside = await client.call_tool("upload_media", {"path": str(tmp_path / "elsewhere.png")})
    assert not inside.is_error, text_of(inside)
    assert outside.is_error and str(workspace) in text_of(outside)


async def test_upstream_trouble_is_a_clear_tool_error_and_the_server_stays_up(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/model/generateImage", kind="status", status=503))
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        broken = await client.call_tool("generate_image", {"prompt": "x"})
        # A 5xx on the billable POST leaves its fate unclear: the same call again is not sent blindly...
        again = await client.call_tool("generate_image", {"prompt": "x"})
        # ...until the caller says they really want another one.
        working = await client.call_tool("generate_image", {"prompt": "x", "repeat": True})
    assert broken.is_error and "HTTP 503" in text_of(broken)
    assert again.is_error and "may have reached Atlas" in text_of(again) and "repeat=true" in text_of(again)
    assert not working.is_error
    assert len([r for r in emulator.state.requests if r.path == "/api/v1/model/generateImage"]) == 2


async def test_no_key_is_a_clear_error(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, api_key=None))) as client:
        result = await client.call_tool("generate_image", {"prompt": "x"})
    assert result.is_error and "ATLASCLOUD_API_KEY" in text_of(result)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_server_and_every_tool_carry_a_themed_svg_icon(emulator: Emulator, tmp_path: Path, mode: str) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=mode) as client:
        server_icons = client.server_info.icons or []
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    drawn: dict[str, str] = {}
    for owner, icons in [("server", server_icons), *((name, tool.icons or []) for name, tool in tools.items())]:
        assert sorted(icon.theme or "" for icon in icons) == ["dark", "light"], owner
        for icon in icons:
            assert icon.mime_type == "image/svg+xml" and icon.sizes == ["any"]
            assert icon.src.startswith("data:image/svg+xml;base64,")
            svg = base64.b64decode(icon.src.split(",", 1)[1]).decode()
            assert svg.startswith("<svg") and "<script" not in svg and len(svg) < 1024
            drawn[f"{owner}-{icon.theme}"] = svg
    # One drawing per modality: image, video and audio differ from each other and from the server's.
    modalities = {drawn[f"{name}-light"] for name in ("generate_image", "generate_video", "generate_audio", "server")}
    assert len(modalities) == 4
    assert drawn["generate_image-light"] != drawn["generate_image-dark"]
