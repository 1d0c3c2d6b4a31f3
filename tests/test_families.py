"""Every model family Atlas serves, end to end: 3D models (listed as Image), an upscaler that takes no prompt,
speech-to-text and lyrics whose text is ``outputs[0]`` itself, and songs that come in twos.

The emulator's family models (atlas_mcp/emulator/catalogue.py, ``FAMILY_MODELS``) answer in the shapes
Atlas's docs and Atlas's own client describe; tests/fixtures/atlas/README.md says which public fact each records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mcp import Client

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.server import create_server

from .conftest import settings_for as shared_settings
from .harness import ServerProcess, emulator_env, expect_done, expect_error, text_of

pytestmark = pytest.mark.anyio

HUNYUAN = "tencent/hunyuan3d-v2.1/image-to-3d"
SEED3D = "bytedance/seed3d-2.0/image-to-3d"
UPSCALE = "atlascloud/real-esrgan/upscale"
ASR = "bytedance/seed-asr-2.0/speech-to-text"
LYRICS = "minimax/lyrics-generation"
MUSIC = "minimax/music-2.6"
PICTURE = "https://cdn.example.invalid/in/fox.png"  # an input URL: Atlas fetches inputs, we never do
ERAS = {"legacy": "legacy", "2026": "auto"}
SOLIDS = {
    "GLB": (".glb", "model/gltf-binary"),
    "OBJ": (".obj", "model/obj"),
    "USDZ": (".usdz", "model/vnd.usdz+zip"),
    "FBX": (".fbx", "application/octet-stream"),
    "STL": (".stl", "model/stl"),
}


def settings_for(emulator: Emulator, tmp_path: Path, **overrides: Any) -> Settings:
    """The suite's settings; Seed3D's $0.35 a run is above the default threshold (asking is tested elsewhere)."""
    return shared_settings(emulator, tmp_path, **({"repeat_window_s": 0, "confirm_above_usd": 1.0} | overrides))


@pytest.fixture
def fast(emulator: Emulator) -> Emulator:
    emulator.state.config.prediction_seconds = 0.05
    return emulator


def file_requests(emulator: Emulator) -> list[str]:
    return [r.path for r in emulator.state.requests if r.path.startswith("/emulator-storage/outputs/")]


async def test_a_5000_character_transcript_comes_back_whole_and_saved(fast: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        result = await client.call_tool("generate_audio", {"model": ASR, "params": {"audio": PICTURE}})
    done = expect_done(result)
    transcript = done["transcript"]
    assert len(transcript["text"]) >= 5000 and not transcript["truncated"]
    assert transcript["text"] in text_of(result)  # the model reads all of it, not 300 characters and "…"
    saved = Path(transcript["saved_text_path"])
    assert saved.name == f"{done['prediction_id']}-0.txt"
    assert saved.read_text().strip() == transcript["text"]
    assert file_requests(fast) == []  # text is never fetched


async def test_a_transcript_that_looks_like_a_url_is_never_fetched(fast: Emulator, tmp_path: Path) -> None:
    lure = f"{fast.url}/emulator-storage/outputs/0123456789abcdef0123456789abcdef/0.png is what the speaker said"
    fast.state.plan_next(PredictionPlan(text_output=lure))
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        result = await client.call_tool("generate_audio", {"model": ASR, "params": {"audio": PICTURE}})
        done = expect_done(result)
        again = expect_done(await client.call_tool("check_prediction", {"prediction_id": done["prediction_id"]}))
    assert done["transcript"]["text"] == lure == again["transcript"]["text"]
    assert file_requests(fast) == []  # the URL-looking words were not taken for a link


async def test_lyrics_are_text_too(fast: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        done = expect_done(await client.call_tool("generate_audio", {"model": LYRICS, "text": "rain on the harbour"}))
    assert "[Chorus]" in done["transcript"]["text"] and "rain on the harbour" in done["transcript"]["text"]
    assert Path(done["transcript"]["saved_text_path"]).suffix == ".txt"


@pytest.mark.parametrize("file_format", list(SOLIDS))
async def test_3d_models_are_saved_with_their_extension_and_type(
    fast: Emulator, tmp_path: Path, file_format: str
) -> None:
    extension, mime = SOLIDS[file_format]
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        # image-to-3D takes no prompt: only params.image, as Atlas's own README shows it
        result = await client.call_tool(
            "generate_image", {"model": HUNYUAN, "params": {"image": PICTURE, "format": file_format}}
        )
    done = expect_done(result)
    [output] = done["outputs"]
    assert Path(output["saved_path"]).name == f"{done['prediction_id']}-0{extension}"
    assert output["media_type"] == mime and f"3D model ({file_format}," in output["note"]
    assert f"3D model ({file_format}," in text_of(result)
    links = [block for block in result.content if block.type == "resource_link"]
    assert [link.mime_type for link in links] == [mime]
    assert any(block.type == "image" for block in result.content)  # the model's still is the preview


async def test_a_zip_is_saved_as_a_zip_and_never_unpacked(fast: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        done = expect_done(await client.call_tool("generate_image", {"model": SEED3D, "params": {"image": PICTURE}}))
    [output] = done["outputs"]
    saved = Path(output["saved_path"])
    assert saved.suffix == ".zip" and output["media_type"] == "application/zip"
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]  # nothing unpacked beside it


async def test_without_an_output_folder_a_40_mb_model_is_not_downloaded(fast: Emulator, tmp_path: Path) -> None:
    big = 40 * 1024 * 1024
    fast.state.config.profile = "extensionless"  # signed links with no extension: only the bytes say what it is
    fast.state.plan_next(PredictionPlan(pad_to_bytes=big))
    async with Client(create_server(settings_for(fast, tmp_path, output_dir=None))) as client:
        model = expect_done(await client.call_tool("generate_image", {"model": HUNYUAN, "params": {"image": PICTURE}}))
        link = model["outputs"][0]["url"]
        assert not urlsplit(link).path.rsplit("/", 1)[1].count(".")
        assert file_requests(fast) == [] or all("thumb" in p for p in file_requests(fast))  # a 3D model: not fetched

        # The same link from a model thought to make pictures: its head says GLB, so the rest is not read.
        fast.state.plan_next(PredictionPlan(output_urls=[link]))
        picture = expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
    served = fast.state.served_bytes(urlsplit(link).path)
    assert served < big // 4, f"{served} of {big} bytes were sent"
    assert "not downloaded: 3D model (GLB)" in picture["outputs"][0]["note"]


async def test_a_model_without_a_prompt_runs_and_one_that_needs_it_says_so(fast: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        upscaled = await client.call_tool("generate_image", {"model": UPSCALE, "params": {"image": PICTURE}})
        prompted = await client.call_tool("generate_image", {"model": UPSCALE, "prompt": "x", "image": PICTURE})
        missing = await client.call_tool("generate_image", {})
    assert expect_done(upscaled)["outputs"][0]["media_type"] == "image/png"
    assert "prompt (this model takes no prompt)" in expect_done(prompted)["not_used"]
    expect_error("generate_image", missing, "Not sent, nothing was spent", "prompt is required")
    submits = [r for r in fast.state.requests if r.path.startswith("/api/v1/model/generate")]
    assert len(submits) == 2  # the refused call sent nothing


async def test_songs_come_in_twos(fast: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        done = expect_done(await client.call_tool("generate_audio", {"model": MUSIC, "text": "slow jazz"}))
    assert [Path(o["saved_path"]).suffix for o in done["outputs"]] == [".mp3", ".mp3"]
    assert {o["media_type"] for o in done["outputs"]} == {"audio/mpeg"}


@pytest.fixture(scope="module")
async def stdio_clients(
    emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, tuple[Client, Path]]]:
    async with AsyncExitStack() as stack:
        clients = {}
        for era, mode in ERAS.items():
            workdir = tmp_path_factory.mktemp(f"families-{era}")
            env = emulator_env(
                emulator_session,
                workdir,
                ATLASCLOUD_WAIT_SECONDS="10",
                ATLASCLOUD_REPEAT_WINDOW_S="0",
                ATLASCLOUD_CONFIRM_ABOVE_USD="1",
            )
            server = ServerProcess(env, workdir / "stderr.log")
            clients[era] = (await stack.enter_async_context(Client(server.transport(), mode=mode)), workdir / "out")
        yield clients


@pytest.mark.parametrize("era", list(ERAS))
async def test_every_family_over_stdio(fast: Emulator, stdio_clients: dict[str, tuple[Client, Path]], era: str) -> None:
    client, out = stdio_clients[era]
    calls = [
        ("generate_image", {"model": HUNYUAN, "params": {"image": PICTURE}}, ".glb"),
        ("generate_image", {"model": SEED3D, "params": {"image": PICTURE}}, ".zip"),
        ("generate_image", {"model": UPSCALE, "params": {"image": PICTURE}}, ".png"),
        ("generate_audio", {"model": MUSIC, "text": "a sea shanty"}, ".mp3"),
        ("generate_audio", {"model": "minimax/speech-2.5-hd", "text": "hello"}, ".wav"),
        ("generate_audio", {"model": ASR, "params": {"audio": PICTURE}}, None),
        ("generate_audio", {"model": LYRICS, "text": "a sea shanty"}, None),
        ("transcribe_audio", {"audio_url": PICTURE, "model": ASR}, None),
    ]
    for tool, arguments, extension in calls:
        done = expect_done(await client.call_tool(tool, arguments))
        checked = expect_done(await client.call_tool("check_prediction", {"prediction_id": done["prediction_id"]}))
        if extension is None:
            assert done["transcript"]["text"] and checked["transcript"]["text"] == done["transcript"]["text"]
            assert (out / f"{done['prediction_id']}-0.txt").is_file()
        else:
            assert all(Path(o["saved_path"]).suffix == extension for o in done["outputs"]), (tool, arguments)
            assert [o["media_type"] for o in checked["outputs"]] == [o["media_type"] for o in done["outputs"]]


@pytest.mark.parametrize("era", list(ERAS))
async def test_the_live_balance_shows_the_account_the_subscription_bonus_and_the_credit_grant(
    emulator: Emulator, stdio_clients: dict[str, tuple[Client, Path]], era: str
) -> None:
    emulator.state.add_fault(Fault(path="/public/v1/balance", kind="fixture", fixture="answers/balance.json"))
    client, _out = stdio_clients[era]
    result = await client.call_tool("get_balance", {})
    said, balance = text_of(result), result.structured_content or {}
    assert "Account: Harbour Studio (team account)" in said
    assert "Available: 125.50 USD = cash 100.00 USD + bonus 20.50 USD + subscription bonus 5.00 USD" in said
    assert "Credit grant (active): granted 50.00 USD, used 12.00 USD, remaining overdraft 38.00 USD" in said
    assert balance["adds_up"] is True and balance["subscription_bonus"] == 5
    assert balance["cash"] + balance["bonus"] + balance["subscription_bonus"] == balance["available"]
    assert balance["credit_grant"]["remaining_overdraft"] == 38 and "{" not in said  # no Python dict printed


async def test_a_submit_answered_with_request_id_is_polled_and_finished(fast: Emulator, tmp_path: Path) -> None:
    fast.state.config.profile = "request-id"
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        early = (await client.call_tool("generate_image", {"prompt": "a fox", "wait": False})).structured_content
        assert early is not None and early["prediction_id"]
        checked = await client.call_tool("check_prediction", {"prediction_id": early["prediction_id"], "wait": True})
        done = expect_done(checked)
    assert done["prediction_id"] == early["prediction_id"] and Path(done["outputs"][0]["saved_path"]).is_file()


async def test_ids_that_disagree_are_refused_naming_both(fast: Emulator, tmp_path: Path) -> None:
    body = {"code": 200, "data": {"id": "a" * 32, "request_id": "b" * 32, "status": "created"}}
    fast.state.add_fault(Fault(path="/api/v1/model/generateImage", kind="json", status=200, body=body))
    async with Client(create_server(settings_for(fast, tmp_path))) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})
    said = expect_error("generate_image", result, "a" * 32, "b" * 32, "list_predictions")
    assert "request_id" in said
