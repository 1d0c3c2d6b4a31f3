"""The wire models accept every documented variant of Atlas's answers."""

from __future__ import annotations

import pytest

from atlas_mcp.atlas.models import HistoryPage, ModelEntry, Prediction, UploadedFile, error_text, unwrap


@pytest.mark.parametrize(
    "body",
    [
        {
            "code": 200,
            "message": "success",
            "data": {"id": "p1", "status": "completed", "outputs": ["https://x/a.png"]},
        },
        {"code": "200", "msg": "ok", "data": {"id": "p1", "status": "succeeded", "output": ["https://x/a.png"]}},
        {"id": "p1", "status": "success", "outputs": [{"url": "https://x/a.png"}]},
        {"id": "p1", "status": "COMPLETED", "output": "https://x/a.png"},
    ],
)
def test_every_success_variant_parses_to_one_shape(body: dict[str, object]) -> None:
    prediction = Prediction.model_validate(unwrap(body))
    assert prediction.id == "p1"
    assert prediction.phase == "succeeded"
    assert [output.url for output in prediction.outputs] == ["https://x/a.png"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("NSFW content detected", "NSFW content detected"),
        ({"message": "bad prompt"}, "bad prompt"),
        ({"msg": "gpu lost"}, "gpu lost"),
        ({"detail": {"error": "nested reason"}}, "nested reason"),
    ],
)
def test_error_as_string_or_object(error: object, expected: str) -> None:
    prediction = Prediction.model_validate({"id": "p", "status": "failed", "error": error})
    assert prediction.phase == "failed"
    assert prediction.error == expected


@pytest.mark.parametrize("status", ["failed", "error", "canceled", "cancelled", "timeout"])
def test_final_failure_words(status: str) -> None:
    assert Prediction.model_validate({"id": "p", "status": status}).phase == "failed"


@pytest.mark.parametrize("status", ["created", "starting", "queued", "processing", "something-new"])
def test_running_words_and_unknown_words_keep_waiting(status: str) -> None:
    assert not Prediction.model_validate({"id": "p", "status": status}).done


def test_price_and_metrics_as_strings_or_numbers() -> None:
    prediction = Prediction.model_validate(
        {"id": "p", "status": "completed", "price": "0.003", "metrics": {"predict_time": 8.3}, "error": ""}
    )
    assert prediction.price == pytest.approx(0.003)
    assert prediction.predict_time == pytest.approx(8.3)
    assert prediction.error is None


def test_error_text_prefers_real_messages_over_success_words() -> None:
    assert error_text({"code": 500, "message": "success", "error": "boom"}) == "boom"
    assert error_text({"code": 200, "msg": "success"}) is None


def test_upload_answer_variants() -> None:
    seed_page = UploadedFile.model_validate(
        {"download_url": "https://s/u/a.png", "file_name": "a.png", "content_type": "image/png", "size": 3}
    )
    traffic = UploadedFile.model_validate(
        {"download_url": "https://s/u/a.png", "filename": "a.png", "type": "image/png"}
    )
    assert seed_page.filename == traffic.filename == "a.png"
    assert seed_page.content_type == traffic.content_type == "image/png"


def test_catalogue_entry_and_history() -> None:
    entry = ModelEntry.model_validate(
        {
            "model": "black-forest-labs/flux-schnell",
            "displayName": "FLUX.1 [schnell]",
            "type": "Image",
            "schema": "https://x/schema.json",
            "price": {"actual": {"base_price": "0.003", "unit": "image"}},
        }
    )
    assert entry.price is not None and entry.price.base_price == pytest.approx(0.003)
    assert entry.schema_url == "https://x/schema.json"
    page = HistoryPage.model_validate(
        {
            "items": [
                {
                    "ID": "p1",
                    "createdAt": 1700000000,
                    "model": "m/x",
                    "requestBody": '{"model": "m/x", "prompt": "hi"}',
                    "status": "completed",
                    "result": {"id": "p1", "status": "completed", "outputs": ["https://x/a.png"]},
                }
            ],
            "pageNo": 1,
            "pageSize": 20,
            "total": 1,
        }
    )
    assert page.items[0].request_body == {"model": "m/x", "prompt": "hi"}
    assert page.items[0].result is not None and page.items[0].result.outputs[0].url == "https://x/a.png"
