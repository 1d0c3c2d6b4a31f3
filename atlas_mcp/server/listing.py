"""Results of the read-only tools: the model catalogue, one model's parameters, and the generation history."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Literal

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from atlas_mcp.atlas import HistoryPage, ModelEntry
from atlas_mcp.atlas.models import Price
from atlas_mcp.core.catalog import InputSchema
from atlas_mcp.core.choosing import transcribes
from atlas_mcp.core.shown import Shown
from atlas_mcp.core.validation import is_nullable, type_text

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
    cache_price_usd: float | None = Field(default=None, description="LLMs: dollars per million cached tokens.")
    output_image_price_usd: float | None = Field(default=None, description="Dollars per image made.")
    request_price_usd: float | None = Field(default=None, description="Dollars per request.")
    discount: float | None = Field(default=None, description="Atlas's discount factor on the list price (1: none).")
    context_length: int | None = Field(default=None, description="LLMs: the context window, in tokens.")
    max_output_tokens: int | None = Field(default=None, description="LLMs: the most tokens one answer may have.")
    strengths: list[str] = Field(default_factory=list, description="What Atlas says the model is good at.")
    use_cases: list[str] = Field(default_factory=list, description="What Atlas suggests using it for.")
    avg_latency: str | None = Field(default=None, description="Atlas's typical latency for it.")
    tool: str | None = Field(default=None, description="The tool that runs this model.")
    parameters_published: bool = Field(default=True, description="False: Atlas publishes no parameter schema.")
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


def _headline(price: Price | None) -> tuple[float | None, str | None]:
    """The one price a listing shows, and what it is per: live entries name no unit, so it follows the field."""
    if price is None:
        return None, None
    if price.base_price is not None:
        return price.base_price, price.unit
    if price.output_image_price is not None:
        return price.output_image_price, "image"
    if price.request_price is not None:
        return price.request_price, "request"
    return None, price.unit


def _summary(entry: ModelEntry) -> ModelSummary:
    price = entry.price
    headline, unit = _headline(price)
    return ModelSummary(
        model=entry.model,
        name=entry.display_name,
        type=entry.type,
        price_usd=headline,
        unit=unit,
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


def model_info_result(entry: ModelEntry, schema: InputSchema | None) -> CallToolResult:
    """One model: its parameters from ``schema``, or, for an entry Atlas publishes none for (LLMs may have none),
    what the catalogue does say: prices, context length, most output tokens, strengths."""
    parameters = [] if schema is None else _parameters(schema)
    summary, price = _summary(entry), entry.price
    tool = _TOOLS.get((entry.type or "").lower())
    result = ModelInfoResult(
        model=entry.model,
        name=entry.display_name,
        type=entry.type,
        description=entry.profile,
        price_usd=summary.price_usd,
        unit=summary.unit,
        input_price_usd=summary.input_price_usd,
        output_price_usd=summary.output_price_usd,
        cache_price_usd=price.cache_price if price else None,
        output_image_price_usd=price.output_image_price if price else None,
        request_price_usd=price.request_price if price else None,
        discount=price.discount if price else None,
        context_length=entry.context_length,
        max_output_tokens=entry.max_output_tokens,
        strengths=list(entry.strengths),
        use_cases=list(entry.use_cases),
        avg_latency=entry.avg_latency,
        tool="transcribe_audio" if schema is not None and transcribes(schema) else tool,
        parameters_published=schema is not None,
        parameters=parameters,
    )
    lines = [f"{entry.model} — {entry.display_name or ''} ({entry.type or '?'}, {_price_text(result)})"]
    lines += _catalogue_facts(result)
    if entry.profile:
        lines.append(entry.profile)
    lines.append(f"Run it with {result.tool}." if result.tool else "This server does not run models of this type.")
    if schema is None:
        lines.append("Atlas publishes no parameters for this model (its catalogue entry has no schema).")
        return _result("\n".join(lines), result)
    lines.append("Parameters:")
    lines += [_parameter_line(p) for p in parameters]
    lines.append(
        "The server sets model itself, and does the waiting: enable_sync_mode and enable_base64_output are not taken."
    )
    return _result("\n".join(lines), result)


def _catalogue_facts(result: ModelInfoResult) -> list[str]:
    """The prices beyond the headline one, and what an LLM entry says of itself."""
    prices = [
        f"${amount:.4g} {what}"
        for what, amount in (
            ("per million cached tokens", result.cache_price_usd),
            ("per image made", result.output_image_price_usd),
            ("per request", result.request_price_usd),
        )
        if amount is not None
    ]
    if result.discount is not None and result.discount != 1:
        prices.append(f"discount factor {result.discount:g}")
    lines = ["Also priced: " + ", ".join(prices)] if prices else []
    if result.context_length:
        lines.append(f"Context length: {result.context_length:,} tokens")
    if result.max_output_tokens:
        lines.append(f"Max output tokens: {result.max_output_tokens:,}")
    if result.strengths:
        lines.append("Strengths: " + ", ".join(result.strengths))
    if result.use_cases:
        lines.append("Use cases: " + ", ".join(result.use_cases))
    if result.avg_latency:
        lines.append(f"Average latency: {result.avg_latency}")
    return lines


def _parameters(schema: InputSchema) -> list[ParameterInfo]:
    return [
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


def _parameter_line(p: ParameterInfo) -> str:
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
    return f"- {p.name} ({'; '.join(facts)}): {p.description or ''}".rstrip(": ")


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
