"""Ending the server: a client closes stdin or sends SIGTERM (Ctrl-C is SIGINT), idle or in the middle of a call.

Each way ends the process promptly, with exit status 0, nothing but JSON-RPC on stdout and no traceback on
stderr; an interrupted call's polling stops with the process.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from atlas_mcp.emulator import Emulator, PredictionPlan

from .harness import CONSOLE_SCRIPT, emulator_env

POLL = "/api/v1/model/prediction/"
PROMPT_EXIT_SECONDS = 3.0


def _polled(message: str) -> bool:
    """A progress message from a poll ("Prediction <id>: queued (created), 3 s" or "…: running 12 s")."""
    return message.startswith("Prediction ") and (": queued" in message or ": running" in message)


class RawServer:
    """The console script over raw pipes: we write JSON-RPC lines and read them back ourselves."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.lines: list[bytes] = []
        self._buffer = b""

    def send(self, method: str, params: dict[str, Any] | None = None, request_id: int | None = None) -> None:
        assert self.process.stdin is not None
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if request_id is not None:
            message["id"] = request_id
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def read_until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for index, line in enumerate(self.lines):
                if wanted(message := json.loads(line)):
                    del self.lines[: index + 1]
                    return message
            self.lines.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the server did not answer in time"
            self._read(remaining)

    def _read(self, timeout: float) -> bytes:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return b""
        chunk = self.process.stdout.read1(65536)  # type: ignore[attr-defined]
        *complete, self._buffer = (self._buffer + chunk).split(b"\n")
        self.lines += [line for line in complete if line.strip()]
        return bytes(chunk)

    def start_a_long_call(self) -> None:
        """Initialize, then call generate_image on a prediction that takes minutes; return once it polls."""
        initialize = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        self.send("initialize", initialize, 1)
        self.read_until(lambda m: m.get("id") == 1)
        self.send("notifications/initialized")
        call = {"name": "generate_image", "arguments": {"prompt": "slow"}, "_meta": {"progressToken": "p"}}
        self.send("tools/call", call, 2)
        self.read_until(lambda m: m.get("method") == "notifications/progress" and _polled(m["params"]["message"]))

    def wait_for_exit(self) -> tuple[int, float]:
        """Drain stdout until the process ends (every line must be JSON-RPC); return its status and how long."""
        started = time.monotonic()
        while self.process.poll() is None and time.monotonic() - started < 15:
            self._read(0.05)
        assert self.process.stdout is not None
        rest = self.process.stdout.read()
        self.lines += [line for line in (self._buffer + rest).split(b"\n") if line.strip()]
        for line in self.lines:
            assert json.loads(line)["jsonrpc"] == "2.0", line
        returncode = self.process.wait(timeout=5)
        return returncode, time.monotonic() - started


@pytest.fixture
def server(emulator: Emulator, tmp_path: Path) -> Iterator[RawServer]:
    emulator.state.plan_next(PredictionPlan(seconds=300))
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(
            [CONSOLE_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=emulator_env(emulator, tmp_path),
        )
    try:
        yield RawServer(process, stderr)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


def close_stdin(server: RawServer) -> None:
    assert server.process.stdin is not None
    server.process.stdin.close()


ENDINGS: dict[str, Callable[[RawServer], None]] = {
    "stdin closed": close_stdin,
    "SIGTERM": lambda server: server.process.send_signal(signal.SIGTERM),
    "SIGINT": lambda server: server.process.send_signal(signal.SIGINT),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "mid-call"])
def test_the_server_ends_promptly_and_cleanly(server: RawServer, emulator: Emulator, ending: str, busy: bool) -> None:
    if busy:
        server.start_a_long_call()
    else:
        initialize = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        server.send("initialize", initialize, 1)
        server.read_until(lambda m: m.get("id") == 1)
    ENDINGS[ending](server)
    returncode, seconds = server.wait_for_exit()
    assert returncode == 0
    assert seconds < PROMPT_EXIT_SECONDS, f"took {seconds:.1f} s to exit"
    log = server.stderr.read_text()
    assert "Traceback" not in log, log[-3000:]
    if busy:  # the interrupted call's polling ended with the process
        polls = len([r for r in emulator.state.requests if r.path.startswith(POLL)])
        time.sleep(1.0)
        assert len([r for r in emulator.state.requests if r.path.startswith(POLL)]) == polls
