"""The Atlas emulator in its own process (``atlascloud-mcp emulator``), so its work is not ours to measure."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from benchmarks.rpc import CONSOLE_SCRIPT, Workspace

_LISTENING = re.compile(r"listening on (http://\S+)")
_START_TIMEOUT = 20.0


class EmulatorProcess:
    def __init__(self, ws: Workspace, *, prediction_seconds: float, storage: Path | None = None) -> None:
        self._log_path = ws.log("emulator")
        self._log = self._log_path.open("wb")
        argv = [str(CONSOLE_SCRIPT), "emulator", "--port", "0", "--prediction-seconds", str(prediction_seconds)]
        if storage is not None:
            argv += ["--storage", str(storage)]  # kept on exit: the caller removes it
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=ws.python_env()
        )
        self.url = self._wait_for_url()
        self.control = httpx.Client(base_url=self.url, timeout=30)

    @property
    def pid(self) -> int:
        return self.process.pid

    def _wait_for_url(self) -> str:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            match = _LISTENING.search(self._log_path.read_text(errors="replace"))
            if match:
                return match[1]
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.close()
        raise RuntimeError(f"the emulator did not start; see {self._log_path}")

    def requests(self) -> list[dict[str, Any]]:
        answer = self.control.get("/_emulator/requests")
        answer.raise_for_status()
        recorded: list[dict[str, Any]] = answer.json()
        return recorded

    def clear_requests(self) -> None:
        self.control.delete("/_emulator/requests").raise_for_status()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """SIGTERM: the emulator stops serving and removes its temporary storage (uploads included)."""
        if hasattr(self, "control"):
            self.control.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def prediction_gets(requests: list[dict[str, Any]]) -> int:
    return sum(1 for r in requests if r["method"] == "GET" and r["path"].startswith("/api/v1/model/prediction/"))


def storage_gets(requests: list[dict[str, Any]]) -> int:
    return sum(1 for r in requests if r["method"] == "GET" and r["path"].startswith("/emulator-storage/"))
