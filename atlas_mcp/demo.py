"""``atlascloud-mcp demo``: what an assistant does, from a terminal.

Starts the server as a subprocess exactly as an MCP client config would, drives it over stdio with the
official MCP client, generates an image with progress on the terminal, and leaves the picture on disk.
With ``ATLASCLOUD_API_KEY`` set it uses the real Atlas API (and costs about $0.003); without one it
starts the embedded Atlas emulator and says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp_types import TextContent


def run_demo(prompt: str, *, out: str, size: str) -> int:
    out_dir = Path(out).expanduser().resolve()
    env = {**os.environ, "ATLASCLOUD_OUTPUT_DIR": str(out_dir), "ATLASCLOUD_LOG_LEVEL": "WARNING"}
    emulator = None
    if not os.environ.get("ATLASCLOUD_API_KEY", "").strip():
        from atlas_mcp.emulator import Emulator, EmulatorConfig

        emulator = Emulator(EmulatorConfig(prediction_seconds=2.5))
        emulator.start()
        env |= {"ATLASCLOUD_BASE_URL": emulator.url, "ATLASCLOUD_API_KEY": "demo-key-for-the-local-emulator"}
        print(f"No ATLASCLOUD_API_KEY set: using the embedded Atlas emulator at {emulator.url} (free; it draws")
        print("a stand-in picture with your prompt on it). Set the key to generate with the real Atlas API.")
    else:
        print(f"Using the real Atlas API at {env.get('ATLASCLOUD_BASE_URL') or 'https://api.atlascloud.ai'}.")
        print("This generation costs about $0.003.")
    try:
        return anyio.run(_drive, prompt, size, env)
    finally:
        if emulator is not None:
            emulator.stop()


async def _drive(prompt: str, size: str, env: dict[str, str]) -> int:
    server = StdioServerParameters(command=sys.executable, args=["-m", "atlas_mcp"], env=env)
    print(f"Starting the MCP server: {sys.executable} -m atlas_mcp")
    async with Client(server) as client:
        tools = await client.list_tools()
        print("Server tools: " + ", ".join(tool.name for tool in tools.tools))
        print(f"Calling generate_image(prompt={prompt!r}, size={size!r}) ...")

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            print(f"  progress: {message or ''} ({progress:.1f} s)", flush=True)

        result = await client.call_tool("generate_image", {"prompt": prompt, "size": size}, progress_callback=progress)
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    print(text)
    if result.is_error:
        return 1
    structured: dict[str, Any] = result.structured_content or {}
    saved = [output["saved_path"] for output in structured.get("outputs", []) if output.get("saved_path")]
    previews = sum(1 for block in result.content if block.type == "image")
    print(f"Inline previews in the result: {previews}")
    if not saved:
        print("The image was not saved to disk (see the notes above).")
        return 1
    for path in saved:
        print(f"Open the image: {path}")
    return 0
