"""One path for every generating tool: resolve the model, check the parameters, quote, hold the budget and the
repeat guard, ask the user when the price calls for it, then dry-run or submit once; what follows the submit
(wait, settle, build the result, or hand all that to an MCP Task) is :mod:`atlas_mcp.server.waiting`'s.

The order matters for money: nothing is submitted until the model is known and its parameters passed
its schema; a schema that cannot be read stops the call unless the caller explicitly opts out. The price is
known before paying: Atlas's own quote for the exact request, or the catalogue price as an estimate. The
tools run this in two steps, because asking the user is the MCP framework's business: :func:`open_gate` and
:func:`confirmation` run as the tool's resolvers (in the 2026 era they run again when the client comes back
with the user's answer, so they only read), and :func:`run` is the tool's body, the only place that pays.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
from mcp.server.elicitation import AcceptedElicitation, CancelledElicitation, DeclinedElicitation
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from atlas_mcp.addresses import is_loopback_host
from atlas_mcp.atlas import AtlasClient, MediaKind, Prediction
from atlas_mcp.core.catalog import SERVER_OWNED, ModelDetails
from atlas_mcp.core.outcome import GenerationResult, Outcome, PriceQuote, SubmitRequest
from atlas_mcp.core.requests import BuildParams, Prepared
from atlas_mcp.core.validation import describe_parameters, find_problems, normalised, safety_problems
from atlas_mcp.errors import (
    AtlasMCPError,
    InputError,
    SchemaUnavailableError,
    SpendRefusedError,
)
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.progress import Stopwatch
from atlas_mcp.server.waiting import Paid, can_hand_off, hand_off, naming_the_prediction, remaining, wait_for
from atlas_mcp.spend.ownership import record_owner
from atlas_mcp.spend.policy import (
    CONFIRM_SECONDS,
    ConfirmationNeeded,
    Repeat,
    TokenRefused,
    dollars,
    known_price,
)

__all__ = [
    "BuildParams",
    "Consent",
    "Decision",
    "Gate",
    "GenerationCall",
    "Prepared",
    "Verdict",
    "confirmation",
    "open_gate",
    "prepare",
    "price_quote",
    "run",
]

logger = logging.getLogger(__name__)

_TOOL_FOR_TYPE = {"image": "generate_image", "video": "generate_video", "audio": "generate_audio"}
QUOTE_WAIT_SECONDS = 5.0  # a slow quote must not eat the generation's time: past this, the catalogue price stands
_MAX_PROBLEMS = 10  # named in one refusal; the rest are counted


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
    return Prepared(kind, model, params, not_used, details.entry if details else None, schema)


@dataclass(frozen=True)
class GenerationCall:
    """One call of a generate tool, gathered from its arguments: what to make, and how it may be paid for."""

    tool: str
    kind: MediaKind
    model: str
    build: BuildParams
    dry_run: bool = False
    skip_validation: bool = False
    confirm: str | None = None
    repeat: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)  # the tool's own, for the gallery's buttons


@dataclass(frozen=True)
class Gate:
    """Everything settled before paying: the checked request, its price, who pays, and whether an identical
    request was already sent. A dry run touches no state: ``payer`` is None."""

    call: GenerationCall
    prepared: Prepared
    quote: PriceQuote | None
    payer: str | None = None
    repeat_key: str | None = None
    earlier: Repeat | None = None

    @property
    def price(self) -> float | None:
        return self.quote.price_usd if self.quote is not None else None

    @property
    def price_text(self) -> str:
        """The price as the user is told it: Atlas's quote, the catalogue estimate, or that there is none."""
        return self.quote.text() if self.quote is not None else "an unknown price (Atlas lists none)"

    @property
    def reuses(self) -> bool:
        """An identical generation was sent already: this call will be answered with it, at no cost."""
        return self.earlier is not None and self.earlier.state == "sent"


class Consent(BaseModel):
    """The user's answer when asked to confirm a price."""

    pay: bool = Field(default=True, title="Pay and run it", description="Leave on to pay for this generation.")


@dataclass(frozen=True)
class Verdict:
    """What the confirmation step decided without asking anyone: go ahead, or ask for a confirmation token."""

    go: bool
    once: str | None = None  # the one-use key of a valid token the caller brought: spent when the call is sent
    reason: str | None = None  # why the caller must (again) ask the user


Decision = AcceptedElicitation[Any] | DeclinedElicitation | CancelledElicitation
"""The outcome of :func:`confirmation`, as the framework hands it to the tool: the user's :class:`Consent`, a
:class:`Verdict`, or the user's decline or cancel."""


async def open_gate(state: AppState, call: GenerationCall) -> Gate:
    """Check the request, quote it, and look at the budget and the repeat index (reads only). Raises before
    anything is paid: bad input, a schema that cannot be read, a budget that would be passed, a store that
    cannot be used."""
    prepared = await prepare(
        state, kind=call.kind, model=call.model, build=call.build, skip_validation=call.skip_validation
    )
    if call.dry_run:
        return Gate(call, prepared, await price_quote(state, prepared))
    guard = state.spend
    payer = await guard.payer(state.caller.payer_text)
    key = None if call.repeat else guard.repeat_key(payer, prepared.model, prepared.params, prepared.schema)
    earlier = await guard.earlier(key) if key is not None else None
    # An identical generation already sent answers this call at no cost: there is nothing to ask Atlas a price for.
    # (Should it leave the window before the body runs, the body treats the call as unpriced: it asks, and a budget
    # refuses it.)
    reusing = earlier is not None and earlier.state == "sent"
    quote = None if reusing else await price_quote(state, prepared)
    gate = Gate(call, prepared, quote, payer, key, earlier)
    if not gate.reuses and (problem := await guard.budget_problem(payer, gate.price)):
        raise SpendRefusedError(problem)
    return gate


async def confirmation(ctx: Context, state: AppState, gate: Gate) -> Elicit[Consent] | Verdict:
    """Whether the user must agree to this price, and how: by MCP elicitation when the client can ask, else by
    a confirmation token the assistant brings back after showing the user the price."""
    guard = state.spend
    if gate.call.dry_run or gate.reuses or not guard.needs_confirmation(gate.price):
        return Verdict(go=True)
    assert gate.payer is not None
    if gate.call.confirm is not None:
        try:
            once = await guard.check_token(gate.call.confirm, gate.payer, gate.prepared.body, gate.price)
        except TokenRefused as exc:
            return Verdict(go=False, reason=str(exc))
        return Verdict(go=True, once=once)
    if can_elicit(ctx):
        return Elicit(_question(state, gate), Consent)
    return Verdict(go=False)


def can_elicit(ctx: Context) -> bool:
    """Whether the client can be asked a form question (a bare ``elicitation: {}`` means form, per the spec),
    and this connection can carry it: in the 2026 era the question rides the call's result; before it, it is a
    request in the middle of the call, which stateless HTTP cannot send."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False
    version = ctx.protocol_version
    return ctx.session.can_send_request or (version is not None and is_version_at_least(version, "2026-07-28"))


def _question(state: AppState, gate: Gate) -> str:
    price = gate.price_text
    threshold = state.settings.confirm_above_usd
    why = (
        "You asked to confirm every generation"
        if threshold == 0
        else f"It is above your confirmation threshold of {dollars(threshold or 0)}"
    )
    return (
        f"Run {gate.prepared.model} for {gate.prepared.count()} at {price}? "
        f"{why} (ATLASCLOUD_CONFIRM_ABOVE_USD). Nothing is sent unless you accept."
    )


async def run(ctx: Context, state: AppState, gate: Gate, decision: Decision, *, limit: float) -> Outcome:
    """After the gate and the confirmation: show the dry run, report a decline, ask for a token, or buy once
    and wait up to ``limit`` seconds for the result."""
    if gate.call.dry_run:
        return _dry_run_result(state.atlas, gate.prepared, gate.quote)
    if not isinstance(decision, AcceptedElicitation):
        return _not_sent(gate, decision.action)
    answer = decision.data
    if isinstance(answer, Consent) and not answer.pay:
        return _not_sent(gate, "decline")
    if isinstance(answer, Verdict) and not answer.go:
        return await _confirmation_needed(state, gate, answer.reason)
    # The "yes" this call pays on, spent once: a confirm token's, or (2026 era) the sealed state the user's answer
    # came back with. A mid-call answer (2025 era) cannot be sent twice.
    once = answer.once if isinstance(answer, Verdict) else state.sealed_state
    confirmed = isinstance(answer, Consent) or once is not None or not state.spend.needs_confirmation(gate.price)
    try:
        return await _buy_and_finish(ctx, state, gate, limit=limit, once=once, confirmed=confirmed)
    except ConfirmationNeeded as exc:
        return await _confirmation_needed(state, gate, str(exc))


async def _buy_and_finish(
    ctx: Context, state: AppState, gate: Gate, *, limit: float, once: str | None, confirmed: bool
) -> Outcome:
    """Submit once (or take the identical earlier prediction) and wait up to ``limit`` seconds for the result; or,
    for a client that takes tasks, hand the wait to a task as soon as Atlas has the prediction."""
    assert gate.payer is not None
    watch = Stopwatch(ctx.report_progress, limit)
    prepared = gate.prepared
    guard = state.spend
    price = f"; {gate.quote.text()}" if gate.quote else ""

    async def submit() -> Prediction:
        await watch.report(f"Submitting to {prepared.model}{price}")
        return await state.atlas.submit(prepared.model, prepared.params, kind=prepared.kind)

    async def waiting(seconds: float) -> None:
        message = f"An identical generation is being sent by another call; waiting for it ({seconds:.1f} s)"
        await watch.report(message)

    purchase, prediction = await guard.buy(
        gate.payer,
        repeat_key=gate.repeat_key,
        price_usd=gate.price,
        once=once,
        confirmed=confirmed,
        submit=submit,
        waiting=waiting,
    )
    earlier = purchase.repeat_of
    if prediction is None:
        assert earlier is not None
        assert earlier.prediction_id is not None
        prediction_id = earlier.prediction_id
        logger.info("identical request: answering with prediction %s instead of paying again", prediction_id)
        said = f"an identical request sent {time.time() - earlier.at:.0f} s ago; answering with it, not paying again"
    else:
        prediction_id = prediction.id
        logger.info("submitted prediction %s (%s)", prediction_id, prepared.model)
        await record_owner(state, prediction_id)
        said = f"submitted ({prediction.status})"
    paid = Paid(
        payer=gate.payer,
        kind=prepared.kind,
        not_used=tuple(prepared.not_used),
        quote=gate.quote,
        purchase=purchase if prediction is not None else None,
        repeat=purchase if prediction is None else None,
        reused_at=earlier.at if earlier is not None else None,
    )
    with naming_the_prediction(prediction_id):
        # From here every message names the job: a call that is cancelled or times out still leaves the id with the
        # assistant, who can fetch the result (check_prediction) instead of paying for it again.
        await watch.report(f"Prediction {prediction_id}: {said}")
        if prediction is None:
            prediction = await state.atlas.get_prediction(prediction_id)
        if can_hand_off(state, prediction, limit):
            if prepared.kind == "image":  # most images are done in seconds: those are answered in the call
                prediction = await wait_for(state, prediction, limit=min(limit, IMAGE_GRACE_SECONDS), watch=watch)
            if not prediction.done:
                return await hand_off(
                    state,
                    tool=gate.call.tool,
                    prediction=prediction,
                    payer=paid.payer,
                    kind=paid.kind,
                    work=remaining(state, prediction, paid),
                    facts={"paid": paid.facts()},
                )
        return await remaining(state, prediction, paid)(watch, limit)


IMAGE_GRACE_SECONDS = 10.0  # an image a task-taking client asked for is waited for this long before it becomes one


async def price_quote(state: AppState, prepared: Prepared) -> PriceQuote | None:
    """Atlas's quote for exactly this request; else the catalogue price as an estimate; else None.

    Atlas's quote is asked with the payer's own key (:attr:`Caller.key`: the server's, or over HTTP the
    caller's), since Atlas may price the same request differently per account; it needs a few hundred
    milliseconds, and is never allowed to hold the call longer than :data:`QUOTE_WAIT_SECONDS`, nor to fail it:
    a price we cannot get is not a reason to refuse. A quote of zero or less is no price at all.
    """
    if state.caller.key is not None:
        try:
            with anyio.fail_after(QUOTE_WAIT_SECONDS):
                quoted = await state.atlas.quote(prepared.model, prepared.params)
            if known_price(quoted.price) is not None:
                return PriceQuote(price_usd=quoted.price, source="atlas", estimate=quoted.estimated)
            logger.warning("Atlas quoted %s at %s: not a price, using the catalogue's", prepared.model, quoted.price)
        except (AtlasMCPError, TimeoutError) as exc:
            logger.info("no quote from Atlas for %s, using the catalogue price: %s", prepared.model, exc)
    listed = prepared.catalogue_price()
    return PriceQuote(price_usd=listed, source="catalogue", estimate=True) if listed is not None else None


def _not_sent(gate: Gate, action: str) -> Outcome:
    """The user said no (or closed the question): nothing was sent, and the result says so plainly."""
    said = "declined" if action == "decline" else "cancelled the question"
    price = gate.price_text
    text = (
        f"Not sent: the user {said} when asked to pay {price} for {gate.prepared.count()} with "
        f"{gate.prepared.model}. Nothing was spent. Ask the user what they would like instead; do not call again "
        "unless they ask for it."
    )
    result = GenerationResult(
        prediction_id=None,
        model=gate.prepared.model,
        status="declined" if action == "decline" else "cancelled",
        phase="not_sent",
        waited_seconds=0,
        quote=gate.quote,
        next_step="Ask the user what they would like instead.",
    )
    return Outcome(result=result, text=text)


async def _confirmation_needed(state: AppState, gate: Gate, reason: str | None) -> Outcome:
    """For a client that cannot ask the user: an error that holds the price and a one-use token for it."""
    assert gate.payer is not None
    token = await state.spend.issue_token(gate.payer, gate.prepared.body, gate.price)
    price = gate.price_text
    threshold = state.settings.confirm_above_usd
    rule = (
        "every generation needs the user's go-ahead"
        if threshold == 0
        else f"generations above {dollars(threshold or 0)} need the user's go-ahead"
    )
    lines = [
        f"Not sent, nothing was spent: {gate.prepared.count()} with {gate.prepared.model} costs {price}, and {rule} "
        "(ATLASCLOUD_CONFIRM_ABOVE_USD).",
    ]
    if reason:
        lines.append(f"The confirm value given cannot be used: {reason}.")
    lines += [
        "Show the user this price and ask whether to go ahead. Only if they agree, call "
        f'{gate.call.tool} again with exactly the same arguments plus confirm="{token}".',
        f"The token is valid for {CONFIRM_SECONDS // 60} minutes, for this request at this price, once.",
    ]
    result = GenerationResult(
        prediction_id=None,
        model=gate.prepared.model,
        status="confirmation_required",
        phase="not_sent",
        waited_seconds=0,
        quote=gate.quote,
        confirm=token,
        next_step=f"Ask the user; if they agree, call {gate.call.tool} again with the same arguments and confirm.",
    )
    return Outcome(result=result, text="\n".join(lines), is_error=True)


def _dry_run_result(atlas: AtlasClient, prepared: Prepared, quote: PriceQuote | None) -> Outcome:
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
    return Outcome(result=result, text="\n".join(lines))
