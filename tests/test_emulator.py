"""The Atlas emulator, exercised the way clients meet it: over real loopback HTTP."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from PIL import Image

from atlas_mcp.emulator import Emulator, EmulatorConfig, Fault, PredictionPlan, RecordedRequest
from atlas_mcp.emulator.cli import add_arguments

KEY = "test-key-5f0c"
AUTH = {"Authorization": f"Bearer {KEY}"}
SCHNELL = "black-forest-labs/flux-schnell"
IMAGE = "/api/v1/model/generateImage"
PREDICTION = "/api/v1/model/prediction/"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(prediction_seconds=0.2)) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_state(emulator: Emulator) -> None:
    emulator.state.reset()


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers=AUTH, timeout=10) as http:
        yield http


def submit(client: httpx.Client, path: str = IMAGE, **body: Any) -> dict[str, Any]:
    response = client.post(path, json={"model": SCHNELL, "prompt": "a red fox", **body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def wait_final(client: httpx.Client, prediction_id: str) -> httpx.Response:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = client.get(PREDICTION + prediction_id)
        if response.json()["data"]["status"] not in ("created", "processing"):
            return response
        time.sleep(0.02)
    raise AssertionError("prediction did not finish in 5 s")


# --- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEY}"}])
def test_api_endpoints_need_a_bearer_token(emulator: Emulator, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=emulator.url, headers=headers) as anonymous:
        for method, path in [
            ("POST", IMAGE),
            ("GET", PREDICTION + "0" * 32),
            ("GET", "/api/v1/model/history"),
            ("POST", "/api/v1/model/uploadMedia"),
        ]:
            response = anonymous.request(method, path)
            assert response.status_code == 401
            assert response.json() == {"code": 401, "message": "Unauthorized: invalid or missing API key"}
            assert response.headers["content-type"] == "application/json"


def test_catalogue_schemas_and_outputs_are_public(emulator: Emulator, client: httpx.Client) -> None:
    prediction = submit(client, size="256*256")
    url = wait_final(client, prediction["id"]).json()["data"]["outputs"][0]
    with httpx.Client(base_url=emulator.url) as anonymous:
        models = anonymous.get("/api/v1/models")
        assert models.status_code == 200
        schema_url = next(m["schema"] for m in models.json()["data"] if m["model"] == SCHNELL)
        assert anonymous.get(schema_url).status_code == 200
        assert anonymous.get(url).status_code == 200


def test_a_configured_key_is_the_only_one_accepted() -> None:
    with (
        Emulator(EmulatorConfig(api_key="right", prediction_seconds=0)) as strict,
        httpx.Client(base_url=strict.url) as http,
    ):
        body = {"model": SCHNELL, "prompt": "x"}
        assert http.post(IMAGE, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.post(IMAGE, json=body, headers={"Authorization": "Bearer right"}).status_code == 200


# --- submit and poll -------------------------------------------------------------------------


def test_flat_body_gives_a_created_prediction(emulator: Emulator, client: httpx.Client) -> None:
    response = client.post(IMAGE, json={"model": SCHNELL, "prompt": "a red fox"})
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["code"] == 200
    assert body["message"] == "success"
    data = body["data"]
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert data["model"] == SCHNELL
    assert data["status"] == "created"
    assert data["outputs"] == []
    assert data["has_nsfw_contents"] == []
    assert data["error"] == ""
    assert data["urls"]["get"] == f"{emulator.url}{PREDICTION}{data['id']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", data["created_at"])


def test_nested_input_body_is_accepted_and_model_inside_input_is_ignored(client: httpx.Client) -> None:
    response = client.post(
        IMAGE, json={"model": SCHNELL, "input": {"prompt": "a lake", "model": "black-forest-labs/flux-dev"}}
    )
    assert response.status_code == 200
    assert response.json()["data"]["model"] == SCHNELL


def test_status_moves_to_completed_with_real_pngs_of_the_requested_size(client: httpx.Client) -> None:
    prediction = submit(client, size="640*384", num_images=2, seed=7)
    seen = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data = client.get(PREDICTION + prediction["id"]).json()["data"]
        seen.add(data["status"])
        if data["status"] == "completed":
            break
        time.sleep(0.01)
    assert {"processing", "completed"} <= seen
    assert len(data["outputs"]) == 2
    assert data["has_nsfw_contents"] == [False, False]
    assert data["price"] == pytest.approx(0.006)
    assert data["metrics"]["predict_time"] == pytest.approx(0.2)
    assert data["completed_at"].endswith("Z")
    for url in data["outputs"]:
        picture = httpx.get(url)
        assert picture.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(picture.content)) as image:
            assert image.format == "PNG"
            assert image.size == (640, 384)


def test_pictures_are_deterministic_in_prompt_and_seed(emulator: Emulator, client: httpx.Client) -> None:
    def picture(seed: int) -> bytes:
        emulator.state.plan_next(PredictionPlan(seconds=0))
        prediction = submit(client, size="256*256", seed=seed)
        return httpx.get(prediction["outputs"][0]).content

    assert picture(11) == picture(11)
    assert picture(11) != picture(12)


def test_width_and_height_keys_become_the_size(client: httpx.Client) -> None:
    prediction = submit(client, width=512, height=256, steps=20, guidance_scale=7.5, enable_sync_mode=True)
    with Image.open(io.BytesIO(httpx.get(prediction["outputs"][0]).content)) as image:
        assert image.size == (512, 256)


def test_sync_mode_answers_with_the_final_prediction(client: httpx.Client) -> None:
    data = submit(client, size="256*256", enable_sync_mode=True)
    assert data["status"] == "completed"
    assert len(data["outputs"]) == 1


def test_outputs_are_not_served_before_completion(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=30))
    prediction = submit(client)
    early = httpx.get(f"{emulator.url}/emulator-storage/outputs/{prediction['id']}/0.png")
    assert early.status_code == 404
    assert early.json()["code"] == 404


def test_prediction_ids_are_validated(client: httpx.Client) -> None:
    for bad_id in ("not-a-real-id", "A" * 32, "x%2F..%2F..%2Fhistory", "abc/def"):
        bad = client.get(PREDICTION + bad_id)
        assert bad.status_code == 400
        assert "32 lowercase hex" in bad.json()["message"]
    missing = client.get(PREDICTION + "0" * 32)
    assert missing.status_code == 404
    assert missing.json() == {"code": 404, "error": "prediction not found"}


# --- plans ----------------------------------------------------------------------------------


def test_failure_plan_is_answered_500_with_the_terminal_payload(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0.05, fail="NSFW content detected"))
    prediction = submit(client)
    time.sleep(0.1)
    response = client.get(PREDICTION + prediction["id"])
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == 500
    assert body["message"] == "NSFW content detected"
    assert body["data"]["status"] == "failed"
    assert body["data"]["error"] == "NSFW content detected"
    assert body["data"]["outputs"] == []


def test_failure_can_be_answered_200_and_is_not_charged(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0, fail="boom", failure_http_status=200))
    before = emulator.state.balance
    prediction = submit(client)
    response = client.get(PREDICTION + prediction["id"])
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "failed"
    assert emulator.state.balance == before


def test_plans_choose_the_success_word_and_outputs_key(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0, final_status="succeeded", outputs_key="output"))
    emulator.state.plan_next(PredictionPlan(seconds=0, final_status="success"))
    first = client.get(PREDICTION + submit(client, size="256*256")["id"]).json()["data"]
    second = client.get(PREDICTION + submit(client, size="256*256")["id"]).json()["data"]
    assert first["status"] == "succeeded"
    assert len(first["output"]) == 1
    assert "outputs" not in first
    assert second["status"] == "success"
    assert len(second["outputs"]) == 1


# --- validation and billing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": SCHNELL}, "prompt is required"),
        ({"prompt": "x"}, "model is required"),
        ({"model": "acme/nothing", "prompt": "x"}, "model not found: acme/nothing"),
        ({"model": "alibaba/wan-2.2/t2v-480p", "prompt": "x"}, "is a Video model"),
        ({"model": SCHNELL, "prompt": "x", "num_images": 9}, "num_images must be at most 4"),
        ({"model": SCHNELL, "prompt": "x", "num_images": "2"}, "num_images must be an integer"),
        ({"model": SCHNELL, "prompt": "x", "seed": -5}, "seed must be at least -1"),
        ({"model": SCHNELL, "prompt": "x", "strength": 1.5}, "strength must be at most 1"),
        ({"model": SCHNELL, "prompt": "x", "size": "100*100"}, "between 256 and 2048"),
        ({"model": SCHNELL, "prompt": "x", "size": "big"}, "'width*height'"),
        ({"model": SCHNELL, "prompt": "x", "enable_sync_mode": "yes"}, "must be a boolean"),
        ({"model": SCHNELL, "prompt": "x", "image": "/home/me/cat.png"}, "uploadMedia"),
        ({"model": SCHNELL, "prompt": "x", "width": 4000}, "width must be between"),
        ({"model": SCHNELL, "input": "x"}, "input must be a JSON object"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_submissions_get_400_naming_the_field(client: httpx.Client, body: Any, expected: str) -> None:
    response = client.post(IMAGE, json=body)
    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert expected in response.json()["message"]


def test_non_json_body_gets_400(client: httpx.Client) -> None:
    response = client.post(IMAGE, content=b"prompt=cat", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


def test_flux_dev_takes_steps_and_guidance(client: httpx.Client) -> None:
    dev = "black-forest-labs/flux-dev"
    ok = client.post(IMAGE, json={"model": dev, "prompt": "x", "num_inference_steps": 50, "guidance_scale": 20})
    assert ok.status_code == 200
    too_many = client.post(IMAGE, json={"model": dev, "prompt": "x", "num_inference_steps": 51})
    assert too_many.status_code == 400


def test_balance_below_price_gets_402(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.balance = 0.004
    assert client.post(IMAGE, json={"model": SCHNELL, "prompt": "x", "num_images": 2}).status_code == 402
    assert client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"}).status_code == 200
    refused = client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"})
    assert refused.status_code == 402
    assert refused.json() == {"code": 402, "msg": "Insufficient balance, please top up"}
    assert emulator.state.balance == pytest.approx(0.001)


# --- video and audio -----------------------------------------------------------------------


def test_video_and_audio_models_give_small_honest_files(client: httpx.Client) -> None:
    video = client.post(
        "/api/v1/model/generateVideo",
        json={"model": "alibaba/wan-2.2/t2v-480p", "prompt": "waves", "enable_sync_mode": True},
    ).json()["data"]
    clip = httpx.get(video["outputs"][0])
    assert video["outputs"][0].endswith(".webp")
    assert clip.headers["content-type"] == "image/webp"
    assert clip.content[:4] == b"RIFF"
    assert clip.content[8:12] == b"WEBP"

    speech = client.post(
        "/api/v1/model/generateAudio",
        json={"model": "minimax/speech-2.5-hd", "text": "hello", "enable_sync_mode": True},
    ).json()["data"]
    # This model sends its files inline, as data: URIs (its profile: data-uri-outputs)
    header, _, encoded = speech["outputs"][0].partition(",")
    assert header == "data:audio/wav;base64"
    assert base64.b64decode(encoded)[8:12] == b"WAVE"


# --- faults -----------------------------------------------------------------------------------


def test_status_fault_answers_with_an_error_envelope_once(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path=IMAGE, kind="status", status=502, message="upstream down"))
    faulted = client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"})
    assert faulted.status_code == 502
    assert faulted.json() == {"code": 502, "message": "upstream down"}
    assert client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"}).status_code == 200
    assert emulator.state.prediction_count >= 1


@pytest.mark.parametrize(("seconds", "header"), [(2.0, "2"), (0.2, "0.2"), (None, None)])
def test_rate_limit_fault(emulator: Emulator, client: httpx.Client, seconds: float | None, header: str | None) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/", kind="rate_limit", retry_after=seconds))
    response = client.get("/api/v1/model/history")
    assert response.status_code == 429
    assert response.json() == {"code": 429, "msg": "Too many requests, please slow down"}
    assert response.headers.get("retry-after") == header


def test_delay_fault_delays_then_answers(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/models", kind="delay", seconds=0.3))
    started = time.monotonic()
    response = client.get("/api/v1/models")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200


def test_reset_fault_drops_the_connection(emulator: Emulator, client: httpx.Client) -> None:
    prediction = submit(client)
    emulator.state.add_fault(Fault(path=PREDICTION, kind="reset"))
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.get(PREDICTION + prediction["id"])
    assert client.get(PREDICTION + prediction["id"]).status_code == 200


def test_malformed_fault_sends_broken_json(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path=IMAGE, kind="malformed"))
    response = client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_html_fault_sends_an_nginx_page(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path="/api/", kind="html", status=504))
    response = client.get("/api/v1/model/history")
    assert response.status_code == 504
    assert response.headers["content-type"].startswith("text/html")
    assert "<center>nginx</center>" in response.text
    assert "504 Gateway Timeout" in response.text


def test_unenveloped_fault_lifts_data_to_the_top(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path=IMAGE, kind="unenveloped"))
    body = client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"}).json()
    assert "code" not in body
    assert body["status"] == "created"
    assert client.get(PREDICTION + body["id"]).json()["code"] == 200


def test_envelope_error_and_missing_fields_faults(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path=IMAGE, kind="envelope_error", message="internal"))
    emulator.state.add_fault(Fault(path=IMAGE, kind="missing_fields"))
    first = client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"})
    assert (first.status_code, first.json()) == (200, {"code": 500, "message": "internal", "data": None})
    second = client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"})
    assert (second.status_code, second.json()) == (200, {"code": 200, "message": "success", "data": {}})


def test_huge_body_fault_streams_without_a_length(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path="/emulator-storage/outputs/", kind="huge_body", size=3_000_001))
    with client.stream("GET", f"/emulator-storage/outputs/{'a' * 32}/0.png") as response:
        assert response.headers["content-type"] == "image/png"
        assert "content-length" not in response.headers
        assert sum(len(chunk) for chunk in response.iter_raw()) == 3_000_001


def test_redirect_fault(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/models", kind="redirect", location="https://example.invalid/x"))
    response = client.get("/api/v1/models")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.invalid/x"


def test_faults_match_method_and_apply_in_order_until_used_up(emulator: Emulator, client: httpx.Client) -> None:
    state = emulator.state
    state.add_fault(Fault(path="/api/v1/models", kind="status", status=500, method="POST"))
    state.add_fault(Fault(path="/api/v1/models", kind="status", status=503, times=2))
    state.add_fault(Fault(path="/api/v1/models", kind="status", status=504, times=None))
    statuses = [client.get("/api/v1/models").status_code for _ in range(4)]
    assert statuses == [503, 503, 504, 504]
    assert [f.status for f in state.faults] == [500, 504]
    state.clear_faults()
    assert client.get("/api/v1/models").status_code == 200


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(path="/", kind="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="location"):
        Fault(path="/", kind="redirect")


# --- history ------------------------------------------------------------------------------


def test_history_pages_newest_first_and_filters() -> None:
    with (
        Emulator(EmulatorConfig(prediction_seconds=0, profile="plain")) as fresh,
        httpx.Client(base_url=fresh.url, headers=AUTH) as http,
    ):
        ids = [submit(http, prompt=f"p{n}")["id"] for n in range(3)]
        dev = http.post(IMAGE, json={"model": "black-forest-labs/flux-dev", "prompt": "d"}).json()["data"]["id"]
        fresh.state.plan_next(PredictionPlan(seconds=0, fail="no"))
        failed = submit(http)["id"]

        page1 = http.get("/api/v1/model/history", params={"no": 1, "size": 2}).json()["data"]
        assert (page1["pageNo"], page1["pageSize"], page1["total"]) == (1, 2, 5)
        assert [item["ID"] for item in page1["items"]] == [failed, dev]
        page3 = http.get("/api/v1/model/history", params={"no": 3, "size": 2}).json()["data"]
        assert [item["ID"] for item in page3["items"]] == [ids[0]]

        item = page1["items"][1]
        assert item["model"] == "black-forest-labs/flux-dev"
        assert json.loads(item["requestBody"]) == {"model": "black-forest-labs/flux-dev", "prompt": "d"}
        assert isinstance(item["createdAt"], int)
        assert item["result"]["id"] == dev

        def ids_for(**params: str) -> list[str]:
            data = http.get("/api/v1/model/history", params=params).json()["data"]
            return [entry["ID"] for entry in data["items"]]

        assert ids_for(model=SCHNELL) == [failed, *reversed(ids)]
        assert ids_for(sessionID=ids[1]) == [ids[1]]
        assert ids_for(status="failed") == [failed]
        for size in ("0", "51", "x"):
            assert http.get("/api/v1/model/history", params={"size": size}).status_code == 400


# --- uploads ------------------------------------------------------------------------------


def test_upload_round_trip(emulator: Emulator, client: httpx.Client) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    files = {"file": ("my photo.png", payload, "image/png")}
    response = client.post("/api/v1/model/uploadMedia", files=files, data={"note": "ignored"})
    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["msg"]) == ("200", "success")
    data = body["data"]
    assert data["file_name"] == data["filename"] == "my_photo.png"
    assert data["content_type"] == data["type"] == "image/png"
    assert data["size"] == len(payload)
    assert data["download_url"].startswith(f"{emulator.url}/emulator-storage/uploads/")
    download = httpx.get(data["download_url"])
    assert download.headers["content-type"] == "image/png"
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(payload).digest()
    assert emulator.state.requests[-2].body_size > len(payload)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"data": {"other": "x"}, "files": {"other_file": ("a.txt", b"a", "text/plain")}}, 'no "file" part'),
        ({"json": {"file": "x"}}, "multipart/form-data"),
    ],
)
def test_upload_without_a_file_part_gets_400(client: httpx.Client, kwargs: dict[str, Any], expected: str) -> None:
    response = client.post("/api/v1/model/uploadMedia", **kwargs)
    assert response.status_code == 400
    assert expected in response.json()["msg"]


# --- catalogue ------------------------------------------------------------------------------


def test_catalogue_lists_models_with_string_prices(client: httpx.Client) -> None:
    body = client.get("/api/v1/models").json()
    assert (body["code"], body["msg"]) == (200, "success")
    entries = {entry["model"]: entry for entry in body["data"]}
    assert {entry["type"] for entry in entries.values()} == {"Image", "Video", "Audio", "Text"}
    schnell = entries[SCHNELL]
    assert schnell["price"]["actual"] == {"base_price": "0.003", "unit": "image", "discount": "1"}
    assert schnell["organization"] == "black-forest-labs"
    assert schnell["display_console"] is True
    assert entries["black-forest-labs/flux-dev"]["price"]["actual"]["base_price"] == "0.012"
    assert any(entry["display_console"] is False for entry in entries.values())
    for key in ("displayName", "profile", "tags", "categories", "schema"):
        assert key in schnell


def test_schema_document_matches_the_docs_table(client: httpx.Client) -> None:
    entries = client.get("/api/v1/models").json()["data"]
    url = next(entry["schema"] for entry in entries if entry["model"] == SCHNELL)
    document = httpx.get(url).json()
    assert document["openapi"].startswith("3.")
    schema = document["components"]["schemas"]["Input"]
    assert "Output" in document["components"]["schemas"]
    assert schema["type"] == "object"
    # The live shape: `model` is required and is a property whose default is the model's own id
    assert schema["required"] == ["model", "prompt"]
    assert schema["x-order-properties"] == list(schema["properties"])
    props = schema["properties"]
    assert props["model"]["default"] == SCHNELL
    assert props["size"]["default"] == "1024*1024"
    assert (props["num_images"]["minimum"], props["num_images"]["maximum"], props["num_images"]["default"]) == (1, 4, 1)
    assert (props["seed"]["default"], props["seed"]["minimum"], props["seed"]["maximum"]) == (-1, -1, 2147483647)
    assert (props["strength"]["minimum"], props["strength"]["maximum"], props["strength"]["default"]) == (0, 1, 0.8)
    assert props["enable_safety_checker"]["default"] is True
    assert {"image", "mask_image", "enable_sync_mode", "enable_base64_output"} <= set(props)
    assert "num_inference_steps" not in props

    dev_url = next(entry["schema"] for entry in entries if entry["model"] == "black-forest-labs/flux-dev")
    dev = httpx.get(dev_url).json()["components"]["schemas"]["Input"]["properties"]
    assert dev["num_inference_steps"]["default"] == 28
    assert dev["guidance_scale"]["maximum"] == 20


def test_unknown_routes_and_methods_answer_json(client: httpx.Client) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json()["code"] == 404
    wrong = client.get(IMAGE)
    assert wrong.status_code == 405
    assert wrong.json()["code"] == 405
    assert wrong.headers["allow"] == "POST"


# --- the request log and the control endpoints ------------------------------------------------


def test_requests_are_recorded_with_the_key_hidden_in_repr(emulator: Emulator, client: httpx.Client) -> None:
    body = json.dumps({"model": SCHNELL, "prompt": "logged"}).encode()
    emulator.state.add_fault(Fault(path="/api/v1/models", kind="status"))
    client.post(IMAGE, content=body, headers={"content-type": "application/json"})
    client.get("/api/v1/models", params={"x": "1"})
    client.get("/_emulator/requests")
    recorded = emulator.state.requests
    assert [(r.method, r.path) for r in recorded] == [("POST", IMAGE), ("GET", "/api/v1/models")]
    first = recorded[0]
    assert isinstance(first, RecordedRequest)
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.body_size == len(body)
    assert recorded[1].query == "x=1"
    assert KEY not in repr(first)
    assert "<redacted>" in str(first)
    assert recorded[0].at <= recorded[1].at


def test_the_key_never_reaches_the_log(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="atlas_mcp.emulator")
    client.post(IMAGE, json={"model": SCHNELL, "prompt": "x", "unknown_key": 1})
    deadline = time.monotonic() + 2
    while not any("generateImage" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.01)
    messages = [r.getMessage() for r in caplog.records if r.name == "atlas_mcp.emulator"]
    assert any("POST /api/v1/model/generateImage -> 200" in m for m in messages)
    assert all(KEY not in m for m in messages)


def test_control_endpoints(emulator: Emulator, client: httpx.Client) -> None:
    client.get("/api/v1/models")
    log = client.get("/_emulator/requests").json()
    assert [entry["path"] for entry in log] == ["/api/v1/models"]
    assert log[0]["headers"]["authorization"] == "<redacted>"
    assert client.delete("/_emulator/requests").status_code == 200
    assert emulator.state.requests == []

    fault = {"path": "/api/v1/models", "kind": "status", "status": 500, "times": None}
    assert client.post("/_emulator/faults", json=[fault]).status_code == 200
    assert client.get("/api/v1/models").status_code == 500
    assert client.get("/_emulator/faults").json()[0]["kind"] == "status"
    assert client.delete("/_emulator/faults").status_code == 200
    assert client.get("/api/v1/models").status_code == 200
    assert client.post("/_emulator/faults", json={"path": "/x", "kind": "nope"}).status_code == 400
    assert client.post("/_emulator/faults", json={"path": "/x", "kind": "status", "typo": 1}).status_code == 400

    plans = [{"seconds": 0, "fail": "first"}, {"seconds": 0, "final_status": "succeeded"}]
    assert client.post("/_emulator/plans", json=plans).status_code == 200
    assert client.get(PREDICTION + submit(client)["id"]).json()["message"] == "first"
    assert client.get(PREDICTION + submit(client, size="256*256")["id"]).json()["data"]["status"] == "succeeded"

    assert client.put("/_emulator/balance", json={"balance": 0}).json()["data"] == {"balance": 0.0}
    assert client.post(IMAGE, json={"model": SCHNELL, "prompt": "x"}).status_code == 402
    assert client.post("/_emulator/reset", json={}).status_code == 200
    assert emulator.state.balance == emulator.config.balance
    assert all(not r.path.startswith("/_emulator") for r in emulator.state.requests)


# --- lifecycle --------------------------------------------------------------------------------


def test_app_works_in_process_through_asgi_transport(emulator: Emulator) -> None:
    async def scenario() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=emulator.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://atlas.test", headers=AUTH) as http:
            response = await http.post(IMAGE, json={"model": SCHNELL, "prompt": "in process"})
            data: dict[str, Any] = response.json()["data"]
            # Without a socket to abort, a reset surfaces as the error a dropped connection raises.
            emulator.state.add_fault(Fault(path="/api/v1/models", kind="reset"))
            with pytest.raises(ConnectionResetError):
                await http.get("/api/v1/models")
            return data

    data = anyio.run(scenario)
    assert data["urls"]["get"].startswith("http://atlas.test/")


def test_stop_is_prompt_even_with_a_request_in_flight(tmp_path: Path) -> None:
    running = Emulator(EmulatorConfig(storage_dir=tmp_path))
    running.start()
    running.state.add_fault(Fault(path="/api/v1/models", kind="delay", seconds=30))
    outcome: list[object] = []

    def slow_call() -> None:
        try:
            with httpx.Client(base_url=running.url, timeout=20) as http:
                outcome.append(http.get("/api/v1/models").status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 4
    caller.join(5)
    assert outcome
    assert outcome[0] != 200
    with pytest.raises(RuntimeError):
        _ = running.url


def test_a_busy_port_fails_in_the_caller_and_storage_is_cleaned(emulator: Emulator) -> None:
    port = int(emulator.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        Emulator(port=port).start()
    owned = Emulator()
    storage = owned.state.storage_dir
    with owned:
        assert storage.is_dir()
    assert not storage.exists()


def test_cli_serves_in_the_foreground_and_stops_on_sigterm(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "0", "--storage", str(tmp_path), "--api-key", "k"])
    assert (args.host, args.prediction_seconds, args.api_key, args.storage) == ("127.0.0.1", 1.5, "k", tmp_path)

    code = (
        "import argparse, sys\n"
        "from atlas_mcp.emulator.cli import add_arguments, main_from_args\n"
        "p = argparse.ArgumentParser(); add_arguments(p); main_from_args(p.parse_args(sys.argv[1:]))\n"
    )
    argv = [sys.executable, "-c", code, "--port", "0", "--storage", str(tmp_path)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        try:
            line = process.stderr.readline()
            match = re.search(r"Atlas emulator listening on (http://\S+) \(any API key accepted\)", line)
            assert match, line
            assert httpx.get(match[1] + "/api/v1/models").status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, _ = process.communicate(timeout=10)
        assert process.returncode == 0
        assert stdout == ""


# --- the live shapes --------------------------------------------------------------------------


def test_signed_output_urls_refuse_a_referer_a_wrong_signature_and_no_signature(client: httpx.Client) -> None:
    url = submit(client, size="256*256", enable_sync_mode=True)["outputs"][0]
    assert httpx.get(url).status_code == 200
    assert httpx.get(url).headers["content-disposition"].startswith("attachment")
    for refused, code in (
        (httpx.get(url, headers={"Referer": "https://chat.example/"}), "AccessDenied"),
        (httpx.get(url.replace("Signature=", "Signature=x")), "SignatureDoesNotMatch"),
        (httpx.get(url.split("?")[0]), "AccessDenied"),
    ):
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/xml" and f"<Code>{code}</Code>" in refused.text


def test_base64_outputs_on_request_and_in_a_profile(emulator: Emulator, client: httpx.Client) -> None:
    asked = submit(client, size="256*256", enable_sync_mode=True, enable_base64_output=True)
    assert base64.b64decode(asked["outputs"][0]).startswith(b"\x89PNG")
    emulator.state.config.profile = "data-uri-outputs"
    try:
        inline = submit(client, size="256*256", enable_sync_mode=True)
    finally:
        emulator.state.config.profile = None
    header, _, data = inline["outputs"][0].partition(",")
    assert header == "data:image/png;base64" and base64.b64decode(data).startswith(b"\x89PNG")


def test_profiles_shape_the_status_words_and_the_warm_up(emulator: Emulator, client: httpx.Client) -> None:
    emulator.state.config.profile = "queued-starting"
    # "queued" for the first 10 % of it, then "starting" until 55 %: at 4 s, a read 0.8 s in has 1.4 s to spare on a
    # busy machine (at 1 s it had 0.35 s, and once came late, "processing").
    emulator.state.plan_next(PredictionPlan(seconds=4.0))
    try:
        queued = submit(client)
        assert queued["status"] == "queued"
        time.sleep(0.8)
        assert client.get(PREDICTION + queued["id"]).json()["data"]["status"] == "starting"
        emulator.state.config.profile = "warm-up-400"
        hidden = submit(client)
        early = client.get(PREDICTION + hidden["id"])
        assert early.status_code == 400
        assert hidden["id"] not in {i["ID"] for i in client.get("/api/v1/model/history").json()["data"]["items"]}
    finally:
        emulator.state.config.profile = None


def test_the_quote_and_the_balance(emulator: Emulator, client: httpx.Client) -> None:
    before, balance_before = emulator.state.prediction_count, emulator.state.balance
    quote = client.post("/api/v1/model/calculate", json={"model": SCHNELL, "prompt": "x", "num_images": 2})
    assert quote.json()["data"] == {
        "price": "0.006",
        "origin_price": "0.006",
        "estimated": False,
        "estimate_partial": False,
    }
    assert client.post("/api/v1/model/calculate", json={"model": SCHNELL, "num_images": 9}).status_code == 400
    assert (emulator.state.prediction_count, emulator.state.balance) == (before, balance_before)  # nothing ran or paid
    emulator.state.balance = 12.5
    balance = client.get("/public/v1/balance").json()
    assert balance["available"] == {"value": "12.500000", "currency": "usd"}  # as answers/balance.json writes it
    assert httpx.get(f"{emulator.url}/public/v1/balance").status_code == 401


def test_history_takes_the_newer_query_form(emulator: Emulator) -> None:
    with (
        Emulator(EmulatorConfig(prediction_seconds=0, profile="plain")) as fresh,
        httpx.Client(base_url=fresh.url, headers=AUTH) as http,
    ):
        done = submit(http)["id"]
        fresh.state.plan_next(PredictionPlan(seconds=30))
        running = submit(http)["id"]
        fresh.state.plan_next(PredictionPlan(seconds=0, fail="no"))
        failed = submit(http)["id"]
        dev = http.post(IMAGE, json={"model": "black-forest-labs/flux-dev", "prompt": "d"}).json()["data"]["id"]

        def ids_for(**params: str) -> list[str]:
            answer = http.get("/api/v1/model/history", params=params)
            assert answer.status_code == 200, answer.text
            return [entry["ID"] for entry in answer.json()["data"]["items"]]

        assert ids_for(state="running") == [running]
        assert ids_for(state="failed") == [failed]
        assert ids_for(state="succeeded", model=SCHNELL) == [done]
        assert ids_for(modelPrefix="black-forest-labs/flux-d") == [dev]
        assert http.get("/api/v1/model/history", params={"state": "done"}).status_code == 400
