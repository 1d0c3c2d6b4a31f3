"""What Atlas looks like, recorded once in tests/fixtures/atlas/, read by both sides.

The client must accept every recorded answer (each is replayed over real HTTP by the emulator's "fixture"
fault and read by the AtlasClient), the schema normalisation must accept every recorded schema, and the
emulator must answer in the recorded shapes itself: where it and the fixtures disagree, the fixtures win.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from atlas_mcp.atlas import NOT_VISIBLE_YET, AtlasClient, Prediction
from atlas_mcp.atlas.models import unwrap
from atlas_mcp.core.catalog import InputSchema
from atlas_mcp.core.validation import describe_parameters, find_problems, type_text
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.emulator.catalogue import MODELS
from atlas_mcp.errors import NotFoundError
from atlas_mcp.redaction import redact

from .conftest import TEST_KEY

FIXTURES = Path(__file__).parent / "fixtures" / "atlas"
FLUX = "black-forest-labs/flux-schnell"
HEX_ID = "6fca9369e2fa4998a0fcad1e61bdd30a"  # the id the recorded answers carry
PREDICTION = "/api/v1/model/prediction/"
PNG = b"\x89PNG\r\n\x1a\n"
SCHEMAS = sorted((FIXTURES / "schemas").glob("*.json"))


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def keys(value: Any) -> Any:
    """The shape of a JSON value: its keys, nested, with the leaves' types reduced to 'a value'."""
    if isinstance(value, dict):
        return {key: keys(item) for key, item in value.items()}
    return "a value"


@pytest.fixture
async def atlas(emulator: Emulator) -> Any:
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, timeout=5) as client:
        yield client


def replay(emulator: Emulator, path: str, name: str) -> None:
    emulator.state.add_fault(Fault(path=path, kind="fixture", fixture=f"answers/{name}.json"))


# --- the client reads every recorded answer -----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "phase", "status"),
    [
        ("submit.queued", "running", "queued"),
        ("prediction.starting", "running", "starting"),
        ("submit.synchronous-completed", "succeeded", "completed"),
        ("prediction.completed.signed-urls", "succeeded", "completed"),
        ("prediction.completed.other-fields", "succeeded", "succeeded"),
        ("prediction.failed.error-object", "failed", "failed"),
        ("prediction.failed.error-string", "failed", "failed"),
        ("prediction.timeout", "failed", "timeout"),
    ],
)
async def test_every_recorded_prediction_is_read(
    atlas: AtlasClient, emulator: Emulator, name: str, phase: str, status: str
) -> None:
    replay(emulator, PREDICTION, name)
    prediction = await atlas.get_prediction(HEX_ID)
    assert (prediction.id, prediction.phase, prediction.status) == (HEX_ID, phase, status)
    if phase == "succeeded":
        assert prediction.outputs and all(
            output.url and output.url.startswith("https://") for output in prediction.outputs
        )


@pytest.mark.anyio
async def test_a_failure_keeps_its_reason_and_numeric_code(atlas: AtlasClient, emulator: Emulator) -> None:
    replay(emulator, PREDICTION, "prediction.failed.error-object")  # answered with HTTP 500: an answer, not an outage
    failed = await atlas.get_prediction(HEX_ID)
    assert failed.error == "Upstream access denied, please contact administrator."
    assert failed.error_code == "1013002"
    assert len(emulator.state.requests) == 1  # not retried as if Atlas were down


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["prediction.completed.base64", "prediction.completed.data-uri"])
async def test_inline_outputs_are_decoded_not_kept_as_text(atlas: AtlasClient, emulator: Emulator, name: str) -> None:
    replay(emulator, PREDICTION, name)
    [output] = (await atlas.get_prediction(HEX_ID)).outputs
    assert output.url is None and output.data is not None and output.data.startswith(PNG)
    assert "iVBOR" not in output.describe() and "iVBOR" not in repr(output)


def test_the_output_form_others_call_output_and_files() -> None:
    prediction = Prediction.model_validate(unwrap(fixture("answers/prediction.completed.other-fields.json")["body"]))
    assert prediction.price == pytest.approx(0.15)
    [video] = prediction.outputs
    assert video.url is not None and video.url.endswith("X-Tos-Signature=4f1cexample")
    assert prediction.thumbnail is not None and prediction.thumbnail.endswith("/thumb.jpg")  # the video's preview


def test_signed_output_urls_are_credentials() -> None:
    """The query of a signed object-store link is its credential: error texts keep the path, drop the query."""
    for url in fixture("output-urls.signed.json").values():
        shown = redact(f"fetching {url} failed")
        assert urlsplit(url).path in shown and "Signature" not in shown


@pytest.mark.anyio
@pytest.mark.parametrize("status", [404, 400])
async def test_right_after_a_submit_a_missing_prediction_is_not_visible_yet(
    atlas: AtlasClient, emulator: Emulator, status: int
) -> None:
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    replay(emulator, PREDICTION, f"prediction.not-visible-yet.{status}")
    early = await atlas.get_prediction(submitted.id)
    assert (early.id, early.status, early.phase, early.model) == (submitted.id, NOT_VISIBLE_YET, "running", FLUX)
    replay(emulator, PREDICTION, f"prediction.not-visible-yet.{status}")
    with pytest.raises(NotFoundError, match=f"does not know prediction {HEX_ID}"):
        await atlas.get_prediction(HEX_ID)  # not one we submitted: a 404 means what it says


@pytest.mark.anyio
async def test_past_the_grace_a_missing_prediction_is_an_error_naming_it(emulator: Emulator) -> None:
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, warmup_grace=0.0) as atlas:
        submitted = await atlas.submit(FLUX, {"prompt": "x"})
        replay(emulator, PREDICTION, "prediction.not-visible-yet.404")
        with pytest.raises(NotFoundError, match=rf"prediction {submitted.id} \(HTTP 404, 0 s after it was submitted\)"):
            await atlas.get_prediction(submitted.id)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "price", "estimated"), [("calculate", 0.036, False), ("calculate.estimated", 0.75, True)]
)
async def test_quotes_are_read(
    atlas: AtlasClient, emulator: Emulator, name: str, price: float, estimated: bool
) -> None:
    replay(emulator, "/api/v1/model/calculate", name)
    quote = await atlas.quote(FLUX, {"prompt": "x"})
    assert (quote.price, quote.estimated) == (pytest.approx(price), estimated)


@pytest.mark.anyio
async def test_balance_history_and_upload_answers_are_read(atlas: AtlasClient, emulator: Emulator) -> None:
    replay(emulator, "/public/v1/balance", "balance")
    balance = await atlas.balance()
    assert (balance.available.value, balance.available.currency) == (pytest.approx(125.5), "usd")
    assert balance.account is not None and (balance.account.name, balance.account.type) == ("Harbour Studio", "team")
    assert balance.subscription_bonus is not None and balance.subscription_bonus.value == pytest.approx(5)
    grant = balance.credit_grant
    assert grant is not None and grant.status == "active" and grant.used is not None and grant.used.value == 12
    replay(emulator, "/public/v1/balance", "balance.older")
    older = await atlas.balance()
    assert older.account is not None and older.account.id == "acct_7d2c" and older.available.value == 12.34
    assert older.credit_grant is not None and older.credit_grant.granted is not None
    replay(emulator, "/api/v1/model/history", "history.page")
    [item] = (await atlas.list_predictions()).items
    assert item.id == HEX_ID and item.request_body == {
        "model": FLUX,
        "prompt": "a red fox in the snow",
        "size": "1024*1024",
    }
    assert item.result is not None and item.result.phase == "succeeded"


# --- the schemas, in every recorded shape ------------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMAS, ids=[path.stem for path in SCHEMAS])
def test_every_recorded_schema_reads_without_model_and_a_minimal_request_passes(path: Path) -> None:
    document = json.loads(path.read_text())
    schema = InputSchema.from_document(document)
    assert schema is not None
    assert "model" not in schema.properties and "model" not in schema.required and "model" not in schema.offered
    raw = document["components"]["schemas"]["Input"]
    assert "model" in raw["required"] or "model" not in raw.get("properties", {})  # the fixture shows a live shape
    for name in schema.required:
        assert "default" not in schema.properties[name]
    minimal = {name: _sample(schema.properties[name]) for name in schema.required}
    assert find_problems(minimal, schema) == []
    for rules in schema.properties.values():
        assert type_text(rules)
    assert "model" not in describe_parameters(schema).split(" (")[0]


def _sample(rules: dict[str, Any]) -> Any:
    text = type_text(rules)
    if text.startswith("array of object"):
        return [{"role": "user", "content": "hello"}]
    if text.startswith("array"):
        return ["https://example.com/a.png"]
    return {"integer": 1, "number": 1.0, "boolean": True}.get(text.split(" ")[0], "a red fox")


def test_type_lists_unions_nullable_hidden_and_disabled() -> None:
    schema = InputSchema.from_document(fixture("schemas/type-lists-and-unions.seedream-v4.json"))
    assert schema is not None
    assert schema.required == ("prompt",)  # model is ours; num_images has a default
    assert "watermark" not in schema.offered and "internal_priority" not in schema.offered
    assert "enable_sync_mode" not in schema.offered
    ok = {"prompt": "x", "size": None, "seed": None, "images": ["https://e.com/a.png"], "guidance_scale": None}
    assert find_problems(ok, schema) == []
    assert find_problems({"prompt": "x", "internal_priority": 3}, schema) == []  # hidden: not offered, but taken
    assert find_problems({"prompt": "x", "watermark": True}, schema) == ["watermark is disabled for this model"]
    assert find_problems({"prompt": "x", "num_images": "2"}, schema) == [
        "num_images must be an integer, got string '2'"
    ]
    assert find_problems({"prompt": "x", "seed": "lucky"}, schema) == [
        "seed must be an integer or null, got string 'lucky'"
    ]
    assert find_problems({"prompt": "x", "images": "https://e.com/a.png"}, schema) == [
        "images must be an array of string or null, got string 'https://e.com/a.png'"
    ]
    assert find_problems({"prompt": "x", "style": "oil"}, schema) == [
        "style must be one of 'photo', 'illustration', '3d'; got 'oil'"
    ]
    assert type_text(schema.properties["size"]) == "string or null"
    assert type_text(schema.properties["seed"]) == "integer or null"


def test_refs_are_resolved_within_bounds() -> None:
    looping = {
        "components": {
            "schemas": {
                "Input": {"properties": {"prompt": {"$ref": "#/components/schemas/Text"}, "x": {"$ref": "#/a/b"}}},
                "Text": {"type": "string", "maxLength": 3, "items": {"$ref": "#/components/schemas/Text"}},
            }
        }
    }
    schema = InputSchema.from_document(looping)
    assert schema is not None
    assert schema.properties["prompt"]["maxLength"] == 3 and schema.properties["x"] == {}
    assert find_problems({"prompt": "long"}, schema) == ["prompt must be at most 3 characters long, got 4"]


# --- the emulator answers in the recorded shapes -----------------------------------------------------------


def test_the_emulator_answers_in_the_recorded_shapes(emulator: Emulator) -> None:
    emulator.state.config.prediction_seconds = 0
    auth = {"Authorization": f"Bearer {TEST_KEY}"}
    with httpx.Client(base_url=emulator.url, headers=auth) as http:
        entry = next(e for e in http.get("/api/v1/models").json()["data"] if e["model"] == FLUX)
        assert keys(entry) == keys(fixture("catalogue-entry.json"))

        emulator.state.config.prediction_seconds = 5
        emulator.state.config.profile = "queued-starting"
        submitted = http.post("/api/v1/model/generateImage", json={"model": FLUX, "prompt": "x"}).json()
        assert keys(submitted) == keys(fixture("answers/submit.queued.json")["body"])
        assert submitted["data"]["status"] == "queued" and re.fullmatch(r"[0-9a-f]{32}", submitted["data"]["id"])

        emulator.state.config.prediction_seconds = 0
        emulator.state.config.profile = None
        done = http.post("/api/v1/model/generateImage", json={"model": FLUX, "prompt": "x"}).json()
        assert keys(done) == keys(fixture("answers/prediction.completed.signed-urls.json")["body"])
        recorded = parse_qs(urlsplit(fixture("output-urls.signed.json")["oss"]).query)
        assert set(parse_qs(urlsplit(done["data"]["outputs"][0]).query)) == set(recorded)

        emulator.state.config.profile = "queued-starting"
        emulator.state.plan_next(
            PredictionPlan(seconds=0, fail="Upstream access denied, please contact administrator.")
        )
        failed_id = http.post("/api/v1/model/generateImage", json={"model": FLUX, "prompt": "x"}).json()["data"]["id"]
        failed = http.get(PREDICTION + failed_id)
        recorded_failure = fixture("answers/prediction.failed.error-object.json")
        assert failed.status_code == recorded_failure["status"]
        assert keys(failed.json()) == keys(recorded_failure["body"])

        emulator.state.config.prediction_seconds = 5
        emulator.state.config.profile = "warm-up-404"
        hidden = http.post("/api/v1/model/generateImage", json={"model": FLUX, "prompt": "x"}).json()["data"]["id"]
        early = http.get(PREDICTION + hidden)
        recorded_early = fixture("answers/prediction.not-visible-yet.404.json")
        assert (early.status_code, early.json()) == (recorded_early["status"], recorded_early["body"])

        quote = http.post("/api/v1/model/calculate", json={"model": FLUX, "prompt": "x", "num_images": 3}).json()
        assert keys(quote) == keys(fixture("answers/calculate.json")["body"])
        assert quote["data"]["price"] == "0.009"
        assert keys(http.get("/public/v1/balance").json()) == keys(fixture("answers/balance.json")["body"])
        page = http.get("/api/v1/model/history", params={"size": 1, "model": FLUX}).json()
        recorded_page = fixture("answers/history.page.json")["body"]
        assert set(page) == set(recorded_page) and set(page["data"]) == set(recorded_page["data"])
        assert set(page["data"]["items"][0]) == set(recorded_page["data"]["items"][0])
        upload = http.post("/api/v1/model/uploadMedia", files={"file": ("a.png", PNG, "image/png")}).json()
        assert set(fixture("answers/upload.json")["body"]["data"]) <= set(upload["data"])
        query = fixture("requests/history.newer-form.json")["query"] | {"state": "running"}
        assert http.get("/api/v1/model/history", params=query).status_code == 200


def test_every_emulated_model_serves_its_recorded_schema(emulator: Emulator) -> None:
    with httpx.Client(base_url=emulator.url) as http:
        for entry in http.get("/api/v1/models").json()["data"]:
            model = next(m for m in MODELS if m.id == entry["model"])
            served = httpx.get(entry["schema"]).json()
            recorded = fixture(f"schemas/{model.schema_file}")
            assert served["components"] == recorded["components"] and served["paths"] == recorded["paths"]
            assert served["servers"] == [{"url": emulator.url}]


def test_the_readme_names_every_fixture() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for path in FIXTURES.rglob("*.json"):
        assert str(path.relative_to(FIXTURES)) in readme, f"{path.relative_to(FIXTURES)} is not described in the README"
