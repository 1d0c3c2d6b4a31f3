"""The command line a newcomer uses: the emulator answers curl, and the demo leaves an image on disk."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("atlascloud-mcp"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("ATLASCLOUD_")}


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_emulator_command_says_where_it_listens_and_answers_curl(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "stderr.log"
    with (
        log.open("wb") as errors,
        subprocess.Popen(
            [CONSOLE_SCRIPT, "emulator", "--port", str(port)], stdout=subprocess.PIPE, stderr=errors, env=_clean_env()
        ) as emulator,
    ):
        try:
            deadline = time.monotonic() + 20
            while f"127.0.0.1:{port}" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            origin = f"http://127.0.0.1:{port}"
            models = subprocess.run(
                ["curl", "-s", f"{origin}/api/v1/models"], capture_output=True, text=True, timeout=10, check=True
            )
            submit = subprocess.run(
                [
                    "curl", "-s", "-X", "POST", f"{origin}/api/v1/model/generateImage",
                    "-H", "Authorization: Bearer anything", "-H", "Content-Type: application/json",
                    "-d", '{"model": "black-forest-labs/flux-schnell", "prompt": "hello"}',
                ],
                capture_output=True, text=True, timeout=10, check=True,
            )  # fmt: skip
            unauthorised = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{origin}/api/v1/model/prediction/{'a' * 32}"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)
        stdout = emulator.stdout.read() if emulator.stdout else b""
    assert f"listening on http://127.0.0.1:{port}" in log.read_text()
    assert stdout == b""
    catalogue = json.loads(models.stdout)
    assert any(entry["model"] == "black-forest-labs/flux-schnell" for entry in catalogue["data"])
    prediction = json.loads(submit.stdout)
    assert prediction["code"] == 200 and prediction["data"]["status"] in ("created", "processing")
    assert unauthorised.stdout == "401"


@pytest.mark.integration  # two processes and a 2.5 s emulated generation, shown with its progress as a user sees it
def test_the_demo_makes_an_image_without_a_key(tmp_path: Path) -> None:
    done = subprocess.run(
        [CONSOLE_SCRIPT, "demo", "a small test of the demo", "--out", str(tmp_path / "images"), "--size", "512*512"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "embedded Atlas emulator" in done.stdout
    assert "progress:" in done.stdout
    [image] = (tmp_path / "images").iterdir()
    assert image.read_bytes().startswith(b"\x89PNG")
    assert str(image) in done.stdout
