"""Atlas's wire formats, parsed tolerantly: every variant the docs or the traffic show is accepted.

This is the one module that digs into raw JSON. Everything else sees these models.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ChatAnswer",
    "ChatChunk",
    "ChatUsage",
    "HistoryItem",
    "HistoryPage",
    "ModelEntry",
    "Output",
    "Phase",
    "Prediction",
    "Quote",
    "Segment",
    "Transcript",
    "UploadedFile",
    "Wire",
    "as_number",
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


class Wire(BaseModel):
    # Validators are built on first use, not at import: a server answers tools/list without reading any Atlas
    # answer, and building them cost ~24 M of a cold start's 3.6 G instructions. Safe to defer: every annotation
    # here resolves when its class is created (nothing is left to the caller's namespace), and pydantic builds
    # under a lock.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class Output(Wire):
    """One output of a prediction: a URL to fetch, a file Atlas sent inline, or a model's text.

    Atlas gives URLs, but some models (or ``enable_base64_output``) answer with base64 strings or ``data:``
    URIs of megabytes. Those are decoded here, once, so that nothing downstream ever carries them as text.
    """

    url: str | None = None
    data: bytes | None = Field(default=None, repr=False)
    media_type: str | None = None  # what a data: URI declared; the bytes are sniffed again before use
    text: str | None = None

    @property
    def inline(self) -> bool:
        return self.data is not None

    def describe(self) -> str:
        """A short line for texts and listings; never the inline bytes themselves."""
        if self.url is not None:
            return self.url
        if self.data is not None:
            kind = f"{self.media_type}, " if self.media_type else ""
            return f"(sent inline by Atlas: {kind}{len(self.data)} bytes)"
        text = self.text or ""
        return text if len(text) <= 300 else text[:299] + "…"


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|file:", re.ASCII)
_BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]+={0,2}")
_MIN_BASE64 = 64  # shorter strings are text (a word, an id), not a file


def _output(item: Any) -> Output | None:
    """Classify one raw output. URL strings and ``{"url": ...}`` items are links; base64 and ``data:`` URIs are
    decoded; anything else is text."""
    if item is None or item == "":
        return None
    if isinstance(item, dict):
        for key in ("url", "uri", "download_url"):
            if isinstance(item.get(key), str):
                return _output(item[key])
        for key in ("b64_json", "base64", "data"):
            if isinstance(item.get(key), str) and (decoded := _inline(item[key])) is not None:
                return decoded
        return Output(text=json.dumps(item, ensure_ascii=False))
    if not isinstance(item, str):
        return Output(text=json.dumps(item, ensure_ascii=False))
    value = item.strip()
    if _URL.match(value):  # any scheme: which ones may be fetched is the downloader's decision, with a reason
        return Output(url=value)
    return _inline(value) or Output(text=value)


def _inline(value: str) -> Output | None:
    """Decode a ``data:`` URI or a bare base64 string, or return None when it is neither."""
    if value[:5].lower() == "data:":
        header, comma, payload = value[5:].partition(",")
        if not comma:
            return Output(text="(an inline output that is not a valid data: URI)")
        media_type = header.split(";")[0].strip().lower() or None
        try:
            data = (
                base64.b64decode(payload, validate=False) if ";base64" in header.lower() else unquote_to_bytes(payload)
            )
        except (binascii.Error, ValueError):
            return Output(text="(an inline output whose base64 could not be decoded)")
        return Output(data=data, media_type=media_type)
    if len(value) < _MIN_BASE64 or not _BASE64.fullmatch(value):
        return None
    try:
        return Output(data=base64.b64decode(value, validate=False))
    except (binascii.Error, ValueError):
        return None


class Segment(Wire):
    """One timed piece of a transcript: seconds from the start of the audio, and what was said."""

    start: float | None = None
    end: float | None = None
    text: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float | None:
        return as_number(value)

    @field_validator("text", mode="before")
    @classmethod
    def _words(cls, value: Any) -> str:
        return value.strip() if isinstance(value, str) else ""


class Transcript(Wire):
    """A speech-to-text result (``stt_result``): the text, and its timed segments when the model gives them.

    Atlas names the field but documents no shape: a bare string and an object with ``text`` (or
    ``transcript``), ``segments`` (or ``chunks``) and ``language`` are both read.
    """

    text: str = ""
    language: str | None = None
    segments: tuple[Segment, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if isinstance(raw, str):
            return {"text": raw.strip()}
        if not isinstance(raw, dict):
            return {}
        segments = raw.get("segments", raw.get("chunks"))
        segments = [item for item in segments if isinstance(item, dict)] if isinstance(segments, list) else []
        text = raw.get("text", raw.get("transcript"))
        if not isinstance(text, str) or not text.strip():  # some give only the segments
            text = " ".join(str(item.get("text", "")).strip() for item in segments).strip()
        language = raw.get("language")
        return {
            "text": text.strip(),
            "language": language if isinstance(language, str) and language.strip() else None,
            "segments": segments,
        }


class Prediction(Wire):
    """A prediction as Atlas reports it, normalised: one ``outputs`` list, ``error`` as text."""

    id: str = Field(min_length=1)
    status: str = "created"
    model: str | None = None
    outputs: tuple[Output, ...] = ()
    error: str | None = None
    error_code: str | None = None
    price: float | None = None
    predict_time: float | None = None
    created_at: str | None = None
    completed_at: str | None = None
    has_nsfw_contents: tuple[bool, ...] = ()
    thumbnail: str | None = None  # a still for a video (some models give one): its preview
    transcript: Transcript | None = None  # what a speech-to-text model heard (``stt_result``)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        data = dict(raw)
        ids = _ids(data)
        if len(set(ids.values())) > 1:  # two names for two predictions: which one this is cannot be known
            raise ValueError(f"the answer names more than one prediction id: {named_ids(data)}")
        if ids:
            data["id"] = next(iter(ids.values()))
        if not data.get("outputs") and data.get("output") is not None:
            data["outputs"] = data["output"]
        outputs = data.get("outputs")
        if outputs is None:
            data["outputs"] = ()
        elif not isinstance(outputs, list):
            data["outputs"] = [outputs]
        data["outputs"] = tuple(output for item in data["outputs"] if (output := _output(item)) is not None)
        raw_error = data.get("error")
        data["error"] = error_text(raw_error) if raw_error else None
        if data.get("error_code") is None and isinstance(raw_error, dict):
            data["error_code"] = raw_error.get("code")  # an error object may carry the numeric code itself
        metrics = data.get("metrics")
        if isinstance(metrics, dict) and "predict_time" not in data:
            data["predict_time"] = metrics.get("predict_time")
        for key in ("price", "predict_time"):
            data[key] = as_number(data.get(key))
        code = data.get("error_code")
        usable = isinstance(code, (int, str)) and not isinstance(code, bool) and str(code).strip() not in ("", "0")
        data["error_code"] = str(code).strip() if usable else None
        nsfw = data.get("has_nsfw_contents")
        data["has_nsfw_contents"] = tuple(bool(x) for x in nsfw) if isinstance(nsfw, list) else ()
        thumbnail = data.get("thumbnail")
        data["thumbnail"] = (
            thumbnail if isinstance(thumbnail, str) and thumbnail.startswith(("https://", "http://")) else None
        )
        stt = data.get("stt_result")
        heard = Transcript.model_validate(stt) if isinstance(stt, (str, dict)) else None
        data["transcript"] = heard if heard is not None and (heard.text or heard.segments) else None
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


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_ID_NAMES = ("id", "prediction_id", "request_id")  # the docs say id; Atlas's own client accepts all three


def _ids(data: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: str(data[name]).strip()
        for name in _ID_NAMES
        if isinstance(data.get(name), (str, int)) and not isinstance(data[name], bool) and str(data[name]).strip()
    }


def named_ids(body: Any) -> str:
    """The prediction ids an answer names, for a message (``id "a", request_id "b"``); empty when there are none."""
    if not isinstance(body, Mapping):
        return ""
    # Atlas's text, not ours: only an id's safe shape is written into a message (no control codes, no paths).
    return ", ".join(
        f'{name} "{value}"' if _SAFE_ID.fullmatch(value) else f"{name} (not a usable id)"
        for name, value in _ids(body).items()
    )


def as_number(value: Any) -> float | None:
    """A finite number, or None: NaN and infinities would make the result invalid JSON."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


class UploadedFile(Wire):
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


class Price(Wire):
    """A catalogue price, in dollars: ``base_price``; for LLMs ``input_price``, ``output_price`` and ``cache_price``
    per million tokens; ``output_image_price`` per image made; ``request_price`` per request. Live entries carry
    no ``unit`` (older ones did); ``discount`` sits beside ``actual`` (the catalogue writes all as strings)."""

    base_price: float | None = None
    unit: str | None = None
    input_price: float | None = None
    output_price: float | None = None
    cache_price: float | None = None
    output_image_price: float | None = None
    request_price: float | None = None
    discount: float | None = None

    @field_validator(
        "base_price",
        "input_price",
        "output_price",
        "cache_price",
        "output_image_price",
        "request_price",
        "discount",
        mode="before",
    )
    @classmethod
    def _to_number(cls, value: Any) -> float | None:
        return as_number(value)

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_text(cls, value: Any) -> str | None:
        return str(value) if isinstance(value, (str, int)) and str(value).strip() else None


def _words(value: Any) -> tuple[str, ...]:
    """A list of phrases, or one string of them (as LLM entries give strengths and use cases)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(item) for item in value if item is not None) if isinstance(value, list) else ()


class ModelEntry(Wire):
    """One entry of the public model catalogue. LLM entries may have no ``schema``, and carry what Atlas's own
    client shows instead: context length, most output tokens, strengths, use cases, latency."""

    model: str = Field(min_length=1)
    display_name: str | None = Field(default=None, validation_alias="displayName")
    type: str | None = None
    profile: str | None = None
    organization: str | None = None
    tags: tuple[str, ...] = ()
    schema_url: str | None = Field(default=None, validation_alias="schema")
    price: Price | None = None
    display_console: bool = True
    supported_protocols: tuple[str, ...] = ()  # what an LLM speaks besides chat: "/responses", "/messages"...
    context_length: int | None = Field(default=None, validation_alias="contextLength")
    max_output_tokens: int | None = Field(default=None, validation_alias="maxCompletionTokens")
    strengths: tuple[str, ...] = Field(default=(), validation_alias="coreStrengths")
    use_cases: tuple[str, ...] = Field(default=(), validation_alias="useCases")
    avg_latency: str | None = Field(default=None, validation_alias="avgLatency")

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        data = dict(raw)
        price = data.get("price")
        if isinstance(price, dict):
            actual: dict[str, Any] = price["actual"] if isinstance(price.get("actual"), dict) else price
            if price.get("discount") is not None and actual.get("discount") is None:
                actual = {**actual, "discount": price["discount"]}  # live: beside `actual`, not inside it
            data["price"] = actual
        elif price is not None:
            data["price"] = {"base_price": price}
        tags = data.get("tags")
        data["tags"] = tuple(str(t) for t in tags) if isinstance(tags, list) else ()
        protocols = data.get("supported_protocols")
        data["supported_protocols"] = tuple(str(p) for p in protocols) if isinstance(protocols, list) else ()
        if data.get("display_console") is None:
            data.pop("display_console", None)
        if not isinstance(data.get("schema"), str) or not data["schema"].strip():
            data.pop("schema", None)
        for key in ("contextLength", "maxCompletionTokens"):
            number = as_number(data.get(key))
            data[key] = int(number) if number is not None and number > 0 else None
        for key in ("coreStrengths", "useCases"):
            data[key] = _words(data.get(key))
        latency = data.get("avgLatency")
        data["avgLatency"] = None if latency is None or isinstance(latency, (dict, list)) else str(latency)
        return data


class Quote(Wire):
    """Atlas's own price for a request (``/api/v1/model/calculate``), in dollars."""

    price: float
    origin_price: float | None = None
    estimated: bool = False  # Atlas says the final price may differ (it depends on the output)
    estimate_partial: bool = False

    @field_validator("price", "origin_price", mode="before")
    @classmethod
    def _to_number(cls, value: Any) -> float | None:
        return as_number(value)

    @field_validator("estimated", "estimate_partial", mode="before")
    @classmethod
    def _to_bool(cls, value: Any) -> bool:
        return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


class HistoryItem(Wire):
    id: str = Field(validation_alias=AliasChoices("ID", "id"))
    created_at: int | None = Field(default=None, validation_alias=AliasChoices("createdAt", "created_at"))
    model: str | None = None
    status: str | None = None
    request_body: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("requestBody", "request_body")
    )
    result: Prediction | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("created_at", mode="before")
    @classmethod
    def _epoch(cls, value: Any) -> int | None:
        """Unix seconds (or milliseconds), or an ISO 8601 time."""
        number = as_number(value)
        if number is not None:
            return int(number / 1000) if number > 1e11 else int(number)
        if isinstance(value, str):
            try:
                return int(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
            except ValueError:
                return None
        return None

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
        return value if isinstance(value, dict) else None

    @field_validator("result", mode="before")
    @classmethod
    def _empty_result(cls, value: Any) -> Any:
        return value if isinstance(value, dict) and _ids(value) else None


class HistoryPage(Wire):
    """One page of history, whichever of Atlas's spellings it comes in (``pageNo``/``page``, ``items``/``list``)."""

    items: tuple[HistoryItem, ...] = Field(default=(), validation_alias=AliasChoices("items", "list", "records"))
    page: int = Field(default=1, validation_alias=AliasChoices("pageNo", "page", "no"))
    page_size: int = Field(default=20, validation_alias=AliasChoices("pageSize", "page_size", "size"))
    total: int = 0

    @field_validator("items", mode="before")
    @classmethod
    def _no_items(cls, value: Any) -> Any:
        return () if value is None else value


class ChatUsage(Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @field_validator("prompt_tokens", "completion_tokens", mode="before")
    @classmethod
    def _count(cls, value: Any) -> int:
        number = as_number(value)
        return max(0, int(number)) if number is not None else 0


class ChatChunk(Wire):
    """One streamed piece of an OpenAI-compatible chat completion (``chat.completion.chunk``)."""

    text: str = ""
    finish_reason: str | None = None
    model: str | None = None
    usage: ChatUsage | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        choices = raw.get("choices")
        first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        # A stream carries "delta"; a whole answer read the same way carries "message".
        part = first.get("delta") or first.get("message") or {}
        content = part.get("content") if isinstance(part, dict) else None
        usage = raw.get("usage")
        return {
            "text": content if isinstance(content, str) else "",
            "finish_reason": first.get("finish_reason") or None,
            "model": raw.get("model") if isinstance(raw.get("model"), str) else None,
            "usage": usage if isinstance(usage, dict) else None,
        }


class ChatAnswer(Wire):
    """A whole chat answer: the text, why it ended, and the tokens it took (when Atlas said)."""

    text: str
    finish_reason: str | None = None
    model: str | None = None
    usage: ChatUsage | None = None
    partial: bool = False  # the answer stopped before the model finished it (finish_reason says why)
