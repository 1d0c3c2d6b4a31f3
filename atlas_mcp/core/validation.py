"""Checking a generation's parameters against the model's schema before anything is paid.

A check never passes silently: every key must be one the model declares, with a value of the declared
type inside the declared enum, range, length and item rules. Schemas come in every shape the live service
writes: ``type`` as a list, ``anyOf``/``oneOf`` unions (a value that fits any branch passes), ``nullable``,
and keywords we do not know (ignored). The messages name the parameter and the rule, because the reader is
usually a model that has to fix its own call.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from atlas_mcp.addresses import is_loopback_host, is_public_address
from atlas_mcp.core.catalog import InputSchema

__all__ = ["describe_parameters", "find_problems", "is_nullable", "normalised", "safety_problems", "type_text"]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}
_MAX_DEPTH = 8  # nested items and unions; deeper rules are not checked (and cannot recurse without end)
_MAX_LISTED = 30  # parameters named in one refusal; a model with hundreds would drown the message
_MAX_NAME = 60  # characters of a caller's key shown in a message
_SIZE = re.compile(r"\s*(\d{1,6})\s*[*xX×]\s*(\d{1,6})\s*")
SIZE_SIDES = (64, 4096)  # no Atlas image model makes sides outside this: a size beyond it is a mistake, not a wish
_URL_NAMES = re.compile(r"(^|_)(image|images|mask_image|video|audio|url|urls)$|_url$|_urls$")
_TEXT_NAMES = frozenset({"prompt", "text"})


def find_problems(params: Mapping[str, Any], schema: InputSchema) -> list[str]:
    """Every way ``params`` break ``schema``; empty when they are fine."""
    problems = [f"{name} is required" for name in schema.required if params.get(name) is None]
    for name, value in params.items():
        rules = schema.properties.get(name)
        if rules is None:
            problems.append(f"{_name(name)} is not a parameter of this model")
        elif rules.get("disabled"):
            problems.append(f"{name} is disabled for this model")
        elif value is not None:
            problems.extend(_check_value(name, value, rules, 0))
    return problems


def _check_value(name: str, value: Any, rules: Mapping[str, Any], depth: int) -> list[str]:
    if depth > _MAX_DEPTH:
        return []
    if value is None:
        return [] if is_nullable(rules) else [f"{name} must not be null"]
    for keyword in ("anyOf", "oneOf"):
        branches = _branches(rules, keyword)
        if branches:
            outcomes = [_check_value(name, value, branch, depth + 1) for branch in branches]
            if all(outcomes):  # no branch takes the value
                fitting = [
                    problems for branch, problems in zip(branches, outcomes, strict=True) if _fits_type(value, branch)
                ]
                return (
                    fitting[0]
                    if fitting
                    else [f"{name} must be {type_text(rules, article=True)}, got {_json_type(value)}"]
                )
    problems: list[str] = []
    for branch in _branches(rules, "allOf"):
        problems.extend(_check_value(name, value, branch, depth + 1))
    if not _fits_type(value, rules):
        return [f"{name} must be {type_text(rules, article=True)}, got {_json_type(value)}"]
    enum = rules.get("enum")
    if isinstance(enum, list) and value not in enum:
        problems.append(f"{name} must be one of {', '.join(map(_show, enum))}; got {_show(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        minimum, maximum = rules.get("minimum"), rules.get("maximum")
        if _is_number(minimum) and value < minimum:
            problems.append(f"{name} must be at least {_show(minimum)}, got {_show(value)}")
        if _is_number(maximum) and value > maximum:
            problems.append(f"{name} must be at most {_show(maximum)}, got {_show(value)}")
    if isinstance(value, str):
        min_length, max_length = rules.get("minLength"), rules.get("maxLength")
        if _is_count(min_length) and len(value) < min_length:
            problems.append(f"{name} must be at least {min_length} characters long")
        if _is_count(max_length) and len(value) > max_length:
            problems.append(f"{name} must be at most {max_length} characters long, got {len(value)}")
    if isinstance(value, (list, tuple)):
        min_items, max_items = rules.get("minItems"), rules.get("maxItems")
        if _is_count(min_items) and len(value) < min_items:
            problems.append(f"{name} needs at least {min_items} items")
        if _is_count(max_items) and len(value) > max_items:
            problems.append(f"{name} takes at most {max_items} items, got {len(value)}")
        items = rules.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                problems.extend(_check_value(f"{name}[{index}]", item, items, depth + 1))
    return problems


def _types(rules: Mapping[str, Any]) -> list[str]:
    """The declared type names, whether ``type`` is one name or a list of them."""
    declared = rules.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [str(name) for name in declared if isinstance(name, str)]
    return []


def _branches(rules: Mapping[str, Any], keyword: str) -> list[Mapping[str, Any]]:
    branches = rules.get(keyword)
    return [branch for branch in branches if isinstance(branch, Mapping)] if isinstance(branches, list) else []


def _fits_type(value: Any, rules: Mapping[str, Any]) -> bool:
    """Whether ``value`` is of a declared type (true when no type we know is declared)."""
    known = [name for name in _types(rules) if name in _JSON_TYPES]
    if not known:
        return True
    for name in known:
        if isinstance(value, bool) and name != "boolean":
            continue
        if isinstance(value, _JSON_TYPES[name]) or (
            name == "integer" and isinstance(value, float) and value.is_integer()
        ):
            return True  # JSON's 2.0 is 2
    return False


def is_nullable(rules: Mapping[str, Any]) -> bool:
    """Whether ``null`` is a value the rules accept (``nullable``, a ``null`` type, a null branch, or no type)."""
    if rules.get("nullable") is True or "null" in _types(rules):
        return True
    branches = _branches(rules, "anyOf") + _branches(rules, "oneOf")
    if branches:
        return any(is_nullable(branch) for branch in branches)
    return not _types(rules)


def type_text(rules: Mapping[str, Any], *, article: bool = False, depth: int = 0) -> str:
    """The type in words: ``string``, ``string or null``, ``integer or 'auto'``, ``array of string``."""
    branches = _branches(rules, "anyOf") + _branches(rules, "oneOf")
    if branches and depth < _MAX_DEPTH:
        parts = [type_text(branch, article=article, depth=depth + 1) for branch in branches]
    elif isinstance(rules.get("enum"), list) and not _types(rules):
        parts = [" or ".join(map(_show, rules["enum"]))]
    else:
        parts = []
        for name in _types(rules) or ["any"]:
            word = name
            items = rules.get("items")
            if name == "array" and isinstance(items, Mapping) and depth < _MAX_DEPTH:
                word = f"array of {type_text(items, depth=depth + 1)}"
            parts.append(f"{_article(word)} {word}" if article and name not in ("null", "any") else word)
    if rules.get("nullable") is True and "null" not in parts:
        parts.append("null")
    return " or ".join(dict.fromkeys(parts))


def describe_parameters(schema: InputSchema) -> str:
    """One line per offered parameter: name, type, required or default, allowed values."""
    offered = list(schema.offered.items())
    lines = [_describe(name, rules, name in schema.required) for name, rules in offered[:_MAX_LISTED]]
    if len(offered) > _MAX_LISTED:
        lines.append(f"and {len(offered) - _MAX_LISTED} more (see get_model_info)")
    return "; ".join(lines)


def _describe(name: str, rules: Mapping[str, Any], required: bool) -> str:
    facts = [type_text(rules)]
    if required:
        facts.append("required")
    elif "default" in rules:
        facts.append(f"default {_show(rules['default'])}")
    if isinstance(rules.get("enum"), list) and _types(rules):
        facts.append("one of " + "/".join(map(_show, rules["enum"])))
    if "minimum" in rules or "maximum" in rules:
        facts.append(f"{_show(rules.get('minimum', '…'))}–{_show(rules.get('maximum', '…'))}")
    if _is_count(rules.get("maxLength")):
        facts.append(f"≤ {rules['maxLength']} chars")
    return f"{name} ({', '.join(facts)})"


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for name, types in (("boolean", (bool,)), ("integer", (int,)), ("number", (float,)), ("string", (str,))):
        if isinstance(value, types):
            return f"{name} {_show(value)}"
    return "an array" if isinstance(value, (list, tuple)) else "an object"


def _article(word: str) -> str:
    return "an" if word[:1] in tuple("aeiou") else "a"


def safety_problems(params: Mapping[str, Any], schema: InputSchema | None, *, loopback_http: bool = False) -> list[str]:
    """What must never be sent, whatever the schema says (and when it could not be read): numbers that are not
    finite, blank prompts, sizes no model makes, and URLs a model would fetch that are not public https.

    ``loopback_http`` lets ``http://127.0.0.1…`` through, for an emulator on this machine.
    """
    problems: list[str] = []
    for name, value in params.items():
        rules = schema.properties.get(name, {}) if schema is not None else {}
        if _has_non_finite(value):
            problems.append(f"{_name(name)} must be a finite number (NaN and infinities cannot be sent)")
        if name in _TEXT_NAMES and isinstance(value, str) and not value.strip():
            problems.append(f"{name} is blank; say what to make")
        if name == "size" and isinstance(value, str) and (match := _SIZE.fullmatch(value)):
            low, high = SIZE_SIDES
            if not all(low <= int(side) <= high for side in match.groups()):
                problems.append(f"size {value!r} is outside what models make: each side {low}–{high} pixels")
        if _takes_urls(name, rules):
            for url in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(url, str) and (why := _url_problem(url, loopback_http)):
                    problems.append(f"{_name(name)} {why}")
    return problems


def normalised(params: Mapping[str, Any], schema: InputSchema) -> dict[str, Any]:
    """``params`` with integral numbers given for integer parameters as integers (``num_images: 4.0`` is 4)."""
    result = dict(params)
    for name, value in params.items():
        rules = schema.properties.get(name)
        if rules is not None and isinstance(value, float) and value.is_integer() and "integer" in _all_types(rules):
            result[name] = int(value)
    return result


def _all_types(rules: Mapping[str, Any]) -> set[str]:
    branches = _branches(rules, "anyOf") + _branches(rules, "oneOf")
    return set(_types(rules)).union(*(_all_types(branch) for branch in branches)) if branches else set(_types(rules))


def _has_non_finite(value: Any, depth: int = 0) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth < _MAX_DEPTH and isinstance(value, (list, tuple)):
        return any(_has_non_finite(item, depth + 1) for item in value)
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        return any(_has_non_finite(item, depth + 1) for item in value.values())
    return False


def _takes_urls(name: str, rules: Mapping[str, Any]) -> bool:
    """Whether a parameter holds URLs Atlas will fetch: declared as such (``format: uri``, ``x-accept``) or named so."""
    items = rules.get("items")
    declared = rules.get("format") == "uri" or "x-accept" in rules
    declared = declared or (isinstance(items, Mapping) and (items.get("format") == "uri" or "x-accept" in items))
    return declared or bool(_URL_NAMES.search(name))


def _url_problem(url: str, loopback_http: bool) -> str | None:
    """Why Atlas must not be sent this URL to fetch, or None: https to a public name or address only."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return "is not a valid URL"
    if parts.scheme == "data":
        return None  # inline content, fetched from nowhere
    if parts.scheme == "http" and loopback_http and is_loopback_host(host):
        return None
    if parts.scheme != "https" or not host:
        return "must be an https URL (use upload_media for a local file)"
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return "points at a local or internal host"
    if _ip(host) is not None and not is_public_address(host):
        return "points at a private or local address"
    return None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _name(name: str) -> str:
    """A caller's key, as it may appear in a message: printable and short."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in name[:_MAX_NAME])
    return shown + ("…" if len(name) > _MAX_NAME else "")
