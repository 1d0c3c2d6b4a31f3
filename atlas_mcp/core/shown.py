"""The base of every model a tool shows its client as structured content.

Each such model is also the tool's ``outputSchema``, which every ``tools/list`` answer carries in full, once per
tool (MCP has no shared definitions across tools). The titles pydantic derives from class and field names only
repeat those names, so the schemas leave them out: about a tenth of the listing, for nothing a reader loses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Shown"]


def _without_titles(schema: dict[str, Any], model: type[Any]) -> None:
    schema.pop("title", None)
    for field in schema.get("properties", {}).values():
        field.pop("title", None)


class Shown(BaseModel):
    """A tool's structured output (see the module's note on its schema)."""

    model_config = ConfigDict(json_schema_extra=_without_titles, defer_build=True)
