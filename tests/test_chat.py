"""The chat tool through the MCP client, in both protocol eras, against the emulator's LLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from atlas_mcp.atlas import AtlasClient
from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, Fault
from atlas_mcp.server import create_server

from .conftest import TEST_KEY
from .harness import expect_error, text_of

pytestmark = pytest.mark.anyio

ERAS = {"2025": "legacy", "2026": "auto"}
LLM = "deepseek-ai/deepseek-v3.2"
CHAT = "/v1/chat/completions"
IN_PRICE, OUT_PRICE = 0.28, 0.42  # the emulator's catalogue: dollars per million tokens


def settings_for(emulator: Emulator, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": TEST_KEY, "base_url": emulator.url, "wait_seconds": 10}
    return Settings(**(values | overrides))


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": LLM, "messages": [{"role": "user", "content": text}], **extra}


def chats(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.path == CHAT])


@pytest.mark.parametrize("era", ERAS)
async def test_chat_streams_with_progress_and_returns_text_usage_and_price(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    emulator.state.config.chat_token_seconds = 0.05
    progress: list[tuple[float, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, message))

    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "chat")
        system = {"role": "system", "content": "Be brief."}
        arguments = {"model": LLM, "messages": [system, {"role": "user", "content": "what is an atlas"}]}
        result = await client.call_tool("chat", arguments, progress_callback=on_progress)
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is False and tool.annotations.idempotent_hint is False
    assert tool.annotations.open_world_hint is True and "COSTS MONEY" in (tool.description or "")
    assert not result.is_error, text_of(result)
    answer = result.structured_content
    assert answer is not None
    assert answer["text"] == 'You said: "what is an atlas"' and answer["finish_reason"] == "stop"
    assert answer["partial"] is False
    usage = answer["usage"]
    assert usage["completion_tokens"] == 6 and usage["prompt_tokens"] > 0
    expected = (usage["prompt_tokens"] * IN_PRICE + usage["completion_tokens"] * OUT_PRICE) / 1e6
    assert answer["price_usd"] == pytest.approx(expected)
    assert answer["spend"]["spent_usd"] == pytest.approx(expected, abs=1e-6)  # the ledger holds the real price
    assert 'You said: "what is an atlas"' in text_of(result) and "finish: stop" in text_of(result)
    # Progress arrived while tokens streamed in, not only at the start.
    assert len(progress) >= 3, progress
    assert any("tokens" in (message or "") for _, message in progress)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    sent = next(r for r in emulator.state.requests if r.path == CHAT)
    assert sent.method == "POST" and chats(emulator) == 1


@pytest.mark.parametrize("era", ERAS)
async def test_max_tokens_json_and_sampling_reach_the_model(emulator: Emulator, tmp_path: Path, era: str) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        cut = await client.call_tool("chat", ask("one two three four five", max_tokens=2, temperature=0.2, top_p=0.9))
        as_json = await client.call_tool("chat", ask("hello", response_format="json"))
    assert not cut.is_error and not as_json.is_error, text_of(cut) + text_of(as_json)
    assert cut.structured_content is not None and as_json.structured_content is not None
    assert cut.structured_content["finish_reason"] == "length"
    assert cut.structured_content["text"] == "You said: " and cut.structured_content["usage"]["completion_tokens"] == 2
    assert json.loads(as_json.structured_content["text"]) == {"reply": 'You said: "hello"'}


@pytest.mark.parametrize("era", ERAS)
async def test_at_the_bound_the_partial_answer_comes_back_marked(emulator: Emulator, tmp_path: Path, era: str) -> None:
    emulator.state.config.chat_token_seconds = 0.4
    words = " ".join(f"word{n}" for n in range(40))
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        result = await client.call_tool("chat", ask(words, max_wait_seconds=1.5))
    assert not result.is_error, text_of(result)
    answer = result.structured_content
    assert answer is not None
    assert answer["partial"] is True and answer["finish_reason"] == "timeout"
    assert answer["text"] and f'You said: "{words}"'.startswith(answer["text"])
    assert answer["waited_seconds"] < 4
    assert "PARTIAL" in text_of(result) and "wait bound" in text_of(result)


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    ("model", "said"),
    [
        ("black-forest-labs/flux-schnell", "is an Image model; chat takes Text models"),
        ("minimax/speech-2.5-hd", "is an Audio model"),
        ("someone/no-such-llm", "Atlas has no model"),
    ],
)
async def test_a_model_that_cannot_chat_is_refused_before_sending(
    emulator: Emulator, tmp_path: Path, era: str, model: str, said: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        result = await client.call_tool("chat", {"model": model, "messages": [{"role": "user", "content": "hi"}]})
    expect_error("chat", result, said, "list_models", "type=Text", "Nothing was sent")
    assert chats(emulator) == 0
    assert emulator.state.balance == emulator.state.config.balance


@pytest.mark.parametrize("era", ERAS)
async def test_spend_safety_holds_for_chat(emulator: Emulator, tmp_path: Path, era: str) -> None:
    tight = settings_for(emulator, tmp_path, budget_usd=0.0001)  # max_tokens=1024 at $0.42/M is $0.00043
    asks_always = settings_for(emulator, tmp_path, confirm_above_usd=0)
    async with Client(create_server(tight), mode=ERAS[era]) as client:
        over = await client.call_tool("chat", ask("hi"))
        under = await client.call_tool("chat", ask("hi", max_tokens=50))
    async with Client(create_server(asks_always), mode=ERAS[era]) as client:
        confirm = await client.call_tool("chat", ask("hi"))
    expect_error("chat", over, "Not sent, nothing was spent", "this chat may cost up to", "ATLASCLOUD_BUDGET_USD")
    assert not under.is_error, text_of(under)
    assert under.structured_content is not None
    assert under.structured_content["spend"]["budget_usd"] == 0.0001
    expect_error("chat", confirm, "Not sent", "ATLASCLOUD_CONFIRM_ABOVE_USD", "Lower max_tokens")
    assert chats(emulator) == 1


@pytest.mark.parametrize("era", ERAS)
async def test_atlas_failures_are_clear_errors_and_the_post_is_never_retried(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    emulator.state.add_fault(Fault(path=CHAT, kind="status", status=503, times=None))
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        broken = await client.call_tool("chat", ask("hi"))
        emulator.state.clear_faults()
        emulator.state.add_fault(Fault(path=CHAT, kind="rate_limit", retry_after=0.1))
        limited = await client.call_tool("chat", ask("hi"))
    expect_error("chat", broken, "HTTP 503", "may bill it", "get_usage")
    expect_error("chat", limited, "HTTP 429")
    assert chats(emulator) == 2  # one POST each: a billable call is not sent twice
    assert TEST_KEY not in text_of(broken) + text_of(limited)


@pytest.mark.parametrize("era", ERAS)
async def test_no_key_is_a_clear_error_and_nothing_is_sent(emulator: Emulator, tmp_path: Path, era: str) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, api_key=None)), mode=ERAS[era]) as client:
        result = await client.call_tool("chat", ask("hi"))
    expect_error("chat", result, "ATLASCLOUD_API_KEY")
    assert chats(emulator) == 0


async def test_an_answer_that_echoes_the_key_does_not_hand_it_back(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool("chat", ask(f"my key is {TEST_KEY}"))
    assert not result.is_error, text_of(result)
    assert TEST_KEY not in text_of(result) and TEST_KEY not in json.dumps(result.structured_content)
    assert "[redacted]" in text_of(result)


async def test_the_client_reads_an_answer_that_comes_whole(emulator: Emulator) -> None:
    """A gateway that ignores stream=true answers with one chat.completion: read it the same way."""
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url) as atlas:
        pieces: list[str] = []

        async def on_chunk(chunk: Any, so_far: str) -> None:
            pieces.append(so_far)

        answer = await atlas.chat(ask("whole"), timeout=5, on_chunk=on_chunk)
    assert answer.text == 'You said: "whole"' and answer.finish_reason == "stop" and not answer.partial
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    assert pieces == ['You said: "whole"']


async def test_the_catalogue_shows_chat_models_with_their_token_prices(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        listed = await client.call_tool("list_models", {"type": "Text"})
        info = await client.call_tool("get_model_info", {"model": LLM})
    assert listed.structured_content is not None and info.structured_content is not None
    summary = listed.structured_content["models"][0]
    assert summary["model"] == LLM
    assert (summary["input_price_usd"], summary["output_price_usd"]) == (IN_PRICE, OUT_PRICE)
    assert "$0.28 in / $0.42 out per 1M tokens" in text_of(listed)
    assert info.structured_content["tool"] == "chat" and "Run it with chat." in text_of(info)


async def test_a_model_atlas_does_not_know_is_its_error_and_the_budget_is_given_back(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.state.add_fault(Fault(path=CHAT, kind="fixture", fixture="answers/chat.model-not-found.json"))
    async with Client(create_server(settings_for(emulator, tmp_path, budget_usd=1.0))) as client:
        refused = await client.call_tool("chat", ask("hi"))
        after = await client.call_tool("chat", ask("hi", max_tokens=5))
    expect_error("chat", refused, "HTTP 404", "does not exist")
    assert after.structured_content is not None
    # Only the answered chat counts: the refused one's worst case went back to the budget.
    assert after.structured_content["spend"]["spent_usd"] == pytest.approx(
        after.structured_content["price_usd"], abs=1e-6
    )
    assert chats(emulator) == 2
