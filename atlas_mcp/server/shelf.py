"""The tools, built before the server, with their output schemas read from a file made once instead of generated
from their models at every start (they were half of what building the server cost).

:class:`ToolShelf` has the ``tool(...)`` decorator of ``MCPServer``; the server is then made with the shelf's tools.
Each tool is the SDK's own ``Tool.from_function`` without structured output, then given its output model and that
model's schema, as the SDK lets a tool's metadata be set after it is made (its fields are read live). The schemas
are the SDK's own derivation, stored in ``output_schemas.json`` beside this module; a test keeps the file equal to
a fresh derivation, and ``uv run python -m tests.test_output_schemas`` writes it afresh.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import func_metadata
from mcp_types import CallToolResult, Icon, ToolAnnotations

__all__ = ["SCHEMAS_FILE", "ToolShelf", "derived_output_schema", "output_model_of"]

SCHEMAS_FILE = Path(__file__).with_name("output_schemas.json")

_F = TypeVar("_F", bound=Callable[..., Any])


class ToolShelf:
    """Tools in the order they are added: the order of ``tools/list``."""

    def __init__(self) -> None:
        self.tools: list[Tool] = []

    def tool(
        self,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Callable[[_F], _F]:
        def decorator(fn: _F) -> _F:
            tool = Tool.from_function(
                fn,
                name=name,
                title=title,
                description=description,
                annotations=annotations,
                icons=icons,
                meta=meta,
                structured_output=False,
            )
            model = output_model_of(fn)
            if model is not None:
                tool.fn_metadata.output_model = model
                tool.fn_metadata.output_schema = _stored()[model.__name__]
            self.tools.append(tool)
            return fn

        return decorator


def output_model_of(fn: Callable[..., Any]) -> type[Any] | None:
    """The model of a tool that returns ``Annotated[CallToolResult, Model]``; ``None`` for any other return."""
    annotation = inspect.signature(fn, eval_str=True).return_annotation
    if get_origin(annotation) is not Annotated:
        return None
    base, *extras = get_args(annotation)
    return extras[0] if base is CallToolResult and extras and isinstance(extras[0], type) else None


def derived_output_schema(model: type[Any]) -> dict[str, Any]:
    """The output schema the SDK itself derives for a tool returning ``Annotated[CallToolResult, model]``."""

    def stub() -> None: ...

    stub.__annotations__ = {"return": Annotated[CallToolResult, model]}
    schema = func_metadata(stub).output_schema
    assert schema is not None
    return schema


@cache
def _stored() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = json.loads(SCHEMAS_FILE.read_text(encoding="utf-8"))
    return loaded
