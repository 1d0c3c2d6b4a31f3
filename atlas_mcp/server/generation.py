"""One path for every generating tool: resolve the model, check the parameters, then dry-run or submit,
wait (bounded, with progress) and build the result.

The order matters for money: nothing is submitted until the model is known and its parameters passed
its schema; a schema that cannot be read stops the call unless the caller explicitly opts out.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent

from atlas_mcp.atlas import AtlasClient, MediaKind, ModelEntry, Prediction
from atlas_mcp.config import Settings
from atlas_mcp.errors import InputError, PredictionFailedError, PredictionTimeoutError, SchemaUnavailableError
from atlas_mcp.server.catalog import InputSchema, ModelCatalog, ModelDetails
from atlas_mcp.server.results import GenerationResult, SubmitRequest, generation_result
from atlas_mcp.server.validation import describe_parameters, find_problems

__all__ = ["AppState", "BuildParams", "Prepared", "finish", "prepare", "submit_and_finish"]

logger = logging.getLogger(__name__)

BuildParams = Callable[[InputSchema | None], tuple[dict[str, Any], list[str]]]
"""Turns a tool's friendly inputs into body parameters for a model (its schema, or None when unchecked)."""

_TOOL_FOR_TYPE = {"image": "generate_image", "video": "generate_video", "audio": "generate_audio"}


@dataclass
class AppState:
    """What lives as long as the server: the settings, the one Atlas client, the cached catalogue."""

    settings: Settings
    atlas: AtlasClient
    catalog: ModelCatalog
    previews: anyio.CapacityLimiter  # previews decoded at once (each holds a full-size bitmap)


@dataclass(frozen=True)
class Prepared:
    """A checked generation request, ready to submit (or to show, for a dry run)."""

    kind: MediaKind
    model: str
    params: dict[str, Any]
    not_used: list[str]
    entry: ModelEntry | None

    def estimated_price(self) -> float | None:
        if self.entry is None or self.entry.price is None or self.entry.price.base_price is None:
            return None
        count = self.params.get("num_images", 1) if (self.entry.price.unit or "").lower() == "image" else 1
        return round(self.entry.price.base_price * (count if isinstance(count, int) else 1), 6)


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
    if details is not None and (problems := find_problems(params, details.schema)):
        raise InputError(
            f"Not sent, nothing was spent: {'; '.join(problems)}. "
            f"{model} takes: {describe_parameters(details.schema)}. Put other parameters in params."
        )
    return Prepared(kind, model, params, not_used, details.entry if details else None)


async def submit_and_finish(
    ctx: Context, state: AppState, prepared: Prepared, *, limit: float, dry_run: bool
) -> CallToolResult:
    """Show the dry run, or submit once and wait up to ``limit`` seconds for the result."""
    if dry_run:
        return _dry_run_result(state.atlas, prepared)
    started = time.monotonic()
    await ctx.report_progress(0, limit or None, f"Submitting to {prepared.model}")
    prediction = await state.atlas.submit(prepared.model, prepared.params, kind=prepared.kind)
    logger.info("submitted prediction %s (%s)", prediction.id, prepared.model)
    return await finish(
        ctx,
        state,
        prediction,
        limit=limit,
        started=started,
        not_used=prepared.not_used,
        previews=prepared.kind == "image",
    )


async def finish(
    ctx: Context,
    state: AppState,
    prediction: Prediction,
    *,
    limit: float,
    started: float,
    not_used: list[str] | None = None,
    previews: bool | None = None,
) -> CallToolResult:
    """Wait (bounded, with progress) for a prediction, then build the result or raise its failure.

    ``previews`` None means "decide by the model's type": inline previews are for images only.
    """

    async def on_poll(current: Prediction, polls: int) -> None:
        elapsed = time.monotonic() - started
        await ctx.report_progress(elapsed, limit or None, f"{current.status} after {elapsed:.1f} s (poll {polls})")

    if not prediction.done and limit > 0:
        try:
            prediction = await state.atlas.wait(prediction, timeout=limit, on_poll=on_poll)
        except PredictionTimeoutError as exc:
            prediction = exc.prediction
    if prediction.phase == "failed":
        reason = prediction.error or "Atlas gave no reason"
        raise PredictionFailedError(
            f"Prediction {prediction.id} {prediction.status}: {reason}. Nothing to show; "
            "change the prompt or parameters before trying again.",
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
        limiter=state.previews,
    )


def _dry_run_result(atlas: AtlasClient, prepared: Prepared) -> CallToolResult:
    body = {"model": prepared.model, **prepared.params}
    request = SubmitRequest(method="POST", url=atlas.submit_url(prepared.kind), body=body)
    price = prepared.estimated_price()
    checked = "checked against the model's schema" if prepared.entry else "NOT checked (skip_validation)"
    lines = [
        "Dry run: nothing was sent and nothing was spent.",
        f"Would send: POST {request.url}",
        json.dumps(body, indent=2, ensure_ascii=False),
        f"Parameters {checked}.",
    ]
    if price is not None:
        lines.append(f"Estimated cost: ${price:.4g}.")
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
        estimated_price_usd=price,
        next_step="Call again without dry_run to run it (this costs money).",
    )
    return CallToolResult(
        content=[TextContent(text="\n".join(lines))], structured_content=result.model_dump(mode="json")
    )
