"""The server as a client config starts it: the console script as a subprocess, spoken to over stdio."""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import ImageContent

from atlas_mcp.emulator import Emulator, PredictionPlan

from .conftest import ALL_TOOLS, TEST_KEY

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("atlascloud-mcp"))


def server_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLASCLOUD_")}
    env |= {
        "ATLASCLOUD_API_KEY": TEST_KEY,
        "ATLASCLOUD_BASE_URL": emulator.url,
        "ATLASCLOUD_OUTPUT_DIR": str(tmp_path / "out"),
        "ATLASCLOUD_LOG_LEVEL": "DEBUG",
    }
    return env | extra


@pytest.mark.anyio
async def test_the_console_script_serves_the_tools_over_stdio(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.config.prediction_seconds = 0.3  # long enough for progress, at the suite's fast polling
    params = StdioServerParameters(command=CONSOLE_SCRIPT, args=[], env=server_env(emulator, tmp_path))
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with Client(params) as client:
        tools = await client.list_tools()
        assert {tool.name for tool in tools.tools} == ALL_TOOLS
        result = await client.call_tool("generate_image", {"prompt": "over stdio"}, progress_callback=on_progress)
        assert not result.is_error
        assert any(isinstance(block, ImageContent) for block in result.content)
        assert progress
        # the wait bound and check_prediction, across the process boundary
        emulator.state.plan_next(PredictionPlan(seconds=0.8))
        pending = await client.call_tool("generate_image", {"prompt": "slow", "max_wait_seconds": 0.2})
        assert pending.structured_content is not None and pending.structured_content["phase"] == "running"
        done = await client.call_tool(
            "check_prediction", {"prediction_id": pending.structured_content["prediction_id"], "wait": True}
        )
        assert done.structured_content is not None and done.structured_content["phase"] == "succeeded"
        # cancellation over JSON-RPC: notifications/cancelled stops the polling in the subprocess
        emulator.state.plan_next(PredictionPlan(seconds=60))
        with anyio.move_on_after(0.5):
            await client.call_tool("generate_image", {"prompt": "cancel me"})
        await anyio.sleep(0.3)
        polls = len(emulator.state.requests)
        await anyio.sleep(0.6)  # still polling, the server would look several times in this (every ≤ 0.1 s)
        assert len(emulator.state.requests) == polls
    saved = list((tmp_path / "out").iterdir())
    assert len(saved) == 2


def _rpc(method: str, params: dict[str, Any] | None, request_id: int | None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if request_id is not None:
        message["id"] = request_id
    return (json.dumps(message) + "\n").encode()


def test_stdout_carries_nothing_but_json_rpc_and_stdin_close_ends_the_server(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.state.config.prediction_seconds = 0.5
    log = tmp_path / "stderr.log"
    # stderr goes to a file: a pipe nobody reads could fill up and stall the server's logging.
    with (
        log.open("wb") as errors,
        subprocess.Popen(
            [CONSOLE_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=server_env(emulator, tmp_path),
        ) as process,
    ):
        lines, returncode, shutdown_seconds = _converse(process)
    stderr = log.read_text()
    messages = [json.loads(line) for line in lines]  # every line parses: nothing else is on stdout
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    assert any(m.get("method") == "notifications/progress" for m in messages)
    final = next(m for m in messages if m.get("id") == 3)
    assert final["result"]["isError"] is False
    assert returncode == 0
    assert shutdown_seconds < 5
    assert "Traceback" not in stderr
    assert "serving MCP over stdio" in stderr  # logs went to stderr
    assert TEST_KEY not in stderr


def _converse(process: subprocess.Popen[bytes]) -> tuple[list[bytes], int, float]:
    """Initialize, list tools, generate an image; then close stdin and time the exit."""
    assert process.stdin is not None and process.stdout is not None
    initialize = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"},
    }
    process.stdin.write(_rpc("initialize", initialize, 1))
    process.stdin.write(_rpc("notifications/initialized", None, None))
    process.stdin.write(_rpc("tools/list", {}, 2))
    call = {"name": "generate_image", "arguments": {"prompt": "raw"}, "_meta": {"progressToken": "p1"}}
    process.stdin.write(_rpc("tools/call", call, 3))
    process.stdin.flush()
    lines: list[bytes] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if json.loads(line).get("id") == 3:
            break
    process.stdin.close()
    started = time.monotonic()
    returncode = process.wait(timeout=10)
    shutdown_seconds = time.monotonic() - started
    lines += process.stdout.read().splitlines(keepends=True)
    return lines, returncode, shutdown_seconds


_STRAY_THEN_SERVE = """\
import os, sys, threading, time
from atlas_mcp.__main__ import main

wire = os.fstat(1)


def stray():  # once serving has pointed fd 1 away from the wire, write to it as a careless library would
    while (os.fstat(1).st_dev, os.fstat(1).st_ino) == (wire.st_dev, wire.st_ino):
        time.sleep(0.005)
    print("stray print", flush=True)
    os.write(1, b"stray write\\n")


threading.Thread(target=stray, daemon=True).start()
sys.exit(main([]))
"""


class _Stdio:
    """The client's ends of the server's stdin and stdout, made as each kind of client makes them."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._closers: list[Any] = []
        if kind == "pipes":  # Python clients
            self.child_in, self.send_fd = os.pipe()
            self.receive_fd, self.child_out = os.pipe()
        elif kind == "socket pairs":  # Node clients: Claude Desktop, Claude Code, Cursor, VS Code, the Inspector
            ours_in, theirs_in = socket.socketpair()
            ours_out, theirs_out = socket.socketpair()
            self.send_fd, self.child_in = ours_in.detach(), theirs_in.detach()
            self.receive_fd, self.child_out = ours_out.detach(), theirs_out.detach()
        else:  # a terminal for stdin, a file for stdout: served through the SDK's worker threads
            self.send_fd, self.child_in = os.openpty()
            modes = termios.tcgetattr(self.child_in)
            modes[3] &= ~termios.ECHO  # lines as typed, not echoed back; ^D at a line's start is the end
            termios.tcsetattr(self.child_in, termios.TCSANOW, modes)
            self.child_out = os.open(tmp_path / "stdout.jsonl", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            self.receive_fd = os.open(tmp_path / "stdout.jsonl", os.O_RDONLY)
        self._pending = b""

    def send(self, data: bytes) -> None:
        os.write(self.send_fd, data)

    def close_stdin(self) -> None:
        if self.kind == "socket pairs":
            with socket.socket(fileno=os.dup(self.send_fd)) as sock:
                sock.shutdown(socket.SHUT_WR)
        elif self.kind == "pipes":
            os.close(self.send_fd)
            self.send_fd = -1
        else:
            os.write(self.send_fd, b"\x04")

    def lines(self, until_id: int, timeout: float = 30) -> list[bytes]:
        """stdout's lines, up to the answer to ``until_id``."""
        deadline = time.monotonic() + timeout
        lines: list[bytes] = []
        while time.monotonic() < deadline:
            if b"\n" not in self._pending:
                chunk = os.read(self.receive_fd, 1 << 16) if self._readable(deadline) else b""
                if not chunk and self.kind != "a terminal and a file":
                    break
                self._pending += chunk
                continue
            line, self._pending = self._pending.split(b"\n", 1)
            lines.append(line)
            if json.loads(line).get("id") == until_id:
                return lines
        raise AssertionError(f"no answer to {until_id}; read {lines!r}")

    def _readable(self, deadline: float) -> bool:
        if self.kind == "a terminal and a file":
            time.sleep(0.01)  # a file is always readable: poll it
            return True
        ready, _, _ = select.select([self.receive_fd], [], [], max(deadline - time.monotonic(), 0))
        return bool(ready)

    def close(self) -> None:
        for fd in (self.send_fd, self.receive_fd, self.child_in, self.child_out):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


@pytest.mark.parametrize("kind", ["pipes", "socket pairs", "a terminal and a file"])
def test_every_kind_of_stdio_is_served_and_stray_output_misses_the_wire(
    kind: str, emulator: Emulator, tmp_path: Path
) -> None:
    """Pipes and socket pairs are read and written on the event loop (atlas_mcp.server.wire), anything else by the
    SDK's worker threads; either way a stray print or write to fd 1 while serving goes to stderr."""
    emulator.state.config.prediction_seconds = 0.3
    log = tmp_path / "stderr.log"
    stdio = _Stdio(kind, tmp_path)
    try:
        with log.open("wb") as errors:
            process = subprocess.Popen(
                [sys.executable, "-c", _STRAY_THEN_SERVE],
                stdin=stdio.child_in,
                stdout=stdio.child_out,
                stderr=errors,
                env=server_env(emulator, tmp_path),
            )
            initialize = {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            }
            stdio.send(_rpc("initialize", initialize, 1) + _rpc("notifications/initialized", None, None))
            stdio.send(_rpc("tools/list", {}, 2))
            call = {"name": "generate_image", "arguments": {"prompt": "raw"}, "_meta": {"progressToken": "p1"}}
            stdio.send(_rpc("tools/call", call, 3))
            lines = stdio.lines(until_id=3)
            stdio.close_stdin()
            assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stdio.close()
    messages = [json.loads(line) for line in lines]  # every line parses: nothing stray is on stdout
    assert [m["id"] for m in messages if "id" in m] == [1, 2, 3]
    assert {tool["name"] for tool in messages[1]["result"]["tools"]} == ALL_TOOLS
    assert any(m.get("method") == "notifications/progress" for m in messages)
    assert messages[-1]["result"]["isError"] is False
    stderr = log.read_text()
    assert "stray print" in stderr and "stray write" in stderr
    assert "Traceback" not in stderr


# Modules a start has no use for before its first tool call; each is imported where it is used (the first request
# to Atlas, the ledger's first operation, a model choice, an image, the HTTP transport, the other commands), so
# that a cold start pays only for what tools/list shows (docs/benchmarks.md, sections 1 and 1b).
_NOT_BEFORE_A_CALL = (
    "httpx",
    "sqlite3",
    "difflib",
    "PIL",
    "redis",
    "atlas_mcp.emulator",
    "atlas_mcp.server.http",
    "atlas_mcp.server.sources",
    "atlas_mcp.doctor",
    "atlas_mcp.demo",
    # The tools' bodies and what only they use (issue 26): imported by a tool's first call, not to list them
    # ("name." for a package's modules but not the package).
    "atlas_mcp.server.tools.",
    "atlas_mcp.server.toolkit",
    "atlas_mcp.server.pipeline",
    "atlas_mcp.server.results",
    "atlas_mcp.server.waiting",
    "atlas_mcp.server.listing",
    "atlas_mcp.server.takeover",
    "atlas_mcp.core.outcome",
    "atlas_mcp.core.requests",
    "atlas_mcp.core.choosing",
)
_SERVE_THEN_LIST_MODULES = """\
import sys
from atlas_mcp.__main__ import main
status = main([])
print("modules:", *sorted(sys.modules), file=sys.stderr)
sys.exit(status)
"""


def test_answering_tools_list_imports_nothing_that_only_a_tool_call_needs(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLASCLOUD_")}
    env |= {
        "ATLASCLOUD_API_KEY": TEST_KEY,
        "ATLASCLOUD_BASE_URL": "http://127.0.0.1:9",  # never reached: nothing here talks to Atlas
        "ATLASCLOUD_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        "ATLASCLOUD_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "stderr.log"
    initialize = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"},
    }
    with (
        log.open("wb") as errors,
        subprocess.Popen(
            [sys.executable, "-c", _SERVE_THEN_LIST_MODULES],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        ) as process,
    ):
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(_rpc("initialize", initialize, 1))
        process.stdin.write(_rpc("notifications/initialized", None, None))
        process.stdin.write(_rpc("tools/list", {}, 2))
        process.stdin.flush()
        answers = [json.loads(process.stdout.readline()) for _ in range(2)]
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    assert {tool["name"] for tool in answers[1]["result"]["tools"]} == ALL_TOOLS
    report = next(line for line in log.read_text().splitlines() if line.startswith("modules:"))
    loaded = set(report.split()[1:])
    early = sorted(
        m for m in loaded if any(m == name or m.startswith(name.rstrip(".") + ".") for name in _NOT_BEFORE_A_CALL)
    )
    assert early == []


def test_a_bad_setting_fails_at_start_with_one_line_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLASCLOUD_")}
    env["ATLASCLOUD_WAIT_SECONDS"] = "soon"
    done = subprocess.run(
        [CONSOLE_SCRIPT], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert "ATLASCLOUD_WAIT_SECONDS" in done.stderr


@pytest.mark.usefixtures("npx")
def test_the_mcp_inspector_lists_and_calls_the_tools(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.config.prediction_seconds = 0.5
    env = server_env(emulator, tmp_path, ATLASCLOUD_LOG_LEVEL="WARNING")
    inspector = ["npx", "-y", "@modelcontextprotocol/inspector@0.15.0", "--cli"]
    settings = [arg for key in sorted(env) if key.startswith("ATLASCLOUD_") for arg in ("-e", f"{key}={env[key]}")]
    server = [*settings, CONSOLE_SCRIPT]
    listed = subprocess.run(
        [*inspector, *server, "--method", "tools/list"], capture_output=True, text=True, timeout=300, env=env
    )
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json.loads(listed.stdout)["tools"]}
    assert names == ALL_TOOLS
    called = subprocess.run(
        [
            *inspector,
            *server,
            "--method",
            "tools/call",
            "--tool-name",
            "generate_image",
            "--tool-arg",
            "prompt=inspector",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert result.get("isError") is not True
    assert result["structuredContent"]["phase"] == "succeeded"
    assert any(block["type"] == "image" for block in result["content"])
