"""Atlas's live account and catalogue shapes (issue 21), through the MCP client against the emulator, in both
protocol eras and over stdio: the balance with its account, subscription bonus and credit grant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, Fault
from atlas_mcp.server import create_server

from .conftest import TEST_KEY
from .harness import CONSOLE_SCRIPT, emulator_env, text_of

pytestmark = pytest.mark.anyio

ERAS = {"2025": "legacy", "2026": "auto"}

LIVE_BALANCE = {
    "available": 125.5,
    "cash": 100.0,
    "bonus": 20.0,
    "subscription_bonus": 5.5,
    "frozen": 0.16,
    "credit_grant": {"status": "active", "granted": 50.0, "used": 10.0, "remaining_overdraft": 40.0, "overdrawn": 0.0},
    "currency": "USD",
    "account": "acct_7d2c",
    "account_name": "Studio North",
    "account_type": "team",
}
LIVE_TEXT = (
    "Account: Studio North (team account), id acct_7d2c\n"
    "Available: 125.50 USD = cash 100.00 USD + bonus 20.00 USD + subscription bonus 5.50 USD\n"
    "Frozen (held for running jobs): 0.16 USD\n"
    "Credit grant (active): 50.00 USD granted, 10.00 USD used, 40.00 USD left to use, 0.00 USD overdrawn"
)


def settings_for(emulator: Emulator, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": TEST_KEY, "base_url": emulator.url, "wait_seconds": 10}
    return Settings(**(values | overrides))


def replay(emulator: Emulator, path: str, fixture: str) -> None:
    emulator.state.add_fault(Fault(path=path, kind="fixture", fixture=fixture))


# The live balance and the id aliases are tested in tests/test_families.py and tests/test_fixtures.py.


# --- A 400-model catalogue, paged with offset -------------------------------------------------------------------


@pytest.fixture
def big_catalogue(emulator: Emulator) -> Iterator[int]:
    emulator.state.config.catalogue_size = 400
    try:
        yield 400
    finally:
        emulator.state.config.catalogue_size = 0


async def page_through(client: Client, limit: int, **filters: Any) -> tuple[list[str], list[dict[str, Any]]]:
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    offset = 0
    for _ in range(100):  # bounded: 400 models in pages of at least 5
        result = await client.call_tool("list_models", {"limit": limit, "offset": offset, **filters})
        assert not result.is_error, text_of(result)
        page = result.structured_content or {}
        pages.append(page)
        seen += [m["model"] for m in page["models"]]
        if not page["has_more"]:
            break
        assert page["next_offset"] == offset + limit and f"offset={page['next_offset']}" in text_of(result)
        offset = page["next_offset"]
    return seen, pages


@pytest.mark.parametrize("era", ERAS)
async def test_list_models_reaches_every_model_of_a_400_model_catalogue(
    emulator: Emulator, tmp_path: Path, era: str, big_catalogue: int
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "list_models")
        seen, pages = await page_through(client, 200, include_hidden=True)
        videos, _ = await page_through(client, 50, type="Video")
    assert "offset" in tool.input_schema["properties"]
    assert len(seen) == len(set(seen)) == big_catalogue  # every model, once
    assert [p["total"] for p in pages] == [big_catalogue] * 2 and pages[-1]["next_offset"] is None
    families = {m["type"] for p in pages for m in p["models"]}
    assert families == {"Image", "Video", "Audio", "Text"}
    assert len(videos) > 150  # the live catalogue's largest family, reached past the first page too


async def test_paging_over_stdio_and_past_the_end(emulator: Emulator, tmp_path: Path, big_catalogue: int) -> None:
    params = StdioServerParameters(command=CONSOLE_SCRIPT, args=[], env=emulator_env(emulator, tmp_path))
    async with Client(params) as client:
        seen, _ = await page_through(client, 150, include_hidden=True)
        beyond = await client.call_tool("list_models", {"offset": 1000, "include_hidden": True})
    assert len(set(seen)) == big_catalogue
    assert not beyond.is_error and (beyond.structured_content or {})["models"] == []
    assert "beyond offset 1000 (there are 400)" in text_of(beyond)


# --- Catalogue entries without a schema, and every live price field ----------------------------------------------

NO_SCHEMA = "moonshotai/kimi-k2-instruct"  # catalogue-entry.text-no-schema.json
PER_IMAGE = "openai/gpt-image-1.5/text-to-image"  # catalogue-entry.output-image-price.json
PER_REQUEST = "bria/background-remove"  # catalogue-entry.request-price.json


@pytest.fixture
def live_catalogue(emulator: Emulator) -> Iterator[None]:
    emulator.state.config.catalogue_live_shapes = True
    try:
        yield
    finally:
        emulator.state.config.catalogue_live_shapes = False


@pytest.mark.parametrize("era", ERAS)
async def test_get_model_info_shows_a_schema_less_llm_entry(
    emulator: Emulator, tmp_path: Path, era: str, live_catalogue: None
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        result = await client.call_tool("get_model_info", {"model": NO_SCHEMA})
    assert not result.is_error, text_of(result)
    info = result.structured_content or {}
    assert (info["type"], info["tool"], info["parameters_published"], info["parameters"]) == ("Text", "chat", False, [])
    assert (info["input_price_usd"], info["output_price_usd"], info["cache_price_usd"]) == (0.57, 2.3, 0.15)
    assert (info["discount"], info["context_length"], info["max_output_tokens"]) == (0.95, 131072, 16384)
    assert info["strengths"] == ["coding", "tool use", "long context"] and info["use_cases"] == [
        "agents",
        "code review",
    ]
    text = text_of(result)
    for phrase in (
        "$0.57 in / $2.3 out per 1M tokens",
        "Context length: 131,072 tokens",
        "Max output tokens: 16,384",
        "Strengths: coding, tool use, long context",
        "Use cases: agents, code review",
        "Average latency: 1.2s",
        "$0.15 per million cached tokens",
        "Atlas publishes no parameters for this model",
        "Run it with chat.",
    ):
        assert phrase in text, text


async def test_get_model_info_over_stdio_for_a_schema_less_entry(
    emulator: Emulator, tmp_path: Path, live_catalogue: None
) -> None:
    params = StdioServerParameters(command=CONSOLE_SCRIPT, args=[], env=emulator_env(emulator, tmp_path))
    async with Client(params) as client:
        result = await client.call_tool("get_model_info", {"model": NO_SCHEMA})
    assert not result.is_error, text_of(result)
    assert "Atlas publishes no parameters for this model" in text_of(result)


@pytest.mark.parametrize("era", ERAS)
async def test_prices_given_only_per_image_or_per_request_are_read(
    emulator: Emulator, tmp_path: Path, era: str, live_catalogue: None
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=ERAS[era]) as client:
        listed = await client.call_tool("list_models", {"type": "Image", "limit": 200})
        per_image = await client.call_tool("get_model_info", {"model": PER_IMAGE})
    models = {m["model"]: m for m in (listed.structured_content or {})["models"]}
    assert (models[PER_IMAGE]["price_usd"], models[PER_IMAGE]["unit"]) == (0.04, "image")
    assert (models[PER_REQUEST]["price_usd"], models[PER_REQUEST]["unit"]) == (0.018, "request")
    assert f"{PER_IMAGE} — GPT Image 1.5 (Image, $0.04/image)" in text_of(listed)
    info = per_image.structured_content or {}
    assert (info["output_image_price_usd"], info["discount"], info["unit"]) == (0.04, 0.8, "image")
    assert "$0.04 per image made" in text_of(per_image) and "discount factor 0.8" in text_of(per_image)


@pytest.mark.parametrize(("model", "price"), [(PER_IMAGE, 0.16), (PER_REQUEST, 0.018)])
async def test_the_fallback_estimate_prices_4_images_as_4(
    emulator: Emulator, tmp_path: Path, live_catalogue: None, model: str, price: float
) -> None:
    """Without a key there is no quote from Atlas: the catalogue's price is the estimate, per image made when the
    entry prices per image, once when it prices per request."""
    async with Client(create_server(settings_for(emulator, tmp_path, api_key=None))) as client:
        result = await client.call_tool(
            "generate_image", {"prompt": "four foxes", "model": model, "num_images": 4, "dry_run": True}
        )
    assert not result.is_error, text_of(result)
    quote = (result.structured_content or {})["quote"]
    assert quote == {"price_usd": pytest.approx(price), "source": "catalogue", "estimate": True}
    assert f"Cost: about ${price:.4g} (estimated from the catalogue price)" in text_of(result)


# --- Long families: a wait cut to the server's cap is said, with what such jobs take -----------------------------

VIDEO = "alibaba/wan-2.2/t2v-480p"


@pytest.mark.parametrize("era", ERAS)
async def test_a_wait_cut_to_the_cap_is_said_with_what_long_jobs_take(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    before, emulator.state.config.prediction_seconds = emulator.state.config.prediction_seconds, 4
    try:
        settings = settings_for(emulator, tmp_path, wait_seconds=1)
        async with Client(create_server(settings), mode=ERAS[era]) as client:
            long = await client.call_tool(
                "generate_video", {"model": VIDEO, "prompt": "waves", "max_wait_seconds": 600}
            )
            prediction_id = (long.structured_content or {})["prediction_id"]
            checked = await client.call_tool(
                "check_prediction", {"prediction_id": prediction_id, "wait": True, "max_wait_seconds": 600}
            )
            within = await client.call_tool("check_prediction", {"prediction_id": prediction_id, "wait": True})
    finally:
        emulator.state.config.prediction_seconds = before
    for result in (long, checked):
        assert not result.is_error, text_of(result)
        text = text_of(result)
        assert "max_wait_seconds=600 was capped at this server's 1 s (ATLASCLOUD_WAIT_SECONDS)" in text
        assert "3D models usually take 2–5 minutes, songs minutes, videos 1–5 minutes" in text
        assert "check_prediction" in text
    assert "capped" not in text_of(within)  # no cap applied: nothing said
