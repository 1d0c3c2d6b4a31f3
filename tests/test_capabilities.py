"""The server advertises what it has: tools, the gallery (a resource and the Apps extension), and prompts only once
one exists.

Both protocol eras carry capabilities in a different answer (``initialize`` in 2025, ``server/discover`` in 2026);
each is checked in memory, over stdio as a client config would start the server, and over Streamable HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from mcp_types import ServerCapabilities

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server
from atlas_mcp.server.capabilities import advertise_only_what_exists
from atlas_mcp.server.gallery import GALLERY_URI

from .conftest import TEST_KEY
from .harness import CONSOLE_SCRIPT, emulator_env
from .test_http import connect, http_env, http_server

pytestmark = pytest.mark.anyio

Era = Literal["legacy", "auto"]
ERAS: tuple[Era, ...] = ("legacy", "auto")  # "auto" discovers, and this server speaks 2026


def _settings(emulator: Emulator, tmp_path: Path) -> Settings:
    return Settings(api_key=TEST_KEY, base_url=emulator.url, output_dir=tmp_path / "out")


def _advertises_what_it_has(capabilities: ServerCapabilities, *, era_2026: bool) -> None:
    """Tools, the gallery (a resource, and in 2026 the MCP Apps extension), and no prompts: there are none.

    The SDK's 2025 handshake has no place for extensions; hosts of that era find the gallery through the tools'
    ``_meta.ui`` (checked in test_gallery.py)."""
    assert capabilities.tools is not None
    assert capabilities.resources is not None, capabilities
    assert capabilities.prompts is None, capabilities
    if era_2026:
        assert capabilities.extensions is not None
        assert "io.modelcontextprotocol/ui" in capabilities.extensions


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_and_the_gallery_are_advertised_and_no_prompts(
    emulator: Emulator, tmp_path: Path, mode: Era
) -> None:
    async with Client(create_server(_settings(emulator, tmp_path)), mode=mode) as client:
        _advertises_what_it_has(client.server_capabilities, era_2026=mode == "auto")
        assert (await client.list_tools()).tools  # what is advertised answers
        assert [str(resource.uri) for resource in (await client.list_resources()).resources] == [GALLERY_URI]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_server_without_resources_or_prompts_advertises_neither(mode: Era) -> None:
    server: MCPServer[None] = MCPServer("bare")

    @server.tool()
    def ping() -> str:
        return "pong"

    advertise_only_what_exists(server)
    async with Client(server, mode=mode) as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.resources is None, client.server_capabilities
        assert client.server_capabilities.prompts is None, client.server_capabilities


@pytest.mark.parametrize("mode", ERAS)
async def test_a_prompt_registered_later_is_advertised(emulator: Emulator, tmp_path: Path, mode: Era) -> None:
    server = create_server(_settings(emulator, tmp_path))

    @server.prompt()
    def describe(subject: str) -> str:
        return f"Describe {subject}."

    async with Client(server, mode=mode) as client:
        assert client.server_capabilities.prompts is not None
        assert client.server_capabilities.resources is not None


@pytest.mark.parametrize("mode", ERAS)
async def test_the_console_script_over_stdio_advertises_what_it_has(
    emulator: Emulator, tmp_path: Path, mode: Era
) -> None:
    server = StdioServerParameters(command=CONSOLE_SCRIPT, env=emulator_env(emulator, tmp_path))
    async with Client(server, mode=mode) as client:
        _advertises_what_it_has(client.server_capabilities, era_2026=mode == "auto")


@pytest.mark.parametrize("era", ["2025", "2026"])
async def test_over_streamable_http_it_advertises_what_it_has(emulator: Emulator, tmp_path: Path, era: str) -> None:
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        async with connect(origin, TEST_KEY, era) as client:
            _advertises_what_it_has(client.server_capabilities, era_2026=era == "2026")
