"""``emulator --replay`` (issue 27): a recording made by ``doctor --record`` becomes the shapes the emulator answers
in. For every profile: a session of the tool suite is recorded against the emulator in that profile (both shapes of
a schema's ``model`` field, a 3D model, a song, a transcript, a failure, the balance and the catalogue), the
recording is read back into a profile, and the same session against the replay gives the same results; recorded
again, the replay reads back as the same profile."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from atlas_mcp.atlas.recording import Recorder, RecordingTransport
from atlas_mcp.emulator import Emulator, PredictionPlan
from atlas_mcp.emulator.profiles import PROFILES, Profile
from atlas_mcp.emulator.replay import read_replay, replayed
from atlas_mcp.server import create_server

from .conftest import TEST_KEY, free_port, settings_for
from .harness import expect_done, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

HUNYUAN = "tencent/hunyuan3d-v2.1/image-to-3d"
ASR = "bytedance/seed-asr-2.0/speech-to-text"
MUSIC = "minimax/music-2.6"
PICTURE = "https://cdn.example.invalid/in/fox.png"
# Both shapes of the `model` field in a schema: with a default (FLUX [schnell]) and absent (the legacy FLUX [dev]).
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("generate_image", {"prompt": "a heron at dawn", "model": "black-forest-labs/flux-schnell"}),
    ("generate_image", {"prompt": "a heron at dusk", "model": "black-forest-labs/flux-dev-legacy"}),
    ("generate_image", {"model": HUNYUAN, "params": {"image": PICTURE}}),
    ("generate_audio", {"model": MUSIC, "text": "a sea shanty"}),
    ("transcribe_audio", {"audio_url": PICTURE, "model": ASR}),
]


async def session(emulator: Emulator, tmp_path: Path, recording: Path | None) -> list[Any]:
    """The tool suite once; what each call came to, in a form two runs can be compared by."""
    settings = settings_for(emulator, tmp_path, repeat_window_s=0, confirm_above_usd=1.0)
    transport = RecordingTransport(Recorder(recording, [TEST_KEY])) if recording is not None else None
    facts: list[Any] = []
    async with Client(create_server(settings, transport=transport)) as client:
        listed = await client.call_tool("list_models", {"limit": 5})
        facts.append(("list_models", not listed.is_error))
        info = await client.call_tool("get_model_info", {"model": "black-forest-labs/flux-dev-legacy"})
        facts.append(("get_model_info", not info.is_error))
        balance = await client.call_tool("get_balance", {})
        assert not balance.is_error, text_of(balance)
        facts.append(("balance", (balance.structured_content or {}).get("available_usd")))
        for tool, arguments in CALLS:
            done = expect_done(await client.call_tool(tool, arguments))
            checked = expect_done(await client.call_tool("check_prediction", {"prediction_id": done["prediction_id"]}))
            kinds = [(Path(o["saved_path"]).suffix, o["media_type"]) for o in done["outputs"] if o.get("saved_path")]
            transcript = (done.get("transcript") or {}).get("text")
            unsigned = [[{**o, "url": None} for o in result["outputs"]] for result in (done, checked)]
            assert unsigned[0] == unsigned[1]  # Atlas signs each read's links afresh
            facts.append((tool, arguments.get("model"), kinds, bool(transcript)))
        emulator.state.plan_next(PredictionPlan(fail="NSFW content detected"))
        failed = await client.call_tool("generate_image", {"prompt": "a heron that fails"})
        facts.append(("failed", failed.is_error, "NSFW content detected" in text_of(failed)))
    return facts


def _shape(profile: Profile) -> dict[str, Any]:
    return dataclasses.asdict(profile) | {"name": None}


@pytest.mark.parametrize("name", sorted(PROFILES))
async def test_a_recording_replays_as_the_profile_it_was_made_in(emulator: Emulator, tmp_path: Path, name: str) -> None:
    emulator.state.config.prediction_seconds = 0.3  # long enough for every status word to be seen
    emulator.state.config.warm_up_seconds = 0.1  # a warm-up profile's window, shorter than a job
    emulator.state.config.profile = name
    recording = tmp_path / "atlas.jsonl"
    recorded = await session(emulator, tmp_path / "recorded", recording)
    replay = read_replay(recording)
    assert _shape(replay.profile) == _shape(PROFILES[name]), replay.summary()
    assert replay.balance is not None and replay.balance["account"]["name"] == "[account]"
    assert {HUNYUAN, ASR, MUSIC} <= set(replay.models) and not replay.unknown

    config = replayed(emulator.state.config, replay)
    emulator.state.config.profile, emulator.state.config.balance_answer = config.profile, config.balance_answer
    again = tmp_path / "again.jsonl"
    assert await session(emulator, tmp_path / "replayed", again) == recorded
    assert _shape(read_replay(again).profile) == _shape(replay.profile)


def test_the_emulator_command_serves_a_recording(tmp_path: Path) -> None:
    recording = tmp_path / "atlas.jsonl"
    recording.write_text(
        '{"endpoint":"POST /api/v1/model/generateImage","model":"black-forest-labs/flux-schnell","request":{},'
        '"response":{"status":200,"headers":{},"body":{"code":200,"data":{"request_id":"abc","status":"queued"}}}}\n',
        encoding="utf-8",
    )
    port = free_port()
    command = [sys.executable, "-m", "atlas_mcp", "emulator", "--port", str(port), "--replay", str(recording)]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if "replaying" in line:
                    assert "status words queued" in line and "id named request_id" in line, line
                    break
            else:
                pytest.fail("the emulator never said what it replays")
        finally:
            process.terminate()
            process.wait(timeout=10)
    recording.write_text("not json\n", encoding="utf-8")
    refused = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "--replay" in refused.stderr and ":1: not JSON" in refused.stderr
