"""A task whose waiter stopped (its process was killed, or restarted): the process asked about it next waits for it
again, as the call that made it would have, and renders its result the same way (:mod:`atlas_mcp.server.tasks`)."""

from __future__ import annotations

import dataclasses
import time

from mcp_types import CallToolResult

from atlas_mcp.core.outcome import Outcome
from atlas_mcp.errors import AtlasMCPError
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.background import STALE_SECONDS, Finished, Work
from atlas_mcp.server.progress import Stopwatch
from atlas_mcp.server.results import render
from atlas_mcp.server.toolkit import error_result
from atlas_mcp.server.waiting import Paid, remaining, waiting_for
from atlas_mcp.state.tasks import TaskRecord

__all__ = ["take_over"]


async def take_over(state: AppState, record: TaskRecord) -> TaskRecord:
    """A working task whose waiter stopped writing: this process waits for it from now on (at most one process
    wins the swap), with the asking caller's key, which is its payer's."""
    background = state.background
    if background is None:
        return record
    now = time.time()

    def edit(current: TaskRecord) -> TaskRecord | None:
        if current.status != "working" or now - current.beat <= STALE_SECONDS:
            return None
        message = f"Prediction {current.prediction_id}: waiting for it again (the process that waited stopped)."
        return dataclasses.replace(current, waiter=background.name, beat=now, message=message)

    try:
        taken, changed = await background.book.change(record.task_id, edit)
    except AtlasMCPError:
        return record
    if not changed or taken is None:
        return taken or record
    background.wait_on(taken, _resumed(state, taken), _rendered(taken), state.secrets)
    return taken


def _resumed(state: AppState, record: TaskRecord) -> Work:
    """The rest of a task's work, from its record: as the call that made it would have done it."""
    paid = record.facts.get("paid")

    async def work(watch: Stopwatch, limit: float) -> Outcome:
        if paid:  # submitted when the task was made: Atlas may not show it for its first seconds
            state.atlas.submitted(record.prediction_id, model=None, seconds_ago=time.time() - record.created)
        prediction = await state.atlas.get_prediction(record.prediction_id)
        rest = remaining(state, prediction, Paid.from_facts(paid)) if paid else waiting_for(state, prediction)
        return await rest(watch, limit)

    return work


def _rendered(record: TaskRecord) -> Finished:
    lead = record.facts.get("lead")
    lead = lead if isinstance(lead, str) else None

    def finished(outcome: Outcome | AtlasMCPError) -> CallToolResult:
        if isinstance(outcome, AtlasMCPError):
            return error_result(outcome, lead)
        return render(outcome, lead=lead)

    return finished
