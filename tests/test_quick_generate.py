"""quick_generate through a real MCP client against the emulator: the model it chooses and why, the inputs it fits
to that model, and the generate tools' path from there (checks, price, confirmation, budget, waiting, result).

In memory in both protocol eras, and over stdio; the chooser's order and tie rules also on catalogues made for them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult

from atlas_mcp.atlas import ModelEntry
from atlas_mcp.core.choosing import choose_model
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.errors import InputError
from atlas_mcp.server import create_server

from .conftest import TEST_KEY
from .harness import ServerProcess, emulator_env, expect_done, expect_error, text_of
from .test_spending import settings_for

pytestmark = pytest.mark.anyio

ERAS = {"2025": "legacy", "2026": "auto"}
SCHNELL = "black-forest-labs/flux-schnell"
DEV = "black-forest-labs/flux-dev"
LEGACY = "black-forest-labs/flux-dev-legacy"
SEEDREAM = "bytedance/seedream-v4"
SPEECH = "minimax/speech-2.5-hd"
WHISPER = "openai/whisper-large-v3"
VIDEO = "alibaba/wan-2.2/t2v-480p"
BANANA = "google/nano-banana/text-to-image"
PICTURE = "https://example.com/fox.png"


def submits(emulator: Emulator) -> list[Any]:
    """The billable POSTs (quotes are POSTs too, and free)."""
    return [r for r in emulator.state.requests if r.method == "POST" and "/generate" in r.path]


def sent_body(emulator: Emulator, prediction_id: str) -> dict[str, Any]:
    return emulator.state.predictions[prediction_id].request_body


def newest_prediction(emulator: Emulator) -> str:
    """The id of the last prediction submitted (the emulator keeps earlier tests' predictions, as Atlas would)."""
    return max(emulator.state.predictions.values(), key=lambda prediction: prediction.sequence).id


def dry_body(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert structured is not None and structured["phase"] == "dry_run"
    body: dict[str, Any] = structured["request"]["body"]
    return body


async def quick(emulator: Emulator, tmp_path: Path, era: str = "2026", **arguments: Any) -> CallToolResult:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        return await client.call_tool("quick_generate", arguments)


# -- success ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_it_chooses_the_model_says_why_and_generates_once(emulator: Emulator, tmp_path: Path, era: str) -> None:
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        result = await client.call_tool(
            "quick_generate",
            {"keyword": "flux dev", "type": "Image", "prompt": "a red fox"},
            progress_callback=on_progress,
        )
    done = expect_done(result)
    text = text_of(result)
    assert text.startswith(f"Model: {DEV} (FLUX.1 [dev], $0.012/image), chosen because it is the closest match")
    assert done["choice"]["model"] == DEV and done["choice"]["matched_by"] == "fuzzy"
    assert done["model"] == DEV and done["price_usd"] == pytest.approx(0.012)
    [output] = done["outputs"]
    assert output["saved_path"] and Path(output["saved_path"]).parent == (tmp_path / "out").resolve()
    assert len(submits(emulator)) == 1
    assert sent_body(emulator, done["prediction_id"]) == {"model": DEV, "prompt": "a red fox"}
    assert any(f"Prediction {done['prediction_id']}" in message for message in progress)  # waited with progress
    assert TEST_KEY not in text and TEST_KEY not in str(done)


async def test_a_speech_model_gets_the_prompt_as_its_text(emulator: Emulator, tmp_path: Path) -> None:
    result = await quick(emulator, tmp_path, keyword="text to speech", type="Audio", prompt="Welcome aboard")
    done = expect_done(result)
    assert done["choice"]["model"] == SPEECH
    assert sent_body(emulator, done["prediction_id"]) == {"model": SPEECH, "text": "Welcome aboard"}
    assert done["outputs"][0]["media_type"] == "audio/wav"


# -- which model: exact id, then display name, then the closest match ---------------------------------------


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    ("keyword", "model", "matched_by"),
    [
        (LEGACY, LEGACY, "id"),  # hidden from the console, yet its exact id runs it
        ("black-forest-labs/FLUX-SCHNELL", SCHNELL, "id"),
        ("FLUX.1 [dev]", DEV, "name"),  # not the legacy one, whose name starts the same
        ("flux.1  [DEV]", DEV, "name"),
        ("shnell", SCHNELL, "fuzzy"),  # misspelt
        ("seedream", SEEDREAM, "fuzzy"),
        ("gpt image", "openai/gpt-image-2/text-to-image", "fuzzy"),
    ],
)
async def test_the_keyword_is_read_as_id_then_name_then_closest_match(
    emulator: Emulator, tmp_path: Path, era: str, keyword: str, model: str, matched_by: str
) -> None:
    result = await quick(emulator, tmp_path, era, keyword=keyword, type="Image", prompt="a fox", dry_run=True)
    assert dry_body(result)["model"] == model
    choice = result.structured_content["choice"]  # type: ignore[index]
    assert (choice["model"], choice["matched_by"]) == (model, matched_by)
    assert f"Model: {model}" in text_of(result) and choice["reason"] in text_of(result)
    assert submits(emulator) == []


def entry(model: str, name: str, price: str | None, *, kind: str = "Image", visible: bool = True) -> ModelEntry:
    listed: dict[str, Any] = {"model": model, "displayName": name, "type": kind, "display_console": visible}
    if price is not None:
        listed["price"] = {"actual": {"base_price": price, "unit": "image"}}
    return ModelEntry.model_validate(listed)


def test_an_exact_id_beats_a_display_name_and_a_name_beats_the_closest_match() -> None:
    catalogue = [
        entry("acme/painter", "acme/sketcher", "0.01"),  # a display name that is another model's id
        entry("acme/sketcher", "Sketcher", "0.02"),
        entry("acme/sketcher-pro", "Sketch", "0.03"),
    ]
    by_id = choose_model(catalogue, "acme/sketcher", "Image")
    assert (by_id.model, by_id.matched_by) == ("acme/sketcher", "id")
    by_name = choose_model(catalogue, "sketch", "Image")
    assert (by_name.model, by_name.matched_by) == ("acme/sketcher-pro", "name")
    fuzzy = choose_model(catalogue, "painter", "Image")
    assert (fuzzy.model, fuzzy.matched_by) == ("acme/painter", "fuzzy")


def test_equal_matches_close_in_price_go_to_the_cheapest_and_name_the_others() -> None:
    catalogue = [
        entry("acme/fox-large", "Fox Large", "0.03"),
        entry("acme/fox-small", "Fox Small", "0.02"),
        entry("acme/fox-hidden", "Fox Hidden", "0.001", visible=False),  # hidden: never chosen by a keyword
        entry("acme/owl", "Owl", "0.001"),
    ]
    choice = choose_model(catalogue, "fox", "Image")
    assert (choice.model, choice.matched_by) == ("acme/fox-small", "fuzzy")
    assert [other.model for other in choice.alternatives] == ["acme/fox-large"]
    assert "cheapest" in choice.reason and "acme/fox-large" in choice.reason
    # Same price: the catalogue's own order decides.
    same = [entry("acme/fox-b", "Fox B", "0.02"), entry("acme/fox-a", "Fox A", "0.02")]
    assert choose_model(same, "fox", "Image").model == "acme/fox-b"


@pytest.mark.parametrize(
    ("prices", "said"),
    [(("0.01", "0.021"), "more than 2×"), (("0.01", None), "some list no price")],
)
def test_equal_matches_far_apart_in_price_or_unpriced_are_a_list_not_a_guess(
    prices: tuple[str, str | None], said: str
) -> None:
    catalogue = [entry("acme/fox-one", "Fox One", prices[0]), entry("acme/fox-two", "Fox Two", prices[1])]
    with pytest.raises(InputError, match=said) as refused:
        choose_model(catalogue, "fox", "Image")
    assert "acme/fox-one" in str(refused.value) and "acme/fox-two" in str(refused.value)
    # Exactly 2× is still close enough to choose.
    close = [entry("acme/fox-one", "Fox One", "0.01"), entry("acme/fox-two", "Fox Two", "0.02")]
    assert choose_model(close, "fox", "Image").model == "acme/fox-one"


def test_a_keyword_that_matches_nothing_or_another_type_is_refused() -> None:
    catalogue = [entry("acme/fox", "Fox", "0.01"), entry("acme/clip", "Clip", "0.1", kind="Video")]
    with pytest.raises(InputError, match=r"no Image model matches 'zebra'.*list_models"):
        choose_model(catalogue, "zebra", "Image")
    with pytest.raises(InputError, match="acme/clip is of type Video, not Image: call quick_generate with type=Video"):
        choose_model(catalogue, "acme/clip", "Image")
    with pytest.raises(InputError, match="no Audio models"):
        choose_model(catalogue, "fox", "Audio")


# -- refused before paying -----------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_an_ambiguous_keyword_far_apart_in_price_gets_the_short_list(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    result = await quick(emulator, tmp_path, era, keyword="flux", type="Image", prompt="a fox")
    text = expect_error("quick_generate", result, "Not sent, nothing was spent", "more than 2×", "exact id")
    assert f"- {SCHNELL} (FLUX.1 [schnell], $0.003/image)" in text and f"- {DEV} (FLUX.1 [dev], $0.012/image)" in text
    assert LEGACY not in text  # hidden from the console: not offered
    assert [r for r in emulator.state.requests if r.method == "POST"] == []  # not even a quote


@pytest.mark.parametrize("era", ERAS)
async def test_media_is_fitted_to_what_the_model_takes(emulator: Emulator, tmp_path: Path, era: str) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:

        async def body(**arguments: Any) -> tuple[dict[str, Any], list[str]]:
            result = await client.call_tool("quick_generate", {"prompt": "a fox", "dry_run": True, **arguments})
            return dry_body(result), result.structured_content["not_used"]  # type: ignore[index]

        # A list parameter takes every image; a single one the first, and the rest are reported unused.
        many = {"image_url": PICTURE, "image_urls": ["https://example.com/2.png"]}
        assert await body(keyword="seedream", type="Image", **many) == (
            {"model": SEEDREAM, "prompt": "a fox", "images": [PICTURE, "https://example.com/2.png"]},
            [],
        )
        single, unused = await body(keyword="schnell", type="Image", **many)
        assert single == {"model": SCHNELL, "prompt": "a fox", "image": PICTURE}
        assert unused == [f"1 more image URLs ({SCHNELL}'s image takes one)"]
        # A speech-to-text model takes the audio, and has no use for a prompt: said, not hidden.
        heard, unused = await body(keyword="whisper", type="Audio", audio_url="https://example.com/talk.mp3")
        assert heard == {"model": WHISPER, "audio": "https://example.com/talk.mp3"}
        assert unused == [f"prompt ({WHISPER} takes no text prompt)"]
        assert (await body(keyword="wan", type="Video", image_url=PICTURE)) == (
            {"model": VIDEO, "prompt": "a fox", "image": PICTURE},
            [],
        )
        # Media the model cannot take is refused: a generation without it would be paid for and wrong.
        refused = await client.call_tool(
            "quick_generate", {"keyword": "banana", "type": "Image", "prompt": "a fox", "image_url": PICTURE}
        )
    expect_error("quick_generate", refused, f"{BANANA} takes no image input", "nothing was spent", "image-to")
    assert submits(emulator) == []


@pytest.mark.parametrize("era", ERAS)
async def test_inputs_that_fail_the_checks_are_refused_before_paying(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        blank = await client.call_tool("quick_generate", {"keyword": "schnell", "type": "Image", "prompt": "   "})
        plain_http = await client.call_tool(
            "quick_generate",
            {"keyword": "schnell", "type": "Image", "prompt": "a fox", "image_url": "http://example.com/a.png"},
        )
        wrong_type = await client.call_tool("quick_generate", {"keyword": SCHNELL, "type": "Video", "prompt": "a fox"})
        unknown_type = await client.call_tool("quick_generate", {"keyword": "flux", "type": "Text", "prompt": "x"})
    expect_error("quick_generate", blank, "Not sent, nothing was spent", "prompt is blank")
    expect_error("quick_generate", plain_http, "Not sent, nothing was spent", "image")
    expect_error("quick_generate", wrong_type, "is of type Image, not Video", "type=Image")
    assert unknown_type.is_error  # the schema's own Literal: Image, Video or Audio
    assert submits(emulator) == []


@pytest.mark.parametrize("era", ERAS)
async def test_above_the_threshold_a_confirm_token_is_needed_and_then_it_pays_once(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0.01)
    arguments = {"keyword": "flux dev", "type": "Image", "prompt": "a fox"}
    async with Client(create_server(settings), mode=ERAS[era]) as client:  # a client that cannot be asked
        asked = await client.call_tool("quick_generate", arguments)
        text = expect_error("quick_generate", asked, f"Model: {DEV}", "$0.012", "call quick_generate again")
        token = re.search(r'confirm="([^"]+)"', text)
        assert token is not None and submits(emulator) == []
        assert asked.structured_content is not None and asked.structured_content["choice"]["model"] == DEV
        expect_done(await client.call_tool("quick_generate", {**arguments, "confirm": token.group(1)}))
        # An identical call soon after is answered with that generation, not paid again.
        again = await client.call_tool("quick_generate", {**arguments, "confirm": token.group(1)})
    assert expect_done(again)["reused"] is True
    assert len(submits(emulator)) == 1


async def test_the_budget_refuses_before_sending(emulator: Emulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, budget_usd=0.01)
    async with Client(create_server(settings)) as client:
        refused = await client.call_tool("quick_generate", {"keyword": "flux dev", "type": "Image", "prompt": "a fox"})
    expect_error("quick_generate", refused, "Not sent, nothing was spent", "ATLASCLOUD_BUDGET_USD")
    assert submits(emulator) == []


# -- failure --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_a_failed_prediction_names_the_model_and_the_id(emulator: Emulator, tmp_path: Path, era: str) -> None:
    emulator.state.plan_next(PredictionPlan(fail="the prompt was refused by the safety checker"))
    result = await quick(emulator, tmp_path, era, keyword="schnell", type="Image", prompt="a fox")
    prediction_id = newest_prediction(emulator)
    expect_error(
        "quick_generate", result, f"Model: {SCHNELL}", prediction_id, "refused by the safety checker", "not billed"
    )


@pytest.mark.parametrize("era", ERAS)
async def test_upstream_trouble_is_a_clear_error_and_not_resent_blindly(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/model/generateImage", kind="status", status=503))
    arguments = {"keyword": "schnell", "type": "Image", "prompt": "a fox"}
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        broken = await client.call_tool("quick_generate", arguments)
        again = await client.call_tool("quick_generate", arguments)
    expect_error("quick_generate", broken, f"Model: {SCHNELL}", "HTTP 503")
    expect_error("quick_generate", again, "may have reached Atlas", "repeat=true")
    assert len(submits(emulator)) == 1


async def test_an_unreadable_catalogue_chooses_nothing_and_sends_nothing(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/models", kind="status", status=503, times=None))
    result = await quick(emulator, tmp_path, keyword="schnell", type="Image", prompt="a fox")
    expect_error("quick_generate", result, "catalogue could not be read", "Nothing was sent")
    assert submits(emulator) == []


async def test_without_a_key_a_dry_run_works_and_a_real_call_says_what_to_set(
    emulator: Emulator, tmp_path: Path
) -> None:
    arguments = {"keyword": "schnell", "type": "Image", "prompt": "a fox"}
    async with Client(create_server(settings_for(emulator, tmp_path, api_key=None))) as client:
        dry = await client.call_tool("quick_generate", {**arguments, "dry_run": True})
        real = await client.call_tool("quick_generate", arguments)
    assert dry_body(dry) == {"model": SCHNELL, "prompt": "a fox"}
    expect_error("quick_generate", real, "ATLASCLOUD_API_KEY")
    assert submits(emulator) == []


# -- over stdio ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_over_stdio(emulator: Emulator, tmp_path: Path, era: str) -> None:
    server = ServerProcess(emulator_env(emulator, tmp_path), tmp_path / "stderr.log")
    async with Client(server.transport(), mode=ERAS[era]) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        done = expect_done(
            await client.call_tool("quick_generate", {"keyword": "shnell", "type": "Image", "prompt": "a fox"})
        )
        ambiguous = await client.call_tool("quick_generate", {"keyword": "flux", "type": "Image", "prompt": "a fox"})
    annotations = tools["quick_generate"].annotations
    assert annotations is not None and annotations.read_only_hint is False and annotations.idempotent_hint is False
    assert "COSTS MONEY" in (tools["quick_generate"].description or "")
    assert tools["quick_generate"].output_schema is not None
    assert "choice" in tools["quick_generate"].output_schema["properties"]
    assert done["choice"]["model"] == SCHNELL and Path(done["outputs"][0]["saved_path"]).is_file()
    expect_error("quick_generate", ambiguous, "more than 2×")
    assert TEST_KEY.encode() not in bytes(server.stdout) and TEST_KEY not in server.stderr_text()
    assert server.unparsable == []


@pytest.mark.parametrize("era", ERAS)
async def test_a_client_that_can_ask_is_asked_once_and_the_choice_holds_across_rounds(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    questions: list[str] = []

    async def ask(context: Any, params: ElicitRequestParams) -> ElicitResult:
        questions.append(params.message)
        return ElicitResult(action="accept", content={"pay": True})

    settings = settings_for(emulator, tmp_path, confirm_above_usd=0.01)
    async with Client(create_server(settings), mode=ERAS[era], elicitation_callback=ask) as client:
        result = await client.call_tool("quick_generate", {"keyword": "flux dev", "type": "Image", "prompt": "a fox"})
    done = expect_done(result)
    [question] = questions
    assert DEV in question and "$0.012" in question
    assert done["choice"]["model"] == DEV and len(submits(emulator)) == 1
