"""Atlas's wire formats, parsed tolerantly: every variant the docs or the traffic show is accepted.

This is the one module that digs into raw JSON. Everything else sees these models.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "HistoryItem",
    "HistoryPage",
    "ModelEntry",
    "Phase",
    "Prediction",
    "UploadedFile",
    "error_text",
    "unwrap",
]

Phase = Literal["running", "succeeded", "failed"]
"""Where a prediction stands, whatever word Atlas used for it."""

_SUCCEEDED = frozenset({"completed", "succeeded", "success"})
_FAILED = frozenset({"failed", "error", "canceled", "cancelled", "timeout"})


def unwrap(body: Any) -> Any:
    """The payload of an answer: ``data`` when the body is an envelope, else the body itself."""
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    return body


def error_text(body: Any) -> str | None:
    """The human text of an error, wherever Atlas put it (``msg``, ``message``, ``error``, ``detail``)."""
    if isinstance(body, str):
        return body.strip() or None
    if not isinstance(body, dict):
        return None
    for key in ("msg", "message", "error", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip() and value.strip().lower() not in ("success", "ok"):
            return value.strip()
        if isinstance(value, dict) and (nested := error_text(value)):
            return nested
    return None


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Prediction(_Wire):
    """A prediction as Atlas reports it, normalised: one ``outputs`` list, ``error`` as text."""

    id: str = Field(min_length=1)
    status: str = "created"
    model: str | None = None
    outputs: tuple[str, ...] = ()
    error: str | None = None
    error_code: str | None = None
    price: float | None = None
    predict_time: float | None = None
    created_at: str | None = None
    completed_at: str | None = None
    has_nsfw_contents: tuple[bool, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        data = dict(raw)
        if not data.get("outputs") and data.get("output") is not None:
            data["outputs"] = data["output"]
        outputs = data.get("outputs")
        if outputs is None:
            data["outputs"] = ()
        elif not isinstance(outputs, list):
            data["outputs"] = [outputs]
        data["outputs"] = tuple(_output_text(item) for item in data["outputs"] if item not in (None, ""))
        data["error"] = error_text(data.get("error")) if data.get("error") else None
        metrics = data.get("metrics")
        if isinstance(metrics, dict) and "predict_time" not in data:
            data["predict_time"] = metrics.get("predict_time")
        for key in ("price", "predict_time"):
            data[key] = _number(data.get(key))
        if data.get("error_code") is not None:
            data["error_code"] = str(data["error_code"])
        nsfw = data.get("has_nsfw_contents")
        data["has_nsfw_contents"] = tuple(bool(x) for x in nsfw) if isinstance(nsfw, list) else ()
        if isinstance(data.get("status"), str):
            data["status"] = data["status"].strip().lower()
        for key in ("created_at", "completed_at"):
            if data.get(key) is not None:
                data[key] = str(data[key])
        return data

    @property
    def phase(self) -> Phase:
        if self.status in _SUCCEEDED:
            return "succeeded"
        if self.status in _FAILED:
            return "failed"
        return "running"

    @property
    def done(self) -> bool:
        return self.phase != "running"


def _output_text(item: Any) -> str:
    """Outputs are URLs, but some models give ``{"url": ...}`` items or plain text."""
    if isinstance(item, dict):
        for key in ("url", "uri", "download_url"):
            if isinstance(item.get(key), str):
                return str(item[key])
        return json.dumps(item, ensure_ascii=False)
    return str(item)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class UploadedFile(_Wire):
    """What ``uploadMedia`` answers: a URL a model can take as input."""

    download_url: str = Field(min_length=1)
    filename: str | None = Field(default=None, validation_alias="filename")
    content_type: str | None = None
    size: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        data = dict(raw)
        data.setdefault("filename", data.get("file_name"))
        data.setdefault("content_type", data.get("type"))
        return data


class Price(_Wire):
    base_price: float | None = None
    unit: str | None = None

    @field_validator("base_price", mode="before")
    @classmethod
    def _to_number(cls, value: Any) -> float | None:
        return _number(value)


class ModelEntry(_Wire):
    """One entry of the public model catalogue."""

    model: str = Field(min_length=1)
    display_name: str | None = Field(default=None, validation_alias="displayName")
    type: str | None = None
    profile: str | None = None
    organization: str | None = None
    tags: tuple[str, ...] = ()
    schema_url: str | None = Field(default=None, validation_alias="schema")
    price: Price | None = None
    display_console: bool = True

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        data = dict(raw)
        price = data.get("price")
        if isinstance(price, dict):
            data["price"] = price.get("actual") if isinstance(price.get("actual"), dict) else price
        elif price is not None:
            data["price"] = {"base_price": price}
        tags = data.get("tags")
        data["tags"] = tuple(str(t) for t in tags) if isinstance(tags, list) else ()
        if data.get("display_console") is None:
            data.pop("display_console", None)
        return data


class HistoryItem(_Wire):
    id: str = Field(validation_alias="ID")
    created_at: int | None = Field(default=None, validation_alias="createdAt")
    model: str | None = None
    status: str | None = None
    request_body: dict[str, Any] | None = Field(default=None, validation_alias="requestBody")
    result: Prediction | None = None

    @field_validator("request_body", mode="before")
    @classmethod
    def _parse_body(cls, value: Any) -> Any:
        # Atlas sends the submitted body as a JSON *string*.
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                return None
            return parsed if isinstance(parsed, dict) else None
        return value

    @field_validator("result", mode="before")
    @classmethod
    def _empty_result(cls, value: Any) -> Any:
        return value if isinstance(value, dict) and value.get("id") else None


class HistoryPage(_Wire):
    items: tuple[HistoryItem, ...] = ()
    page: int = Field(default=1, validation_alias="pageNo")
    page_size: int = Field(default=20, validation_alias="pageSize")
    total: int = 0
