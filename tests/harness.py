"""The console script as a subprocess, driven by the official MCP client over a transport that keeps every byte.

``mcp.Client(StdioServerParameters(...))`` hides the wire and the process. The reliability tests need both:
the raw stdout (to prove it carries only JSON-RPC and never the key), the process id (for its memory), and its
exit (for shutdown). So this transport spawns the server itself and hands the client the parsed messages.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import CallToolResult, ImageContent, TextContent

from atlas_mcp.emulator import Emulator

from .conftest import TEST_KEY

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("atlascloud-mcp"))
EXIT_GRACE_SECONDS = 10.0


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def images_of(result: CallToolResult) -> list[ImageContent]:
    return [block for block in result.content if isinstance(block, ImageContent)]


def assert_not_a_crash(tool: str, result: CallToolResult) -> None:
    """A crash is what the SDK answers for an unexpected exception: the bare "Error executing tool X",
    with nothing the caller could act on; a traceback in a result is one too."""
    text = text_of(result)
    assert text.strip() != f"Error executing tool {tool}", "the tool crashed (an unexpected exception)"
    assert "Traceback (most recent call last)" not in text, text


def expect_error(tool: str, result: CallToolResult, *phrases: str) -> str:
    """The result is a tool error that explains itself, with every phrase in it; returns its text."""
    text = text_of(result)
    assert result.is_error, f"expected a tool error, got: {text}"
    assert_not_a_crash(tool, result)
    for phrase in phrases:
        assert phrase in text, f"{phrase!r} not in: {text}"
    return text


def expect_done(result: CallToolResult) -> dict[str, Any]:
    """The result is a finished generation; returns its structured content."""
    assert not result.is_error, text_of(result)
    structured = result.structured_content
    assert structured is not None and structured["phase"] == "succeeded", text_of(result)
    return structured


def server_env(base_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a client config would give the server: ours, minus any ATLASCLOUD_* of the host."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLASCLOUD_")}
    env |= {
        "ATLASCLOUD_API_KEY": TEST_KEY,
        "ATLASCLOUD_BASE_URL": base_url,
        "ATLASCLOUD_OUTPUT_DIR": str(tmp_path / "out"),
        "ATLASCLOUD_LOG_LEVEL": "DEBUG",
    }
    return env | extra


def emulator_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    return server_env(emulator.url, tmp_path, **extra)


@dataclass
class ServerProcess:
    """One run of the console script. Use :meth:`transport` as the ``server`` of ``mcp.Client``."""

    env: dict[str, str]
    stderr_path: Path
    stdout: bytearray = field(default_factory=bytearray)
    unparsable: list[bytes] = field(default_factory=list)
    pid: int | None = None
    returncode: int | None = None
    exit_seconds: float | None = None  # from closing stdin to the process's exit

    def rss_kib(self) -> int:
        """The server's resident memory now (VmRSS of /proc/<pid>/status)."""
        return self._status_kib("VmRSS")

    def peak_rss_kib(self) -> int:
        """The most resident memory the server has had so far (VmHWM, the high-water mark)."""
        return self._status_kib("VmHWM")

    def _status_kib(self, field: str) -> int:
        assert self.pid is not None, "the server is not running"
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} line")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @asynccontextmanager
    async def transport(
        self,
    ) -> AsyncIterator[tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[Any]]]:
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server's logging.
        with self.stderr_path.open("ab") as errors:
            process = await anyio.open_process([CONSOLE_SCRIPT], env=self.env, stderr=errors)
        self.pid = process.pid
        incoming_send, incoming = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        outgoing, outgoing_receive = anyio.create_memory_object_stream[SessionMessage](0)
        stdout_done = anyio.Event()

        async def read_stdout() -> None:
            assert process.stdout is not None
            buffer = b""
            try:
                async with incoming_send:
                    async for chunk in process.stdout:
                        self.stdout += chunk
                        *lines, buffer = (buffer + chunk).split(b"\n")
                        for line in lines:
                            await _deliver(incoming_send, line, self.unparsable)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                async for chunk in process.stdout:  # the client has gone: keep every byte anyway
                    self.stdout += chunk
            finally:
                stdout_done.set()

        async def write_stdin() -> None:
            assert process.stdin is not None
            async with outgoing_receive:
                async for message in outgoing_receive:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode())

        async with anyio.create_task_group() as group:
            group.start_soon(read_stdout)
            group.start_soon(write_stdin)
            try:
                yield incoming, outgoing
            finally:
                with anyio.CancelScope(shield=True):
                    await self._close(process, stdout_done)
                group.cancel_scope.cancel()

    async def _close(self, process: anyio.abc.Process, stdout_done: anyio.Event) -> None:
        """What a client does at the end: close stdin, wait for the exit, kill only if it never comes."""
        assert process.stdin is not None
        started = time.monotonic()
        await process.stdin.aclose()
        with anyio.move_on_after(EXIT_GRACE_SECONDS):
            await process.wait()
            self.exit_seconds = time.monotonic() - started
        if process.returncode is None:
            process.kill()
            await process.wait()
        self.returncode = process.returncode
        with anyio.move_on_after(5):
            await stdout_done.wait()


async def _deliver(send: MemoryObjectSendStream[SessionMessage | Exception], line: bytes, bad: list[bytes]) -> None:
    if not line.strip():
        return
    try:
        message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError as exc:
        bad.append(line)
        await send.send(exc)
        return
    await send.send(SessionMessage(message))
