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

__all__ = ["InputSchema", "ModelCatalog", "ModelDetails"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class InputSchema:
    """A model's input parameters, from ``components.schemas.Input`` of its OpenAPI document."""

    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> InputSchema | None:
        schemas = document.get("components", {}).get("schemas", {})
        raw = schemas.get("Input") if isinstance(schemas, dict) else None
        if not isinstance(raw, dict) or not isinstance(raw.get("properties"), dict):
            return None
        properties = {str(k): v for k, v in raw["properties"].items() if isinstance(v, dict)}
        order = raw.get("x-order-properties")
        if isinstance(order, list):  # the order Atlas wants parameters shown in
            rank = {str(name): index for index, name in enumerate(order)}
            properties = dict(sorted(properties.items(), key=lambda item: rank.get(item[0], len(rank))))
        required = tuple(str(r) for r in raw.get("required", []) if isinstance(r, str))
        return cls(properties=properties, required=required)

    def takes(self, name: str) -> bool:
        return name in self.properties


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
