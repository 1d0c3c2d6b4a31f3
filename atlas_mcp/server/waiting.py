"""After Atlas has a prediction: wait for it (bounded, with progress), settle its price, build its outcome; in the
call, or handed to a task (:mod:`atlas_mcp.server.tasks`) whose waiter does the same in the background.

Every way out of here names the prediction (:func:`naming_the_prediction`): what was paid for is never lost. A call
that returns before its prediction finished leaves a follower behind (:func:`follow`), so the price settles and
the outputs are saved once Atlas is done, whether or not anyone asks again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from atlas_mcp.atlas import NOT_VISIBLE_YET, MediaKind, Prediction
from atlas_mcp.core.outcome import GenerationResult, Outcome, PriceQuote
from atlas_mcp.core.outputs import Family, family_of, soonest_end
from atlas_mcp.errors import AtlasMCPError, PaidResultError, PredictionFailedError, PredictionTimeoutError
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.background import TASK_WAIT_SECONDS, Work
from atlas_mcp.server.progress import Stopwatch
from atlas_mcp.server.results import generation_outcome
from atlas_mcp.spend.policy import Purchase, SpendReport

__all__ = [
    "HEARTBEAT_SECONDS",
    "Bought",
    "Paid",
    "can_hand_off",
    "finish",
    "follow",
    "hand_off",
    "naming_the_prediction",
    "poll_interval_ms",
    "remaining",
    "wait_for",
    "waiting_for",
]

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 8.0  # progress at least this often while waiting (clients reset timeouts on it)


@dataclass(frozen=True)
class Bought:
    """What a call that paid for a prediction (or was answered by an identical earlier one) knows, for its result."""

    kind: MediaKind
    not_used: tuple[str, ...]
    quote: PriceQuote | None
    spend: SpendReport | None
    reused_after: float | None = None  # seconds since the identical call this one is answered with


@dataclass(frozen=True)
class Paid:
    """What a paid call knows once Atlas has its prediction, in a form a task's record keeps (:meth:`facts`): so
    the process that finishes the wait, this one or another, settles and renders it as the call would have."""

    payer: str
    kind: MediaKind
    not_used: tuple[str, ...]
    quote: PriceQuote | None
    purchase: Purchase | None = None  # this call paid: its hold on the budget, settled when Atlas has an outcome
    repeat: Purchase | None = None  # an identical earlier call paid: its repeat claim, freed should it fail
    reused_at: float | None = None  # when that earlier call was sent

    def facts(self) -> dict[str, Any]:
        def held(purchase: Purchase | None) -> dict[str, Any] | None:
            return None if purchase is None else {**asdict(purchase), "repeat_of": None}

        return {
            "payer": self.payer,
            "kind": self.kind,
            "not_used": list(self.not_used),
            "quote": self.quote.model_dump(mode="json") if self.quote is not None else None,
            "purchase": held(self.purchase),
            "repeat": held(self.repeat),
            "reused_at": self.reused_at,
        }

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any]) -> Paid:
        def held(value: Any) -> Purchase | None:
            return Purchase(**value) if isinstance(value, dict) else None

        quote = facts.get("quote")
        return cls(
            payer=str(facts["payer"]),
            kind=facts.get("kind", "image"),
            not_used=tuple(facts.get("not_used", ())),
            quote=PriceQuote.model_validate(quote) if quote is not None else None,
            purchase=held(facts.get("purchase")),
            repeat=held(facts.get("repeat")),
            reused_at=facts.get("reused_at"),
        )


def remaining(state: AppState, prediction: Prediction, paid: Paid) -> Work:
    """What is left of a paid call once Atlas has its prediction: wait, settle the price (or, for an identical
    earlier call's prediction that failed, free the request), build the outcome. Run in the call, or by a task's
    waiter in the background (in this process, or in another that took the task over)."""

    async def work(watch: Stopwatch, limit: float) -> Outcome:
        guard = state.spend
        current = prediction
        with naming_the_prediction(prediction.id):
            try:
                current = await wait_for(state, current, limit=limit, watch=watch)
            finally:
                if paid.purchase is not None:
                    with anyio.CancelScope(shield=True):
                        await guard.settle(paid.purchase, current)
            if paid.repeat is not None and current.phase == "failed":  # not billed: it may be tried again, say so
                await guard.forget_failed(paid.repeat)
                raise PredictionFailedError(
                    f"An identical request was sent {time.time() - (paid.reused_at or 0):.0f} s ago as prediction "
                    f"{current.id}, and it {current.status}: {current.error or 'Atlas gave no reason'}. It "
                    "was not billed, and this call sent nothing. Call again to send it afresh, or change the prompt "
                    "or parameters first.",
                    prediction=current,
                )
            bought = Bought(
                kind=paid.kind,
                not_used=paid.not_used,
                quote=paid.quote,
                spend=await guard.report_after_paying(paid.payer),
                reused_after=time.time() - paid.reused_at if paid.reused_at is not None else None,
            )
            if not current.done and limit > 0:  # it waited, and stopped: the result must not be lost
                follow(state, current, paid)
            return await finish(state, current, limit=0, watch=watch, bought=bought)

    return work


async def hand_off(
    state: AppState,
    *,
    tool: str,
    prediction: Prediction,
    payer: str,
    kind: str,
    work: Work,
    facts: dict[str, Any],
) -> Outcome:
    """Make the rest of the call a task (:mod:`atlas_mcp.server.tasks`): the request answers with its handle at
    once, and a waiter in the background finishes it with ``work``; ``facts`` let another process finish it the
    same way. The outcome returned here is never shown: the request answers with the offer's ``created``."""
    offer, background = state.task_offer, state.background
    assert offer is not None
    assert offer.finished is not None
    assert background is not None
    offer.created = await background.start_task(
        payer=payer,
        tool=tool,
        prediction_id=prediction.id,
        poll_ms=poll_interval_ms(kind),
        work=work,
        finished=offer.finished,
        facts={**facts, "lead": offer.lead},
        secrets_known=state.secrets,
        message=f"Prediction {prediction.id} is running at Atlas ({prediction.status}).",
    )
    result = GenerationResult(
        prediction_id=prediction.id,
        model=prediction.model or "",
        status=prediction.status,
        phase="running",
        waited_seconds=0,
    )
    return Outcome(result=result, text=f"Prediction {prediction.id} continues as task {offer.created['taskId']}.")


def can_hand_off(state: AppState, prediction: Prediction, limit: float) -> bool:
    """Whether this call may answer with a task: its client takes them (in this request), it asked to wait, and
    there is something left to wait for."""
    return state.task_offer is not None and state.background is not None and limit > 0 and not prediction.done


def waiting_for(state: AppState, prediction: Prediction) -> Work:
    """check_prediction's wait as a task's work: wait, then build the outcome (nothing to settle: it paid nothing)."""

    async def work(watch: Stopwatch, limit: float) -> Outcome:
        with naming_the_prediction(prediction.id):
            return await finish(state, prediction, limit=limit, watch=watch)

    return work


def poll_interval_ms(kind: str) -> int:
    """How often a client should ask about a task: images are quick, the rest take minutes."""
    return 2000 if kind == "image" else 5000


def follow(state: AppState, prediction: Prediction, paid: Paid) -> None:
    """A paid call that stopped waiting before its prediction finished leaves a follower behind: once Atlas is
    done, the price settles and, with an output folder set, the outputs are saved there, whether or not anyone
    asks again (a later check_prediction finds them saved under the same names)."""
    background = state.background
    if background is None or (paid.purchase is None and state.settings.output_dir is None):
        return

    async def quiet(_value: float, _total: float | None, _message: str | None) -> None:
        return None

    async def settle_and_save() -> None:
        watch = Stopwatch(quiet, None)
        current = await wait_for(state, prediction, limit=TASK_WAIT_SECONDS, watch=watch)
        if paid.purchase is not None:
            await state.spend.settle(paid.purchase, current)
        if current.phase == "succeeded" and state.settings.output_dir is not None:
            bought = Bought(kind=paid.kind, not_used=(), quote=None, spend=None)
            await finish(state, current, limit=0, watch=watch, bought=bought)

    background.follow(prediction.id, settle_and_save)


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


async def wait_for(state: AppState, prediction: Prediction, *, limit: float, watch: Stopwatch) -> Prediction:
    """Wait (bounded, with progress) until the prediction is done or ``limit`` seconds have passed since the call
    started (``watch``). Progress goes out after every poll, and from a heartbeat when a poll is slow, so a client
    that resets its timeout on progress hears from the call at least every :data:`HEARTBEAT_SECONDS`."""

    async def on_poll(current: Prediction, polls: int) -> None:
        await watch.report(f"Prediction {current.id}: {_phrase(current, watch.elapsed())}")

    if prediction.done or limit <= 0:
        return prediction
    soonest = await _soonest(state, prediction.model)
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_heartbeat, watch, prediction.id)
        try:
            prediction = await state.atlas.wait(prediction, timeout=limit, on_poll=on_poll, soonest=soonest)
        except PredictionTimeoutError as exc:
            prediction = exc.prediction
        except Exception as exc:  # raised below, as it is: not wrapped in the task group's ExceptionGroup
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return prediction


async def _soonest(state: AppState, model: str | None) -> float | None:
    """What the model's family never ends sooner than (the catalogue is cached: the call has read it already)."""
    if not model:
        return None
    entry = await state.catalog.entry(model)
    return soonest_end(family_of(model, entry.type if entry else None, entry.tags if entry else ()), model)


async def _heartbeat(watch: Stopwatch, prediction_id: str) -> None:
    while True:
        await anyio.sleep(1.0)
        if watch.quiet_for() >= HEARTBEAT_SECONDS:
            await watch.report(f"Prediction {prediction_id}: still waiting ({watch.elapsed():.0f} s)")


_WAITING_WORDS = frozenset({"created", "queued", "starting", "pending", "submitted"})


def _phrase(prediction: Prediction, elapsed: float) -> str:
    """The state in a few human words: "queued", "running 12 s", "not visible at Atlas yet"."""
    if prediction.status == NOT_VISIBLE_YET:
        return "submitted, not visible at Atlas yet"
    if prediction.status.lower() in _WAITING_WORDS:
        return f"queued ({prediction.status}), {elapsed:.0f} s"
    return f"running {elapsed:.0f} s" if prediction.phase == "running" else prediction.status


async def finish(
    state: AppState,
    prediction: Prediction,
    *,
    limit: float,
    watch: Stopwatch,
    bought: Bought | None = None,
) -> Outcome:
    """Wait (bounded, with progress) for a prediction, then build its outcome or raise its failure.

    ``bought`` is what the call that paid for it knows (check_prediction knows none of it): what kind of model it
    asked for (inline previews are for images only; without it, the model's catalogue type decides), the inputs
    not used, the quote, the spending, and whether it answers an identical earlier call.
    """
    prediction = await wait_for(state, prediction, limit=limit, watch=watch)
    if prediction.phase == "failed":
        reason = prediction.error or "Atlas gave no reason"
        code = f" (Atlas error code {prediction.error_code})" if prediction.error_code else ""
        raise PredictionFailedError(
            f"Prediction {prediction.id} {prediction.status}: {reason}{code}. Nothing to show, and failed "
            "predictions are not billed; change the prompt or parameters before trying again.",
            prediction=prediction,
        )
    family: Family = "image"
    previews = True  # (a prediction not finished has no outputs to preview)
    if not prediction.done:  # its family says how long such jobs take: best effort, the catalogue is cached
        entry = None
        with suppress(AtlasMCPError):
            entry = await state.catalog.entry(prediction.model) if prediction.model else None
        kind = entry.type if entry else (bought.kind if bought else None)
        family = family_of(prediction.model, kind, entry.tags if entry else ())
    else:  # only a finished prediction has outputs whose kind matters
        entry = await state.catalog.entry(prediction.model) if prediction.model else None
        family = family_of(prediction.model, entry.type if entry else None, entry.tags if entry else ())
        previews = (bought.kind if bought else (entry.type if entry else None) or "image").lower() == "image"
        count = len(prediction.outputs)
        fetching = f"fetching {count} output{'s' if count != 1 else ''}"
        await watch.report(f"Prediction {prediction.id}: {fetching}")
    return await generation_outcome(
        prediction,
        atlas=state.atlas,
        settings=state.settings,
        waited_seconds=watch.elapsed(),
        not_used=bought.not_used if bought else (),
        previews=previews,
        budget=state.previews,
        known=state.finished,
        quote=bought.quote if bought else None,
        reused_after=bought.reused_after if bought else None,
        spend=bought.spend if bought else None,
        family=family,
    )
