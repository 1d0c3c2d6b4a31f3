"""One path for every generating tool: resolve the model, check the parameters, quote, then dry-run or submit,
wait (bounded, with progress) and build the result.

The order matters for money: nothing is submitted until the model is known and its parameters passed
its schema; a schema that cannot be read stops the call unless the caller explicitly opts out. The price is
known before paying: Atlas's own quote for the exact request, or the catalogue price as an estimate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent

from atlas_mcp.addresses import is_loopback_host
from atlas_mcp.atlas import NOT_VISIBLE_YET, AtlasClient, MediaKind, ModelEntry, Prediction
from atlas_mcp.config import Settings
from atlas_mcp.errors import (
    AtlasMCPError,
    InputError,
    PaidResultError,
    PredictionFailedError,
    PredictionTimeoutError,
    SchemaUnavailableError,
)
from atlas_mcp.server.catalog import SERVER_OWNED, InputSchema, ModelCatalog, ModelDetails
from atlas_mcp.server.previews import DecodeBudget
from atlas_mcp.server.results import GenerationResult, PriceQuote, SubmitRequest, generation_result
from atlas_mcp.server.validation import describe_parameters, find_problems, normalised, safety_problems

__all__ = [
    "AppState",
    "BuildParams",
    "Prepared",
    "finish",
    "naming_the_prediction",
    "prepare",
    "price_quote",
    "submit_and_finish",
]

logger = logging.getLogger(__name__)

BuildParams = Callable[[InputSchema | None], tuple[dict[str, Any], list[str]]]
"""Turns a tool's friendly inputs into body parameters for a model (its schema, or None when unchecked)."""

_TOOL_FOR_TYPE = {"image": "generate_image", "video": "generate_video", "audio": "generate_audio"}
QUOTE_WAIT_SECONDS = 5.0  # a slow quote must not eat the generation's time: past this, the catalogue price stands
_MAX_PROBLEMS = 10  # named in one refusal; the rest are counted


@dataclass
class AppState:
    """What lives as long as the server: the settings, the one Atlas client, the cached catalogue."""

    settings: Settings
    atlas: AtlasClient
    catalog: ModelCatalog
    previews: DecodeBudget  # the memory preview decodes in flight share (each holds a full-size bitmap)


@dataclass(frozen=True)
class Prepared:
    """A checked generation request, ready to submit (or to show, for a dry run)."""

    kind: MediaKind
    model: str
    params: dict[str, Any]
    not_used: list[str]
    entry: ModelEntry | None

    def catalogue_price(self) -> float | None:
        """The list price for this request (per image for image-priced models), or None when unknown."""
        if self.entry is None or self.entry.price is None or self.entry.price.base_price is None:
            return None
        count = self.params.get("num_images", 1) if (self.entry.price.unit or "").lower() == "image" else 1
        whole = isinstance(count, int) or (isinstance(count, float) and count.is_integer())
        return round(self.entry.price.base_price * (int(count) if whole and count >= 1 else 1), 6)


async def prepare(
    state: AppState, *, kind: MediaKind, model: str, build: BuildParams, skip_validation: bool
) -> Prepared:
    """Resolve the model and check the parameters against its schema; raise before anything is paid."""
    details: ModelDetails | None
    try:
        details = await state.catalog.details(model)
    except SchemaUnavailableError as exc:
        if not skip_validation:
            raise SchemaUnavailableError(
                f"{exc}, so the parameters cannot be checked before paying. Nothing was sent. Try again in a "
                "minute, or pass skip_validation=true to send them unchecked."
            ) from exc
        logger.warning("sending unchecked parameters for %s: %s", model, exc)
        details = None
    if details is not None and details.entry.type and details.entry.type.lower() != kind:
        other = _TOOL_FOR_TYPE.get(details.entry.type.lower())
        hint = f"use {other}" if other else "it cannot be run by this server"
        raise InputError(f"{model} is a {details.entry.type} model: {hint}. Nothing was sent.")
    params, not_used = build(details.schema if details else None)
    if owned := [name for name in params if name in SERVER_OWNED]:
        reasons = "; ".join(f"{name}: {SERVER_OWNED[name]}" for name in owned)
        raise InputError(f"Not sent, nothing was spent: leave out {', '.join(owned)} ({reasons}).")
    schema = details.schema if details is not None else None
    emulator = is_loopback_host(urlsplit(state.settings.base_url).hostname or "")
    problems = safety_problems(params, schema, loopback_http=emulator)
    if schema is not None:
        problems += find_problems(params, schema)
        params = normalised(params, schema)
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        if len(problems) > _MAX_PROBLEMS:
            shown += f"; and {len(problems) - _MAX_PROBLEMS} more problems"
        takes = f" {model} takes: {describe_parameters(schema)}. Put other parameters in params." if schema else ""
        raise InputError(f"Not sent, nothing was spent: {shown}.{takes}")
    return Prepared(kind, model, params, not_used, details.entry if details else None)


async def submit_and_finish(
    ctx: Context, state: AppState, prepared: Prepared, *, limit: float, dry_run: bool
) -> CallToolResult:
    """Show the dry run, or submit once and wait up to ``limit`` seconds for the result."""
    started = time.monotonic()
    quote = await price_quote(state, prepared)
    if dry_run:
        return _dry_run_result(state.atlas, prepared, quote)
    price = f"; {quote.text()}" if quote else ""
    await ctx.report_progress(0, limit or None, f"Submitting to {prepared.model}{price}")
    prediction = await state.atlas.submit(prepared.model, prepared.params, kind=prepared.kind)
    logger.info("submitted prediction %s (%s)", prediction.id, prepared.model)
    with naming_the_prediction(prediction.id):
        return await finish(
            ctx,
            state,
            prediction,
            limit=limit,
            started=started,
            not_used=prepared.not_used,
            previews=prepared.kind == "image",
            quote=quote,
        )


@contextmanager
def naming_the_prediction(prediction_id: str) -> Iterator[None]:
    """Once Atlas has a prediction, every way out of the call names it: whatever fails while waiting for it or
    building its result, the caller can still fetch it for free instead of paying for it again.

    Our own errors that do not name it gain its id; anything else is a defect, logged here with its traceback
    and turned into an error that says what to do. Cancellation passes through untouched.
    """
    then = (
        f'Call check_prediction with prediction_id "{prediction_id}" to get the result; do not submit the '
        "generation again (that would be paid twice)."
    )
    try:
        yield
    except AtlasMCPError as exc:
        if prediction_id in str(exc):
            raise
        raise PaidResultError(f"Prediction {prediction_id} is at Atlas, but: {exc} {then}") from exc
    except Exception as exc:
        logger.exception("unexpected failure after Atlas accepted prediction %s", prediction_id)
        raise PaidResultError(
            f"Prediction {prediction_id} is at Atlas, but building its result failed ({type(exc).__name__}). {then}"
        ) from exc


async def price_quote(state: AppState, prepared: Prepared) -> PriceQuote | None:
    """Atlas's quote for exactly this request; else the catalogue price as an estimate; else None.

    Atlas's quote needs the key and a few hundred milliseconds; it is never allowed to hold the call longer
    than :data:`QUOTE_WAIT_SECONDS`, and never to fail it: a price we cannot get is not a reason to refuse.
    """
    if state.settings.api_key is not None:
        try:
            with anyio.fail_after(QUOTE_WAIT_SECONDS):
                quoted = await state.atlas.quote(prepared.model, prepared.params)
            return PriceQuote(price_usd=quoted.price, source="atlas", estimate=quoted.estimated)
        except (AtlasMCPError, TimeoutError) as exc:
            logger.info("no quote from Atlas for %s, using the catalogue price: %s", prepared.model, exc)
    listed = prepared.catalogue_price()
    return PriceQuote(price_usd=listed, source="catalogue", estimate=True) if listed is not None else None


async def finish(
    ctx: Context,
    state: AppState,
    prediction: Prediction,
    *,
    limit: float,
    started: float,
    not_used: list[str] | None = None,
    previews: bool | None = None,
    quote: PriceQuote | None = None,
) -> CallToolResult:
    """Wait (bounded, with progress) for a prediction, then build the result or raise its failure.

    ``previews`` None means "decide by the model's type": inline previews are for images only.
    """

    async def on_poll(current: Prediction, polls: int) -> None:
        elapsed = time.monotonic() - started
        status = "submitted, not visible at Atlas yet" if current.status == NOT_VISIBLE_YET else current.status
        await ctx.report_progress(elapsed, limit or None, f"{status} after {elapsed:.1f} s (poll {polls})")

    if not prediction.done and limit > 0:
        try:
            prediction = await state.atlas.wait(prediction, timeout=limit, on_poll=on_poll)
        except PredictionTimeoutError as exc:
            prediction = exc.prediction
    if prediction.phase == "failed":
        reason = prediction.error or "Atlas gave no reason"
        code = f" (Atlas error code {prediction.error_code})" if prediction.error_code else ""
        raise PredictionFailedError(
            f"Prediction {prediction.id} {prediction.status}: {reason}{code}. Nothing to show, and failed "
            "predictions are not billed; change the prompt or parameters before trying again.",
            prediction=prediction,
        )
    if prediction.done:
        if previews is None:  # only a finished prediction has outputs whose kind matters
            entry = await state.catalog.entry(prediction.model) if prediction.model else None
            previews = entry is None or (entry.type or "Image").lower() == "image"
        await ctx.report_progress(time.monotonic() - started, limit or None, "Fetching the outputs")
    return await generation_result(
        prediction,
        atlas=state.atlas,
        settings=state.settings,
        waited_seconds=time.monotonic() - started,
        not_used=not_used or [],
        previews=previews is not False,
        budget=state.previews,
        quote=quote,
    )


def _dry_run_result(atlas: AtlasClient, prepared: Prepared, quote: PriceQuote | None) -> CallToolResult:
    body = {"model": prepared.model, **prepared.params}
    request = SubmitRequest(method="POST", url=atlas.submit_url(prepared.kind), body=body)
    checked = "checked against the model's schema" if prepared.entry else "NOT checked (skip_validation)"
    lines = [
        "Dry run: nothing was sent to generate and nothing was spent.",
        f"Would send: POST {request.url}",
        json.dumps(body, indent=2, ensure_ascii=False),
        f"Parameters {checked}.",
    ]
    lines.append(f"Cost: {quote.text()}." if quote is not None else "Cost: unknown (Atlas lists no price).")
    if prepared.not_used:
        lines.append("Not used: " + "; ".join(prepared.not_used))
    lines.append("Call again without dry_run to run it.")
    result = GenerationResult(
        prediction_id=None,
        model=prepared.model,
        status="dry_run",
        phase="dry_run",
        waited_seconds=0,
        not_used=prepared.not_used,
        request=request,
        quote=quote,
        next_step="Call again without dry_run to run it (this costs money).",
    )
    return CallToolResult(
        content=[TextContent(text="\n".join(lines))], structured_content=result.model_dump(mode="json")
    )
