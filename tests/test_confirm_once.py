"""One "yes" pays once (issue 22, items 2, 14 and 15).

A confirm token is accepted only in the exact form this server writes, and what is spent is its nonce: no other
spelling of it (leading zeros, another script's digits, padding) confirms a second generation, over stdio, over
HTTP, and across two HTTP replicas sharing a SQLite file or a Redis. A 2026-era answer to the price question is
spent once by the sealed state it came back with. Any malformed value is refused the same way, never a crash.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult, InputRequiredResult

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server
from atlas_mcp.spend.policy import SpendGuard
from atlas_mcp.state import MemoryStore

from .conftest import TEST_KEY, examples
from .conftest import settings_for as shared_settings
from .harness import ServerProcess, assert_not_a_crash, emulator_env, expect_done, expect_error, text_of
from .test_http import ERAS, KEYS, connect, http_env, http_server

pytestmark = pytest.mark.anyio

FLUX = "black-forest-labs/flux-schnell"  # $0.003 an image
SUBMIT = "/api/v1/model/generateImage"
STATE_KEY = "a-test-only-request-state-key-0123456789abcdef"
MALFORMED = "not a token this server issued"
ASK_AGAIN = "Show the user this price and ask whether to go ahead"

# Every script's decimal digits, by value: Python's int() reads them all, and str.isdigit() says yes to them.
SCRIPT_DIGITS: dict[int, list[str]] = {value: [] for value in range(10)}
for _code in range(sys.maxunicode + 1):
    if unicodedata.category(chr(_code)) == "Nd":
        SCRIPT_DIGITS[unicodedata.decimal(chr(_code))].append(chr(_code))
# Digits that are no decimal digit (superscripts, circled, ...): isdigit() says yes, int() raises.
DIGIT_LIKE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isdigit() and unicodedata.category(chr(c)) != "Nd"]


def posts(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.method == "POST" and r.path == SUBMIT])


def token_in(result: CallToolResult) -> str:
    assert result.structured_content is not None, text_of(result)
    token = result.structured_content.get("confirm")
    assert isinstance(token, str), text_of(result)
    return token


def in_script(text: str, script: int) -> str:
    """The same number in another script's digits (the script-th set of ten that Unicode has)."""
    return "".join(SCRIPT_DIGITS[int(ch)][script % len(SCRIPT_DIGITS[int(ch)])] for ch in text)


def respellings(token: str) -> list[str]:
    """Other spellings of one token that once each confirmed another generation, or crashed the resolver."""
    expires, nonce, mac = token.split(".")
    rest = f".{nonce}.{mac}"
    fullwidth = in_script(expires, SCRIPT_DIGITS[0].index("\uff10"))
    arabic = in_script(expires, SCRIPT_DIGITS[0].index("\u0660"))
    return [
        "0" + token,
        "00" + token,
        fullwidth + rest,
        arabic + rest,
        f"{expires[0]}_{expires[1:]}{rest}",  # int() takes underscores between digits
        f"+{token}",
        f" {token}",
        f"{token}\n",
        "\u00b2" + expires[1:] + rest,  # a superscript two: isdigit() says yes, int() raises
        f"{expires}.{nonce}.{mac[:-1]}\u00e9",  # a non-ASCII MAC: compare_digest raises
        f"{expires}.{nonce}.{mac.swapcase()}",
        f"{expires}.{nonce}",
        "..",
        "",
        "yes",
    ]


def settings_for(emulator: Emulator, tmp_path: Path, **overrides: Any) -> Settings:
    """The suite's settings, with every generation above the confirmation threshold."""
    return shared_settings(emulator, tmp_path, **({"confirm_above_usd": 0.001} | overrides))


async def spend_every_spelling(clients: list[Client], emulator: Emulator) -> None:
    """Take a token from the first client, pay with it once, then try every other spelling of it on every client
    (repeat=true, so the repeat guard cannot answer for the token check): one POST in all."""
    arguments = {"prompt": "one yes", "seed": 3, "repeat": True}
    first = await clients[0].call_tool("generate_image", arguments)
    expect_error("generate_image", first, ASK_AGAIN)
    token = token_in(first)
    expect_done(await clients[-1].call_tool("generate_image", {**arguments, "confirm": token}))
    assert posts(emulator) == 1
    malformed = set()
    for client in clients:
        for spelling in respellings(token):
            result = await client.call_tool("generate_image", {**arguments, "confirm": spelling})
            text = expect_error("generate_image", result, ASK_AGAIN, "Not sent, nothing was spent")
            reason = text.split("The confirm value given cannot be used: ")[1].split("\n")[0]
            if spelling.endswith(token.rsplit(".", 1)[1].swapcase()):
                assert "issued for a different request" in reason  # a well-formed token for something else
            else:
                malformed.add(reason)
        again = await client.call_tool("generate_image", {**arguments, "confirm": token})
        expect_error("generate_image", again, "used already")
    assert posts(emulator) == 1
    # Every malformed value gets one and the same refusal, which says what to do.
    assert malformed == {f"the confirm value is {MALFORMED} (pass it back exactly as it was given)."}, malformed


# -- item 2 and 15: a token, in every spelling ------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_one_token_pays_once_in_any_spelling_in_memory(emulator: Emulator, tmp_path: Path, era: str) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        await spend_every_spelling([client], emulator)


@pytest.mark.parametrize("era", ERAS)
async def test_a_malformed_confirm_gets_one_clear_refusal_never_a_crash(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    """Values that once crashed the resolver (a bare "Error executing tool" and a traceback on stderr)."""
    arguments = {"prompt": "a fox"}
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        first = await client.call_tool("generate_image", arguments)
        expires, nonce, mac = token_in(first).split(".")
        reasons = set()
        for malformed in (
            "\u00b2" + expires[1:] + f".{nonce}.{mac}",  # superscript two
            f"{expires}\u00b9.{nonce}.{mac}",  # superscript one
            f"{expires}.{nonce}.{mac[:-2]}\u00e9\u00e9",  # a non-ASCII MAC
            f"{expires}.{nonce}.\u0661\u0662{mac[2:]}",  # Arabic-Indic digits in the MAC
            f"{expires}.\u00fc{nonce[1:]}.{mac}",  # a non-ASCII nonce
            "\u2460.\u2461.\u2462",  # circled digits
        ):
            result = await client.call_tool("generate_image", {**arguments, "confirm": malformed})
            text = expect_error("generate_image", result, ASK_AGAIN, MALFORMED, "Not sent, nothing was spent")
            reasons.add(text.split("The confirm value given cannot be used: ")[1].split("\n")[0])
    assert len(reasons) == 1 and posts(emulator) == 0


async def test_one_token_pays_once_in_any_spelling_over_stdio(emulator: Emulator, tmp_path: Path) -> None:
    env = emulator_env(emulator, tmp_path, ATLASCLOUD_CONFIRM_ABOVE_USD="0.001")
    server = ServerProcess(env, tmp_path / "stderr.log")
    async with Client(server.transport(), mode="legacy") as client:
        await spend_every_spelling([client], emulator)
    assert "Traceback" not in server.stderr_text()


@asynccontextmanager
async def replicas(env: dict[str, str], tmp_path: Path, era: str, **client: Any) -> AsyncIterator[list[Client]]:
    """Two HTTP server processes on one state store and one request-state key, each with a client."""
    with ExitStack() as servers:
        origins = [servers.enter_context(http_server(env, tmp_path / f"http-{n}.log")) for n in (1, 2)]
        async with AsyncExitStack() as stack:
            yield [await stack.enter_async_context(connect(o, KEYS[6], era, **client)) for o in origins]


@pytest.fixture(params=["sqlite", "redis"])
def shared_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shared.db'}" if request.param == "sqlite" else request.getfixturevalue("redis_url")


@pytest.mark.parametrize("era", ERAS)
async def test_one_token_pays_once_across_http_replicas(
    emulator: Emulator, tmp_path: Path, shared_state: str, era: str
) -> None:
    env = http_env(
        emulator,
        tmp_path,
        ATLASCLOUD_STATE_URL=shared_state,
        ATLASCLOUD_CONFIRM_ABOVE_USD="0.001",
        ATLASCLOUD_HTTP_STATE_KEYS=STATE_KEY,
    )
    async with replicas(env, tmp_path, era) as clients:
        await spend_every_spelling(clients, emulator)


# -- item 14: a 2026-era answer, replayed ----------------------------------------------------------------------


async def accept(context: Any, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"pay": True})


async def replay_one_answer(clients: list[Client], emulator: Emulator) -> None:
    """Ask on the first client, answer "yes" once, then send that same answer with the same sealed state three
    times (to each client in turn): one generation is paid, the others are refused with nothing sent."""
    arguments = {"prompt": "asked once", "repeat": True}
    asked = await clients[0].session.call_tool("generate_image", arguments, allow_input_required=True)
    assert isinstance(asked, InputRequiredResult) and asked.input_requests and asked.request_state
    answers = {key: ElicitResult(action="accept", content={"pay": True}) for key in asked.input_requests}
    results = []
    for number in range(3):
        client = clients[number % len(clients)]
        results.append(
            await client.session.call_tool(
                "generate_image", arguments, input_responses=answers, request_state=asked.request_state
            )
        )
    assert all(isinstance(result, CallToolResult) for result in results)
    paid = [result for result in results if isinstance(result, CallToolResult) and not result.is_error]
    assert len(paid) == 1, [text_of(r) for r in results if isinstance(r, CallToolResult)]
    assert expect_done(paid[0])["phase"] == "succeeded"
    for result in results:
        assert isinstance(result, CallToolResult)
        if result.is_error:
            expect_error("generate_image", result, "used already", "Not sent, nothing was spent")
    assert posts(emulator) == 1


async def test_a_2026_answer_pays_once_in_memory(emulator: Emulator, tmp_path: Path) -> None:
    server = create_server(settings_for(emulator, tmp_path))
    async with Client(server, mode="auto", elicitation_callback=accept) as client:
        await replay_one_answer([client], emulator)


async def test_a_2026_answer_pays_once_over_stdio(emulator: Emulator, tmp_path: Path) -> None:
    env = emulator_env(emulator, tmp_path, ATLASCLOUD_CONFIRM_ABOVE_USD="0.001")
    server = ServerProcess(env, tmp_path / "stderr.log")
    async with Client(server.transport(), mode="auto", elicitation_callback=accept) as client:
        await replay_one_answer([client], emulator)


async def test_a_2026_answer_pays_once_across_http_replicas(
    emulator: Emulator, tmp_path: Path, shared_state: str
) -> None:
    env = http_env(
        emulator,
        tmp_path,
        ATLASCLOUD_STATE_URL=shared_state,
        ATLASCLOUD_CONFIRM_ABOVE_USD="0.001",
        ATLASCLOUD_HTTP_STATE_KEYS=STATE_KEY,
    )
    async with replicas(env, tmp_path, "2026", elicitation_callback=accept) as clients:
        await replay_one_answer(clients, emulator)


@pytest.mark.parametrize("era", ERAS)
async def test_asking_and_answering_still_pays_once_per_yes(emulator: Emulator, tmp_path: Path, era: str) -> None:
    """The ordinary flow is untouched: each question answered "yes" pays for its own generation."""
    async with Client(
        create_server(settings_for(emulator, tmp_path)), mode=ERAS[era], elicitation_callback=accept
    ) as c:
        for number in range(3):
            expect_done(await c.call_tool("generate_image", {"prompt": "asked", "repeat": True, "seed": number}))
    assert posts(emulator) == 3


# -- the property: no spelling of a token is a second "yes", and none crashes ----------------------------------


@st.composite
def spellings(draw: st.DrawFn, token: str) -> str:
    """Another spelling of ``token``, made by a few of the ways a value can look the same to int() or to a
    reader: another script's digits, padding, a sign or underscores, case, length, other separators, prefixes."""
    expires, nonce, mac = token.split(".")
    parts = [expires, nonce, mac]
    separators = [".", "."]
    prefix = suffix = ""
    for _ in range(draw(st.integers(0, 3))):
        how = draw(
            st.sampled_from(["script", "digit-like", "pad", "sign", "underscore", "case", "length", "dot", "affix"])
        )
        if how == "script":  # each digit of the expiry from its own script, same value
            parts[0] = "".join(draw(st.sampled_from(SCRIPT_DIGITS[int(ch)])) if ch.isascii() else ch for ch in expires)
        elif how == "digit-like" and parts[0]:  # a "length" step may have emptied the expiry
            at = draw(st.integers(0, len(parts[0]) - 1))
            parts[0] = parts[0][:at] + draw(st.sampled_from(DIGIT_LIKE)) + parts[0][at + 1 :]
        elif how == "pad":
            zero = draw(st.sampled_from(SCRIPT_DIGITS[0] + [" ", "\t", "\u00a0", "\u3000"]))
            parts[0] = zero * draw(st.integers(1, 5)) + parts[0]
        elif how == "sign":
            parts[0] = draw(st.sampled_from(["+", "-", " +"])) + parts[0]
        elif how == "underscore" and len(parts[0]) > 1:
            at = draw(st.integers(1, len(parts[0]) - 1))
            parts[0] = parts[0][:at] + "_" + parts[0][at:]
        elif how == "case":
            which = draw(st.integers(1, 2))
            parts[which] = parts[which].swapcase()
        elif how == "length":
            which = draw(st.integers(0, 2))
            cut = draw(st.integers(0, len(parts[which])))
            parts[which] = parts[which][:cut] + draw(st.text(max_size=4))
        elif how == "dot":
            separators[draw(st.integers(0, 1))] = draw(st.sampled_from(["\uff0e", "\u3002", "..", "", ","]))
        elif how == "affix":
            prefix, suffix = draw(st.text(max_size=4)), draw(st.text(max_size=4))
    return prefix + parts[0] + separators[0] + parts[1] + separators[1] + parts[2] + suffix


def test_no_spelling_of_a_token_is_a_second_yes_and_none_crashes(emulator: Emulator, tmp_path: Path) -> None:
    """For each example a fresh token is issued; some spelling of it is tried first and then the token itself,
    both asking for a new generation (repeat=true): exactly one of the two pays (the token, unless the spelling was
    the token), and every refusal is a clear one."""
    emulator.state.config.prediction_seconds = 0
    store = MemoryStore()
    settings_ = settings_for(emulator, tmp_path)
    guard = SpendGuard(settings_, store)
    arguments = {"prompt": "a fox", "repeat": True, "wait": False}
    body = {"model": FLUX, "prompt": "a fox"}
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(Client(create_server(settings_, store=store), mode="legacy")) as client,
    ):
        payer = portal.call(guard.payer, TEST_KEY)

        def call(confirm: str) -> CallToolResult:
            return portal.call(client.call_tool, "generate_image", {**arguments, "confirm": confirm})

        @settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def one_yes(data: st.DataObject) -> None:
            token = portal.call(guard.issue_token, payer, body, 0.003)
            spelling = data.draw(spellings(token), label="spelling")
            before = posts(emulator)
            tried = call(spelling)
            assert_not_a_crash("generate_image", tried)
            genuine = call(token)
            assert posts(emulator) - before == 1, (spelling, text_of(tried), text_of(genuine))
            if spelling == token:
                assert not tried.is_error and genuine.is_error and "used already" in text_of(genuine)
            else:
                assert tried.is_error and ASK_AGAIN in text_of(tried), text_of(tried)
                assert not genuine.is_error, text_of(genuine)

        one_yes()
