"""get_balance, get_usage and get_costs through the MCP client (both eras, in memory and over stdio)."""

from __future__ import annotations

import datetime
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.errors import InputError
from atlas_mcp.server import create_server
from atlas_mcp.server.tools.account import date_range

from .conftest import TEST_KEY
from .harness import CONSOLE_SCRIPT, emulator_env, expect_error, text_of

pytestmark = pytest.mark.anyio

ERAS = {"2025": "legacy", "2026": "auto"}
FLUX = "black-forest-labs/flux-schnell"
LLM = "deepseek-ai/deepseek-v3.2"
REPORTS = ("/public/v1/model-usage", "/public/v1/model-costs")
TODAY = datetime.datetime.now(datetime.timezone.utc).date()


@pytest.fixture
def key() -> str:
    """A key of this test's own: the emulator's reports (scope self) count only what this key ran, while the
    session's emulator keeps every earlier test's history. It holds TEST_KEY, so a leak is still found."""
    return f"{TEST_KEY}-{secrets.token_hex(4)}"


def settings_for(emulator: Emulator, tmp_path: Path, key: str = TEST_KEY, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": key, "base_url": emulator.url, "wait_seconds": 10}
    return Settings(**(values | overrides))


def days(n: int) -> str:
    return (TODAY + datetime.timedelta(days=n)).isoformat()


def sent(emulator: Emulator, *paths: str) -> int:
    return len([r for r in emulator.state.requests if r.path in paths])


@pytest.mark.parametrize("era", ERAS)
async def test_get_balance_reports_the_accounts_money(emulator: Emulator, tmp_path: Path, era: str) -> None:
    emulator.state.balance = 12.5
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "get_balance")
        result = await client.call_tool("get_balance", {})
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert not result.is_error, text_of(result)
    zero = {"granted": 0.0, "used": 0.0, "remaining_overdraft": 0.0, "overdrawn": 0.0}
    assert result.structured_content == {
        "available": 12.5,
        "cash": 12.5,
        "bonus": 0.0,
        "subscription_bonus": 0.0,
        "frozen": 0.0,
        "currency": "USD",
        "account": "acct_emulator",
        "account_name": "Emulator account",
        "account_type": "personal",
        "credit_grant": {"status": "inactive", **zero},
        "adds_up": True,
    }
    assert text_of(result) == (
        "Account: Emulator account (personal account)\n"
        "Available: 12.50 USD = cash 12.50 USD + bonus 0.00 USD + subscription bonus 0.00 USD"
    )


@pytest.mark.parametrize("era", ERAS)
async def test_usage_and_costs_count_what_was_run_and_their_totals_add_up(
    emulator: Emulator, tmp_path: Path, era: str, key: str
) -> None:
    emulator.state.config.prediction_seconds = 0.1
    emulator.state.plan_next(PredictionPlan())
    emulator.state.plan_next(PredictionPlan(fail="no"))  # failed predictions are not billed, nor counted
    async with Client(create_server(settings_for(emulator, tmp_path, key)), mode=ERAS[era]) as client:
        made = await client.call_tool("generate_image", {"prompt": "a", "num_images": 2})
        failed = await client.call_tool("generate_image", {"prompt": "b"})
        chatted = await client.call_tool("chat", {"model": LLM, "messages": [{"role": "user", "content": "hi"}]})
        usage = await client.call_tool("get_usage", {"group_by": ["model"]})
        costs = await client.call_tool("get_costs", {"group_by": ["model_type", "model"]})
        only_text = await client.call_tool("get_costs", {"model_types": ["text"]})
        plain = await client.call_tool("get_usage", {"start_date": days(0), "end_date": days(1)})
    assert not made.is_error and failed.is_error and not chatted.is_error
    for result in (usage, costs, only_text, plain):
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
    assert chatted.structured_content is not None
    chat_price = chatted.structured_content["price_usd"]

    used = usage.structured_content
    assert used is not None
    by_model = {row["group"]["model"]: row["figures"] for row in used["rows"]}
    assert by_model[FLUX]["requests"] == 1 and by_model[FLUX]["images"] == 2
    assert by_model[LLM]["requests"] == 1 and by_model[LLM]["output_tokens"] == 3
    for name, total in used["totals"].items():  # the totals are the sums of the rows shown
        assert total == pytest.approx(sum(row["figures"].get(name, 0) for row in used["rows"]))
    assert used["totals"]["requests"] == 2 and used["start_date"] == days(-6) and used["end_date"] == days(1)

    spent = costs.structured_content
    assert spent is not None and spent["currency"] == "USD"
    amounts = {(row["group"]["model_type"], row["group"]["model"]): row["figures"]["amount"] for row in spent["rows"]}
    assert amounts[("image", FLUX)] == pytest.approx(0.006)
    assert amounts[("text", LLM)] == pytest.approx(chat_price)
    assert spent["totals"]["amount"] == pytest.approx(sum(amounts.values()))
    assert spent["totals"]["amount"] == pytest.approx(0.006 + chat_price)

    assert only_text.structured_content is not None
    assert only_text.structured_content["totals"]["amount"] == pytest.approx(chat_price)
    assert plain.structured_content is not None and plain.structured_content["rows"][0]["group"] == {}
    assert plain.structured_content["rows"][0]["partial"] is True  # today is not over

    table = text_of(costs)
    assert table.splitlines()[1] == "date | model_type | model | amount"
    assert table.splitlines()[-1] == f"total |  |  | {spent['totals']['amount']:.6g}"
    assert TEST_KEY not in table + json.dumps(spent)


@pytest.mark.parametrize("era", ERAS)
async def test_usage_pages_through_the_rows(emulator: Emulator, tmp_path: Path, era: str, key: str) -> None:
    emulator.state.config.prediction_seconds = 0.1
    async with Client(create_server(settings_for(emulator, tmp_path, key)), mode=ERAS[era]) as client:
        await client.call_tool("generate_image", {"prompt": "a"})
        await client.call_tool("chat", {"model": LLM, "messages": [{"role": "user", "content": "hi"}]})
        first = await client.call_tool("get_usage", {"group_by": ["model"], "limit": 1})
        assert first.structured_content is not None
        cursor = first.structured_content["next_page"]
        second = await client.call_tool("get_usage", {"group_by": ["model"], "limit": 1, "page": cursor})
    assert first.structured_content["has_more"] is True and cursor
    assert f'page="{cursor}"' in text_of(first)
    assert second.structured_content is not None and second.structured_content["has_more"] is False
    seen = [page.structured_content["rows"][0]["group"]["model"] for page in (first, second) if page.structured_content]
    assert sorted(seen) == sorted([FLUX, LLM])


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (
            {"start_date": "2026-13-01", "end_date": "2026-12-01"},
            "start_date must be a calendar date written YYYY-MM-DD",
        ),
        ({"start_date": "yesterday"}, "start_date must be a calendar date"),
        ({"start_date": "2026-06-01", "end_date": "2026/06/02"}, "end_date must be a calendar date"),
        ({"start_date": "2026-06-02", "end_date": "2026-06-02"}, "pass end_date=2026-06-03"),
        ({"start_date": "2026-06-05", "end_date": "2026-06-01"}, "must be after start_date"),
        ({"start_date": "2026-01-01", "end_date": "2026-07-01"}, "covers 181 days; Atlas reports at most 180"),
    ],
)
async def test_bad_dates_are_refused_before_sending_with_the_fix(
    emulator: Emulator, tmp_path: Path, era: str, arguments: dict[str, str], said: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        usage = await client.call_tool("get_usage", arguments)
        costs = await client.call_tool("get_costs", arguments)
    expect_error("get_usage", usage, said, "Nothing was sent")
    expect_error("get_costs", costs, said, "Nothing was sent")
    assert sent(emulator, *REPORTS) == 0


def test_date_range_defaults_and_limits() -> None:
    today = datetime.date(2026, 6, 10)
    assert date_range(None, None, today=today) == ("2026-06-04", "2026-06-11")
    assert date_range("2026-06-01", None, today=today) == ("2026-06-01", "2026-06-11")
    assert date_range("2025-01-01", None, today=today) == ("2025-01-01", "2025-06-30")  # at most 180 days
    assert date_range("2026-07-01", None, today=today) == ("2026-07-01", "2026-07-02")
    assert date_range(None, "2026-06-01", today=today) == ("2026-05-25", "2026-06-01")
    assert date_range("2026-01-01", "2026-06-30", today=today) == ("2026-01-01", "2026-06-30")  # exactly 180
    with pytest.raises(InputError, match="181 days"):
        date_range("2026-01-01", "2026-07-01", today=today)


async def test_atlas_refusing_a_range_is_passed_on(emulator: Emulator, tmp_path: Path) -> None:
    """Atlas's own 400 (a range it will not take), in the form the fixture records."""
    emulator.state.add_fault(
        Fault(path="/public/v1/model-usage", kind="fixture", fixture="answers/usage.bad-range.json")
    )
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool("get_usage", {})
    expect_error("get_usage", result, "HTTP 400", "at most 180 days", "Fix the parameters")


@pytest.mark.parametrize("era", ERAS)
async def test_upstream_failures_are_clear_errors(emulator: Emulator, tmp_path: Path, era: str) -> None:
    emulator.state.add_fault(Fault(path="/public/v1/balance", kind="status", status=503, times=None))
    emulator.state.add_fault(Fault(path="/public/v1/model-costs", kind="html", status=502, times=None))
    emulator.state.add_fault(Fault(path="/public/v1/model-usage", kind="malformed", times=None))
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        balance = await client.call_tool("get_balance", {})
        costs = await client.call_tool("get_costs", {})
        usage = await client.call_tool("get_usage", {})
    expect_error("get_balance", balance, "HTTP 503", "Try again in a minute")
    expect_error("get_costs", costs, "HTTP 502")
    expect_error("get_usage", usage, "not JSON")
    # Reads are retried (capped): more than one try, never endlessly.
    assert 1 < sent(emulator, "/public/v1/balance") <= 4


@pytest.mark.parametrize("era", ERAS)
async def test_without_a_key_every_account_tool_says_how_to_set_it(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path, api_key=None)), mode=ERAS[era]) as client:
        results = {tool: await client.call_tool(tool, {}) for tool in ("get_balance", "get_usage", "get_costs")}
    for tool, result in results.items():
        expect_error(tool, result, "ATLASCLOUD_API_KEY")
    assert sent(emulator, "/public/v1/balance", *REPORTS) == 0


async def test_the_new_tools_over_stdio(emulator: Emulator, tmp_path: Path, key: str) -> None:
    emulator.state.config.chat_token_seconds = 0.05
    env = emulator_env(emulator, tmp_path, ATLASCLOUD_API_KEY=key)
    params = StdioServerParameters(command=CONSOLE_SCRIPT, args=[], env=env)
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        question = {"model": LLM, "messages": [{"role": "user", "content": "over stdio please"}]}
        chatted = await client.call_tool("chat", question, progress_callback=on_progress)
        balance = await client.call_tool("get_balance", {})
        costs = await client.call_tool("get_costs", {"group_by": ["model"]})
        usage = await client.call_tool("get_usage", {"start_date": "2026-01-01", "end_date": "2026-12-31"})
        refused = await client.call_tool("chat", {**question, "model": FLUX})
    assert {"chat", "get_balance", "get_usage", "get_costs"} <= names
    assert (
        chatted.structured_content is not None and chatted.structured_content["text"] == 'You said: "over stdio please"'
    )
    assert progress
    assert balance.structured_content is not None and balance.structured_content["currency"] == "USD"
    assert balance.structured_content["available"] == pytest.approx(emulator.state.balance, abs=0.005)
    assert costs.structured_content is not None
    assert costs.structured_content["totals"]["amount"] == pytest.approx(chatted.structured_content["price_usd"])
    expect_error("get_usage", usage, "Atlas reports at most 180")
    expect_error("chat", refused, "type=Text")
    everything = "".join(text_of(r) for r in (chatted, balance, costs, usage, refused))
    assert TEST_KEY not in everything


async def test_over_http_each_request_uses_its_callers_key(emulator: Emulator, tmp_path: Path) -> None:
    from .test_http import KEYS, connect, http_env, http_server

    question = {"model": LLM, "messages": [{"role": "user", "content": "whose key?"}]}
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        for era, key in (("2025", KEYS[2]), ("2026", KEYS[3])):
            emulator.state.clear_requests()
            async with connect(origin, key, era) as client:
                results = [
                    await client.call_tool("chat", question),
                    await client.call_tool("get_balance", {}),
                    await client.call_tool("get_usage", {"group_by": ["api_key"]}),
                ]
            for result in results:
                assert not result.is_error, text_of(result)
                assert key not in text_of(result)
            mine = [r for r in emulator.state.requests if r.path.startswith(("/v1/", "/public/v1/"))]
            assert {r.path for r in mine} == {"/v1/chat/completions", "/public/v1/balance", "/public/v1/model-usage"}
            assert all(r.headers.get("authorization") == f"Bearer {key}" for r in mine)
            usage = results[2].structured_content
            assert usage is not None and usage["totals"]["requests"] == 1  # scope self: this key's chat only


async def test_the_recorded_report_answers_are_read(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.add_fault(Fault(path="/public/v1/model-usage", kind="fixture", fixture="answers/model-usage.json"))
    emulator.state.add_fault(Fault(path="/public/v1/model-costs", kind="fixture", fixture="answers/model-costs.json"))
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        usage = await client.call_tool("get_usage", {"group_by": ["model_type", "model"]})
        costs = await client.call_tool("get_costs", {"group_by": ["model_type", "model"]})
    assert usage.structured_content is not None and costs.structured_content is not None
    assert usage.structured_content["totals"] == {
        "requests": 5,
        "images": 4,
        "videos": 0,
        "audios": 0,
        "input_tokens": 41,
        "output_tokens": 17,
    }
    assert usage.structured_content["has_more"] is True and usage.structured_content["next_page"] == "p2"
    assert costs.structured_content["totals"]["amount"] == pytest.approx(0.0120186)
    assert costs.structured_content["currency"] == "USD"
    assert costs.structured_content["rows"][1]["group"] == {"model_type": "text", "model": LLM}
