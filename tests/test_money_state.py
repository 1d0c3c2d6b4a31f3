"""Issue 22's money and state findings, each against the emulator through a public seam: no cookie crosses
callers, team tokens see only their own work and share an account-wide cap, a paid prediction survives a state
store that stumbles, a re-hosted upload is streamed, refused keys leave no ledger rows, and a damaged state file
does not reset the budget."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from atlas_mcp.atlas import AtlasClient
from atlas_mcp.emulator import Emulator, Fault
from atlas_mcp.server import create_server
from atlas_mcp.state.sqlite_store import SqliteStore

from .conftest import TEST_KEY, settings_for
from .harness import expect_done, text_of

pytestmark = pytest.mark.anyio

OTHER_KEY = "sk-other-caller-0000000000"
ERAS = {"2025": "legacy", "2026": "auto"}
SUBMIT = "/api/v1/model/generateImage"
CHAT = "/v1/chat/completions"
LLM = "deepseek-ai/deepseek-v3.2"


def sent(emulator: Emulator, path: str) -> int:
    return len([r for r in emulator.state.requests if r.method == "POST" and r.path == path])


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process's long write transaction on the state file: every write of ours queues, then fails."""
    holder = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def locked_after_post(emulator: Emulator, state_file: Path, path: str, call: Any) -> CallToolResult:
    """Run ``call`` and lock the state file the moment Atlas has the POST (its answer is held back a second by a
    fault), until the call has answered."""
    emulator.state.add_fault(Fault(path=path, method="POST", kind="delay", seconds=1.0))
    answered: list[CallToolResult] = []
    async with anyio.create_task_group() as group:

        async def calling() -> None:
            answered.append(await call())

        group.start_soon(calling)
        with anyio.fail_after(10):
            while not sent(emulator, path):
                await anyio.sleep(0.01)
        with locked(state_file):
            with anyio.fail_after(30):
                while not answered:
                    await anyio.sleep(0.02)
    return answered[0]


# -- 3: no cookie jar shared between callers -------------------------------------------------------------------


async def test_a_cookie_set_for_one_caller_is_never_sent_with_anothers_request(emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/models", kind="set_cookie", cookie="sticky=caller-a; Path=/"))
    async with AtlasClient(api_key=None, base_url=emulator.url, timeout=5) as root:
        first, second = root.with_key(TEST_KEY), root.with_key(OTHER_KEY)
        await first.list_models()
        answered = [r for r in emulator.state.requests if r.path == "/api/v1/models"]
        assert len(answered) == 1  # the fault answered it, with its Set-Cookie
        await second.list_models()
        await first.list_models()
    sent = [r.headers for r in emulator.state.requests if r.path == "/api/v1/models"]
    assert len(sent) == 3
    assert not any("cookie" in headers for headers in sent), sent


# -- 5: once Atlas has answered, a state store that fails costs nothing paid ----------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_a_store_locked_right_after_the_post_still_hands_back_the_prediction(
    emulator: Emulator, tmp_path: Path, era: str, caplog: pytest.LogCaptureFixture
) -> None:
    state_file = tmp_path / "state.db"
    store = SqliteStore(state_file, busy_timeout=0.2)
    settings = settings_for(emulator, tmp_path, budget_usd=5)
    try:
        async with Client(create_server(settings, store=store), mode=ERAS[era]) as client:
            result = await locked_after_post(
                emulator, state_file, SUBMIT, lambda: client.call_tool("generate_image", {"prompt": "a fox"})
            )
    finally:
        await store.aclose()
    done = expect_done(result)
    assert done["prediction_id"] and done["outputs"], done
    assert all(output["saved_path"] for output in done["outputs"])
    assert sent(emulator, SUBMIT) == 1
    assert "could not record prediction" in caplog.text


@contextmanager
def private_redis(folder: Path) -> Iterator[tuple[str, int]]:
    """A redis-server of this test's own (it will be frozen): its URL and process id."""
    import socket
    import subprocess
    import time

    from .conftest import free_port, require_binary

    binary = require_binary("redis-server", install="apt-get install redis-server")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*command, "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not come up"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.integration  # a redis-server of its own
async def test_a_redis_that_stops_answering_right_after_the_post_still_hands_back_the_prediction(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os
    import signal

    with private_redis(tmp_path) as (url, pid):
        settings = settings_for(emulator, tmp_path, budget_usd=5, state_url=url)
        emulator.state.add_fault(Fault(path=SUBMIT, method="POST", kind="delay", seconds=1.0))
        answered: list[CallToolResult] = []
        async with Client(create_server(settings)) as client, anyio.create_task_group() as group:

            async def calling() -> None:
                answered.append(await client.call_tool("generate_image", {"prompt": "a fox"}))

            group.start_soon(calling)
            with anyio.fail_after(10):
                while not sent(emulator, SUBMIT):
                    await anyio.sleep(0.01)
            os.kill(pid, signal.SIGSTOP)  # Redis hangs: every operation times out (2 s each)
            try:
                with anyio.fail_after(40):
                    while not answered:
                        await anyio.sleep(0.05)
            finally:
                os.kill(pid, signal.SIGCONT)
    done = expect_done(answered[0])
    assert done["prediction_id"] and done["outputs"], done
    assert sent(emulator, SUBMIT) == 1
    assert "could not record prediction" in caplog.text


@pytest.mark.parametrize("era", ERAS)
async def test_a_store_locked_right_after_a_chat_still_hands_back_the_answer(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    state_file = tmp_path / "state.db"
    store = SqliteStore(state_file, busy_timeout=0.2)
    settings = settings_for(emulator, tmp_path, budget_usd=5)
    question = {"model": LLM, "messages": [{"role": "user", "content": "what is an atlas"}], "max_tokens": 50}
    try:
        async with Client(create_server(settings, store=store), mode=ERAS[era]) as client:
            result = await locked_after_post(emulator, state_file, CHAT, lambda: client.call_tool("chat", question))
    finally:
        await store.aclose()
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["text"]
    assert sent(emulator, CHAT) == 1


# -- 7: nothing kept for refused keys, and old entries go for every payer ------------------------------------


async def test_keys_atlas_refused_leave_no_ledger_rows(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.config.api_key = TEST_KEY  # every other key is refused with 401
    try:
        for number in range(20):
            bad = settings_for(emulator, tmp_path, api_key=f"sk-refused-{number:02d}-{'x' * 16}", budget_usd=5)
            async with Client(create_server(bad)) as client:
                result = await client.call_tool("generate_image", {"prompt": "a fox"})
            assert result.is_error
    finally:
        emulator.state.config.api_key = None
    assert sent(emulator, SUBMIT) == 20
    with closing(sqlite3.connect(tmp_path / "state.db")) as raw, raw:
        assert raw.execute("SELECT count(*) FROM ledger").fetchone() == (0,)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_old_or_unbilled_entries_go_for_payers_who_never_come_back(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from atlas_mcp.state import MICRO, StateStore
    from atlas_mcp.state.redis_store import RedisStore

    now, day = 1_800_000_000.0, 86_400.0
    url = request.getfixturevalue("redis_url") if backend == "redis" else ""
    store: StateStore = SqliteStore(tmp_path / "state.db") if backend == "sqlite" else RedisStore(url)
    try:
        for number in range(50):
            await store.reserve(f"refused-{number}", "a", MICRO, limit_micro=None, now=now, window=day)
            await store.settle(f"refused-{number}", "a", 0)
            await store.reserve(f"gone-{number}", "a", MICRO, limit_micro=None, now=now, window=day)
        await store.reserve("stays", "b", MICRO, limit_micro=None, now=now + day + 1, window=day)
    finally:
        await store.aclose()
    if backend == "sqlite":
        with closing(sqlite3.connect(tmp_path / "state.db")) as raw, raw:
            assert raw.execute("SELECT DISTINCT payer FROM ledger").fetchall() == [("stays",)]
    else:
        import redis

        with redis.Redis.from_url(url) as client:
            keys = {key.decode() for key in client.keys("atlascloud-mcp:ledger:*")}
            assert not any("refused-" in key for key in keys), keys  # a settlement to 0 leaves nothing
            # The rest Redis forgets by itself: every ledger expires two windows after its last entry.
            assert all(client.pttl(key) > 0 for key in keys)


# -- 4 and 11: team tokens of one shared key ------------------------------------------------------------------

TEAM = ["team-token-one-0123456789abcdef", "team-token-two-0123456789abcdef"]
TEAM_KEY = "sk-the-teams-own-key-000000"


def team_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    from .test_http import http_env

    return http_env(emulator, tmp_path, ATLASCLOUD_API_KEY=TEAM_KEY, ATLASCLOUD_HTTP_TOKENS=",".join(TEAM)) | extra


def state_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    return {"ATLASCLOUD_STATE_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}


def stored_state(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Everything the state store holds, as text."""
    if backend == "sqlite":
        with closing(sqlite3.connect(tmp_path / "state.db")) as raw, raw:
            return "\n".join(raw.iterdump())
    import redis

    with redis.Redis.from_url(request.getfixturevalue("redis_url")) as client:
        keys = client.keys("*")
        return "\n".join(f"{key!r} {client.dump(key)!r}" for key in keys)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_team_tokens_see_only_their_own_predictions(
    emulator: Emulator, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    from .harness import expect_error
    from .test_http import connect, http_server

    env = team_env(emulator, tmp_path, **state_env(backend, request))
    with http_server(env, tmp_path / "http.log") as origin:
        async with connect(origin, TEAM[0], "2026") as one, connect(origin, TEAM[1], "2025") as two:
            mine = expect_done(await one.call_tool("generate_image", {"prompt": "one's fox"}))["prediction_id"]
            theirs = expect_done(await two.call_tool("generate_image", {"prompt": "two's owl"}))["prediction_id"]
            listed = await one.call_tool("list_predictions", {})
            other_listed = await two.call_tool("list_predictions", {})
            own_check = await one.call_tool("check_prediction", {"prediction_id": mine})
            peeked = await one.call_tool("check_prediction", {"prediction_id": theirs})
            usage = await one.call_tool("get_usage", {})
            costs = await two.call_tool("get_costs", {})
    assert listed.structured_content is not None and other_listed.structured_content is not None
    assert [p["prediction_id"] for p in listed.structured_content["predictions"]] == [mine]
    assert [p["prediction_id"] for p in other_listed.structured_content["predictions"]] == [theirs]
    assert "your team token" in text_of(listed)
    assert expect_done(own_check)["prediction_id"] == mine
    expect_error("check_prediction", peeked, f"No prediction {theirs} was made with your team token")
    assert "owl" not in text_of(peeked)
    for tool, result in (("get_usage", usage), ("get_costs", costs)):
        expect_error(tool, result, "whole Atlas account", "ATLASCLOUD_HTTP_SHARE_ACCOUNT_USAGE=1")
    # The state holds a hash of each token, never the token.
    dumped = stored_state(backend, tmp_path, request)
    assert "owner:" in dumped and not any(token in dumped for token in TEAM)


async def test_account_usage_is_shown_to_team_tokens_when_the_operator_says_so(
    emulator: Emulator, tmp_path: Path
) -> None:
    from .test_http import connect, http_server

    env = team_env(emulator, tmp_path, ATLASCLOUD_HTTP_SHARE_ACCOUNT_USAGE="1")
    with http_server(env, tmp_path / "http.log") as origin:
        async with connect(origin, TEAM[0], "2026") as one:
            usage = await one.call_tool("get_usage", {})
    assert not usage.is_error, text_of(usage)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
async def test_an_account_wide_cap_holds_across_team_tokens(
    emulator: Emulator, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    from .harness import expect_error
    from .test_http import connect, http_server

    # $0.003 an image: each token could spend $0.006 of its own $0.0065, but the account only $0.0065 in all.
    budgets = {"ATLASCLOUD_BUDGET_USD": "0.0065", "ATLASCLOUD_BUDGET_ACCOUNT_USD": "0.0065"}
    env = team_env(emulator, tmp_path, **budgets, **state_env(backend, request))
    with http_server(env, tmp_path / "http.log") as origin:
        async with connect(origin, TEAM[0], "2026") as one, connect(origin, TEAM[1], "2025") as two:
            expect_done(await one.call_tool("generate_image", {"prompt": "first"}))
            expect_done(await two.call_tool("generate_image", {"prompt": "second"}))
            over_one = await one.call_tool("generate_image", {"prompt": "third"})
            over_two = await two.call_tool("generate_image", {"prompt": "fourth"})
    for result in (over_one, over_two):
        expect_error("generate_image", result, "Not sent", "account-wide", "ATLASCLOUD_BUDGET_ACCOUNT_USD")
    assert sent(emulator, SUBMIT) == 2


# -- 12: a damaged state file does not reset the budget ------------------------------------------------------


def damage_an_index(path: Path) -> None:
    """Overwrite one page of the repeat claims' index: the file fails its integrity check, its ledger still reads."""
    with closing(sqlite3.connect(path)) as raw, raw:
        rows = [(f"claim-{n:05d}-{'x' * 60}", "held", 4e9) for n in range(3000)]
        raw.executemany("INSERT INTO claims VALUES (?, ?, ?)", rows)
    raw = sqlite3.connect(path)
    try:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (size,) = raw.execute("PRAGMA page_size").fetchone()
        (root,) = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_claims_1'").fetchone()
    finally:
        raw.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * size : root * size] = b"\xff" * size
    path.write_bytes(bytes(data))


async def test_a_damaged_state_file_carries_its_spending_and_secret_across(emulator: Emulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path, budget_usd=0.007, confirm_above_usd=0)
    unasked = settings.model_copy(update={"confirm_above_usd": None})
    async with Client(create_server(settings)) as client:
        first = await client.call_tool("generate_image", {"prompt": "paid for"})
    token = first.structured_content["confirm"] if first.structured_content else None
    assert token, text_of(first)
    async with Client(create_server(settings)) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "paid for", "confirm": token}))
    damage_an_index(tmp_path / "state.db")
    async with Client(create_server(unasked)) as client:
        over = await client.call_tool("generate_image", {"prompt": "another", "num_images": 2})
    async with Client(create_server(settings)) as client:
        again = await client.call_tool("generate_image", {"prompt": "paid for", "confirm": token, "repeat": True})
    assert over.is_error and "ATLASCLOUD_BUDGET_USD" in text_of(over)  # $0.003 spent before still counts
    assert again.is_error and "used already" in text_of(again)  # the spent token stayed spent
    assert sent(emulator, SUBMIT) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("state.db.corrupt-")]


async def test_an_unreadable_state_file_refuses_paid_calls_until_the_user_deletes_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database, it was damaged " * 200)
    settings = settings_for(emulator, tmp_path, budget_usd=5)
    async with Client(create_server(settings)) as client:
        refused = await client.call_tool("generate_image", {"prompt": "a fox"})
        free = await client.call_tool("list_models", {})
    assert not free.is_error
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.db.unreadable-")]
    assert len(aside) == 1
    assert refused.is_error and f"delete {aside[0]}" in text_of(refused), text_of(refused)
    assert sent(emulator, SUBMIT) == 0
    aside[0].unlink()
    async with Client(create_server(settings)) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "a fox"}))


# -- 6: a re-hosted url is streamed, a few at a time, and only for a key Atlas accepts ----------------------


def on_the_origin(emulator: Emulator, name: str, data: bytes) -> str:
    import httpx

    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {TEST_KEY}"}, timeout=60) as http:
        answer = http.post("/api/v1/model/uploadMedia", files={"file": (name, data, "image/png")})
    url: str = answer.json()["data"]["download_url"]
    return url


def png_with_a_long_tail(size: int) -> bytes:
    """A real PNG (its header is what is judged) followed by ``size`` bytes after its end."""
    import io

    from PIL import Image

    head = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(head, format="PNG")
    return head.getvalue() + bytes(size)


async def test_a_large_url_is_re_hosted_without_holding_it_in_memory(emulator: Emulator, tmp_path: Path) -> None:
    import tracemalloc

    size = 96 * 1024 * 1024
    url = on_the_origin(emulator, "big.png", png_with_a_long_tail(size))
    settings = settings_for(emulator, tmp_path, max_upload_mb=128)
    async with Client(create_server(settings)) as client:
        tracemalloc.start()
        try:
            result = await client.call_tool("upload_media", {"url": url})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["size_bytes"] > size
    # The emulator shares this process and its buffers count too; a generous bound, far below the file's size.
    assert peak < 32 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB re-hosting {size / 1e6:.0f} MB"


async def test_re_hosts_run_a_few_at_a_time(emulator: Emulator, tmp_path: Path) -> None:
    url = on_the_origin(emulator, "small.png", png_with_a_long_tail(1024))
    path = url.removeprefix(emulator.url)
    emulator.state.add_fault(Fault(path=path, method="GET", kind="delay", seconds=0.6, times=None))
    async with Client(create_server(settings_for(emulator, tmp_path))) as client, anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(client.call_tool, "upload_media", {"url": url})
    arrived = sorted(r.at for r in emulator.state.requests if r.method == "GET" and r.path == path)
    assert len(arrived) == 8
    started_at_once = [at for at in arrived if at - arrived[0] < 0.4]
    assert len(started_at_once) == 4, arrived  # the rest waited for a slot


async def test_over_http_a_key_atlas_refuses_fetches_nothing(emulator: Emulator, tmp_path: Path) -> None:
    from .harness import expect_error
    from .test_http import connect, http_env, http_server

    url = on_the_origin(emulator, "small.png", png_with_a_long_tail(1024))
    path = url.removeprefix(emulator.url)
    emulator.state.config.api_key = TEST_KEY
    try:
        with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
            async with connect(origin, "sk-not-an-accepted-key-0000", "2026") as client:
                refused = await client.call_tool("upload_media", {"url": url})
            async with connect(origin, TEST_KEY, "2025") as client:
                accepted = await client.call_tool("upload_media", {"url": url})
    finally:
        emulator.state.config.api_key = None
    expect_error("upload_media", refused, "401")
    assert not accepted.is_error, text_of(accepted)
    assert len([r for r in emulator.state.requests if r.method == "GET" and r.path == path]) == 1  # the good key's
