"""Checks of a built wheel, run by ``.ci/release-check`` from the development environment.

``python -m release.check contents WHEEL``
    the wheel holds the package, the emulator and its data, and nothing from ``tests/`` or ``benchmarks/``.
``python -m release.check tools COMMAND``
    ``COMMAND`` (the installed console script) lists over stdio, in both protocol eras, exactly the tools of the
    server in this checkout, with the same schemas: no count is written down, so tools added later are covered.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import Any, Literal

import anyio
from mcp import Client, StdioServerParameters

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

_MUST_HOLD = (
    "atlas_mcp/__main__.py",
    "atlas_mcp/py.typed",
    "atlas_mcp/emulator/app.py",  # demo and doctor --emulator run it
    "atlas_mcp/emulator/fixtures/catalogue-entry.json",  # and it serves these documents
)
_MUST_NOT_START_WITH = ("tests/", "benchmarks/", "packaging/", "deploy/", "docs/", ".ci/")


def check_contents(wheel: Path) -> list[str]:
    """What is wrong with the wheel's file list (nothing: an empty list)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    problems = [f"the wheel lacks {name}" for name in _MUST_HOLD if name not in names]
    problems += [f"the wheel holds {name}" for name in names if name.startswith(_MUST_NOT_START_WITH)]
    problems += [f"the wheel holds a test module: {name}" for name in names if Path(name).name.startswith("test_")]
    tops = {name.split("/", 1)[0] for name in names}
    problems += [
        f"the wheel installs an unexpected top-level {top!r}"
        for top in tops - {"atlas_mcp"}
        if not top.endswith(".dist-info")
    ]
    return problems


async def _tools(server: Any, mode: Literal["legacy", "auto"]) -> dict[str, dict[str, Any]]:
    async with Client(server, mode=mode) as client:
        listed = (await client.list_tools()).tools
    return {
        tool.name: {"description": tool.description, "input": tool.input_schema, "output": tool.output_schema}
        for tool in listed
    }


async def check_tools(command: str) -> list[str]:
    with Emulator() as emulator:
        expected = await _tools(create_server(Settings(base_url=emulator.url)), "legacy")
        env = {key: value for key, value in os.environ.items() if not key.startswith("ATLASCLOUD_")}
        env |= {
            "ATLASCLOUD_BASE_URL": emulator.url,
            "ATLASCLOUD_API_KEY": "release-check",
            "ATLASCLOUD_LOG_LEVEL": "WARNING",
        }
        problems: list[str] = []
        for mode in ("legacy", "auto"):
            installed = await _tools(StdioServerParameters(command=command, env=env), mode)
            if set(installed) != set(expected):
                problems.append(
                    f"{mode}: the installed server lists {sorted(installed)}, this checkout {sorted(expected)}"
                )
            problems += [
                f"{mode}: {name} differs from this checkout's"
                for name in expected
                if name in installed and installed[name] != expected[name]
            ]
            if not problems:
                print(
                    f"  tools/list ({mode}) from {command}: {len(installed)} tools, as in this checkout",
                    file=sys.stderr,
                )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "contents":
        problems = check_contents(Path(argv[1]))
    elif len(argv) == 2 and argv[0] == "tools":
        problems = anyio.run(check_tools, argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(f"release check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
