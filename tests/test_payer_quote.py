"""Every payer's price comes from Atlas, asked with the payer's own key, in every mode (stdio, HTTP with each
caller's key, HTTP with a shared key); and a price of zero or less is no price at all (issue 22, items 1 and 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitRequestParams, ElicitResult

from atlas_mcp.atlas import Prediction
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server
from atlas_mcp.spend.policy import SpendGuard
from atlas_mcp.state import MemoryStore

from .conftest import TEST_KEY, settings_for
from .harness import ServerProcess, emulator_env, expect_done, expect_error, text_of
from .test_http import ERAS, KEYS, connect, http_env, http_server

pytestmark = pytest.mark.anyio

FLUX = "black-forest-labs/flux-schnell"  # listed at $0.003 an image
SUBMIT = "/api/v1/model/generateImage"
CALCULATE = "/api/v1/model/calculate"
TEAM_KEY = "sk-the-teams-own-key-000000"
TEAM_TOKEN = "team-token-one-0123456789abcdef"


@pytest.fixture
def quotes(emulator: Emulator) -> Iterator[dict[str, float]]:
    """What the emulator's Atlas quotes per model, whatever the list price says; emptied after the test."""
    emulator.state.config.quotes = {}
    yield emulator.state.config.quotes
    emulator.state.config.quotes = {}


def posts(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.method == "POST" and r.path == SUBMIT])


def quote_keys(emulator: Emulator) -> set[str | None]:
    """The Authorization each quote request carried."""
    return {r.headers.get("authorization") for r in emulator.state.requests if r.path == CALCULATE}


class Decline:
    def __init__(self) -> None:
        self.questions: list[str] = []

    async def __call__(self, context: Any, params: ElicitRequestParams) -> ElicitResult:
        self.questions.append(params.message)
        return ElicitResult(action="decline")


# -- item 1: the quote is asked with the payer's key, in every mode --------------------------------------------


@pytest.mark.parametrize("mode", ["per-request key", "shared key"])
async def test_over_http_atlas_is_asked_for_the_price_with_the_payers_key(
    emulator: Emulator, tmp_path: Path, quotes: dict[str, float], mode: str
) -> None:
    """Atlas quotes $5.00 for a model listed at $0.003: a $1 budget refuses it and a $0.25 threshold asks, in both
    eras, and nothing is paid; the quote shown is Atlas's. (Before: with each caller's own key, Atlas was never
    asked, and the $5 generation was paid with no question.)"""
    shared = mode == "shared key"
    extra = {"ATLASCLOUD_API_KEY": TEAM_KEY, "ATLASCLOUD_HTTP_TOKENS": TEAM_TOKEN} if shared else {}
    bearer, paying = (TEAM_TOKEN, TEAM_KEY) if shared else (KEYS[5], KEYS[5])
    env = http_env(emulator, tmp_path, ATLASCLOUD_BUDGET_USD="1", ATLASCLOUD_CONFIRM_ABOVE_USD="0.25", **extra)
    quotes[FLUX] = 5.0
    with http_server(env, tmp_path / "http.log") as origin:
        for era in ERAS:
            asker = Decline()
            async with connect(origin, bearer, era, elicitation_callback=asker) as client:
                refused = await client.call_tool("generate_image", {"prompt": f"a costly fox {era}"})
                expect_error("generate_image", refused, "Not sent, nothing was spent", "$5", "ATLASCLOUD_BUDGET_USD")
                dry = await client.call_tool("generate_image", {"prompt": "a costly fox", "dry_run": True})
                assert dry.structured_content is not None, text_of(dry)
                assert dry.structured_content["quote"] == {"price_usd": 5.0, "source": "atlas", "estimate": False}

                # Within the budget but above the threshold: the user agrees to Atlas's price, not the list price.
                quotes[FLUX] = 0.5
                asked = await client.call_tool("generate_image", {"prompt": f"a dearer fox {era}"})
                if asker.questions:  # the 2026 era asks through the call's result
                    assert "$0.5 (Atlas's quote)" in asker.questions[0], asker.questions
                    assert (asked.structured_content or {}).get("phase") == "not_sent", text_of(asked)
                else:  # a 2025-era client over stateless HTTP cannot be asked mid-call: it gets the token
                    expect_error("generate_image", asked, "$0.5 (Atlas's quote)", "Show the user")
                assert asked.structured_content is not None
                assert asked.structured_content["quote"]["source"] == "atlas"
                quotes[FLUX] = 5.0
            assert (era == "2026") == bool(asker.questions)
        assert posts(emulator) == 0

        # A model Atlas quotes at its list price runs, and its result names Atlas's quote.
        quotes.clear()
        async with connect(origin, bearer, "2026") as client:
            done = expect_done(await client.call_tool("generate_image", {"prompt": "a cheap fox"}))
        assert done["quote"] == {"price_usd": 0.003, "source": "atlas", "estimate": False}
        assert done["spend"]["spent_usd"] == pytest.approx(0.003)
    assert quote_keys(emulator) == {f"Bearer {paying}"}  # never another caller's key, never none


async def test_over_stdio_the_quote_is_asked_with_the_servers_key(
    emulator: Emulator, tmp_path: Path, quotes: dict[str, float]
) -> None:
    quotes[FLUX] = 5.0
    env = emulator_env(emulator, tmp_path, ATLASCLOUD_BUDGET_USD="1", ATLASCLOUD_CONFIRM_ABOVE_USD="0.25")
    async with Client(ServerProcess(env, tmp_path / "stderr.log").transport(), mode="legacy") as client:
        refused = await client.call_tool("generate_image", {"prompt": "a costly fox"})
    expect_error("generate_image", refused, "Not sent, nothing was spent", "$5", "ATLASCLOUD_BUDGET_USD")
    assert posts(emulator) == 0 and quote_keys(emulator) == {f"Bearer {TEST_KEY}"}


# -- item 8: zero or negative is no price -----------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("quoted", [-100.0, 0.0])
async def test_a_quote_of_zero_or_less_is_no_price(
    emulator: Emulator, tmp_path: Path, quotes: dict[str, float], quoted: float, era: str
) -> None:
    """A −$100 quote once made the budget read "$101 left": it is not a price, so the catalogue's stands."""
    quotes[FLUX] = quoted
    settings = settings_for(emulator, tmp_path, budget_usd=1.0)
    async with Client(create_server(settings), mode=ERAS[era]) as client:
        done = expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))
    assert done["quote"] == {"price_usd": 0.003, "source": "catalogue", "estimate": True}
    assert done["spend"] == {"spent_usd": 0.003, "budget_usd": 1.0, "left_usd": 0.997}


async def test_a_negative_or_zero_price_never_frees_budget(tmp_path: Path, emulator: Emulator) -> None:
    """The guard itself: a price of zero or less is unknown, so it is refused under a budget, asks the user under a
    threshold, and a charge Atlas reports as zero or less leaves the quote held."""
    settings = settings_for(emulator, tmp_path, budget_usd=1.0, confirm_above_usd=0.25)
    guard = SpendGuard(settings, MemoryStore())
    payer = await guard.payer(TEST_KEY)
    for price in (-100.0, 0.0):
        assert guard.needs_confirmation(price)
        assert "gives no price" in (await guard.budget_problem(payer, price) or "")
    for charged in (-100.0, 0.0):

        async def submit(charged: float = charged) -> Prediction:
            return Prediction(id=f"p{charged}", status="completed", price=charged)

        async def waiting(_seconds: float) -> None:
            return None

        purchase, prediction = await guard.buy(
            payer, repeat_key=None, price_usd=0.1, once=None, confirmed=True, submit=submit, waiting=waiting
        )
        assert prediction is not None
        await guard.settle(purchase, prediction)
    report = await guard.report(payer)
    assert (report.spent_usd, report.left_usd) == (pytest.approx(0.2), pytest.approx(0.8))
