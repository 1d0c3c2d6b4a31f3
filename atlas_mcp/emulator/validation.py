"""Checks a generation request against the model's schema, the way Atlas answers 400s.

Messages name the field, the rule and the value received, because the caller reading
them is often a language model that has to fix its own call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from atlas_mcp.emulator.catalogue import (
    DEFAULT_SIZE,
    MAX_SIDE,
    MIN_SIDE,
    ModelSpec,
    ModelType,
    Param,
    find_model,
)

_SIZE = re.compile(r"(\d{1,5})\*(\d{1,5})")


class InvalidRequest(Exception):
    """A request Atlas would refuse with HTTP 400; `message` goes into the error body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Submission:
    """A validated generation request: the model and the parameters it will run with."""

    model: ModelSpec
    params: dict[str, Any]  # known keys, with schema defaults filled in
    ignored_keys: tuple[str, ...]  # keys the model does not take (accepted and unused, as Atlas does)
    width: int
    height: int
    num_outputs: int


def parse_submission(body: Any, endpoint_type: ModelType) -> Submission:
    """Turn a submit body, flat `{"model", ...}` or nested `{"model", "input": {...}}`, into a Submission."""
    if not isinstance(body, dict):
        raise InvalidRequest('request body must be a JSON object like {"model": ..., "prompt": ...}')
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidRequest("model is required: a model id such as black-forest-labs/flux-schnell")
    model = find_model(model_id)
    if model is None:
        raise InvalidRequest(f"model not found: {model_id}")
    if model.type != endpoint_type:
        where = model.endpoint or "the OpenAI-compatible /v1/chat/completions API"
        raise InvalidRequest(f"model {model_id} is a {model.type} model; send it to {where}")

    if "input" in body:
        raw = body["input"]
        if not isinstance(raw, dict):
            raise InvalidRequest("input must be a JSON object of model parameters")
    else:
        raw = {key: value for key, value in body.items() if key != "model"}
    # A "model" inside the parameters never overrides the chosen model (a billing trap on Atlas).
    raw = {key: value for key, value in raw.items() if key != "model"}
    return _validate(model, raw)


def _validate(model: ModelSpec, raw: dict[str, Any]) -> Submission:
    params: dict[str, Any] = {}
    for param in model.params:
        if param.name in raw and raw[param.name] is not None:
            params[param.name] = _check(param, raw[param.name])
        elif param.required:
            raise InvalidRequest(f"{param.name} is required: {param.description}")
        elif param.default is not None:
            params[param.name] = param.default

    known = {p.name for p in model.params}
    size_param = model.param("size")
    # Shared FLUX samples send width/height; a free-form `size` model takes them as "W*H".
    takes_free_size = size_param is not None and size_param.enum is None
    if takes_free_size and "size" not in raw and ("width" in raw or "height" in raw):
        default_w, default_h = _parse_size("size", DEFAULT_SIZE)
        params["size"] = f"{_side(raw, 'width', default_w)}*{_side(raw, 'height', default_h)}"
        known |= {"width", "height"}
    width, height = _parse_size("size", params["size"]) if size_param is not None else (0, 0)
    ignored = tuple(sorted(key for key in raw if key not in known))
    num_outputs = int(params.get("num_images", 1))
    return Submission(model, params, ignored, width, height, num_outputs)


def _check(param: Param, value: Any) -> Any:
    name = param.name
    if param.type == "boolean":
        if not isinstance(value, bool):
            raise InvalidRequest(f"{name} must be a boolean (true or false), got {_show(value)}")
    elif param.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"{name} must be an integer, got {_show(value)}")
    elif param.type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequest(f"{name} must be a number, got {_show(value)}")
    elif not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, got {_show(value)}")

    if param.enum is not None and value not in param.enum:
        allowed = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in param.enum)
        raise InvalidRequest(f"{name} must be one of {allowed}; got {_show(value)}")
    if param.minimum is not None and value < param.minimum:
        raise InvalidRequest(f"{name} must be at least {_num(param.minimum)}, got {value}")
    if param.maximum is not None and value > param.maximum:
        raise InvalidRequest(f"{name} must be at most {_num(param.maximum)}, got {value}")
    if param.max_length is not None and isinstance(value, str) and len(value) > param.max_length:
        raise InvalidRequest(f"{name} must be at most {param.max_length} characters, got {len(value)}")
    if param.required and isinstance(value, str) and not value.strip():
        raise InvalidRequest(f"{name} must not be empty")
    if param.format == "size" and param.enum is None:
        _parse_size(name, value)
    if param.format == "uri" and not value.startswith(("http://", "https://", "data:")):
        raise InvalidRequest(f"{name} must be an http(s) URL; upload local files with /api/v1/model/uploadMedia first")
    return value


def _parse_size(name: str, value: str) -> tuple[int, int]:
    match = _SIZE.fullmatch(value)
    if match is None:
        raise InvalidRequest(f"{name} must look like 'width*height', e.g. '1024*768'; got {value!r}")
    width, height = int(match[1]), int(match[2])
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise InvalidRequest(f"{name} sides must each be between {MIN_SIDE} and {MAX_SIDE} pixels; got {value!r}")
    return width, height


def _side(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{key} must be an integer number of pixels, got {_show(value)}")
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise InvalidRequest(f"{key} must be between {MIN_SIDE} and {MAX_SIDE} pixels, got {value}")
    return value


def _show(value: Any) -> str:
    """Describe a received value briefly: its JSON type and (shortened) text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        text = repr(value)
        return f"string {text if len(text) <= 60 else text[:57] + '...'}"
    return "array" if isinstance(value, list) else "object"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
