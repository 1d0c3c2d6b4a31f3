"""Predictions already made: check_prediction reads one (and waits for it), list_predictions lists them. Both free;
over a team token, each token sees only its own (see :mod:`atlas_mcp.spend.ownership`).

No ``from __future__ import annotations``: the SDK reads the tools' signatures at registration.
"""

from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from atlas_mcp.config import Settings
from atlas_mcp.core.outcome import GenerationResult, Outcome
from atlas_mcp.errors import AtlasMCPError
from atlas_mcp.server import icons
from atlas_mcp.server.clients import wait_words
from atlas_mcp.server.gallery import TOOL_META
from atlas_mcp.server.listing import HistoryResult, history_result
from atlas_mcp.server.progress import Stopwatch
from atlas_mcp.server.results import render
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import (
    LONG_RESULT,
    MODEL_ID,
    READING,
    as_tool_errors,
    became_task,
    cap_note,
    error_result,
    max_wait,
    state_of,
    wait_bound_for,
    wait_limit,
)
from atlas_mcp.server.waiting import can_hand_off, finish, hand_off, naming_the_prediction, waiting_for
from atlas_mcp.spend.ownership import only_owned, require_owner

__all__ = ["register_check_prediction", "register_list_predictions"]


def register_check_prediction(shelf: ToolShelf, settings: Settings) -> None:
    """Register check_prediction: a prediction's state by id, waiting for it when asked (free)."""
    bound = wait_words(settings)
    bounded = max_wait(settings)

    @shelf.tool(
        title="Check prediction",
        meta=TOOL_META,
        icons=icons.SERVER,
        description=(
            "Read a prediction's state by id (free: nothing is generated or paid), optionally waiting for it "
            f"to finish (up to {bound}). Use it with the prediction_id from a generating call that returned "
            "before it was done. Returns the same result as that call: URLs, previews, saved files (or the "
            "transcript) and price once it has finished."
        ),
        annotations=READING,
    )
    async def check_prediction(
        prediction_id: Annotated[
            str, Field(min_length=1, max_length=128, description="The prediction_id returned by a generate tool.")
        ],
        ctx: Context,
        wait: Annotated[bool, Field(description="Wait for the prediction to finish.")] = False,
        max_wait_seconds: Annotated[float | None, bounded] = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        state = state_of(ctx)
        bound = wait_bound_for(ctx)
        limit = wait_limit(bound, wait, max_wait_seconds)
        watch = Stopwatch(ctx.report_progress, limit)  # waited_seconds counts from the call, the reads included
        note = cap_note(state.settings, bound, wait, max_wait_seconds)

        def finished(outcome: Outcome | AtlasMCPError) -> CallToolResult:
            if isinstance(outcome, AtlasMCPError):
                return error_result(outcome)
            return render(outcome, notes=[note] if note and not became_task(state) else [])

        with as_tool_errors():
            await require_owner(state, prediction_id)
            prediction = await state.atlas.get_prediction(prediction_id)
            with naming_the_prediction(prediction.id):
                if state.task_offer is not None and can_hand_off(state, prediction, limit):
                    state.task_offer.finished = finished
                    payer = await state.spend.payer(state.payer_key)
                    outcome = await hand_off(
                        state,
                        tool="check_prediction",
                        prediction=prediction,
                        payer=payer,
                        kind="any",
                        work=waiting_for(state, prediction),
                        facts={},
                    )
                else:
                    outcome = await finish(state, prediction, limit=limit, watch=watch)
                return finished(outcome)


def register_list_predictions(shelf: ToolShelf, settings: Settings) -> None:
    """Register list_predictions: the caller's recent generations (free)."""

    @shelf.tool(
        title="List predictions",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "The account's recent generations, newest first (free): id, model, status, time, and the first "
            "outputs or the error. Filter by state, model or model_prefix; page through with page."
        ),
        annotations=READING,
    )
    async def list_predictions(
        ctx: Context,
        page: Annotated[int, Field(ge=1, le=10000, description="Page number, from 1.")] = 1,
        page_size: Annotated[int, Field(ge=1, le=50, description="Predictions per page.")] = 10,
        state: Annotated[
            Literal["running", "succeeded", "failed"] | None,
            Field(description="Only predictions in this state."),
        ] = None,
        model: Annotated[str | None, Field(max_length=200, pattern=MODEL_ID, description="Only this model.")] = None,
        model_prefix: Annotated[
            str | None,
            Field(
                max_length=200,
                pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
                description="Only models whose id starts with this, e.g. 'black-forest-labs/'.",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, HistoryResult]:
        app = state_of(ctx)
        with as_tool_errors():
            history = await app.atlas.list_predictions(
                page=page, size=page_size, model=model, model_prefix=model_prefix, state=state
            )
            history, hidden = await only_owned(app, history)
        listed = history_result(history)
        if hidden:
            note = "Only predictions made with your team token are listed; others on this page were left out."
            listed.content.insert(0, TextContent(text=note))
        return listed
