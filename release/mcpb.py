"""Build the Claude Desktop bundle: ``python -m release.mcpb [--out dist/atlascloud-mcp-<version>.mcpb]``.

An ``.mcpb`` is a zip with ``manifest.json`` at its root. This one is a uv-run Python bundle (manifest 0.4,
``server.type: "uv"``): the project itself (``pyproject.toml``, ``uv.lock``, the package and the emulator's data),
no dependencies inside; on first start ``uv run --frozen --no-dev`` installs exactly the locked ones. The manifest
in the bundle is the checked-in one with the tools filled in from this checkout's server, so the install dialog
lists every tool there is without anyone keeping a list by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from atlas_mcp import __version__
from atlas_mcp.config import Settings
from atlas_mcp.server import create_server

ROOT = Path(__file__).resolve().parent.parent
# What `uv run` needs to build and run the project in the bundle's folder; the force-included emulator data too.
FILES = ("pyproject.toml", "uv.lock", "README.md", "LICENSE", "release/icon.png")
TREES = ("atlas_mcp", "tests/fixtures/atlas")
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache"}


def bundle_files(root: Path = ROOT) -> list[Path]:
    """The files of the bundle besides its manifest, relative to ``root``."""
    files = [Path(name) for name in FILES]
    for tree in TREES:
        for path in sorted((root / tree).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and not _SKIP_PARTS.intersection(relative.parts) and path.suffix != ".pyc":
                files.append(relative)
    return files


async def _tools() -> list[dict[str, str]]:
    async with Client(create_server(Settings())) as client:
        listed = (await client.list_tools()).tools
    return [{"name": tool.name, "description": _first_sentence(tool.description or tool.name)} for tool in listed]


def _first_sentence(text: str) -> str:
    head = text.strip().split("\n", 1)[0]
    return re.split(r"(?<!e\.g)(?<!i\.e)\.\s", head, maxsplit=1)[0].rstrip(".") + "."


def bundle_manifest(root: Path = ROOT) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    if manifest["version"] != __version__:
        raise SystemExit(f"manifest.json says version {manifest['version']}, the package {__version__}: make them one")
    manifest["tools"] = anyio.run(_tools)
    return manifest


def build(out: Path, root: Path = ROOT) -> Path:
    manifest = bundle_manifest(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for relative in bundle_files(root):
            archive.write(root / relative, relative.as_posix())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.mcpb", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / f"atlascloud-mcp-{__version__}.mcpb")
    args = parser.parse_args(argv)
    path = build(args.out)
    print(f"built {path} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
