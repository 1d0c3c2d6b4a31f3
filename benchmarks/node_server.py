"""Atlas's official MCP server (npm ``atlascloud-mcp``), installed once for side-by-side rows, pointed at the emulator.

``npm pack atlascloud-mcp@1.7.0`` and ``npm install`` of the tarball into ``~/.cache/atlas-mcp-bench/``. Its Atlas
origins are constants in ``dist/constants.js`` (``https://api.atlascloud.ai/...``), so the installed copy's file is
rewritten once to read the origin from ``ATLAS_BENCH_ORIGIN`` (falling back to Atlas's own); nothing else of it is
changed. Without ``node`` and ``npm`` every row it would fill says so instead.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

VERSION = "1.7.0"
SKIPPED = "skipped: install Node 20 and npm"
TOOL = "atlas_get_prediction"  # its tool that reads a prediction: {"prediction_id": ...}
_CACHE = Path.home() / ".cache" / "atlas-mcp-bench" / f"node-{VERSION}"
_ORIGIN = "https://api.atlascloud.ai"
_PATCHED = f'const ORIGIN = process.env.ATLAS_BENCH_ORIGIN ?? "{_ORIGIN}";\n'


@dataclass(frozen=True)
class NodeServer:
    entry: Path

    def command(self) -> list[str]:
        return [str(shutil.which("node")), str(self.entry)]

    def env(self, base: dict[str, str], origin: str, key: str) -> dict[str, str]:
        return {**base, "ATLAS_BENCH_ORIGIN": origin.rstrip("/"), "ATLASCLOUD_API_KEY": key}


def installed() -> NodeServer | None:
    """The Node server ready to run, installing it on first use; ``None`` without node and npm."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return None
    package = _CACHE / "node_modules" / "atlascloud-mcp"
    if not (package / "dist" / "index.js").is_file():
        _CACHE.mkdir(parents=True, exist_ok=True)
        quiet = {"capture_output": True, "check": True, "timeout": 300, "cwd": _CACHE}
        subprocess.run([npm, "pack", f"atlascloud-mcp@{VERSION}"], **quiet)  # type: ignore[call-overload]
        tarball = next(_CACHE.glob("atlascloud-mcp-*.tgz"))
        subprocess.run(  # type: ignore[call-overload]
            [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", str(tarball)], **quiet
        )
    constants = package / "dist" / "constants.js"
    text = constants.read_text(encoding="utf-8")
    if _PATCHED not in text:
        text = _PATCHED + text.replace(f'"{_ORIGIN}', 'ORIGIN + "')
        constants.write_text(text, encoding="utf-8")
    return NodeServer(package / "dist" / "index.js")


def node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "none"
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
