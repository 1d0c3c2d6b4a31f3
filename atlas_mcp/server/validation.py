"""Checking a generation's parameters against the model's schema before anything is paid.

A check never passes silently: every key must be one the model declares, with a value of the declared
type inside the declared enum, range, length and item rules. The messages name the parameter and the
rule, because the reader is usually a model that has to fix its own call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atlas_mcp.server.catalog import InputSchema

__all__ = ["describe_parameters", "find_problems"]

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
}


def find_problems(params: Mapping[str, Any], schema: InputSchema) -> list[str]:
    """Every way ``params`` break ``schema``; empty when they are fine."""
    problems = [f"{name} is required" for name in schema.required if params.get(name) is None]
    for name, value in params.items():
        rules = schema.properties.get(name)
        if rules is None:
            problems.append(f"{name} is not a parameter of this model")
        elif value is not None:
            problems.extend(_check_value(name, value, rules))
    return problems


def _check_value(name: str, value: Any, rules: Mapping[str, Any]) -> list[str]:
    expected = rules.get("type")
    if isinstance(expected, str) and expected in _JSON_TYPES:
        integral = expected == "integer" and isinstance(value, float) and value.is_integer()  # JSON's 2.0 is 2
        is_bool = isinstance(value, bool)
        if (expected != "boolean" and is_bool) or not (integral or isinstance(value, _JSON_TYPES[expected])):
            return [f"{name} must be {_article(expected)} {expected}, got {_json_type(value)}"]
    problems: list[str] = []
    enum = rules.get("enum")
    if isinstance(enum, list) and value not in enum:
        problems.append(f"{name} must be one of {', '.join(map(_show, enum))}; got {_show(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        minimum, maximum = rules.get("minimum"), rules.get("maximum")
        if isinstance(minimum, (int, float)) and value < minimum:
            problems.append(f"{name} must be at least {_show(minimum)}, got {_show(value)}")
        if isinstance(maximum, (int, float)) and value > maximum:
            problems.append(f"{name} must be at most {_show(maximum)}, got {_show(value)}")
    if isinstance(value, str):
        min_length, max_length = rules.get("minLength"), rules.get("maxLength")
        if isinstance(min_length, int) and len(value) < min_length:
            problems.append(f"{name} must be at least {min_length} characters long")
        if isinstance(max_length, int) and len(value) > max_length:
            problems.append(f"{name} must be at most {max_length} characters long, got {len(value)}")
    if isinstance(value, (list, tuple)):
        min_items, max_items = rules.get("minItems"), rules.get("maxItems")
        if isinstance(min_items, int) and len(value) < min_items:
            problems.append(f"{name} needs at least {min_items} items")
        if isinstance(max_items, int) and len(value) > max_items:
            problems.append(f"{name} takes at most {max_items} items, got {len(value)}")
        items = rules.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                problems.extend(_check_value(f"{name}[{index}]", item, items))
    return problems


def describe_parameters(schema: InputSchema) -> str:
    """One line per parameter: name, type, required or default, allowed values."""
    return "; ".join(_describe(name, rules, name in schema.required) for name, rules in schema.properties.items())


def _describe(name: str, rules: Mapping[str, Any], required: bool) -> str:
    facts = [str(rules.get("type", "any"))]
    if required:
        facts.append("required")
    elif "default" in rules:
        facts.append(f"default {_show(rules['default'])}")
    if isinstance(rules.get("enum"), list):
        facts.append("one of " + "/".join(map(_show, rules["enum"])))
    if "minimum" in rules or "maximum" in rules:
        facts.append(f"{_show(rules.get('minimum', '…'))}–{_show(rules.get('maximum', '…'))}")
    if isinstance(rules.get("maxLength"), int):
        facts.append(f"≤ {rules['maxLength']} chars")
    return f"{name} ({', '.join(facts)})"


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
    return "an" if word[0] in "aeiou" else "a"
