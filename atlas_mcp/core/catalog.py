"""The model catalogue and each model's input schema, fetched once and cached for a while.

Many concurrent calls for the same model wait on one fetch; a failed fetch is not cached, so the next
call tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from atlas_mcp.atlas import AtlasClient, ModelEntry
from atlas_mcp.errors import AtlasMCPError, InputError, SchemaUnavailableError

__all__ = ["INJECTED", "SERVER_OWNED", "InputSchema", "ModelCatalog", "ModelDetails"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


INJECTED = "model"
"""Set by this server on every request, whatever the schema says about it."""

SERVER_OWNED = {
    "enable_sync_mode": "this server waits for the result itself, with progress, within the client's time limit",
    "enable_base64_output": "this server hands back outputs as saved files and previews, not as base64 text",
}
"""Flags that would change how Atlas answers (and break our waiting or our result size), with the reason."""

_MAX_REF_DEPTH = 16
_MAX_NODES = 20_000  # a schema is small; one that expands past this through $refs is hostile or broken


@dataclass(frozen=True)
class InputSchema:
    """A model's input parameters, from ``components.schemas.Input`` of its OpenAPI document, as a caller sees them.

    The live service writes these in several shapes; here they become one:

    - ``model`` is ours to set. It may be listed in ``required`` with or without a property, or be a property
      whose default is the model's own id: either way it is dropped, never demanded nor offered.
    - A required property that has a default is not demanded: Atlas fills it in.
    - ``$ref`` is resolved within the document (bounded); ``hidden`` and ``disabled`` properties are kept for
      checking but not offered; keywords we do not know are kept and ignored.
    """

    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> InputSchema | None:
        components = document.get("components")
        schemas = components.get("schemas") if isinstance(components, dict) else None
        raw = _resolve(schemas.get("Input"), document) if isinstance(schemas, dict) else None
        if not isinstance(raw, dict) or not isinstance(raw.get("properties"), dict):
            return None
        properties = {
            str(name): rules
            for name, rules in raw["properties"].items()
            if isinstance(rules, dict) and name != INJECTED
        }
        order = raw.get("x-order-properties")
        if isinstance(order, list):  # the order Atlas wants parameters shown in
            rank = {str(name): index for index, name in enumerate(order)}
            properties = dict(sorted(properties.items(), key=lambda item: rank.get(item[0], len(rank))))
        listed = raw.get("required")
        required = tuple(
            name
            for name in (listed if isinstance(listed, list) else [])
            if isinstance(name, str) and name != INJECTED and "default" not in properties.get(name, {})
        )
        return cls(properties=properties, required=required)

    @property
    def offered(self) -> dict[str, dict[str, Any]]:
        """The parameters a caller is told about: not hidden, not disabled, not the server's own."""
        return {
            name: rules
            for name, rules in self.properties.items()
            if name not in SERVER_OWNED and not rules.get("hidden") and not rules.get("disabled")
        }

    def takes(self, name: str) -> bool:
        """Whether a caller may send ``name`` to this model (hidden ones count: Atlas takes them)."""
        rules = self.properties.get(name)
        return rules is not None and name not in SERVER_OWNED and not rules.get("disabled")


def _resolve(node: Any, document: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points at, within depth and size bounds.

    A reference that is remote, broken, cyclic or too deep becomes ``{}`` (any value): a schema must never be
    able to crash or hang a tool.
    """
    budget = [_MAX_NODES]

    def walk(value: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > _MAX_REF_DEPTH:
            return {}
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str):
                target = _pointer(document, ref)
                siblings = {k: v for k, v in value.items() if k != "$ref"}
                resolved = walk(target, depth + 1) if isinstance(target, dict) else {}
                return {**resolved, **{k: walk(v, depth + 1) for k, v in siblings.items()}}
            return {key: walk(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, depth + 1) for item in value]
        return value

    return walk(node, 0)


def _pointer(document: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        return None
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@dataclass(frozen=True)
class ModelDetails:
    entry: ModelEntry
    schema: InputSchema


@dataclass
class _Cached:
    value: Any
    at: float


@dataclass
class ModelCatalog:
    atlas: AtlasClient
    ttl_seconds: float = 600.0
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _locks: dict[str, anyio.Lock] = field(default_factory=dict)

    async def models(self) -> list[ModelEntry]:
        """The catalogue; raises the client's errors when it cannot be read."""
        return await self._once("catalogue", self.atlas.list_models)

    async def details(self, model: str) -> ModelDetails:
        """The model's catalogue entry and input schema.

        Raises :class:`InputError` for a model the catalogue does not list, and
        :class:`SchemaUnavailableError` when the catalogue or the schema cannot be read.
        """
        try:
            models = await self.models()
        except AtlasMCPError as exc:
            raise SchemaUnavailableError(f"The Atlas model catalogue could not be read ({exc})") from exc
        entry = next((candidate for candidate in models if candidate.model == model), None)
        if entry is None:
            raise InputError(f"Atlas has no model {model!r}. Call list_models to see the model ids.")
        if not entry.schema_url:
            raise SchemaUnavailableError(f"Atlas publishes no parameter schema for {model}")
        schema_url = entry.schema_url

        async def fetch() -> InputSchema | None:
            return InputSchema.from_document(await self.atlas.get_schema(schema_url))

        try:
            schema = await self._once(f"schema:{model}", fetch)
        except AtlasMCPError as exc:
            raise SchemaUnavailableError(f"The parameter schema of {model} could not be read ({exc})") from exc
        if schema is None:
            raise SchemaUnavailableError(f"The parameter schema of {model} has no readable Input section")
        return ModelDetails(entry=entry, schema=schema)

    async def entry(self, model: str) -> ModelEntry | None:
        """The model's catalogue entry, or ``None`` when it is unknown or the catalogue is unreadable."""
        try:
            return next((entry for entry in await self.models() if entry.model == model), None)
        except AtlasMCPError:
            return None

    async def _once(self, key: str, fetch: Callable[[], Awaitable[_T]]) -> _T:
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached.at < self.ttl_seconds:
            return cached.value  # type: ignore[no-any-return]
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached.at < self.ttl_seconds:
                return cached.value  # type: ignore[no-any-return]
            value = await fetch()
            self._cache[key] = _Cached(value, time.monotonic())
            return value
