"""Checks a generation request against the model's schema document, the way Atlas answers 400s.

The rules come from the document itself, in whatever shape it is written (``type`` as a name or a list,
``anyOf``/``oneOf``, ``nullable``; ``model`` listed in ``required`` or given a default). As on Atlas, the body's
``model`` picks the model and is never a parameter, a required property with a default is filled in, and keys
the model does not take are accepted and unused. Messages name the field, the rule and the value received,
because the caller reading them is often a language model that has to fix its own call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from atlas_mcp.emulator.catalogue import DEFAULT_SIZE, MAX_SIDE, MIN_SIDE, ModelSpec, ModelType, find_model

_SIZE = re.compile(r"(\d{1,5})\*(\d{1,5})")
_RATIO = re.compile(r"(\d{1,2}):(\d{1,2})")
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
_WORDS = {"boolean": "a boolean (true or false)", "integer": "an integer", "number": "a number", "string": "a string"}


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


def parse_submission(body: Any, endpoint_type: ModelType | None) -> Submission:
    """Turn a submit body, flat `{"model", ...}` or nested `{"model", "input": {...}}`, into a Submission.

    ``endpoint_type`` is the type the endpoint serves (generateImage: Image); None takes any (the quote).
    """
    if not isinstance(body, dict):
        raise InvalidRequest('request body must be a JSON object like {"model": ..., "prompt": ...}')
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise InvalidRequest("model is required: a model id such as black-forest-labs/flux-schnell")
    model = find_model(model_id)
    if model is None:
        raise InvalidRequest(f"model not found: {model_id}")
    if model.endpoint is None or (endpoint_type is not None and model.type != endpoint_type):
        where = model.endpoint or "the OpenAI-compatible /v1/chat/completions API"
        raise InvalidRequest(f"model {model_id} is a {model.type} model; send it to {where}")

    if "input" in body:
        raw = body["input"]
        if not isinstance(raw, dict):
            raise InvalidRequest("input must be a JSON object of model parameters")
    else:
        raw = dict(body)
    # "model" picks the model; inside the parameters it never overrides it (a billing trap on Atlas).
    raw = {key: value for key, value in raw.items() if key != "model"}
    return _validate(model, raw)


def _validate(model: ModelSpec, raw: dict[str, Any]) -> Submission:
    schema = model.input_schema
    properties: dict[str, dict[str, Any]] = {
        name: rules
        for name, rules in schema.get("properties", {}).items()
        if name != "model" and not rules.get("disabled")
    }
    required = {name for name in schema.get("required", []) if name != "model"}
    params: dict[str, Any] = {}
    for name, rules in properties.items():
        if raw.get(name) is not None:
            _check(name, raw[name], rules, required=name in required)
            params[name] = raw[name]
        elif name in required and "default" not in rules:
            raise InvalidRequest(f"{name} is required: {rules.get('description', 'see the model schema')}")
        elif rules.get("default") is not None:
            params[name] = rules["default"]
    for name in sorted(required - set(properties)):
        if raw.get(name) is None:
            raise InvalidRequest(f"{name} is required")

    known = set(properties)
    size_rules = properties.get("size")
    # Shared FLUX samples send width/height; a free-form `size` model takes them as "W*H".
    if (
        size_rules is not None
        and "enum" not in size_rules
        and "size" not in raw
        and ("width" in raw or "height" in raw)
    ):
        default_w, default_h = _parse_size("size", str(size_rules.get("default") or DEFAULT_SIZE))
        params["size"] = f"{_side(raw, 'width', default_w)}*{_side(raw, 'height', default_h)}"
        known |= {"width", "height"}
    width, height = _dimensions(params)
    ignored = tuple(sorted(key for key in raw if key not in known))
    count = params.get("num_images", model.outputs_per_run)
    return Submission(model, params, ignored, width, height, int(count) if isinstance(count, int) else 1)


def _dimensions(params: dict[str, Any]) -> tuple[int, int]:
    """The picture size a request asks for: its ``size``, else its aspect ratio on a 1024 side, else 1024²."""
    size = params.get("size")
    if isinstance(size, str) and _SIZE.fullmatch(size):
        return _parse_size("size", size)
    ratio = _RATIO.fullmatch(str(params.get("aspect_ratio", "")))
    if ratio:
        across, down = int(ratio[1]) or 1, int(ratio[2]) or 1
        scale = 1024 / max(across, down)
        return max(MIN_SIDE, round(across * scale)), max(MIN_SIDE, round(down * scale))
    return 1024, 1024


def _check(name: str, value: Any, rules: dict[str, Any], *, required: bool = False, depth: int = 0) -> None:
    """Raise InvalidRequest when ``value`` breaks ``rules``."""
    if depth > 8:
        return
    if value is None:
        if not _nullable(rules):
            raise InvalidRequest(f"{name} must not be null")
        return
    branches = [b for key in ("anyOf", "oneOf") for b in rules.get(key) or [] if isinstance(b, dict)]
    if branches:
        errors = []
        for branch in branches:
            try:
                _check(name, value, branch, depth=depth + 1)
                break
            except InvalidRequest as exc:
                errors.append(exc)
        else:
            raise errors[0]
    types = [t for t in _types(rules) if t in _TYPES]
    if types and not any(_is(value, t) for t in types):
        wanted = " or ".join(_WORDS.get(t, f"a {t}") for t in types)
        raise InvalidRequest(f"{name} must be {wanted}, got {_show(value)}")
    enum = rules.get("enum")
    if isinstance(enum, list) and value not in enum:
        allowed = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in enum)
        raise InvalidRequest(f"{name} must be one of {allowed}; got {_show(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        minimum, maximum = rules.get("minimum"), rules.get("maximum")
        if isinstance(minimum, (int, float)) and value < minimum:
            raise InvalidRequest(f"{name} must be at least {_num(minimum)}, got {value}")
        if isinstance(maximum, (int, float)) and value > maximum:
            raise InvalidRequest(f"{name} must be at most {_num(maximum)}, got {value}")
    if isinstance(value, str):
        max_length = rules.get("maxLength")
        if isinstance(max_length, int) and len(value) > max_length:
            raise InvalidRequest(f"{name} must be at most {max_length} characters, got {len(value)}")
        if required and not value.strip():
            raise InvalidRequest(f"{name} must not be empty")
        if name == "size" and "enum" not in rules:
            _parse_size(name, value)
        if (rules.get("format") == "uri" or "x-accept" in rules) and not value.startswith(
            ("http://", "https://", "data:")
        ):
            raise InvalidRequest(
                f"{name} must be an http(s) URL; upload local files with /api/v1/model/uploadMedia first"
            )
    if isinstance(value, list):
        max_items = rules.get("maxItems")
        if isinstance(max_items, int) and len(value) > max_items:
            raise InvalidRequest(f"{name} takes at most {max_items} items, got {len(value)}")
        items = rules.get("items")
        if isinstance(items, dict):
            accepting = {**items, "x-accept": rules["x-accept"]} if "x-accept" in rules else items
            for index, item in enumerate(value):
                _check(f"{name}[{index}]", item, accepting, depth=depth + 1)


def _types(rules: dict[str, Any]) -> list[str]:
    declared = rules.get("type")
    if isinstance(declared, str):
        return [declared]
    return [t for t in declared if isinstance(t, str)] if isinstance(declared, list) else []


def _nullable(rules: dict[str, Any]) -> bool:
    if rules.get("nullable") is True or "null" in _types(rules):
        return True
    branches = [b for key in ("anyOf", "oneOf") for b in rules.get(key) or [] if isinstance(b, dict)]
    return any(_nullable(branch) for branch in branches) if branches else not _types(rules)


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool):
        return type_name == "boolean"
    return isinstance(value, _TYPES[type_name])


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
