"""Shared fixtures: one Atlas emulator on a free loopback port, reset between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--full-load", action="store_true", help="run load and soak checks at the issue's full sizes")


@pytest.fixture(scope="session")
def anyio_backend() -> str:  # session-wide, so module-scoped async fixtures (one stdio session per module) can use it
    return "asyncio"


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(prediction_seconds=0.3)) as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_session: Emulator) -> Iterator[Emulator]:
    emulator_session.state.reset()
    emulator_session.state.config.prediction_seconds = 0.3
    emulator_session.state.config.profile = None
    yield emulator_session
    emulator_session.state.reset()
    emulator_session.state.config.profile = None


_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> list[str]:
    """Lines of measurements (load and soak figures) printed in the summary at the end of the run."""
    return request.config.stash.setdefault(_FIGURES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("load and soak figures")
        for line in lines:
            terminalreporter.write_line(line)
