"""transcribe_audio through a real MCP client against the emulator's speech-to-text model: the transcript and its
segments, the files saved beside other outputs, the default model, and the generate tools' path (checks, price,
confirmation, budget, waiting, check_prediction) with its refusals and failures.

In memory in both protocol eras, and over stdio.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult

from atlas_mcp.atlas import ModelEntry, Prediction
from atlas_mcp.atlas.models import unwrap
from atlas_mcp.core.choosing import speech_to_text_candidates
from atlas_mcp.emulator import PROFILES, Emulator, Fault, PredictionPlan
from atlas_mcp.server import create_server

from .conftest import TEST_KEY
from .harness import ServerProcess, emulator_env, expect_done, expect_error, text_of
from .test_http import KEYS, connect, http_env, http_server
from .test_spending import settings_for

pytestmark = pytest.mark.anyio

ERAS = {"2025": "legacy", "2026": "auto"}
WHISPER = "openai/whisper-large-v3"
SPEECH = "minimax/speech-2.5-hd"
SUBMIT = "/api/v1/model/generateAudio"
TALK = "https://example.com/talk.mp3"
FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = json.loads((FIXTURES / "atlas/answers/prediction.completed.transcript.json").read_text())["body"]["data"]
HEARD = RECORDED["stt_result"]["text"]


def submits(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.method == "POST" and r.path == SUBMIT])


async def transcribe(emulator: Emulator, tmp_path: Path, era: str = "2026", **arguments: Any) -> CallToolResult:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        return await client.call_tool("transcribe_audio", arguments)


def assert_saved_inside(transcript: dict[str, Any], prediction_id: str, output_dir: Path) -> None:
    """Both files are in the output folder (symlinks resolved), named by the prediction id, and hold it all."""
    folder = output_dir.resolve()
    text_file, json_file = Path(transcript["saved_text_path"]), Path(transcript["saved_json_path"])
    for saved in (text_file, json_file):
        assert saved.resolve().is_relative_to(folder) and saved.resolve().parent == folder, saved
        assert saved.name.startswith(prediction_id)
    assert (text_file.suffix, json_file.suffix) == (".txt", ".json")
    assert text_file.read_text().strip() == HEARD
    document = json.loads(json_file.read_text())
    assert document["prediction_id"] == prediction_id and document["model"] == WHISPER
    assert document["text"] == HEARD and document["segments"] == RECORDED["stt_result"]["segments"]


# -- success ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_the_transcript_comes_back_with_segments_and_is_saved(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    result = await transcribe(emulator, tmp_path, era, audio_url=TALK, language="en")
    done = expect_done(result)
    text = text_of(result)
    transcript = done["transcript"]
    assert transcript["text"] == HEARD and transcript["language"] == "en" and transcript["segment_count"] == 3
    assert transcript["segments"][0] == {"start": 0.0, "end": 2.1, "text": "Hello from Atlas Cloud."}
    assert text.startswith(f"Model: {WHISPER} (Whisper Large v3, $0.006/request), chosen because no model was named")
    assert HEARD in text and "[0:02.1–0:04.8] This is a test of speech to text." in text
    assert text.count(HEARD) == 1  # the text output repeats the transcript: shown once
    assert done["choice"]["matched_by"] == "default" and done["price_usd"] == pytest.approx(0.006)
    assert_saved_inside(transcript, done["prediction_id"], tmp_path / "out")
    assert emulator.state.predictions[done["prediction_id"]].request_body == {
        "model": WHISPER,
        "audio": TALK,
        "language": "en",
    }
    assert submits(emulator) == 1 and TEST_KEY not in text


async def test_a_local_file_goes_through_upload_media_first(emulator: Emulator, tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    shutil.copy(FIXTURES / "media/tone.mp3", uploads / "tone.mp3")
    settings = settings_for(emulator, tmp_path, upload_roots=(uploads.resolve(),))
    async with Client(create_server(settings)) as client:
        uploaded = await client.call_tool("upload_media", {"path": str(uploads / "tone.mp3")})
        assert not uploaded.is_error, text_of(uploaded)
        url = uploaded.structured_content["url"]  # type: ignore[index]
        done = expect_done(await client.call_tool("transcribe_audio", {"audio_url": url, "model": WHISPER}))
    assert done["choice"] == {
        "model": WHISPER,
        "name": "Whisper Large v3",
        "price_usd": 0.006,
        "unit": "request",
        "matched_by": "given",
        "reason": "it was named",
        "alternatives": [],
    }
    assert emulator.state.predictions[done["prediction_id"]].request_body == {"model": WHISPER, "audio": url}


async def test_without_an_output_folder_nothing_is_saved_and_the_transcript_is_still_there(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, output_dir=None))) as client:
        done = expect_done(await client.call_tool("transcribe_audio", {"audio_url": TALK}))
    assert done["transcript"]["text"] == HEARD
    assert done["transcript"]["saved_text_path"] is None and done["transcript"]["saved_json_path"] is None
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("era", ERAS)
async def test_past_the_wait_bound_check_prediction_finishes_it_with_the_transcript(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    emulator.state.config.prediction_seconds = 1.0
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        early = await client.call_tool("transcribe_audio", {"audio_url": TALK, "wait": False})
        running = early.structured_content
        assert not early.is_error and running is not None and running["phase"] == "running"
        assert "check_prediction" in text_of(early) and running["transcript"] is None
        checked = await client.call_tool("check_prediction", {"prediction_id": running["prediction_id"], "wait": True})
    done = expect_done(checked)
    assert done["transcript"]["text"] == HEARD
    assert_saved_inside(done["transcript"], running["prediction_id"], tmp_path / "out")
    assert submits(emulator) == 1


# -- refused before paying -----------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_models_that_cannot_transcribe_are_refused_before_paying(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        speaker = await client.call_tool("transcribe_audio", {"audio_url": TALK, "model": SPEECH})
        image = await client.call_tool(
            "transcribe_audio", {"audio_url": TALK, "model": "black-forest-labs/flux-schnell"}
        )
        unknown = await client.call_tool("transcribe_audio", {"audio_url": TALK, "model": "acme/no-such-model"})
    expect_error(
        "transcribe_audio", speaker, "Not sent, nothing was spent", f"{SPEECH} cannot transcribe", "generate_audio"
    )
    expect_error("transcribe_audio", image, "is of type Image", "Leave model out")
    expect_error("transcribe_audio", unknown, "Atlas has no model 'acme/no-such-model'")
    assert submits(emulator) == 0


@pytest.mark.parametrize("era", ERAS)
async def test_inputs_that_fail_the_checks_are_refused_before_paying(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        language = await client.call_tool("transcribe_audio", {"audio_url": TALK, "language": "xx"})
        plain_http = await client.call_tool("transcribe_audio", {"audio_url": "http://example.com/talk.mp3"})
        not_a_url = await client.call_tool("transcribe_audio", {"audio_url": "/home/me/talk.mp3"})
    expect_error("transcribe_audio", language, "Not sent, nothing was spent", "language must be one of")
    expect_error("transcribe_audio", plain_http, "Not sent, nothing was spent", "audio")
    assert not_a_url.is_error and "pattern" in text_of(not_a_url)  # the schema asks for a URL: upload_media first
    assert submits(emulator) == 0


@pytest.mark.parametrize("era", ERAS)
async def test_above_the_threshold_a_confirm_token_is_needed(emulator: Emulator, tmp_path: Path, era: str) -> None:
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0)
    async with Client(create_server(settings), mode=ERAS[era]) as client:
        asked = await client.call_tool("transcribe_audio", {"audio_url": TALK})
        text = expect_error("transcribe_audio", asked, f"Model: {WHISPER}", "$0.006", "call transcribe_audio again")
        token = re.search(r'confirm="([^"]+)"', text)
        assert token is not None and submits(emulator) == 0
        done = expect_done(await client.call_tool("transcribe_audio", {"audio_url": TALK, "confirm": token.group(1)}))
    assert done["transcript"]["text"] == HEARD and submits(emulator) == 1


async def test_the_budget_refuses_before_sending(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, budget_usd=0.005))) as client:
        refused = await client.call_tool("transcribe_audio", {"audio_url": TALK})
    expect_error("transcribe_audio", refused, "Not sent, nothing was spent", "ATLASCLOUD_BUDGET_USD")
    assert submits(emulator) == 0


async def test_a_dry_run_shows_the_request_without_a_key(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, api_key=None))) as client:
        dry = await client.call_tool("transcribe_audio", {"audio_url": TALK, "dry_run": True})
        real = await client.call_tool("transcribe_audio", {"audio_url": TALK})
    assert not dry.is_error and dry.structured_content is not None
    assert dry.structured_content["request"]["body"] == {"model": WHISPER, "audio": TALK}
    assert dry.structured_content["request"]["url"].endswith(SUBMIT)
    expect_error("transcribe_audio", real, "ATLASCLOUD_API_KEY")
    assert submits(emulator) == 0


# -- failure --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_a_failed_transcription_names_the_prediction(emulator: Emulator, tmp_path: Path, era: str) -> None:
    emulator.state.plan_next(PredictionPlan(fail="the audio could not be decoded"))
    result = await transcribe(emulator, tmp_path, era, audio_url=TALK)
    prediction_id = max(emulator.state.predictions.values(), key=lambda p: p.sequence).id
    expect_error("transcribe_audio", result, f"Model: {WHISPER}", prediction_id, "could not be decoded", "not billed")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("era", ERAS)
async def test_upstream_trouble_is_a_clear_error_and_not_resent_blindly(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    emulator.state.add_fault(Fault(path=SUBMIT, kind="reset"))
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        broken = await client.call_tool("transcribe_audio", {"audio_url": TALK})
        again = await client.call_tool("transcribe_audio", {"audio_url": TALK})
    expect_error("transcribe_audio", broken, f"Model: {WHISPER}")
    expect_error("transcribe_audio", again, "may have reached Atlas", "repeat=true")
    assert submits(emulator) == 1


async def test_an_unreadable_catalogue_picks_nothing_and_sends_nothing(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/models", kind="html", status=502, times=None))
    result = await transcribe(emulator, tmp_path, audio_url=TALK)
    expect_error("transcribe_audio", result, "catalogue could not be read", "Nothing was sent")
    assert submits(emulator) == 0


# -- the wire and the default ----------------------------------------------------------------------------------


def test_the_recorded_transcript_and_other_shapes_are_read() -> None:
    recorded = Prediction.model_validate(
        unwrap(json.loads((FIXTURES / "atlas/answers/prediction.completed.transcript.json").read_text())["body"])
    )
    assert recorded.transcript is not None and recorded.transcript.text == HEARD
    assert [(s.start, s.end) for s in recorded.transcript.segments] == [(0.0, 2.1), (2.1, 4.8), (4.8, 6.5)]
    bare = Prediction.model_validate({"id": "a", "status": "completed", "stt_result": "  hello  "})
    assert bare.transcript is not None and (bare.transcript.text, bare.transcript.segments) == ("hello", ())
    chunks = {"chunks": [{"start": "1.5", "end": 3, "text": "hi"}, {"text": "there"}, "junk"], "language": ""}
    other = Prediction.model_validate({"id": "a", "status": "completed", "stt_result": chunks})
    assert other.transcript is not None and other.transcript.text == "hi there" and other.transcript.language is None
    assert other.transcript.segments[0].start == 1.5 and other.transcript.segments[1].start is None
    for nothing in ({}, "", None, [1], {"text": " "}):
        assert Prediction.model_validate({"id": "a", "stt_result": nothing}).transcript is None


def test_the_default_is_the_cheapest_visible_speech_to_text_model() -> None:
    def entry(model: str, tags: list[str], price: str | None, **extra: Any) -> ModelEntry:
        listed = {"model": model, "type": "Audio", "tags": tags, **extra}
        if price is not None:
            listed["price"] = {"actual": {"base_price": price, "unit": "request"}}
        return ModelEntry.model_validate(listed)

    catalogue = [
        entry("acme/voice", ["text-to-speech"], "0.001"),  # makes speech: never a transcriber
        entry("acme/ears-pro", ["speech-to-text"], "0.02"),
        entry("acme/unpriced-asr", ["asr"], None),
        entry("acme/ears", ["transcription"], "0.01"),
        entry("acme/hidden-stt", ["speech-to-text"], "0.0001", display_console=False),
        entry("acme/whisper-tiny", [], "0.01", displayName="Whisper Tiny"),
    ]
    assert [e.model for e in speech_to_text_candidates(catalogue)] == [
        "acme/ears",
        "acme/whisper-tiny",
        "acme/ears-pro",
        "acme/unpriced-asr",
    ]


# -- over stdio ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_over_stdio(emulator: Emulator, tmp_path: Path, era: str) -> None:
    server = ServerProcess(emulator_env(emulator, tmp_path), tmp_path / "stderr.log")
    async with Client(server.transport(), mode=ERAS[era]) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        done = expect_done(await client.call_tool("transcribe_audio", {"audio_url": TALK}))
        refused = await client.call_tool("transcribe_audio", {"audio_url": TALK, "model": SPEECH})
    tool = tools["transcribe_audio"]
    assert tool.annotations is not None and tool.annotations.read_only_hint is False
    assert "upload_media" in (tool.description or "") and "COSTS MONEY" in (tool.description or "")
    assert tool.output_schema is not None and "transcript" in tool.output_schema["properties"]
    assert_saved_inside(done["transcript"], done["prediction_id"], tmp_path / "out")
    expect_error("transcribe_audio", refused, "cannot transcribe")
    assert TEST_KEY.encode() not in bytes(server.stdout) and TEST_KEY not in server.stderr_text()
    assert server.unparsable == []


# -- over HTTP -------------------------------------------------------------------------------------------------


async def test_over_http_each_caller_pays_with_its_own_key(emulator: Emulator, tmp_path: Path) -> None:
    results: dict[str, CallToolResult] = {}

    async def call(key: str, tool: str, arguments: dict[str, Any]) -> None:
        async with connect(origin, key, "2026") as client:
            results[key] = await client.call_tool(tool, arguments)

    emulator.state.config.prediction_seconds = 0.5
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        async with anyio.create_task_group() as group:
            group.start_soon(call, KEYS[2], "transcribe_audio", {"audio_url": TALK})
            group.start_soon(call, KEYS[3], "quick_generate", {"keyword": "schnell", "type": "Image", "prompt": "x"})
    heard, drawn = expect_done(results[KEYS[2]]), expect_done(results[KEYS[3]])
    assert heard["transcript"]["text"] == HEARD and heard["transcript"]["saved_text_path"] is None  # saves nothing
    assert drawn["choice"]["model"] == "black-forest-labs/flux-schnell"
    owner = {heard["prediction_id"]: KEYS[2], drawn["prediction_id"]: KEYS[3]}
    seen = 0
    for request in emulator.state.requests:
        key = request.headers.get("authorization")
        if request.path == SUBMIT:
            assert key == f"Bearer {KEYS[2]}"
        elif request.path == "/api/v1/model/generateImage":
            assert key == f"Bearer {KEYS[3]}"
        elif request.path.startswith("/api/v1/model/prediction/"):
            assert key == f"Bearer {owner[request.path.rsplit('/', 1)[1]]}"
        else:
            continue
        seen += 1
    assert seen >= 4
    assert KEYS[2] not in text_of(results[KEYS[3]]) and KEYS[3] not in text_of(results[KEYS[2]])


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("profile", list(PROFILES))
async def test_every_answer_shape_gives_the_transcript(
    emulator: Emulator, tmp_path: Path, profile: str, era: str
) -> None:
    """Under each emulator profile (synchronous answers, warm-up 404s and 400s, queued words, inline-output models):
    a transcript is text, so it comes back the same way whatever form the model's files would take."""
    emulator.state.config.profile = profile
    emulator.state.config.prediction_seconds = 0.15
    done = expect_done(await transcribe(emulator, tmp_path, era, audio_url=TALK))
    assert done["transcript"]["text"] == HEARD and done["transcript"]["segment_count"] == 3
    assert_saved_inside(done["transcript"], done["prediction_id"], tmp_path / "out")
    assert submits(emulator) == 1


async def test_get_model_info_points_speech_to_text_models_at_this_tool(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        heard = await client.call_tool("get_model_info", {"model": WHISPER})
        spoken = await client.call_tool("get_model_info", {"model": SPEECH})
    assert heard.structured_content is not None and heard.structured_content["tool"] == "transcribe_audio"
    assert "Run it with transcribe_audio." in text_of(heard)
    assert spoken.structured_content is not None and spoken.structured_content["tool"] == "generate_audio"


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(("action", "paid"), [("accept", True), ("decline", False)])
async def test_a_client_that_can_ask_asks_the_user(
    emulator: Emulator, tmp_path: Path, era: str, action: str, paid: bool
) -> None:
    questions: list[str] = []

    async def ask(context: Any, params: ElicitRequestParams) -> ElicitResult:
        questions.append(params.message)
        return ElicitResult(action=action, content={"pay": True} if action == "accept" else None)  # type: ignore[arg-type]

    settings = settings_for(emulator, tmp_path, confirm_above_usd=0)
    async with Client(create_server(settings), mode=ERAS[era], elicitation_callback=ask) as client:
        result = await client.call_tool("transcribe_audio", {"audio_url": TALK})
    [question] = questions
    assert WHISPER in question and "$0.006" in question
    structured = result.structured_content
    assert not result.is_error and structured is not None and structured["choice"]["model"] == WHISPER
    if paid:
        assert structured["transcript"]["text"] == HEARD and submits(emulator) == 1
    else:
        assert structured["phase"] == "not_sent" and "Not sent: the user declined" in text_of(result)
        assert submits(emulator) == 0


def test_the_emulator_answers_a_transcription_in_the_recorded_shape(emulator: Emulator) -> None:
    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(item) for item in value[:1]]
        return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__

    emulator.state.config.prediction_seconds = 0
    auth = {"Authorization": f"Bearer {TEST_KEY}"}
    with httpx.Client(base_url=emulator.url, headers=auth) as http:
        answer = http.post(SUBMIT, json={"model": WHISPER, "audio": TALK}).json()
        read = http.get(f"/api/v1/model/prediction/{answer['data']['id']}").json()
        no_file = http.get(f"/emulator-storage/outputs/{answer['data']['id']}/0.wav")
    recorded = json.loads((FIXTURES / "atlas/answers/prediction.completed.transcript.json").read_text())["body"]
    assert shape(answer) == shape(read) == shape(recorded)
    assert read["data"]["stt_result"] == recorded["data"]["stt_result"] and read["data"]["outputs"] == [HEARD]
    assert no_file.status_code == 404  # a transcript is text: there is no file to fetch
