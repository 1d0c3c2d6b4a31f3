"""The model catalogue and each model's input schema, fetched once and cached for a while.

Many concurrent calls for the same model wait on one fetch; a failed fetch is not cached, so the next
call tries again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from atlas_mcp.atlas import AtlasClient, ModelEntry
from atlas_mcp.errors import AtlasMCPError

__all__ = ["InputSchema", "ModelCatalog"]

logger = logging.getLogger(__name__)


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
        required = tuple(str(r) for r in raw.get("required", []) if isinstance(r, str))
        return cls(properties=properties, required=required)

    def takes(self, name: str) -> bool:
        return name in self.properties


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
        models: list[ModelEntry] = await self._once("catalogue", self.atlas.list_models)
        return models

    async def entry(self, model: str) -> ModelEntry | None:
        return next((entry for entry in await self.models() if entry.model == model), None)

    async def input_schema(self, model: str) -> InputSchema | None:
        """The model's input schema, or ``None`` when the catalogue or the schema cannot be read."""

        async def fetch() -> InputSchema | None:
            entry = await self.entry(model)
            if entry is None or not entry.schema_url:
                return None
            return InputSchema.from_document(await self.atlas.get_schema(entry.schema_url))

        try:
            schema: InputSchema | None = await self._once(f"schema:{model}", fetch)
        except AtlasMCPError as exc:
            logger.info("schema of %s unavailable: %s", model, exc)
            return None
        return schema

    async def _once(self, key: str, fetch: Any) -> Any:
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached.at < self.ttl_seconds:
            return cached.value
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None and time.monotonic() - cached.at < self.ttl_seconds:
                return cached.value
            value = await fetch()
            self._cache[key] = _Cached(value, time.monotonic())
            return value
