"""Results of the read-only tools: the model catalogue, one model's parameters, and the generation history."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Literal

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from atlas_mcp.atlas import HistoryPage, ModelEntry
from atlas_mcp.server.catalog import ModelDetails
from atlas_mcp.server.choosing import transcribes
from atlas_mcp.server.shown import Shown
from atlas_mcp.server.validation import is_nullable, type_text

__all__ = [
    "HistoryResult",
    "ModelInfoResult",
    "ModelsResult",
    "history_result",
    "model_info_result",
    "models_result",
]

ModelType = Literal["Image", "Video", "Audio", "Text"]


class ModelSummary(Shown):
    model: str = Field(description="The id to pass as `model`.")
    name: str | None = Field(default=None, description="Display name.")
    type: str | None = Field(default=None, description="Image, Video, Audio or Text.")
    price_usd: float | None = Field(default=None, description="Price per unit, in dollars.")
    unit: str | None = Field(default=None, description="What the price is per (image, video, request...).")
    input_price_usd: float | None = Field(default=None, description="LLMs: dollars per million prompt tokens.")
    output_price_usd: float | None = Field(default=None, description="LLMs: dollars per million answer tokens.")


class ModelsResult(Shown):
    models: list[ModelSummary] = Field(description="The matching models (at most `limit`, from `offset`).")
    total: int = Field(description="How many models matched before the limit.")
    offset: int = Field(default=0, description="How many matches were skipped before these.")
    has_more: bool = Field(default=False, description="More matches follow: call again with the next offset.")
    next_offset: int | None = Field(default=None, description="The offset of the next page, if has_more.")


class ParameterInfo(Shown):
    name: str
    type: str = Field(description="The JSON type in words: 'string', 'integer or null', 'array of string'...")
    required: bool = False
    nullable: bool = Field(default=False, description="Whether null is accepted.")
    default: Any = None
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    accepts: str | None = Field(default=None, description="Media types a URL parameter accepts (x-accept).")
    max_size_mb: float | None = Field(default=None, description="Largest file a URL parameter accepts (x-max-size-mb).")
    description: str | None = None


class ModelInfoResult(Shown):
    model: str
    name: str | None = None
    type: str | None = None
    description: str | None = None
    price_usd: float | None = None
    unit: str | None = None
    input_price_usd: float | None = None
    output_price_usd: float | None = None
    tool: str | None = Field(default=None, description="The tool that runs this model.")
    parameters: list[ParameterInfo] = Field(default_factory=list)


class HistoryEntry(Shown):
    prediction_id: str
    model: str | None = None
    status: str | None = None
    created_at: str | None = Field(default=None, description="When it was submitted (UTC, ISO 8601).")
    outputs: list[str] = Field(default_factory=list, description="Up to three output URLs.")
    error: str | None = None


class HistoryResult(Shown):
    predictions: list[HistoryEntry]
    page: int
    page_size: int
    total: int
    has_more: bool


def _summary(entry: ModelEntry) -> ModelSummary:
    price = entry.price
    return ModelSummary(
        model=entry.model,
        name=entry.display_name,
        type=entry.type,
        price_usd=price.base_price if price else None,
        unit=price.unit if price else None,
        input_price_usd=price.input_price if price else None,
        output_price_usd=price.output_price if price else None,
    )


def _price_text(summary: ModelSummary | ModelInfoResult) -> str:
    if summary.input_price_usd is not None and summary.output_price_usd is not None:
        return f"${summary.input_price_usd:.4g} in / ${summary.output_price_usd:.4g} out per 1M tokens"
    price, unit = summary.price_usd, summary.unit
    return f"${price:.4g}/{unit or 'run'}" if price is not None else "price not listed"


def models_result(entries: Sequence[ModelEntry], *, total: int, offset: int = 0) -> CallToolResult:
    end = offset + len(entries)
    more = end < total
    result = ModelsResult(
        models=[_summary(entry) for entry in entries],
        total=total,
        offset=offset,
        has_more=more,
        next_offset=end if more else None,
    )
    if not result.models:
        head = f"No model matches beyond offset {offset} (there are {total})." if total else "No model matches."
    elif offset or more:
        head = f"Models {offset + 1}–{end} of {total} matching:"
    else:
        head = f"{len(result.models)} of {total} matching models:"
    lines = [head, *(f"- {m.model} — {m.name or ''} ({m.type or '?'}, {_price_text(m)})" for m in result.models)]
    if more:
        lines.append(f"More: call list_models again with offset={end}.")
    if result.models:
        lines.append("Call get_model_info with a model id to see its parameters.")
    return _result("\n".join(lines), result)


_TOOLS = {"image": "generate_image", "video": "generate_video", "audio": "generate_audio", "text": "chat"}


def model_info_result(details: ModelDetails) -> CallToolResult:
    entry, schema = details.entry, details.schema
    parameters = [
        ParameterInfo(
            name=name,
            type=type_text(rules),
            required=name in schema.required,
            nullable=is_nullable(rules),
            default=rules.get("default"),
            enum=rules.get("enum") if isinstance(rules.get("enum"), list) else None,
            minimum=_number(rules.get("minimum")),
            maximum=_number(rules.get("maximum")),
            max_length=rules.get("maxLength") if _count(rules.get("maxLength")) else None,
            accepts=_text(rules.get("x-accept")),
            max_size_mb=_number(rules.get("x-max-size-mb")),
            description=_text(rules.get("description")),
        )
        for name, rules in schema.offered.items()
    ]
    summary = _summary(entry)
    result = ModelInfoResult(
        model=entry.model,
        name=entry.display_name,
        type=entry.type,
        description=entry.profile,
        price_usd=summary.price_usd,
        unit=summary.unit,
        input_price_usd=summary.input_price_usd,
        output_price_usd=summary.output_price_usd,
        tool="transcribe_audio" if transcribes(schema) else _TOOLS.get((entry.type or "").lower()),
        parameters=parameters,
    )
    price = _price_text(result)
    lines = [f"{entry.model} — {entry.display_name or ''} ({entry.type or '?'}, {price})"]
    if entry.profile:
        lines.append(entry.profile)
    lines.append(f"Run it with {result.tool}." if result.tool else "This server does not run models of this type.")
    lines.append("Parameters:")
    for p in parameters:
        facts = [p.type]
        if p.required:
            facts.append("required")
        elif p.default is not None:
            facts.append(f"default {p.default!r}")
        if p.enum:
            facts.append("one of " + ", ".join(map(repr, p.enum)))
        if p.minimum is not None or p.maximum is not None:
            low = "…" if p.minimum is None else _shown(p.minimum)
            high = "…" if p.maximum is None else _shown(p.maximum)
            facts.append(f"range {low}–{high}")
        if p.accepts:
            facts.append(f"a URL of {p.accepts}" + (f" up to {p.max_size_mb:g} MB" if p.max_size_mb else ""))
        lines.append(f"- {p.name} ({'; '.join(facts)}): {p.description or ''}".rstrip(": "))
    lines.append(
        "The server sets model itself, and does the waiting: enable_sync_mode and enable_base64_output are not taken."
    )
    return _result("\n".join(lines), result)


def _shown(number: float) -> str:
    """1 for 1.0, 2147483647 for 2147483647.0, 0.8 for 0.8: a bound as the schema wrote it."""
    return str(int(number)) if number.is_integer() else repr(number)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    return str(value) if value is not None else None


def history_result(page: HistoryPage) -> CallToolResult:
    entries = []
    for item in page.items:
        prediction = item.result
        created = (
            datetime.datetime.fromtimestamp(item.created_at, tz=datetime.timezone.utc).isoformat(timespec="seconds")
            if item.created_at
            else None
        )
        entries.append(
            HistoryEntry(
                prediction_id=item.id,
                model=item.model or (prediction.model if prediction else None),
                status=item.status or (prediction.status if prediction else None),
                created_at=created,
                outputs=[output.describe() for output in prediction.outputs[:3]] if prediction else [],
                error=prediction.error if prediction else None,
            )
        )
    result = HistoryResult(
        predictions=entries,
        page=page.page,
        page_size=page.page_size,
        total=page.total,
        has_more=page.page * page.page_size < page.total,
    )
    if not entries:
        return _result("No predictions on this page.", result)
    first = (page.page - 1) * page.page_size + 1
    lines = [f"Predictions {first}–{first + len(entries) - 1} of {page.total}:"]
    for entry in entries:
        detail = entry.error or (entry.outputs[0] if entry.outputs else "")
        lines.append(f"- {entry.prediction_id} · {entry.model} · {entry.status} · {entry.created_at or '?'} · {detail}")
    if result.has_more:
        lines.append(f"More: call list_predictions with page={page.page + 1}.")
    return _result("\n".join(lines), result)


def _result(text: str, structured: BaseModel) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=text)], structured_content=structured.model_dump(mode="json"))
