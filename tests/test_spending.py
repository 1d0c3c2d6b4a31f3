"""Spend safety through a real MCP client: the price asked before paying, the budget, and no second purchase.

In memory in both protocol eras, over stdio, and with two server processes sharing one SQLite file or one Redis.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.errors import SpendRefusedError
from atlas_mcp.server import create_server
from atlas_mcp.spend.policy import Repeat, SpendGuard
from atlas_mcp.state import MemoryStore
from atlas_mcp.state.sqlite_store import SqliteStore

from .conftest import TEST_KEY, settings_for
from .harness import ServerProcess, emulator_env, expect_done, expect_error, text_of

pytestmark = pytest.mark.anyio

ERAS = {"2025": "legacy", "2026": "auto"}
SUBMIT = "/api/v1/model/generateImage"
FLUX = "black-forest-labs/flux-schnell"  # $0.003 an image in the emulator's catalogue


def posts(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.method == "POST" and r.path == SUBMIT])


def quotes_asked(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.path == "/api/v1/model/calculate"])


class Asker:
    """The client side of elicitation: records each question and answers it as told."""

    def __init__(self, action: str, content: dict[str, Any] | None = None) -> None:
        self.action = action
        self.content = content
        self.questions: list[ElicitRequestParams] = []

    async def __call__(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        self.questions.append(params)
        content = self.content if self.action == "accept" else None
        return ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


def token_in(text: str) -> str:
    found = re.search(r'confirm="([^"]+)"', text)
    assert found, text
    return found.group(1)


# -- asking the user ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_the_user_is_asked_and_accepting_pays_once(emulator: Emulator, tmp_path: Path, era: str) -> None:
    asker = Asker("accept", {"pay": True})
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0.01)
    async with Client(create_server(settings), mode=ERAS[era], elicitation_callback=asker) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "num_images": 4})
    done = expect_done(result)
    assert len(asker.questions) == 1
    question = asker.questions[0].message
    for shown in (FLUX, "4 images", "$0.012", "Atlas's quote", "$0.01", "ATLASCLOUD_CONFIRM_ABOVE_USD"):
        assert shown in question, question
    assert posts(emulator) == 1
    assert len(done["outputs"]) == 4
    assert done["spend"]["spent_usd"] == pytest.approx(0.012)


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(("action", "said"), [("decline", "declined"), ("cancel", "cancelled")])
async def test_declining_or_cancelling_sends_nothing_and_says_so(
    emulator: Emulator, tmp_path: Path, era: str, action: str, said: str
) -> None:
    asker = Asker(action)
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0)
    async with Client(create_server(settings), mode=ERAS[era], elicitation_callback=asker) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})
    assert not result.is_error
    text = text_of(result)
    assert f"Not sent: the user {said}" in text and "Nothing was spent" in text
    assert result.structured_content is not None
    assert result.structured_content["phase"] == "not_sent" and result.structured_content["prediction_id"] is None
    assert "You asked to confirm every generation" in asker.questions[0].message
    assert posts(emulator) == 0


@pytest.mark.parametrize("era", ERAS)
async def test_accepting_with_pay_switched_off_is_a_no(emulator: Emulator, tmp_path: Path, era: str) -> None:
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0)
    async with Client(
        create_server(settings), mode=ERAS[era], elicitation_callback=Asker("accept", {"pay": False})
    ) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})
    assert "Not sent: the user declined" in text_of(result)
    assert posts(emulator) == 0


@pytest.mark.parametrize("era", ERAS)
async def test_below_the_threshold_or_off_nobody_is_asked(emulator: Emulator, tmp_path: Path, era: str) -> None:
    asker = Asker("decline")
    for threshold in (0.25, None):  # the default, and "off"
        settings = settings_for(emulator, tmp_path, confirm_above_usd=threshold, repeat_window_s=0)
        async with Client(create_server(settings), mode=ERAS[era], elicitation_callback=asker) as client:
            expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
    assert asker.questions == []
    assert posts(emulator) == 2


async def test_a_dry_run_asks_nothing_and_touches_no_state(emulator: Emulator, tmp_path: Path) -> None:
    asker = Asker("decline")
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0, state_url="sqlite:////proc/no/such/state.db")
    async with Client(create_server(settings), elicitation_callback=asker) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "dry_run": True})
    assert not result.is_error and "Dry run" in text_of(result)
    assert asker.questions == [] and posts(emulator) == 0


# -- the token, for clients that cannot be asked ---------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_without_elicitation_a_token_carries_the_users_yes(emulator: Emulator, tmp_path: Path, era: str) -> None:
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0.001)
    arguments = {"prompt": "a fox", "seed": 7}
    async with Client(create_server(settings), mode=ERAS[era]) as client:
        first = await client.call_tool("generate_image", arguments)
        text = expect_error("generate_image", first, "Not sent, nothing was spent", "$0.003", "Show the user")
        token = token_in(text)
        assert first.structured_content is not None and first.structured_content["confirm"] == token
        assert first.structured_content["quote"]["price_usd"] == pytest.approx(0.003)
        assert posts(emulator) == 0

        # A token for another request, or a mangled one, is refused (with a fresh token for this request).
        other = await client.call_tool("generate_image", {"prompt": "a wolf", "seed": 7, "confirm": token})
        refused = expect_error("generate_image", other, "different request or price")
        assert token_in(refused) != token
        garbage = await client.call_tool("generate_image", {**arguments, "confirm": "yes please"})
        expect_error("generate_image", garbage, "not a token this server issued")
        assert posts(emulator) == 0

        done = expect_done(await client.call_tool("generate_image", {**arguments, "confirm": token}))
        assert posts(emulator) == 1

        # The same call again is a repeat, answered for free; asking for a new one needs a new yes.
        again = await client.call_tool("generate_image", {**arguments, "confirm": token})
        assert expect_done(again)["prediction_id"] == done["prediction_id"] and posts(emulator) == 1
        reused = await client.call_tool("generate_image", {**arguments, "confirm": token, "repeat": True})
        expect_error("generate_image", reused, "used already")
        assert posts(emulator) == 1


async def test_an_expired_token_or_one_for_another_price_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    store = MemoryStore()
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0.001)
    guard = SpendGuard(settings, store)
    payer = await guard.payer(TEST_KEY)
    body = {"model": FLUX, "prompt": "a fox"}
    expired = await guard.issue_token(payer, body, 0.003, now=time.time() - 601)
    cheaper = await guard.issue_token(payer, body, 0.001)
    other_payer = await guard.issue_token(await guard.payer("sk-someone-else-entirely"), body, 0.003)
    async with Client(create_server(settings, store=store)) as client:
        refusals = ((expired, "expired"), (cheaper, "different request or price"), (other_payer, "different"))
        for token, phrase in refusals:
            result = await client.call_tool("generate_image", {"prompt": "a fox", "confirm": token})
            expect_error("generate_image", result, phrase)
        fresh = await guard.issue_token(payer, body, 0.003)
        expect_done(await client.call_tool("generate_image", {"prompt": "a fox", "confirm": fresh}))
    assert posts(emulator) == 1


# -- the budget ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_the_budget_refuses_before_sending_and_survives_a_restart(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    settings = settings_for(emulator, tmp_path, budget_usd=0.007)
    async with Client(create_server(settings), mode=ERAS[era]) as client:
        for prompt in ("one", "two"):
            done = expect_done(await client.call_tool("generate_image", {"prompt": prompt}))
        assert done["spend"] == {"spent_usd": 0.006, "budget_usd": 0.007, "left_usd": 0.001}
        refused = await client.call_tool("generate_image", {"prompt": "three"})
    text = expect_error("generate_image", refused, "Not sent, nothing was spent", "$0.001 is left", "$0.007 budget")
    assert "frees up at" in text and "UTC (in 23 h 59 min)" in text
    assert posts(emulator) == 2
    # A new server on the same state (a stdio server restarts with every client session) still knows.
    async with Client(create_server(settings), mode=ERAS[era]) as client:
        expect_error("generate_image", await client.call_tool("generate_image", {"prompt": "four"}), "is left")
        assert not (await client.call_tool("list_models", {})).is_error
    assert posts(emulator) == 2


async def test_a_request_larger_than_the_whole_budget_says_so(emulator: Emulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, budget_usd=0.01)
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox", "num_images": 4})
    expect_error("generate_image", result, "more than the whole budget", "ATLASCLOUD_BUDGET_USD")
    assert posts(emulator) == 0


async def test_failed_predictions_and_refused_submits_give_their_budget_back(
    emulator: Emulator, tmp_path: Path
) -> None:
    settings = settings_for(emulator, tmp_path, budget_usd=0.003)
    async with Client(create_server(settings)) as client:
        emulator.state.plan_next(PredictionPlan(fail="the prompt was refused by the safety checker"))
        expect_error("generate_image", await client.call_tool("generate_image", {"prompt": "one"}), "not billed")
        emulator.state.add_fault(Fault(path=SUBMIT, kind="status", status=400, message="bad size", times=1))
        expect_error("generate_image", await client.call_tool("generate_image", {"prompt": "two"}), "HTTP 400")
        # Neither cost anything, so the whole budget is still there; and the failed request may be retried.
        done = expect_done(await client.call_tool("generate_image", {"prompt": "one"}))
    assert done["spend"]["spent_usd"] == pytest.approx(0.003)
    assert posts(emulator) == 3


# -- repeats ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_an_identical_call_returns_the_first_prediction(emulator: Emulator, tmp_path: Path, era: str) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        first = expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
        assert first["reused"] is False
        # The same request, spelled with the schema's defaults and a random seed, is the same purchase.
        spelled = {"prompt": "a fox", "size": "1024*1024", "seed": -1, "num_images": 1}
        quotes = quotes_asked(emulator)
        again = await client.call_tool("generate_image", spelled)
        repeat = expect_done(again)
        assert repeat["prediction_id"] == first["prediction_id"] and repeat["reused"] is True
        assert "Not sent again" in text_of(again) and "repeat=true" in text_of(again)
        assert posts(emulator) == 1
        assert quotes_asked(emulator) == quotes  # nothing to pay, so no price is asked for either
        # A different seed is a different image; repeat=true is another one on purpose.
        expect_done(await client.call_tool("generate_image", {"prompt": "a fox", "seed": 3}))
        forced = expect_done(await client.call_tool("generate_image", {"prompt": "a fox", "repeat": True}))
        assert forced["prediction_id"] != first["prediction_id"] and forced["reused"] is False
    assert posts(emulator) == 3


async def test_a_repeat_of_a_running_prediction_waits_for_it(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.config.prediction_seconds = 1.0
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        running = await client.call_tool("generate_image", {"prompt": "a fox", "wait": False})
        assert running.structured_content is not None and running.structured_content["phase"] == "running"
        done = expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
    assert done["prediction_id"] == running.structured_content["prediction_id"] and done["reused"]
    assert posts(emulator) == 1


async def test_a_repeat_of_a_prediction_that_failed_may_be_sent_afresh(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0.3, fail="the GPU worker crashed"))
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        running = await client.call_tool("generate_image", {"prompt": "a fox", "wait": False})
        assert running.structured_content is not None and running.structured_content["phase"] == "running"
        repeat = await client.call_tool("generate_image", {"prompt": "a fox"})
        expect_error("generate_image", repeat, "the GPU worker crashed", "not billed", "Call again to send it afresh")
        assert posts(emulator) == 1
        expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
    assert posts(emulator) == 2


async def test_the_repeat_window_ends(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, repeat_window_s=0.5))) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
        await anyio.sleep(0.8)
        assert not expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))["reused"]
    assert posts(emulator) == 2


@pytest.mark.parametrize("era", ERAS)
async def test_twenty_concurrent_identical_calls_make_one_post(emulator: Emulator, tmp_path: Path, era: str) -> None:
    emulator.state.config.prediction_seconds = 0.5
    results: list[dict[str, Any]] = []
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:

        async def call() -> None:
            results.append(expect_done(await client.call_tool("generate_image", {"prompt": "twenty foxes"})))

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(call)
    assert posts(emulator) == 1
    assert len({result["prediction_id"] for result in results}) == 1
    assert sorted(result["reused"] for result in results) == [False] + [True] * 19


async def test_a_submit_with_an_unclear_fate_is_not_repeated_blindly(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.add_fault(Fault(path=SUBMIT, kind="delay", seconds=3, times=1))
    async with Client(create_server(settings_for(emulator, tmp_path, http_timeout=1))) as client:
        unclear = await client.call_tool("generate_image", {"prompt": "a fox"})
        expect_error("generate_image", unclear, "list_predictions")
        again = await client.call_tool("generate_image", {"prompt": "a fox"})
        expect_error("generate_image", again, "may have reached Atlas", "repeat=true")
    assert posts(emulator) == 1


# -- the store: failures, and where the key goes -------------------------------------------------------------


async def test_a_store_that_cannot_be_opened_refuses_paid_calls_only(emulator: Emulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, state_url="sqlite:////proc/atlascloud-mcp/state.db")
    async with Client(create_server(settings)) as client:
        paid = await client.call_tool("generate_image", {"prompt": "a fox"})
        expect_error("generate_image", paid, "cannot be used", "Paid generations are refused", "free tools still work")
        for tool, arguments in (("list_models", {}), ("get_model_info", {"model": FLUX}), ("list_predictions", {})):
            assert not (await client.call_tool(tool, arguments)).is_error, tool
        assert not (await client.call_tool("generate_image", {"prompt": "a fox", "dry_run": True})).is_error
    assert posts(emulator) == 0


async def test_the_key_is_stored_only_as_a_salted_hash(emulator: Emulator, tmp_path: Path) -> None:
    import hashlib

    settings = settings_for(emulator, tmp_path, budget_usd=1)
    async with Client(create_server(settings)) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("state.db*"))
    with closing(sqlite3.connect(tmp_path / "state.db")) as db, db:
        stored += "".join(map(str, db.execute("SELECT payer, entry FROM ledger").fetchall())).encode()
    for form in (TEST_KEY, TEST_KEY[-12:], hashlib.sha256(TEST_KEY.encode()).hexdigest()):
        assert form.encode() not in stored


# -- two server processes on one state -----------------------------------------------------------------------


@asynccontextmanager
async def two_servers(env: dict[str, str], tmp_path: Path, era: str) -> AsyncIterator[list[Client]]:
    async with AsyncExitStack() as stack:
        clients = []
        for number in (1, 2):
            server = ServerProcess(env, tmp_path / f"stderr-{number}.log")
            clients.append(await stack.enter_async_context(Client(server.transport(), mode=ERAS[era])))
        yield clients


@pytest.mark.integration  # two stdio server processes side by side
@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_two_server_processes_share_budget_repeats_and_tokens(
    emulator: Emulator, tmp_path: Path, era: str, backend: str, request: pytest.FixtureRequest
) -> None:
    emulator.state.config.prediction_seconds = 0.5
    url = f"sqlite:///{tmp_path / 'shared.db'}" if backend == "sqlite" else request.getfixturevalue("redis_url")
    env = emulator_env(
        emulator, tmp_path, ATLASCLOUD_STATE_URL=url, ATLASCLOUD_BUDGET_USD="0.024", ATLASCLOUD_CONFIRM_ABOVE_USD="0.01"
    )
    async with two_servers(env, tmp_path, era) as (one, two):
        # A token one server issued is good on the other, once.
        big = {"prompt": "big fox", "num_images": 4}
        token = token_in(expect_error("generate_image", await one.call_tool("generate_image", big), "$0.012"))
        expect_done(await two.call_tool("generate_image", {**big, "confirm": token}))
        spent = await one.call_tool("generate_image", {**big, "confirm": token, "repeat": True})
        expect_error("generate_image", spent, "used already")
        assert posts(emulator) == 1

        # Ten identical calls on each server at once: one POST between them.
        same: list[str] = []

        async def identical(client: Client) -> None:
            result = await client.call_tool("generate_image", {"prompt": "shared fox"})
            same.append(expect_done(result)["prediction_id"])

        async with anyio.create_task_group() as group:
            for client in (one, two) * 10:
                group.start_soon(identical, client)
        assert len(set(same)) == 1 and posts(emulator) == 2

        # Different calls on both at once: $0.015 of the $0.024 is spent, so exactly three more ($0.003 each) go by.
        outcomes: list[bool] = []

        async def different(client: Client, number: int) -> None:
            result = await client.call_tool("generate_image", {"prompt": f"fox {number}"})
            outcomes.append(not result.is_error)
            if result.is_error:
                assert "is left of your $0.024 budget" in text_of(result), text_of(result)

        async with anyio.create_task_group() as group:
            for number in range(8):
                group.start_soon(different, (one, two)[number % 2], number)
        assert outcomes.count(True) == 3
    assert posts(emulator) == 5
    if backend == "redis":  # what Redis holds names the payer by a salted hash only
        import redis

        with redis.Redis.from_url(url) as client:
            stored = b"".join(key + (client.dump(key) or b"") for key in client.scan_iter())
        assert stored and TEST_KEY.encode() not in stored and TEST_KEY[-12:].encode() not in stored


async def test_the_stdio_server_asks_through_elicitation_in_both_eras(emulator: Emulator, tmp_path: Path) -> None:
    env = emulator_env(emulator, tmp_path, ATLASCLOUD_CONFIRM_ABOVE_USD="0", ATLASCLOUD_REPEAT_WINDOW_S="0")
    for era in ERAS:  # one process per era (each start costs a second): the same question, answered twice
        asker = Asker("accept", {"pay": True})
        server = ServerProcess(env, tmp_path / f"stderr-{era}.log")
        async with Client(server.transport(), mode=ERAS[era], elicitation_callback=asker) as client:
            for answer, sent in (("accept", True), ("decline", False)):
                asker.action = answer
                result = await client.call_tool("generate_image", {"prompt": "a fox"})
                assert len(asker.questions) == 1 + (answer == "decline") and FLUX in asker.questions[-1].message
                assert (result.structured_content or {}).get("phase") == ("succeeded" if sent else "not_sent"), era
    assert posts(emulator) == 2


def test_the_state_file_is_shared_not_locked(tmp_path: Path) -> None:
    """A second process may read the file while a server holds it open (WAL): the same file both use."""
    store = SqliteStore(tmp_path / "s.db")
    anyio.run(store.secret)
    with closing(sqlite3.connect(tmp_path / "s.db", timeout=0.1)) as db, db:
        assert db.execute("SELECT count(*) FROM meta").fetchone() == (1,)
    anyio.run(store.aclose)


async def test_a_claim_whose_holder_died_mid_submit_is_not_sent_again(emulator: Emulator, tmp_path: Path) -> None:
    """A replica killed between claiming a request and recording its outcome leaves a "sending" claim behind; once
    no live holder could still be sending, an identical call is told to look, not sent (it may have been paid)."""
    store = MemoryStore()
    guard = SpendGuard(settings_for(emulator, tmp_path), store)
    payer = await guard.payer(TEST_KEY)
    dead = Repeat("sending", "a-killed-replica", time.time() - guard.claim_seconds - 1).encode()
    assert await store.claim("request", dead, ttl=600, now=time.time()) is None
    sent: list[str] = []

    async def submit() -> Any:
        sent.append("POST")
        raise AssertionError("must not be sent")

    async def waiting(_seconds: float) -> None:
        raise AssertionError("must not wait for a holder that is gone")

    with pytest.raises(SpendRefusedError, match="may have reached Atlas"):
        await guard.buy(
            payer, repeat_key="request", price_usd=0.003, once=None, confirmed=True, submit=submit, waiting=waiting
        )
    assert sent == []
