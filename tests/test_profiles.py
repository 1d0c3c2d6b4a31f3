"""Every tool against every shape the live service answers in: each emulator profile, in memory and over stdio,
in both protocol eras (the 2025 ``initialize`` handshake and the 2026 ``server/discover``).

A profile puts every emulated model under one set of live quirks (see atlas_mcp/emulator/profiles.py and
tests/fixtures/atlas/README.md). The run below is what an assistant does in a session: look models up, upload a
picture, generate with it, hand a generation back early and finish it with check_prediction, make a video and a
sound, meet a failure, and read the history.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult
from PIL import Image

from atlas_mcp.config import Settings
from atlas_mcp.emulator import PROFILES, Emulator, PredictionPlan
from atlas_mcp.server import create_server

from .conftest import TEST_KEY
from .harness import ServerProcess, emulator_env, expect_done, expect_error, images_of, text_of

pytestmark = pytest.mark.anyio

FLUX = "black-forest-labs/flux-schnell"
VIDEO = "alibaba/wan-2.2/t2v-480p"
AUDIO = "minimax/speech-2.5-hd"
ERAS = {"legacy": "legacy", "2026": "auto"}  # Client(mode=...): "auto" discovers, and this server speaks 2026
WARM_UP = {"warm-up-404", "warm-up-400"}
INLINE = {"base64-outputs", "data-uri-outputs"}


@dataclass
class StdioSession:
    client: Client
    server: ServerProcess
    uploads: Path


@pytest.fixture(scope="module")
async def stdio_sessions(
    emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, StdioSession]]:
    """One server process per protocol era, shared by the profiles: a profile is the emulator's setting, read on
    every request, so one process meets them all (and its stderr can be read for all of them at the end)."""
    async with AsyncExitStack() as stack:
        sessions = {}
        for era, mode in ERAS.items():
            workdir = tmp_path_factory.mktemp(f"profiles-{era}")
            uploads = workdir / "uploads"
            uploads.mkdir()
            env = emulator_env(
                emulator_session,
                workdir,
                ATLASCLOUD_UPLOAD_ROOTS=str(uploads),
                ATLASCLOUD_WAIT_SECONDS="10",
                ATLASCLOUD_REPEAT_WINDOW_S="0",  # each profile must answer its own submit, not an earlier one
            )
            server = ServerProcess(env, workdir / "stderr.log")
            client = await stack.enter_async_context(Client(server.transport(), mode=mode))
            sessions[era] = StdioSession(client, server, uploads)
        yield sessions


@asynccontextmanager
async def connect(
    transport: str, era: str, emulator: Emulator, tmp_path: Path, stdio: dict[str, StdioSession]
) -> AsyncIterator[tuple[Client, Path]]:
    """A client in this era, and the folder its server may upload from."""
    if transport == "stdio":
        yield stdio[era].client, stdio[era].uploads
        return
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    settings = Settings(
        api_key=TEST_KEY,
        base_url=emulator.url,
        output_dir=tmp_path / "out",
        upload_roots=(uploads.resolve(),),
        wait_seconds=10,
    )
    async with Client(create_server(settings), mode=ERAS[era]) as client:
        yield client, uploads


async def finished(client: Client, result: CallToolResult) -> dict[str, Any]:
    """Finish a generation that came back running, with check_prediction (never by generating again)."""
    structured = result.structured_content or {}
    with anyio.fail_after(20):
        while not result.is_error and structured.get("phase") == "running":
            result = await client.call_tool(
                "check_prediction", {"prediction_id": structured["prediction_id"], "wait": True}
            )
            structured = result.structured_content or {}
    return expect_done(result)


@pytest.mark.parametrize("transport", ["memory", "stdio"])
@pytest.mark.parametrize("era", list(ERAS))
@pytest.mark.parametrize("profile", list(PROFILES))
async def test_every_tool_against_every_profile(
    emulator: Emulator, tmp_path: Path, stdio_sessions: dict[str, StdioSession], profile: str, era: str, transport: str
) -> None:
    emulator.state.config.profile = profile
    # Not the live 0.6 s warm-up: polled every few ms, a shorter window shows. But not much shorter: with two
    # workers a core, a worker may wait a tenth of a second for the CPU, and the first poll must land in it.
    window = 0.4 if profile in WARM_UP else 0.15
    emulator.state.config.prediction_seconds = window
    emulator.state.config.warm_up_seconds = window
    shape = PROFILES[profile]
    async with connect(transport, era, emulator, tmp_path, stdio_sessions) as (client, uploads):
        picture = uploads / f"fox-{profile}.png"
        Image.new("RGB", (64, 48), "orange").save(picture)

        # Find a model and read its parameters: `model` is the server's, never the caller's
        listed = await client.call_tool("list_models", {"type": "Image", "keyword": "flux"})
        assert FLUX in {m["model"] for m in (listed.structured_content or {})["models"]}
        info = await client.call_tool("get_model_info", {"model": FLUX})
        parameters = {p["name"]: p for p in (info.structured_content or {})["parameters"]}
        assert "model" not in parameters and parameters["prompt"]["required"] is True
        assert "enable_sync_mode" not in parameters

        # Upload a picture and use it as the input of a generation that waits, with progress
        uploaded = await client.call_tool("upload_media", {"path": str(picture)})
        assert not uploaded.is_error, text_of(uploaded)
        messages: list[str] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            messages.append(message or "")

        image = await client.call_tool(
            "generate_image",
            {"prompt": f"a fox, {profile}", "image": (uploaded.structured_content or {})["url"], "strength": 0.5},
            progress_callback=on_progress,
        )
        done = expect_done(image)
        output = done["outputs"][0]
        assert len(images_of(image)) == 1
        with Image.open(output["saved_path"]) as saved:
            assert saved.format == "PNG" and saved.size == (1024, 1024)
        assert done["price_usd"] == pytest.approx(0.003)
        assert done["quote"] == {
            "price_usd": pytest.approx(0.003),
            "source": "atlas",
            "estimate": shape.quote_estimated,
        }
        assert messages and "$0.003" in messages[0]
        if shape.synchronous:
            assert not any("poll" in message for message in messages)  # the submit's answer was already done
        if profile in WARM_UP:
            assert any("not visible at Atlas yet" in message for message in messages), messages
        if profile in INLINE:
            assert output["url"] is None and output["inline"] is True
            assert len(image.model_dump_json()) < 300_000  # the preview only: the inline file is not in the result
            assert base64.b64encode(Path(output["saved_path"]).read_bytes()[:300]).decode() not in text_of(image)
        else:
            assert output["url"] in text_of(image)
            if shape.outputs == "signed-url":
                assert "Signature=" in output["url"]  # fetched without a Referer, or the store would have said 403

        # Handed back at once, finished later with check_prediction (warm-up profiles: a 404/400 at first)
        early = await client.call_tool("generate_image", {"prompt": "later", "wait": False})
        assert not early.is_error, text_of(early)
        later = await finished(client, early)
        assert later["prediction_id"] == (early.structured_content or {})["prediction_id"]

        # Video and audio, saved and linked
        video = await finished(client, await client.call_tool("generate_video", {"model": VIDEO, "prompt": "waves"}))
        assert Path(video["outputs"][0]["saved_path"]).read_bytes()[8:12] == b"WEBP"
        audio = await finished(client, await client.call_tool("generate_audio", {"model": AUDIO, "text": "Welcome"}))
        assert Path(audio["outputs"][0]["saved_path"]).read_bytes()[8:12] == b"WAVE"

        # A failure, written as this profile writes them
        emulator.state.plan_next(PredictionPlan(seconds=0.1, fail="Upstream access denied", error_code=1013002))
        failed = await client.call_tool("generate_image", {"prompt": "refused"})
        if failed.structured_content and failed.structured_content.get("phase") == "running":
            failed = await client.call_tool(
                "check_prediction", {"prediction_id": failed.structured_content["prediction_id"], "wait": True}
            )
        message = expect_error("generate_image", failed, "Upstream access denied", "not billed")
        assert ("1013002" in message) is shape.error_object

        # The history, in Atlas's newer query form
        history = await client.call_tool("list_predictions", {"state": "succeeded", "model": FLUX, "page_size": 50})
        ids = {p["prediction_id"] for p in (history.structured_content or {})["predictions"]}
        assert {done["prediction_id"], later["prediction_id"]} <= ids


async def test_logs_never_hold_a_signed_url_query(emulator: Emulator, stdio_sessions: dict[str, StdioSession]) -> None:
    """After the profiles ran over stdio at DEBUG: the outputs' hosts and paths are logged, their signatures not."""
    # Under pytest-xdist this worker's servers may have run none of the profiles: one signed output each, at least.
    emulator.state.config.profile = "signed-urls"
    for session in stdio_sessions.values():
        expect_done(await session.client.call_tool("generate_image", {"prompt": "signed", "size": "256*256"}))
        await anyio.sleep(0.1)  # let the last log lines reach the file
        log = session.server.stderr_text()
        assert "/emulator-storage/outputs/" in log  # httpx's request lines are there...
        assert "Signature=" not in log and "OSSAccessKeyId" not in log and "Expires=" not in log  # ...without queries
        assert TEST_KEY not in log


SHAPES = {
    "model-with-default": "black-forest-labs/flux-schnell",
    "model-required-absent": "openai/gpt-image-2/text-to-image",
    "type-lists-and-unions": "bytedance/seedream-v4",
    "no-model": "black-forest-labs/flux-dev-legacy",
}


@pytest.mark.parametrize("transport", ["memory", "stdio"])
@pytest.mark.parametrize("era", list(ERAS))
@pytest.mark.parametrize("shape", list(SHAPES))
async def test_every_schema_shape_runs_the_whole_tool_set(
    emulator: Emulator, tmp_path: Path, stdio_sessions: dict[str, StdioSession], shape: str, era: str, transport: str
) -> None:
    """The schemas in tests/fixtures/atlas/schemas/, in each live shape: nothing demands or lists `model`, the body
    carries it once, and the endpoint comes from the catalogue's type (the unions schema's paths say generateVideo)."""
    model = SHAPES[shape]
    emulator.state.config.profile = "plain"
    emulator.state.config.prediction_seconds = 0.15
    async with connect(transport, era, emulator, tmp_path, stdio_sessions) as (client, uploads):
        picture = uploads / f"{shape}.png"
        Image.new("RGB", (40, 40), "navy").save(picture)
        info = await client.call_tool("get_model_info", {"model": model})
        assert not info.is_error, text_of(info)
        names = [p["name"] for p in (info.structured_content or {})["parameters"]]
        assert "model" not in names and names[0] == "prompt"
        dry = await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": model, "dry_run": True})
        body = (dry.structured_content or {})["request"]["body"]
        assert body["model"] == model and list(body).count("model") == 1
        assert (dry.structured_content or {})["request"]["url"].endswith("/api/v1/model/generateImage")

        url = (await client.call_tool("upload_media", {"path": str(picture)})).structured_content or {}
        arguments = {"prompt": "a lighthouse", "model": model, "wait": False}
        if "image" in names or "images" in names:
            arguments["image"] = url["url"]
        emulator.state.clear_requests()
        started = await client.call_tool("generate_image", arguments)
        assert not started.is_error, text_of(started)
        [submit] = [r for r in emulator.state.requests if r.method == "POST" and "/generate" in r.path]
        assert submit.path == "/api/v1/model/generateImage"
        prediction = emulator.state.predictions[(started.structured_content or {})["prediction_id"]]
        if "images" in names:
            assert prediction.request_body["images"] == [url["url"]]  # one URL, sent as the list the model takes
        done = await finished(client, started)
        history = await client.call_tool("list_predictions", {"model": model, "state": "succeeded", "page_size": 50})
        assert done["prediction_id"] in {p["prediction_id"] for p in (history.structured_content or {})["predictions"]}


@pytest.mark.parametrize("era", list(ERAS))
async def test_flags_that_would_defeat_the_wait_or_the_budget_are_refused(
    emulator: Emulator, tmp_path: Path, stdio_sessions: dict[str, StdioSession], era: str
) -> None:
    async with connect("memory", era, emulator, tmp_path, stdio_sessions) as (client, _uploads):
        for flag, reason in (
            ("enable_sync_mode", "waits for the result itself"),
            ("enable_base64_output", "not as base64"),
        ):
            refused = await client.call_tool("generate_image", {"prompt": "x", "params": {flag: True}})
            expect_error("generate_image", refused, f"leave out {flag}", reason, "nothing was spent")
    assert not [r for r in emulator.state.requests if r.method == "POST"]


@pytest.mark.parametrize("era", list(ERAS))
async def test_a_dry_run_shows_atlass_own_quote(
    emulator: Emulator, tmp_path: Path, stdio_sessions: dict[str, StdioSession], era: str
) -> None:
    async with connect("memory", era, emulator, tmp_path, stdio_sessions) as (client, _uploads):
        image = await client.call_tool("generate_image", {"prompt": "x", "num_images": 3, "dry_run": True})
        speech = await client.call_tool("generate_audio", {"model": AUDIO, "text": "hello", "dry_run": True})
    assert (image.structured_content or {})["quote"] == {"price_usd": 0.009, "source": "atlas", "estimate": False}
    assert "Cost: $0.009 (Atlas's quote)." in text_of(image)
    assert (speech.structured_content or {})["quote"]["estimate"] is True  # its profile quotes estimates
    assert "Atlas's quote, an estimate" in text_of(speech)
    assert [r.path for r in emulator.state.requests if r.method == "POST"] == ["/api/v1/model/calculate"] * 2
