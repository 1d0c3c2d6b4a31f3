"""quick_generate and transcribe_audio against what a prompt-injected model may send, as tests/test_hostile.py does for
the other tools (and with its strategies): never a crash or a traceback, never the key, never a result over 1 MiB,
never a request to a path the tools are not for, at most one billable POST, and only the model the result names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import example, given
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

from .conftest import TEST_KEY
from .harness import assert_not_a_crash, text_of
from .test_hostile import EXPECTED_REQUESTS, RUN, caused_by_the_call, extras, json_values, models, mostly, strings, urls

WHISPER = "openai/whisper-large-v3"
KEYWORDS = ["flux", "flux dev", "schnell", "shnell", "seedream", "wan", "whisper", "speech", "text to speech", WHISPER]
GOOD_URL = "https://example.invalid/in.png"


@dataclass
class Session:
    portal: BlockingPortal
    client: Client
    emulator: Emulator

    def call(self, tool: str, arguments: Any) -> CallToolResult:
        """Call ``tool``, judge the answer and the requests it caused, and return the result."""
        state = self.emulator.state
        state.clear_requests()
        before = set(state.predictions)
        result = self.portal.call(self._call, tool, arguments)
        assert_not_a_crash(tool, result)
        whole = result.model_dump_json()
        assert len(whole) < 1024 * 1024, f"a {len(whole)}-byte result"
        assert TEST_KEY not in whole
        requests = caused_by_the_call(state.requests, before)
        for request in requests:
            assert EXPECTED_REQUESTS.fullmatch(f"{request.method} {request.path}"), (tool, request)
        assert len([r for r in requests if r.method == "POST" and "/generate" in r.path]) <= 1, "two billable POSTs"
        for prediction_id in set(state.predictions) - before:
            ran = state.predictions[prediction_id]
            # The model that ran is the one the result names (or, after a failure, its error), and nothing in the
            # body replaced it.
            assert ran.request_body["model"] == ran.model_id
            structured = result.structured_content or {}
            named = (structured.get("choice") or {}).get("model")
            assert named == ran.model_id or (result.is_error and f"Model: {ran.model_id}" in text_of(result)), result
        return result

    async def _call(self, tool: str, arguments: Any) -> CallToolResult:
        with anyio.fail_after(30):
            return await self.client.call_tool(tool, arguments)


@pytest.fixture(scope="module")
def session(emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    emulator = emulator_session
    emulator.state.reset()
    emulator.state.config.prediction_seconds = 0.05
    work: Path = tmp_path_factory.mktemp("hostile-choosing")
    config = Settings(
        api_key=TEST_KEY,
        base_url=emulator.url,
        output_dir=work / "out",
        wait_seconds=0.5,
        http_timeout=5,
        repeat_window_s=0,
        state_url=f"sqlite:///{work / 'state.db'}",
    )
    try:
        with (
            start_blocking_portal("asyncio") as portal,
            portal.wrap_async_context_manager(Client(create_server(config))) as client,
        ):
            yield Session(portal, client, emulator)
    finally:
        emulator.state.reset()
        emulator.state.config.prediction_seconds = 0.3


media = mostly(st.just(GOOD_URL), urls)


def phase(result: CallToolResult) -> str:
    if result.is_error:
        return "error"
    return str((result.structured_content or {}).get("phase"))


def test_quick_generate_takes_anything(session: Session) -> None:
    @RUN
    @given(
        arguments=st.fixed_dictionaries(
            {
                "keyword": mostly(st.sampled_from(KEYWORDS), st.one_of(strings, json_values, models)),
                "type": mostly(st.sampled_from(["Image", "Video", "Audio"]), st.one_of(strings, json_values)),
                "prompt": mostly(st.text(min_size=1, max_size=300), st.one_of(strings, json_values)),
            },
            optional={
                "image_url": media,
                "image_urls": mostly(st.lists(st.just(GOOD_URL), max_size=3), st.one_of(json_values, st.lists(urls))),
                "video_url": media,
                "audio_url": media,
                "wait": st.just(False),
                "dry_run": st.booleans(),
                "repeat": st.booleans(),
                "confirm": mostly(st.none(), strings),
            },
        ),
        extra=extras,
    )
    @example(arguments={"keyword": "schnell", "type": "Image", "prompt": "x", "dry_run": True}, extra={})
    @example(arguments={"keyword": "wan", "type": "Video", "prompt": "x", "wait": False}, extra={})
    @example(arguments={"keyword": "flux", "type": "Image", "prompt": "x"}, extra={})  # the short list
    def check(arguments: dict[str, Any], extra: dict[str, Any]) -> None:
        outcomes.append(phase(session.call("quick_generate", {**extra, **arguments})))

    outcomes: list[str] = []
    check()
    # The explicit examples make sure the calls reach every part of the tool, not just its argument checks.
    assert {"error", "dry_run", "running"} <= set(outcomes), outcomes


def test_transcribe_audio_takes_anything(session: Session) -> None:
    @RUN
    @given(
        arguments=st.fixed_dictionaries(
            {"audio_url": mostly(st.just("https://example.invalid/talk.mp3"), urls)},
            optional={
                "model": mostly(st.sampled_from([WHISPER, "minimax/speech-2.5-hd"]), models),
                "language": mostly(st.sampled_from(["en", "auto", "xx", "en-US"]), st.one_of(strings, json_values)),
                "wait": st.just(False),
                "dry_run": st.booleans(),
                "confirm": mostly(st.none(), strings),
            },
        ),
        extra=extras,
    )
    @example(arguments={"audio_url": "https://example.invalid/talk.mp3", "dry_run": True}, extra={})
    @example(arguments={"audio_url": "https://example.invalid/talk.mp3", "wait": False}, extra={})
    @example(arguments={"audio_url": "https://example.invalid/talk.mp3", "model": "minimax/speech-2.5-hd"}, extra={})
    def check(arguments: dict[str, Any], extra: dict[str, Any]) -> None:
        outcomes.append(phase(session.call("transcribe_audio", {**extra, **arguments})))

    outcomes: list[str] = []
    check()
    assert {"error", "dry_run", "running"} <= set(outcomes), outcomes
