"""The spend-safety store, backend by backend: the same contract for memory, SQLite and a real Redis, then what
each real backend does when its disk or its server is not there."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from atlas_mcp.errors import StateUnavailableError
from atlas_mcp.state import MICRO, MemoryStore, StateStore, open_store, parse_state_url
from atlas_mcp.state.redis_store import RedisStore
from atlas_mcp.state.sqlite_store import SqliteStore

from .conftest import free_port

pytestmark = pytest.mark.anyio

DAY = 86_400.0
T0 = 1_800_000_000.0  # a fixed wall clock: the store takes "now" from its caller


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    backend: StateStore
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "sqlite":
        backend = SqliteStore(tmp_path / "state.db")
    else:
        backend = RedisStore(request.getfixturevalue("redis_url"))
    try:
        yield backend
    finally:
        await backend.aclose()


async def test_the_secret_is_made_once_and_kept(store: StateStore) -> None:
    first = await store.secret()
    assert len(first) == 32
    assert await store.secret() == first


async def test_the_ledger_holds_a_limit_and_a_rolling_window(store: StateStore) -> None:
    limit = 10 * MICRO
    assert (await store.reserve("p", "a", 4 * MICRO, limit_micro=limit, now=T0, window=DAY)).allowed
    assert (await store.reserve("p", "b", 5 * MICRO, limit_micro=limit, now=T0 + 60, window=DAY)).allowed
    refused = await store.reserve("p", "c", 2 * MICRO, limit_micro=limit, now=T0 + 120, window=DAY)
    assert not refused.allowed and refused.spent_micro == 9 * MICRO
    assert refused.entries == ((T0, 4 * MICRO), (T0 + 60, 5 * MICRO))
    assert refused.frees_at(2 * MICRO, limit, DAY) == T0 + DAY  # when the first entry leaves the window
    assert refused.frees_at(11 * MICRO, limit, DAY) is None  # never: more than the whole budget
    # Another payer has a budget of their own.
    assert (await store.reserve("q", "a", 9 * MICRO, limit_micro=limit, now=T0 + 120, window=DAY)).allowed
    # A day after the first entry, it has left the window.
    later = await store.reserve("p", "c", 2 * MICRO, limit_micro=limit, now=T0 + DAY + 1, window=DAY)
    assert later.allowed and later.spent_micro == 7 * MICRO


async def test_settling_corrects_an_entry(store: StateStore) -> None:
    await store.reserve("p", "a", 4 * MICRO, limit_micro=None, now=T0, window=DAY)
    await store.reserve("p", "b", 3 * MICRO, limit_micro=None, now=T0, window=DAY)
    await store.settle("p", "a", 0)  # a failed prediction costs nothing, and leaves no entry
    await store.settle("p", "b", MICRO)  # a finished one costs what Atlas charged
    await store.settle("p", "missing", 7)  # an entry that is gone stays gone
    assert (await store.spending("p", now=T0 + 1, window=DAY)).spent_micro == MICRO
    listed = await store.spending("p", now=T0 + 1, window=DAY, entries=True)
    assert listed.entries == ((T0, MICRO),) and (await store.spending("p", now=T0 + 1, window=DAY)).entries == ()


async def test_a_clock_that_goes_backwards_frees_no_budget(store: StateStore) -> None:
    limit = 5 * MICRO
    assert (await store.reserve("p", "a", 5 * MICRO, limit_micro=limit, now=T0, window=DAY)).allowed
    for back in (60.0, DAY, 2 * DAY, 365 * DAY):
        refused = await store.reserve("p", "b", MICRO, limit_micro=limit, now=T0 - back, window=DAY)
        assert not refused.allowed, f"a clock set back by {back} s freed budget"
        assert refused.now == T0  # the ledger's clock stays at its newest entry
    assert (await store.reserve("p", "b", MICRO, limit_micro=limit, now=T0 + DAY + 1, window=DAY)).allowed


async def test_claims_are_held_by_one_caller_until_released_or_expired(store: StateStore) -> None:
    assert await store.claim("k", "mine", ttl=60, now=T0) is None
    assert await store.claim("k", "theirs", ttl=60, now=T0) == "mine"
    assert await store.peek("k", now=T0) == "mine"
    assert not await store.swap("k", "theirs", "x", ttl=60, now=T0)  # only the holder may change it
    assert await store.swap("k", "mine", "sent", ttl=60, now=T0)
    await store.release("k", "mine")  # a stale value releases nothing
    assert await store.peek("k", now=T0) == "sent"
    await store.release("k", "sent")
    assert await store.peek("k", now=T0) is None
    assert await store.claim("short", "v", ttl=0.2, now=T0) is None
    if not isinstance(store, RedisStore):  # Redis expires keys by its own clock
        assert await store.claim("short", "w", ttl=60, now=T0 + 1) is None
    else:
        await anyio.sleep(0.4)
        assert await store.claim("short", "w", ttl=60, now=T0 + 1) is None
    assert await store.peek("short", now=T0 + 1) == "w"


async def test_a_token_is_spent_once(store: StateStore) -> None:
    assert await store.spend_token("t1", ttl=660, now=T0)
    assert not await store.spend_token("t1", ttl=660, now=T0 + 1)
    assert await store.spend_token("t2", ttl=660, now=T0 + 1)


async def test_concurrent_claims_and_reservations_are_atomic(store: StateStore) -> None:
    winners: list[str] = []
    granted: list[str] = []

    async def contend(number: int) -> None:
        if await store.claim("same", f"caller-{number}", ttl=60, now=T0) is None:
            winners.append(f"caller-{number}")
        spending = await store.reserve("p", f"e{number}", MICRO, limit_micro=7 * MICRO, now=T0, window=DAY)
        if spending.allowed:
            granted.append(f"e{number}")

    async with anyio.create_task_group() as group:
        for number in range(30):
            group.start_soon(contend, number)
    assert len(winners) == 1
    assert len(granted) == 7
    assert (await store.spending("p", now=T0, window=DAY)).spent_micro == 7 * MICRO


async def test_two_sqlite_stores_on_one_file_share_everything(tmp_path: Path) -> None:
    """Two server processes on one machine open the same file: each sees what the other wrote."""
    one, two = SqliteStore(tmp_path / "shared.db"), SqliteStore(tmp_path / "shared.db")
    try:
        assert await one.secret() == await two.secret()
        assert await one.claim("k", "one", ttl=60, now=T0) is None
        assert await two.claim("k", "two", ttl=60, now=T0) == "one"
        assert await one.spend_token("t", ttl=60, now=T0)
        assert not await two.spend_token("t", ttl=60, now=T0)
        await one.reserve("p", "a", 3 * MICRO, limit_micro=4 * MICRO, now=T0, window=DAY)
        assert not (await two.reserve("p", "b", 3 * MICRO, limit_micro=4 * MICRO, now=T0, window=DAY)).allowed
        (mode,) = {stat.S_IMODE(os.stat(tmp_path / "shared.db").st_mode)}
        assert mode == 0o600
        with closing(sqlite3.connect(tmp_path / "shared.db")) as raw, raw:
            (journal,) = raw.execute("PRAGMA journal_mode").fetchone()
        assert journal == "wal"
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_corrupt_sqlite_file_is_moved_aside_and_waits_for_the_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database, it was damaged " * 200)
    store = SqliteStore(path)
    try:
        # Its spending cannot be read: the budget would start from zero, which only the user may decide.
        with pytest.raises(StateUnavailableError) as caught:
            await store.reserve("p", "a", MICRO, limit_micro=None, now=T0, window=DAY)
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.db.unreadable-")]
        assert len(aside) == 1
        assert aside[0].read_bytes().startswith(b"this is not a database")
        assert f"delete {aside[0]}" in str(caught.value) and "Paid generations are refused" in str(caught.value)
        with pytest.raises(StateUnavailableError):  # and again, until the user acts
            await store.reserve("p", "a", MICRO, limit_micro=None, now=T0, window=DAY)
        aside[0].unlink()
        assert (await store.reserve("p", "a", MICRO, limit_micro=None, now=T0, window=DAY)).allowed
    finally:
        await store.aclose()
    assert "is damaged" in caplog.text and "refused until that file is deleted" in caplog.text


async def test_a_read_only_folder_fails_closed_with_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores permissions: make the disk itself read-only instead
            store = SqliteStore(Path("/proc/atlascloud-mcp/state.db"))
        else:
            store = SqliteStore(folder / "sub" / "state.db")
        with pytest.raises(StateUnavailableError) as caught:
            await store.reserve("p", "a", MICRO, limit_micro=None, now=T0, window=DAY)
        message = str(caught.value)
        assert "cannot be used" in message and "Paid generations are refused" in message
        assert "ATLASCLOUD_STATE_URL" in message
    finally:
        folder.chmod(0o700)


async def test_a_redis_that_is_down_fails_closed_quickly() -> None:
    store = RedisStore(f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0")
    try:
        started = anyio.current_time()
        with pytest.raises(StateUnavailableError) as caught:
            await store.reserve("p", "a", MICRO, limit_micro=None, now=T0, window=DAY)
        assert anyio.current_time() - started < 10
    finally:
        await store.aclose()
    message = str(caught.value)
    assert "cannot be reached" in message and "Redis is running" in message
    assert "hunter2" not in message and "hunter2" not in store.name


def test_state_urls_are_checked_without_echoing_them() -> None:
    assert parse_state_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert parse_state_url("redis://:pw@host:6379/0") == "redis://:pw@host:6379/0"
    for bad in ("sqlite://relative.db", "sqlite:///", "postgres://:pw@host/db", "/just/a/path"):
        with pytest.raises(ValueError) as caught:
            parse_state_url(bad)
        assert ":pw@" not in str(caught.value)
    assert isinstance(open_store("sqlite:////tmp/x.db"), SqliteStore)
    assert open_store("sqlite:///tmp/y.db").name == "SQLite at /tmp/y.db"
