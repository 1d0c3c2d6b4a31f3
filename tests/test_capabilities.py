"""The server advertises what it has: tools always; prompts and resources only once something of the kind exists.

Both protocol eras carry capabilities in a different answer (``initialize`` in 2025, ``server/discover`` in 2026);
each is checked in memory, over stdio as a client config would start the server, and over Streamable HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

from .conftest import TEST_KEY
from .harness import CONSOLE_SCRIPT, emulator_env
from .test_http import connect, http_env, http_server

pytestmark = pytest.mark.anyio

Era = Literal["legacy", "auto"]
ERAS: tuple[Era, ...] = ("legacy", "auto")  # "auto" discovers, and this server speaks 2026


def _settings(emulator: Emulator, tmp_path: Path) -> Settings:
    return Settings(api_key=TEST_KEY, base_url=emulator.url, output_dir=tmp_path / "out")


@pytest.mark.parametrize("mode", ERAS)
async def test_only_tools_are_advertised_when_the_server_has_no_prompts_or_resources(
    emulator: Emulator, tmp_path: Path, mode: Era
) -> None:
    async with Client(create_server(_settings(emulator, tmp_path)), mode=mode) as client:
        capabilities = client.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.prompts is None, capabilities
        assert capabilities.resources is None, capabilities
        assert (await client.list_tools()).tools  # what is advertised still answers


@pytest.mark.parametrize("mode", ERAS)
async def test_a_resource_or_prompt_registered_later_is_advertised(
    emulator: Emulator, tmp_path: Path, mode: Era
) -> None:
    server = create_server(_settings(emulator, tmp_path))

    @server.resource("ui://atlascloud/test.html", mime_type="text/html")
    def page() -> str:
        return "<p>a page</p>"

    async with Client(server, mode=mode) as client:
        assert client.server_capabilities.resources is not None
        assert client.server_capabilities.prompts is None
        listed = (await client.list_resources()).resources
        assert [str(resource.uri) for resource in listed] == ["ui://atlascloud/test.html"]

    @server.prompt()
    def describe(subject: str) -> str:
        return f"Describe {subject}."

    async with Client(server, mode=mode) as client:
        assert client.server_capabilities.prompts is not None
        assert client.server_capabilities.resources is not None


@pytest.mark.parametrize("mode", ERAS)
async def test_the_console_script_over_stdio_advertises_only_tools(
    emulator: Emulator, tmp_path: Path, mode: Era
) -> None:
    server = StdioServerParameters(command=CONSOLE_SCRIPT, env=emulator_env(emulator, tmp_path))
    async with Client(server, mode=mode) as client:
        capabilities = client.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.prompts is None and capabilities.resources is None, capabilities


@pytest.mark.parametrize("era", ["2025", "2026"])
async def test_over_streamable_http_only_tools_are_advertised(emulator: Emulator, tmp_path: Path, era: str) -> None:
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        async with connect(origin, TEST_KEY, era) as client:
            capabilities = client.server_capabilities
            assert capabilities.tools is not None
            assert capabilities.prompts is None and capabilities.resources is None, capabilities
