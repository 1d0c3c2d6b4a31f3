"""``atlascloud-mcp doctor`` as a user runs it: the console script, one line per check, the fix under every ✘."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from atlas_mcp.emulator import Emulator, EmulatorConfig

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("atlascloud-mcp"))
KEY = "sk-doctor-3e9a1c7f5b2d4e6a"


def doctor(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("ATLASCLOUD_")}
    return subprocess.run(
        [CONSOLE_SCRIPT, "doctor", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean | (env or {}),
        cwd=cwd,
    )


def marks(output: str) -> list[str]:
    return [line[0] for line in output.splitlines() if line[:1] in ("✔", "✘", "–")]


@pytest.fixture(scope="module")
def strict_atlas() -> Iterator[Emulator]:
    """An Atlas that takes one key only, as the real one does."""
    with Emulator(EmulatorConfig(api_key=KEY, prediction_seconds=0.2)) as emulator:
        yield emulator


def test_doctor_on_the_emulator_passes_every_step(tmp_path: Path) -> None:
    done = doctor("--emulator", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # settings, Atlas, key, spend-safety state, model, quote, 2 folders; no generation
    assert marks(done.stdout) == ["✔"] * 8 + ["–"]
    phrases = ("the catalogue lists", "is accepted", "Spend safety: SQLite at", "passes validation", "Atlas quotes")
    for phrase in phrases:
        assert phrase in done.stdout
    assert "add --generate" in done.stdout and "All 8 checks passed, 1 skipped." in done.stdout
    assert done.stderr == ""


@pytest.mark.integration  # two doctor runs, each with its own emulator and a generation
def test_doctor_generate_makes_one_image_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "images"
    done = doctor("--emulator", "--generate", env={"ATLASCLOUD_OUTPUT_DIR": str(out)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert marks(done.stdout) == ["✔"] * 9
    lines = done.stdout.splitlines()
    price_line = next(i for i, line in enumerate(lines) if "this costs $0.003" in line)
    result_line = next(i for i, line in enumerate(lines) if "Generated one image end to end" in line)
    assert price_line < result_line  # the price is shown before it is spent
    [image] = out.iterdir()
    with Image.open(image) as picture:
        assert picture.format == "PNG"
    assert str(image) in lines[result_line] and "1 inline preview" in lines[result_line]
    # Run again at once: a fresh emulator, so the same image must be made afresh, not found in the user's ledger
    # as the prediction of the emulator that is gone (which would fail with a 404).
    again = doctor("--emulator", "--generate", env={"ATLASCLOUD_OUTPUT_DIR": str(out)})
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list(out.iterdir())) == 2


def test_a_refused_key_is_named_by_its_last_four_characters_only(strict_atlas: Emulator) -> None:
    wrong = "sk-wrong-7d2e9b4c1a8f6e30"
    done = doctor(env={"ATLASCLOUD_API_KEY": wrong, "ATLASCLOUD_BASE_URL": strict_atlas.url})
    assert done.returncode == 1
    assert "✘ API key …6e30 was refused by Atlas (HTTP 401)." in done.stdout
    assert "fix: copy the key again from the Atlas Cloud console" in done.stdout
    assert wrong[:-4] not in done.stdout + done.stderr
    assert "Quote: skipped" in done.stdout and "1 of 7 checks failed" in done.stdout


def test_the_right_key_passes_and_shows_the_balance(strict_atlas: Emulator, tmp_path: Path) -> None:
    done = doctor(
        "--generate",
        env={
            "ATLASCLOUD_API_KEY": KEY,
            "ATLASCLOUD_BASE_URL": strict_atlas.url,
            "ATLASCLOUD_OUTPUT_DIR": str(tmp_path),
        },
    )
    assert done.returncode == 0, done.stdout
    assert f"API key …{KEY[-4:]} is accepted: " in done.stdout and "USD available" in done.stdout
    assert KEY[:-4] not in done.stdout + done.stderr
    assert any(path.suffix == ".png" for path in tmp_path.iterdir())


def test_without_a_key_it_runs_the_key_free_steps_and_says_what_it_skipped(strict_atlas: Emulator) -> None:
    done = doctor("--generate", env={"ATLASCLOUD_BASE_URL": strict_atlas.url})
    assert done.returncode == 0, done.stdout
    assert (
        "– API key: ATLASCLOUD_API_KEY is not set, so the key, the quote and the generation were skipped."
        in done.stdout
    )
    assert "– Generation: skipped" in done.stdout
    assert "default request passes validation" in done.stdout


@pytest.mark.integration  # three doctor runs, one retrying an address nothing answers
def test_an_unreachable_atlas_and_a_bad_setting_fail_with_their_fixes(tmp_path: Path) -> None:
    closed = doctor(env={"ATLASCLOUD_BASE_URL": "http://127.0.0.1:9", "ATLASCLOUD_API_KEY": KEY})
    assert closed.returncode == 1
    assert "✘ Atlas did not answer" in closed.stdout and "fix: check this machine's network" in closed.stdout
    bad = doctor(env={"ATLASCLOUD_WAIT_SECONDS": "soon"})
    assert bad.returncode == 1
    assert "✘ Settings: ATLASCLOUD_WAIT_SECONDS: expected a number, got 'soon'" in bad.stdout
    assert "– Everything else: it needs valid settings." in bad.stdout
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    unwritable = doctor("--emulator", env={"ATLASCLOUD_OUTPUT_DIR": str(blocked / "out")})
    assert unwritable.returncode == 1 and f"✘ Output folder {blocked / 'out'} is not writable" in unwritable.stdout


def test_it_reads_the_environment_from_the_clients_own_config(strict_atlas: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "claude_desktop_config.json"
    entry = {
        "command": "uvx",
        "args": ["atlascloud-mcp"],
        "env": {"ATLASCLOUD_API_KEY": KEY, "ATLASCLOUD_BASE_URL": strict_atlas.url},
    }
    config.write_text(json.dumps({"mcpServers": {"other": {"command": "npx", "args": ["x"]}, "atlascloud": entry}}))
    done = doctor("--client-config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"API key …{KEY[-4:]} is accepted" in done.stdout
    missing = doctor("--client-config", str(config), "--server", "nope")
    assert missing.returncode == 2 and "no atlascloud server" in missing.stderr
