"""A server subprocess spoken to in raw JSON-RPC over its pipes: no MCP client between us and the timings."""

from __future__ import annotations

import itertools
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

CONSOLE_SCRIPT = Path(sys.executable).with_name("atlascloud-mcp")
FLOOR_SCRIPT = Path(__file__).with_name("floor_server.py")
OUR_SERVER = [str(CONSOLE_SCRIPT)]
FLOOR_SERVER = [sys.executable, str(FLOOR_SCRIPT)]
PROTOCOL_VERSION = "2025-06-18"
BENCH_KEY = "benchmark-key-for-the-local-emulator"

Message = dict[str, Any]


_REQUESTS = itertools.count(1)


def unique(prompt: str) -> str:
    """A prompt no other call of this run sends: a new request, not a repeat the server answers for free."""
    return f"{prompt} (request {next(_REQUESTS)})"


class RPCError(RuntimeError):
    """The server answered with a JSON-RPC error or a tool error, or went away."""


@dataclass(frozen=True)
class Workspace:
    """Where a run keeps its scratch files, and the environment its child interpreters get.

    Children write bytecode to a cache under ``root`` (``PYTHONPYCACHEPREFIX``), never into the repository
    or the virtualenv, so a server's second start is a warm one, as on a user's machine after the first
    launch, even where ``PYTHONDONTWRITEBYTECODE`` is set (as in some sandboxes and containers).
    """

    root: Path

    def log(self, name: str) -> Path:
        return self.root / f"{name}.stderr.log"

    def python_env(self, *, bytecode: bool = True) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
        if bytecode:
            env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def server_env(
        self, base_url: str, settings: Mapping[str, str] | None = None, *, bytecode: bool = True
    ) -> dict[str, str]:
        """Our server's environment as a client config gives it: no inherited ATLASCLOUD_*, these settings."""
        env = {k: v for k, v in self.python_env(bytecode=bytecode).items() if not k.startswith("ATLASCLOUD_")}
        env |= {
            "ATLASCLOUD_API_KEY": BENCH_KEY,
            "ATLASCLOUD_BASE_URL": base_url,
            "ATLASCLOUD_LOG_LEVEL": "WARNING",
            "ATLASCLOUD_STATE_URL": f"sqlite:///{self.root / 'state.db'}",  # never the user's own ledger
        }
        return env | dict(settings or {})


class StdioPeer:
    """The client end of one stdio session; times are ``time.monotonic()`` (the clock the emulator records)."""

    def __init__(self, argv: list[str], env: Mapping[str, str], stderr_path: Path) -> None:
        self._ids = itertools.count(1)
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
        self._stderr = stderr_path.open("ab")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=dict(env)
        )
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self._in = self.process.stdin
        self._out = self.process.stdout
        self._pending = bytearray()  # read from stdout, not yet split into lines
        self._read_at = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def __enter__(self) -> StdioPeer:
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End the session the way clients do: close stdin, then wait (and kill only a server that hangs)."""
        if self.process.poll() is None:
            self._in.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
        self._stderr.close()

    def send(self, method: str, params: Mapping[str, Any] | None = None) -> int:
        """Write a request; returns its id."""
        request_id = next(self._ids)
        self._write({"jsonrpc": "2.0", "id": request_id, "method": method, "params": dict(params or {})})
        return request_id

    def notify(self, method: str) -> None:
        self._write({"jsonrpc": "2.0", "method": method})

    def _write(self, message: Message) -> None:
        self._in.write(json.dumps(message).encode() + b"\n")
        self._in.flush()

    def collect(self, request_ids: Iterable[int], timeout: float = 180.0) -> dict[int, tuple[Message, float]]:
        """Read until every id is answered; each answer comes with the time its line arrived."""
        deadline = time.monotonic() + timeout
        waiting = set(request_ids)
        answers: dict[int, tuple[Message, float]] = {}
        while waiting:
            line, arrived = self._next_line(deadline, len(waiting))
            message: Message = json.loads(line)
            if message.get("id") in waiting and "method" not in message:
                waiting.discard(message["id"])
                answers[message["id"]] = (_checked(message), arrived)
        return answers

    def _next_line(self, deadline: float, unanswered: int) -> tuple[bytes, float]:
        """One line of stdout and when it was read; never blocks past ``deadline``."""
        while (end := self._pending.find(b"\n")) < 0:
            ready, _, _ = select.select([self._out], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise RPCError(f"timed out with {unanswered} requests unanswered")
            chunk = os.read(self._out.fileno(), 1 << 20)
            self._read_at = time.monotonic()
            if not chunk:
                raise RPCError(f"the server closed stdout with {unanswered} requests unanswered")
            self._pending += chunk
        line = bytes(self._pending[:end])
        del self._pending[: end + 1]
        return line, self._read_at

    def request(self, method: str, params: Mapping[str, Any] | None = None) -> tuple[Message, float]:
        """Send a request and wait for its answer; returns it with the time it arrived."""
        request_id = self.send(method, params)
        return self.collect([request_id])[request_id]

    def initialize(self) -> None:
        self.request("initialize", INITIALIZE)
        self.notify("notifications/initialized")

    def call_tool(self, name: str, arguments: Mapping[str, Any], *, progress: bool = False) -> int:
        """Send a tools/call (with a progress token, as clients that show progress do); returns its id."""
        params: Message = {"name": name, "arguments": dict(arguments)}
        if progress:
            params["_meta"] = {"progressToken": f"progress-{name}-{time.monotonic_ns()}"}
        return self.send("tools/call", params)


INITIALIZE: Message = {
    "protocolVersion": PROTOCOL_VERSION,
    "capabilities": {},
    "clientInfo": {"name": "atlascloud-mcp-benchmarks", "version": "0"},
}


def structured(answer: Message) -> Message:
    """The structured content of a tools/call answer."""
    content: Message = answer["result"]["structuredContent"]
    return content


def _checked(message: Message) -> Message:
    if "error" in message:
        raise RPCError(f"JSON-RPC error: {message['error']}")
    result = message.get("result")
    if isinstance(result, dict) and result.get("isError"):
        texts = [block.get("text", "") for block in result.get("content", [])]
        raise RPCError("tool error: " + " ".join(texts))
    return message
