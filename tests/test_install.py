"""The README's ways to install, each started exactly as a client would start it, against a fresh clone.

A client config is a command, its arguments and an environment. Each test below hands exactly the README's command
and arguments (with the clone's absolute path in place of ``/abs/path/to/atlascloud-mcp``) to the SDK's stdio client,
lists the tools in both protocol eras, and makes one image through the emulator, so the environment the config sets
is seen to reach the server. The Claude Desktop bundle is built, unpacked, and its manifest's command run with the
values Claude Desktop would substitute.

``uv run`` (the clone's form and the bundle's) runs offline here (``UV_OFFLINE=1``): uv.lock and uv's cache, filled
by the ``uv sync`` that made this environment, are enough. ``uvx --from`` does not read uv.lock: it resolves the
dependencies anew, so that one test asks the package index for their metadata (uv's cache answers when it can); it
reaches nothing else, and Atlas is the emulator throughout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Literal

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

from .conftest import TEST_KEY, require_binary

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PLACEHOLDER = "/abs/path/to/atlascloud-mcp"
Era = Literal["legacy", "auto"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of this repository's committed state, as a user would make one."""
    target = tmp_path_factory.mktemp("clone") / "atlascloud-mcp"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=120)
    return target


def _readme_configs() -> list[dict[str, Any]]:
    """The from-checkout configs of the README's JSON blocks (those naming the checkout's path)."""
    configs: list[dict[str, Any]] = []
    for block in re.findall(r"```json\n(.*?)```", README, re.DOTALL):
        if PLACEHOLDER in block:
            configs += json.loads(block)["mcpServers"].values()
    return configs


def _client_env(emulator: Emulator, tmp_path: Path, config_env: dict[str, str], *, offline: bool) -> dict[str, str]:
    """The config's env, with the emulator as Atlas: what the client passes, over a clean copy of ours."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ATLASCLOUD_", "VIRTUAL_ENV"))}
    env |= {"XDG_DATA_HOME": str(tmp_path / "data-home")} | ({"UV_OFFLINE": "1"} if offline else {})
    env |= {key: value for key, value in config_env.items() if not key.startswith("ATLASCLOUD_")}
    return env | {
        "ATLASCLOUD_API_KEY": TEST_KEY,
        "ATLASCLOUD_BASE_URL": emulator.url,
        "ATLASCLOUD_OUTPUT_DIR": str(tmp_path / "out"),
    }


async def _expected_tools(emulator: Emulator) -> set[str]:
    async with Client(create_server(Settings(base_url=emulator.url))) as client:
        return {tool.name for tool in (await client.list_tools()).tools}


async def _prove(server: StdioServerParameters, emulator: Emulator, out: Path) -> dict[Era, float]:
    """Lists every tool in both eras and makes one image; the seconds each session took, start-up included."""
    expected = await _expected_tools(emulator)
    seconds: dict[Era, float] = {}
    for mode in ("legacy", "auto"):
        started = time.monotonic()
        async with Client(server, mode=mode) as client:
            listed = {tool.name for tool in (await client.list_tools()).tools}
            assert listed == expected
            if mode == "legacy":
                result = await client.call_tool("generate_image", {"prompt": "installed", "size": "256*256"})
                assert not result.is_error, result.content
                assert result.structured_content is not None
                [output] = result.structured_content["outputs"]
                assert Path(output["saved_path"]).parent == out
        seconds[mode] = time.monotonic() - started
    return seconds


def test_the_readme_gives_both_from_checkout_forms_and_says_which_works_when() -> None:
    configs = _readme_configs()
    forms = {(config["command"], tuple(config["args"])) for config in configs}
    assert ("uv", ("--directory", PLACEHOLDER, "run", "atlascloud-mcp")) in forms
    assert ("uvx", ("--from", PLACEHOLDER, "atlascloud-mcp")) in forms
    assert "uvx atlascloud-mcp" in README and "before" in README and "published" in README
    assert f"claude mcp add atlascloud --env ATLASCLOUD_API_KEY=your-key -- uv --directory {PLACEHOLDER}" in README


@pytest.mark.parametrize("command", ["uv", "uvx"])
async def test_a_readme_from_checkout_config_runs_a_fresh_clone(
    clone: Path, emulator: Emulator, tmp_path: Path, figures: list[str], command: str
) -> None:
    [config] = [config for config in _readme_configs() if config["command"] == command]
    binary = require_binary(command, install="pip install uv (uvx comes with it)")
    args = [str(clone) if arg == PLACEHOLDER else arg for arg in config["args"]]
    server = StdioServerParameters(
        command=binary, args=args, env=_client_env(emulator, tmp_path, config["env"], offline=command == "uv")
    )
    seconds = await _prove(server, emulator, tmp_path / "out")
    figures.append(
        f"from a fresh clone, `{command} {' '.join(config['args'])}`: first session {seconds['legacy']:.1f} s, "
        f"second {seconds['auto']:.1f} s (start-up, tools/list, one image)"
    )


def _substitute(value: str, variables: dict[str, Any]) -> list[str]:
    """Claude Desktop's substitution: ``${name}`` in a string; a list value (multiple folders) expands to arguments."""
    whole = re.fullmatch(r"\$\{([^}]+)\}", value)
    if whole and isinstance(variables.get(whole.group(1)), list):
        return [str(item) for item in variables[whole.group(1)]]
    return [re.sub(r"\$\{([^}]+)\}", lambda match: str(variables[match.group(1)]), value)]


async def test_the_claude_desktop_bundle_runs_as_its_manifest_says(
    emulator: Emulator, tmp_path: Path, figures: list[str]
) -> None:
    bundle = tmp_path / "atlascloud-mcp.mcpb"
    subprocess.run([sys.executable, "-m", "release.mcpb", "--out", str(bundle)], cwd=ROOT, check=True, timeout=120)
    installed = tmp_path / "extensions" / "atlascloud-mcp"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(installed)
    manifest = json.loads((installed / "manifest.json").read_text(encoding="utf-8"))
    assert {tool["name"] for tool in manifest["tools"]} == await _expected_tools(emulator)
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    (pictures / "fox.png").write_bytes(_png())
    variables: dict[str, Any] = {
        "__dirname": str(installed),
        "user_config.api_key": TEST_KEY,
        "user_config.output_folder": str(tmp_path / "out"),
        "user_config.upload_folders": [str(pictures)],
        "user_config.confirm_above_usd": 0.25,
    }
    mcp_config = manifest["server"]["mcp_config"]
    args = [part for arg in mcp_config["args"] for part in _substitute(arg, variables)]
    env = {name: _substitute(value, variables)[0] for name, value in mcp_config["env"].items()}
    assert env["ATLASCLOUD_API_KEY"] == TEST_KEY and env["ATLASCLOUD_CONFIRM_ABOVE_USD"] == "0.25"
    client_env = {key: value for key, value in os.environ.items() if not key.startswith(("ATLASCLOUD_", "VIRTUAL_ENV"))}
    client_env |= {"UV_OFFLINE": "1", "XDG_DATA_HOME": str(tmp_path / "data-home"), "ATLASCLOUD_BASE_URL": emulator.url}
    uv = shutil.which(mcp_config["command"])
    assert uv, "uv is not on PATH"
    server = StdioServerParameters(command=uv, args=args, env=client_env | env)
    seconds = await _prove(server, emulator, tmp_path / "out")
    async with Client(server) as client:  # the folder picker's choice reached the server as its upload root
        uploaded = await client.call_tool("upload_media", {"path": str(pictures / "fox.png")})
        assert not uploaded.is_error, uploaded.content
        outside = await client.call_tool("upload_media", {"path": str(ROOT / "README.md")})
        assert outside.is_error
    figures.append(
        f"the Claude Desktop bundle, unpacked and run as its manifest says: first session {seconds['legacy']:.1f} s"
    )


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "orange").save(buffer, format="PNG")
    return buffer.getvalue()
