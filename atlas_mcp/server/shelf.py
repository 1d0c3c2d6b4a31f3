"""The tools as ``tools/list`` shows them, read from cards made once, and each built on its first call.

Building a tool (the SDK's ``Tool.from_function``: its argument model, its input schema) and importing the module
that holds its body was most of what our start cost beyond the bare SDK server's (issue 26). So the server starts
with a :class:`ShelvedTool` per tool, made from its card in ``tool_cards.json``: name, title, description, input
and output schemas, annotations, icons and ``_meta``, exactly as listed. A shelved tool's first call imports its
module and builds it for real, and every call runs that.

A card depends on the settings in two places only: the default model and the wait bound, both said in descriptions
and the first also a schema default. The cards are made with :data:`MARKS`, settings whose values cannot be
mistaken for anything else, and a start puts its own values where the marks are. Tests keep the cards equal to the
tools built fresh, for several settings, and fail when any other setting starts to shape a tool; ``uv run python
-m tests.test_tool_cards`` writes the file afresh.

:class:`ToolShelf` has the ``tool(...)`` decorator of ``MCPServer`` and builds real tools: the SDK's own
``Tool.from_function`` without structured output, then given its output model and that model's schema from the
cards (the SDK lets a tool's metadata be set after it is made: its fields are read live).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_origin

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import func_metadata
from mcp_types import CallToolResult, Icon, ToolAnnotations
from pydantic import ConfigDict, PrivateAttr

from atlas_mcp.config import Settings
from atlas_mcp.server.clients import wait_words

if TYPE_CHECKING:
    from mcp.server.mcpserver.context import Context

__all__ = [
    "CARDS_FILE",
    "MARKS",
    "ShelvedTool",
    "ToolShelf",
    "derived_output_schema",
    "output_model_of",
    "shelved_tools",
]

CARDS_FILE = Path(__file__).with_name("tool_cards.json")

# The cards are made with these settings; each value appears nowhere else in a card.
MARKS = Settings(default_model="marked-default/model", wait_seconds=543.21)

_F = TypeVar("_F", bound=Callable[..., Any])


class ToolShelf:
    """Real tools in the order they are added. ``output_schema(model)``: the output schema of a tool that returns
    ``model`` (by default the cards' copy; the cards themselves are made with :func:`derived_output_schema`)."""

    def __init__(self, output_schema: Callable[[type[Any]], dict[str, Any]] | None = None) -> None:
        self.tools: list[Tool] = []
        self._output_schema = output_schema or _card_output_schema

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
                tool.fn_metadata.output_schema = self._output_schema(model)
            self.tools.append(tool)
            return fn

        return decorator


class ShelvedTool(Tool):
    """A tool listed from its card; ``build`` makes the real one (importing its module) on the first call."""

    model_config = ConfigDict(defer_build=True)  # only ever made by model_construct: no validator to build

    _build: Callable[[], Tool] = PrivateAttr()
    _built: Tool | None = PrivateAttr(default=None)
    _output_schema: dict[str, Any] | None = PrivateAttr(default=None)

    @classmethod
    def from_card(
        cls, card: dict[str, Any], output_schema: dict[str, Any] | None, build: Callable[[], Tool]
    ) -> ShelvedTool:
        annotations, icons = card.get("annotations"), card.get("icons")
        tool = cls.model_construct(
            fn=build,  # never called as the tool: run() hands each call to the built tool
            name=card["name"],
            title=card.get("title"),
            description=card["description"],
            parameters=card["inputSchema"],
            is_async=True,
            annotations=ToolAnnotations.model_validate(annotations) if annotations is not None else None,
            icons=[Icon.model_validate(icon) for icon in icons] if icons is not None else None,
            meta=card.get("_meta"),
        )
        tool._build, tool._output_schema = build, output_schema
        return tool

    @property  # the SDK's reads the argument model, which is not built yet
    def output_schema(self) -> dict[str, Any] | None:
        return self._output_schema

    @property
    def built(self) -> Tool:
        """The real tool, built on first use."""
        if self._built is None:
            self._built = self._build()
        return self._built

    async def run(self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False) -> Any:
        return await self.built.run(arguments, context, convert_result=convert_result)


def shelved_tools(settings: Settings, build: Callable[[str, ToolShelf], Tool]) -> list[Tool]:
    """Every tool in the cards' order, with ``settings``' values where the marks are; ``build(name, shelf)`` makes
    one for real on ``shelf``, which gives it its output schema from the same cards."""
    cards = _cards(settings.default_model, wait_words(settings))
    outputs: dict[str, dict[str, Any]] = cards["outputs"]

    def built(name: str) -> Tool:
        return build(name, ToolShelf(lambda model: outputs[model.__name__]))

    return [
        ShelvedTool.from_card(card, outputs.get(card.get("outputModel")), partial(built, card["name"]))
        for card in cards["tools"]
    ]


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


def _cards(default_model: str, wait: str) -> dict[str, Any]:
    """The cards with these values where the marks are, parsed afresh: each server's tools own their schemas."""
    text = _cards_text()
    for mark, value in ((MARKS.default_model, default_model), (wait_words(MARKS), wait)):
        text = text.replace(mark, json.dumps(value)[1:-1])  # as it is written inside a JSON string
    cards: dict[str, Any] = json.loads(text)
    return cards


@cache
def _cards_text() -> str:
    return CARDS_FILE.read_text(encoding="utf-8")


@cache
def _outputs() -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = json.loads(_cards_text())["outputs"]
    return outputs


def _card_output_schema(model: type[Any]) -> dict[str, Any]:
    return _outputs()[model.__name__]
