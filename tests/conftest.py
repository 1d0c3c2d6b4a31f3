"""Shared fixtures: one Atlas emulator on a free loopback port, reset between tests; the test lanes.

Lanes. ``uv run pytest`` runs the fast lane: unit and in-memory server tests and the real stdio server, with
nothing but uv and Python, in under two minutes on two cores. Tests that start more (redis-server, tinyproxy, HTTP
server processes, replicas), that wait out one of the server's fixed time bounds on purpose (a 5 s roots or quote
bound, the fault rows that hang), that measure load and memory, or that run the demo and the doctor's slow paths
are ``integration``; tests that drive a browser, HAProxy replicas, uv/uvx installs, wheel builds or npx clients are
``e2e``. A test lands in a lane through what it needs: a module's ``pytestmark``, or a fixture below (a test
that asks for ``redis_server`` is an integration test wherever it lives). A missing binary skips with one line
saying what to install, except in strict mode (``CI`` or ``ATLAS_MCP_STRICT_TESTS`` set, as .ci/run does),
where nothing may be skipped for want of a part.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, EmulatorConfig

TEST_KEY = "sk-test-7f3a9c1e5b2d4f6a8c0e"  # recognisable, so a leak is easy to find
ALL_TOOLS = {
    "generate_image",
    "generate_video",
    "generate_audio",
    "check_prediction",
    "upload_media",
    "list_models",
    "get_model_info",
    "list_predictions",
    "chat",
    "get_balance",
    "get_usage",
    "get_costs",
    "quick_generate",
    "transcribe_audio",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full-load", action="store_true", help="run load and soak checks at the issue's full sizes")


def strict() -> bool:
    """CI mode: a part the tests need and cannot find is a failure, not a skip."""
    return any(os.environ.get(name, "").strip().lower() not in ("", "0", "false") for name in _STRICT)


_STRICT = ("CI", "ATLAS_MCP_STRICT_TESTS")


def examples(full: int) -> int:
    """How many examples a property test draws: ``full`` in strict mode (CI's run of every lane), a quarter
    (at least 10) otherwise, so that the fast lane stays fast; each run draws afresh, so coverage adds up."""
    return full if strict() else max(10, full // 4)


def require_binary(*names: str, install: str) -> str:
    """The path of the first of ``names`` on PATH; else skip (locally) or fail (strict) saying what to install."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{names[0]} is not installed: {install}"
    if strict():
        pytest.fail(f"{message} (strict mode: CI or ATLAS_MCP_STRICT_TESTS is set)", pytrace=False)
    pytest.skip(message)


# Fixtures that start a part beyond our own stdio server put their tests into a lane, wherever those tests live.
_LANE_OF_FIXTURE = {"redis_server": "integration", "redis_url": "integration", "npx": "e2e"}


# Helpers (not fixtures) that start a part: a test whose body calls one is in that lane too.
_LANE_OF_HELPER = {"http_server": "integration", "replicas": "integration", "private_redis": "integration"}


def _names_in(code: CodeType) -> set[str]:
    """Names a function uses, a module-level import or one inside it, and those of its comprehensions."""
    names = set(code.co_names) | set(code.co_varnames)
    for inner in code.co_consts:
        if isinstance(inner, CodeType):
            names |= _names_in(inner)
    return names


def _lanes_of(item: pytest.Item) -> set[str]:
    lanes = {lane for fixture, lane in _LANE_OF_FIXTURE.items() if fixture in getattr(item, "fixturenames", ())}
    code = getattr(getattr(item, "function", None), "__code__", None)
    if code is not None:
        called = _names_in(code)
        lanes |= {lane for helper, lane in _LANE_OF_HELPER.items() if helper in called}
    # A test parametrized over the Redis backend asks for redis_url at run time (request.getfixturevalue).
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "redis" in callspec.params.values():
        lanes.add("integration")
    return lanes


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for lane in _lanes_of(item):
            item.add_marker(getattr(pytest.mark, lane))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` in the fast lane: two workers per core, since the lane mostly waits (on the emulator's
    predictions, a subprocess's start, a bound) rather than computes: with one worker per core, its run kept less
    than one of two cores busy. The other lanes time and measure things, so they keep one per core."""
    cores = os.cpu_count() or 1
    return 2 * cores if config.getoption("markexpr") == DEFAULT_LANE else cores


def pytest_report_header(config: pytest.Config) -> str:
    chosen = config.getoption("markexpr")
    left_out = "" if chosen != DEFAULT_LANE else " (integration and e2e left out: see README, Development)"
    return f"lane: -m {chosen!r}{left_out}" + ("; strict" if strict() else "")


DEFAULT_LANE = "not integration and not e2e"


@pytest.fixture(scope="session")
def anyio_backend() -> str:  # session-wide, so module-scoped async fixtures (one stdio session per module) can use it
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test writes the user's real data folder (where the spend-safety state lives by default): the session
    gets its own, which servers started by module-scoped fixtures share."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
        # The suite starts a few hundred server processes. Where the environment forbids writing bytecode (some
        # sandboxes and containers set PYTHONDONTWRITEBYTECODE), each would compile the SDK from source again: a
        # fifth of the fast lane's time. They may cache it; nothing they do depends on it.
        patch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        yield


@pytest.fixture(autouse=True)
def _fresh_data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with an empty spend-safety state: no budget spent, no earlier identical generation."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))


# The emulator runs on wall time, so the suite's predictions are near-instant and its servers look often (the test
# hook ATLAS_MCP_TEST_POLL_SECONDS, read by create_server; a stdio server inherits it). Not zero, so that a poll
# may still find a generation running. A test about a prediction that is still running (progress, cancellation, the
# wait bound) sets its own longer prediction_seconds.
PREDICTION_SECONDS = 0.02
POLL_SECONDS = "0.01"


@pytest.fixture(scope="session", autouse=True)
def _fast_polling() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ATLAS_MCP_TEST_POLL_SECONDS", POLL_SECONDS)
        yield


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(prediction_seconds=PREDICTION_SECONDS)) as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_session: Emulator) -> Iterator[Emulator]:
    emulator_session.state.reset()
    emulator_session.state.config.prediction_seconds = PREDICTION_SECONDS
    emulator_session.state.config.profile = None
    emulator_session.state.config.warm_up_seconds = None
    yield emulator_session
    emulator_session.state.reset()
    emulator_session.state.config.profile = None
    emulator_session.state.config.balance_answer = None
    emulator_session.state.config.warm_up_seconds = None


def settings_for(emulator: Emulator, tmp_path: Path, **overrides: Any) -> Settings:
    """Our server's settings against the emulator: the test key, files and spend-safety state in ``tmp_path``."""
    values: dict[str, Any] = {
        "api_key": TEST_KEY,
        "base_url": emulator.url,
        "output_dir": tmp_path / "out",
        "wait_seconds": 10,
        "state_url": f"sqlite:///{tmp_path / 'state.db'}",
    }
    return Settings(**(values | overrides))


_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> list[str]:
    """Lines of measurements (load and soak figures) printed in the summary at the end of the run."""
    return request.config.stash.setdefault(_FIGURES, [])


_LEFT_OUT = pytest.StashKey[list[pytest.Item]]()


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash.setdefault(_LEFT_OUT, []).extend(items)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if config.getoption("markexpr") == DEFAULT_LANE:
        # Under pytest-xdist the workers deselect, so only a run without it can count here.
        left_out = config.stash.get(_LEFT_OUT, [])
        counts = {lane: sum(1 for item in left_out if item.get_closest_marker(lane)) for lane in ("integration", "e2e")}
        what = (
            f"{counts['integration']} integration and {counts['e2e']} e2e tests"
            if left_out
            else "the integration and e2e tests"
        )
        terminalreporter.write_line(
            f'fast lane: left out {what}; run them with -m "integration and not e2e" and -m e2e (README, Development)'
        )
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("load and soak figures")
        for line in lines:
            terminalreporter.write_line(line)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def npx() -> str:
    """npx, for the MCP clients written in JavaScript (the MCP Inspector, Claude Code); it fetches Node 22 itself."""
    return require_binary("npx", install="Node.js with npm (https://nodejs.org), which brings npx")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port, for the session; its URL. .ci/run installs it when missing."""
    binary = require_binary("redis-server", install="apt-get install redis-server")
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server) as client:
        client.flushall()
    return redis_server
