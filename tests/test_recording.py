"""``doctor --record`` (issue 27, first part): the doctor's every Atlas request and answer as JSON lines, redacted
before writing. A recording made against the emulator with a known key, signed output URLs and a named account
holds none of them in any form, keeps the endpoints and shapes, and stays small."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from atlas_mcp.doctor import DOCTOR_PROMPT, run_doctor

pytestmark = pytest.mark.integration  # the doctor's generation, end to end

KEY = "doctor-key-for-the-local-emulator"  # what doctor --emulator uses


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        secret.upper(),
        quote(secret, safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
    ]


@pytest.mark.parametrize("keep_prompts", [False, True])
def test_a_recording_holds_no_secret_and_every_endpoint(tmp_path: Path, keep_prompts: bool) -> None:
    recording = tmp_path / "atlas.jsonl"
    out = io.StringIO()
    status = run_doctor({}, emulator=True, generate=True, out=out, record=recording, keep_prompts=keep_prompts)
    assert status == 0, out.getvalue()
    text = recording.read_text(encoding="utf-8")
    for form in _forms(KEY):
        assert form not in text, f"the key is in the recording as {form!r}"
    for shown in ("Emulator account", "acct_emulator", "Authorization", "authorization"):
        assert shown not in text
    entries = [json.loads(line) for line in text.splitlines()]
    endpoints = {entry["endpoint"] for entry in entries}
    assert {"GET /api/v1/models", "POST /api/v1/model/generateImage", "GET /public/v1/balance"} <= endpoints
    assert "GET /api/v1/model/prediction/{id}" in endpoints
    urls = [u for entry in entries for u in _strings(entry) if "/emulator-storage/outputs/" in u and "?" in u]
    assert urls, "a signed output URL was recorded"
    assert all(part.endswith("=") for url in urls for part in url.split("?", 1)[1].split("&")), urls
    files = [entry["response"]["file"] for entry in entries if "file" in entry["response"]]
    assert files and all(file["type"] == "image/png" and file["size"] > 0 for file in files)
    assert all(file["signature"].startswith("89504e47") for file in files)  # the PNG signature, not the bytes
    assert (DOCTOR_PROMPT in text) is keep_prompts
    assert recording.stat().st_size < 200_000
    assert f"to {recording}" in out.getvalue()


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def test_named_models_are_looked_up_and_each_generated_once_with_its_price_shown_first(tmp_path: Path) -> None:
    recording = tmp_path / "atlas.jsonl"
    out = io.StringIO()
    music, hunyuan = "minimax/music-2.6", "tencent/hunyuan3d-v2.1/image-to-3d"
    status = run_doctor({}, emulator=True, generate=True, out=out, record=recording, models=[music, hunyuan])
    said = out.getvalue()
    assert status == 0, said
    assert f"Model {music} (Audio): its schema reads" in said
    assert said.index("Generating one audio with minimax/music-2.6; this costs $") < said.index(
        "Generated one audio end to end"
    )
    assert f"Model {hunyuan}: no generation, it takes an input doctor cannot make up" in said
    entries = [json.loads(line) for line in recording.read_text(encoding="utf-8").splitlines()]
    submits = [entry for entry in entries if entry["endpoint"].startswith("POST /api/v1/model/generate")]
    assert [(entry["endpoint"], entry["model"]) for entry in submits] == [("POST /api/v1/model/generateAudio", music)]
    assert "Generating one image" not in said  # the named models instead of the default one
    assert recording.stat().st_size < 200_000
