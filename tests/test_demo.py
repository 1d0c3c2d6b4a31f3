"""The demo as a newcomer sees it: one live progress line on a terminal, plain lines in a log, one duration."""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from .harness import CONSOLE_SCRIPT

# The demo starts its own emulator and a server process, as a user's terminal would.
pytestmark = pytest.mark.integration

DEMO_SECONDS = 120


def _env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATLASCLOUD_")}
    return env | {"XDG_DATA_HOME": str(tmp_path / "data-home"), "COLUMNS": "120", "LINES": "40"}


def _demo_on_a_terminal(tmp_path: Path, prompt: str) -> tuple[int, str]:
    """Runs the demo with stdout on a pseudo-terminal (stderr to a file); its exit status and what the terminal got."""
    controller, terminal = pty.openpty()
    command = [CONSOLE_SCRIPT, "demo", prompt, "--out", str(tmp_path / "images"), "--size", "256*256"]
    with (tmp_path / "stderr.log").open("wb") as errors:
        process = subprocess.Popen(command, stdout=terminal, stderr=errors, env=_env(tmp_path), cwd=tmp_path)
    os.close(terminal)
    received = bytearray()
    deadline = time.monotonic() + DEMO_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the demo closed its end of the terminal
                break
            if not chunk:
                break
            received += chunk
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return status, received.decode(errors="replace").replace("\r\n", "\n")


def _demo_in_a_log(tmp_path: Path, prompt: str) -> subprocess.CompletedProcess[str]:
    command = [CONSOLE_SCRIPT, "demo", prompt, "--out", str(tmp_path / "images"), "--size", "256*256"]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=DEMO_SECONDS, env=_env(tmp_path), cwd=tmp_path
    )


def _one_duration(output: str) -> float:
    """The demo's one figure for how long the call took; no other line claims a duration of the whole."""
    [took] = re.findall(r"^Finished in (\d+\.\d) s, from the call to the saved file\.$", output, re.MULTILINE)
    assert not re.search(r"Done: .* in \d", output), output  # Atlas's compute time is named as such, not "in N s"
    assert "Atlas computed for" in output
    return float(took)


def test_on_a_terminal_progress_is_one_line_rewritten_in_place(tmp_path: Path) -> None:
    status, output = _demo_on_a_terminal(tmp_path, "a lighthouse, on a terminal")
    assert status == 0, output + (tmp_path / "stderr.log").read_text()
    progress_lines = [line for line in output.split("\n") if "progress:" in line]
    assert len(progress_lines) == 1, progress_lines  # every update went into the same line
    updates = progress_lines[0].split("\r")
    assert len([update for update in updates if update.startswith("  progress: ")]) >= 3, updates
    assert "completed" in progress_lines[0] or "fetching" in progress_lines[0]
    assert all(len(update) < 120 for update in updates)  # never wider than the terminal, so \r can rewrite it
    took = _one_duration(output)
    seconds = [float(figure) for figure in re.findall(r"\((\d+\.\d) s\)", progress_lines[0])]
    assert seconds == sorted(seconds) and seconds[-1] <= took  # one clock: progress counts up to the final figure
    [image] = (tmp_path / "images").iterdir()
    assert image.read_bytes().startswith(b"\x89PNG")


def test_in_a_log_each_change_is_a_plain_line_and_a_repeated_prompt_works(tmp_path: Path) -> None:
    first = _demo_in_a_log(tmp_path, "the same prompt twice")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "\r" not in first.stdout and "\x1b" not in first.stdout
    progress = [line for line in first.stdout.splitlines() if line.startswith("  progress: ")]
    messages = [line.rsplit(" (", 1)[0] for line in progress]
    assert len(progress) >= 3 and all(a != b for a, b in itertools.pairwise(messages)), progress
    _one_duration(first.stdout)
    # The emulator starts empty each time; the same prompt again is a new generation in the new emulator, not a
    # "repeat" of a prediction the previous, stopped emulator held. And nothing lands in the user's real ledger.
    second = _demo_in_a_log(tmp_path, "the same prompt twice")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "not paying again" not in second.stdout
    assert len(list((tmp_path / "images").iterdir())) == 2
    assert not (tmp_path / "data-home" / "atlascloud-mcp" / "state.db").exists()
