"""``atlascloud-mcp demo``: what an assistant does, from a terminal.

Starts the server as a subprocess exactly as an MCP client config would, drives it over stdio with the
official MCP client, generates an image with progress on the terminal, and leaves the picture on disk.
With ``ATLASCLOUD_API_KEY`` set it uses the real Atlas API (and costs about $0.003); without one it
starts the embedded Atlas emulator and says so.

Progress is one line rewritten in place on a terminal, and a plain line per change of message elsewhere (a log,
a pipe, CI). Plain code, not a progress library: rich.progress takes about 150 ms to import (measured with
``python -X importtime``) and brings three packages, for what a carriage return does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp import Client, StdioServerParameters
from mcp_types import TextContent


def run_demo(prompt: str, *, out: str, size: str) -> int:
    out_dir = Path(out).expanduser().resolve()
    env = {**os.environ, "ATLASCLOUD_OUTPUT_DIR": str(out_dir), "ATLASCLOUD_LOG_LEVEL": "WARNING"}
    with contextlib.ExitStack() as stack:
        if not os.environ.get("ATLASCLOUD_API_KEY", "").strip():
            from atlas_mcp.emulator import standing_in

            emulator, emulated = stack.enter_context(
                standing_in("demo-key-for-the-local-emulator", prediction_seconds=2.5)
            )
            env |= emulated
            print(f"No ATLASCLOUD_API_KEY set: using the embedded Atlas emulator at {emulator.url} (free; it draws")
            print("a stand-in picture with your prompt on it). Set the key to generate with the real Atlas API.")
        else:
            print(f"Using the real Atlas API at {env.get('ATLASCLOUD_BASE_URL') or 'https://api.atlascloud.ai'}.")
            print("This generation costs about $0.003.")
        return anyio.run(_drive, prompt, size, env)


async def _drive(prompt: str, size: str, env: dict[str, str]) -> int:
    server = StdioServerParameters(command=sys.executable, args=["-m", "atlas_mcp"], env=env)
    print(f"Starting the MCP server: {sys.executable} -m atlas_mcp")
    async with Client(server) as client:
        tools = await client.list_tools()
        print("Server tools: " + ", ".join(tool.name for tool in tools.tools))
        print(f"Calling generate_image(prompt={prompt!r}, size={size!r}) ...")
        line = ProgressLine(sys.stdout)

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            line.show(message or "working")

        result = await client.call_tool("generate_image", {"prompt": prompt, "size": size}, progress_callback=progress)
        line.close()
    took = line.elapsed()
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
    print(f"Finished in {took:.1f} s, from the call to the saved file.")
    return 0


class ProgressLine:
    """The call's progress: one live line on a terminal, else a plain line whenever the message changes.

    Every figure it shows is the wall clock since the call began, the same clock as the demo's closing line.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._started = time.monotonic()
        self._shown = 0  # characters of the live line now on screen
        self._last: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def show(self, message: str) -> None:
        text = f"  progress: {message} ({self.elapsed():.1f} s)"
        if self._live:
            text = text[: shutil.get_terminal_size().columns - 1]  # a wrapped line could not be rewritten in place
            self._stream.write("\r" + text.ljust(self._shown))
            self._shown = len(text)
        elif message != self._last:
            self._stream.write(text + "\n")
        self._last = message
        self._stream.flush()

    def close(self) -> None:
        """Leave the last state on its own line, so what follows starts on a fresh one."""
        if self._live and self._shown:
            self._stream.write("\n")
            self._stream.flush()
            self._shown = 0
