"""The kit every tool module uses: the per-request state, our errors as tool errors, the gate in front of a paid
call, the shared argument types and annotations, and the one body every generating tool runs.

No ``from __future__ import annotations`` here: the SDK reads the resolvers' signatures (built over a tool's own
``describe`` function in :func:`gated`) at registration.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

from mcp.server.apps import client_supports_apps
from mcp.server.mcpserver import Context, Elicit, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from atlas_mcp.config import Settings
from atlas_mcp.core.choosing import ModelChoice
from atlas_mcp.core.outcome import GalleryView, Outcome
from atlas_mcp.core.requests import Prepared
from atlas_mcp.core.shown import Shown
from atlas_mcp.errors import AtlasMCPError
from atlas_mcp.server.advice import worded
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.clients import identify, wait_bound, wait_words
from atlas_mcp.server.pipeline import Consent, Decision, Gate, GenerationCall, Verdict, confirmation, open_gate, run
from atlas_mcp.server.results import render

__all__ = [
    "GENERATING",
    "LONG_RESULT",
    "MODEL_ID",
    "READING",
    "Confirm",
    "DryRun",
    "InputUrl",
    "ModelId",
    "Params",
    "RepeatAgain",
    "SkipValidation",
    "Wait",
    "as_tool_errors",
    "became_task",
    "cap_note",
    "error_result",
    "gated",
    "generate",
    "max_wait",
    "state_of",
    "view_for",
    "wait_bound_for",
    "wait_limit",
]

MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)+$"

GENERATING = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
# Claude Code moves a text-only result over 50,000 characters out of the conversation into a file, unless the
# tool raises its cap. A page of 200 models, 50 predictions with their signed URLs, a schema with hundreds of
# voices, 1,000 report rows or a long chat answer can pass that honestly; 100,000 characters is about its
# 25,000-token limit for any one result.
LONG_RESULT: dict[str, Any] = {"anthropic/maxResultSizeChars": 100_000}
READING = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)

ModelId = Annotated[str, Field(max_length=200, pattern=MODEL_ID, description="Atlas model id (see list_models).")]
Params = Annotated[
    dict[str, Any] | None,
    Field(description="Other model parameters (see get_model_info), checked against the model's schema."),
]
Wait = Annotated[bool, Field(description="Wait for the result (true) or return the prediction id at once.")]
DryRun = Annotated[
    bool,
    Field(description="Check everything and show the exact request and price without sending it (free, no key)."),
]
SkipValidation = Annotated[
    bool,
    Field(description="Send even if the model's schema cannot be read, unchecked (by default such calls are refused)."),
]
Confirm = Annotated[
    str | None,
    Field(
        max_length=200,
        description="The confirm token from a result that asked for the user's yes; only once they agreed.",
    ),
]
RepeatAgain = Annotated[
    bool,
    Field(description="Pay for another even if an identical generation was just made (else that one is returned)."),
]
InputUrl = Annotated[
    str | None,
    Field(max_length=4096, pattern=r"^https?://", description="Input image URL (use upload_media for a local file)."),
]


@contextmanager
def as_tool_errors() -> Iterator[None]:
    """Our errors become tool errors (``isError`` results the model can read and act on)."""
    try:
        yield
    except AtlasMCPError as exc:
        raise ToolError(worded(exc)) from exc


def state_of(ctx: Context) -> AppState:
    """The server's state as this call sees it: its request's copy (see ``app.py``), so over HTTP acting with the
    caller's key (or token)."""
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


def gated(
    describe: Callable[..., Any],
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two resolvers in front of a generate tool's body, built over ``describe`` (the tool's arguments ->
    :class:`GenerationCall`): the gate (check, quote, budget, repeats) and the user's confirmation.

    They are resolvers, not code in the body, because asking the user works differently in the two protocol
    eras and the MCP framework hides that: in the 2026 era the call returns with the question and runs again
    with the answer. So they only read state; the body is the only part that pays.
    """

    async def gate(ctx: Context, call: Annotated[GenerationCall, Resolve(describe)]) -> Gate:
        with as_tool_errors():
            return await open_gate(state_of(ctx), call)

    async def consent(ctx: Context, gate: Annotated[Gate, Resolve(gate)]) -> Elicit[Consent] | Verdict:
        with as_tool_errors():
            return await confirmation(ctx, state_of(ctx), gate)

    return gate, consent


def wait_bound_for(ctx: Context) -> float:
    """How long this call may wait, by who is calling (:mod:`atlas_mcp.server.clients`)."""
    params = ctx.session.client_params
    name = params.client_info.name if params is not None and params.client_info is not None else None
    return wait_bound(state_of(ctx).settings, identify(name, ctx.headers))


def wait_limit(bound: float, wait: bool, max_wait_seconds: float | None) -> float:
    """How long a call may wait: what the caller asked, within the bound; nothing when it asked not to."""
    return min(bound, bound if max_wait_seconds is None else max_wait_seconds) if wait else 0.0


TYPICAL_DURATIONS = "3D models usually take 2–5 minutes, songs minutes, videos 1–5 minutes"


def cap_note(settings: Settings, bound: float, wait: bool, max_wait_seconds: float | None) -> str | None:
    """Said in the result when the caller asked to wait longer than this server waits for it, so a long job still
    running is not mistaken for a hung one."""
    if not wait or max_wait_seconds is None or max_wait_seconds <= bound:
        return None
    why = (
        "(ATLASCLOUD_WAIT_SECONDS)"
        if settings.wait_is_set
        else "(the longest your MCP client is known to allow a call; ATLASCLOUD_WAIT_SECONDS sets it)"
    )
    return (
        f"max_wait_seconds={max_wait_seconds:g} was capped at this server's {bound:g} s {why}. "
        f"{TYPICAL_DURATIONS}: if it is still running, finish it with check_prediction."
    )


async def generate(
    ctx: Context,
    gate: Gate,
    decision: Decision,
    *,
    wait: bool,
    max_wait_seconds: float | None,
    choice: ModelChoice | None = None,
) -> CallToolResult:
    """What every generating tool's body does, once its resolvers (see :func:`gated`) have gated and confirmed the
    call: pay once, wait within the bound, and render the outcome once, with the model ``choice`` said first when
    the tool chose it (quick_generate, transcribe_audio), a note when the wait was capped, and the gallery's view."""
    state = state_of(ctx)
    bound = wait_bound_for(ctx)
    extra: dict[str, Shown] = {}
    if (view := view_for(ctx, gate.call, gate.prepared)) is not None:
        extra["view"] = view
    if choice is not None:
        extra["choice"] = choice
    note = cap_note(state.settings, bound, wait, max_wait_seconds)
    lead = choice.line() if choice else None

    def finished(outcome: Outcome | AtlasMCPError) -> CallToolResult:
        if isinstance(outcome, AtlasMCPError):
            return error_result(outcome, lead)
        return render(outcome, lead=lead, notes=[note] if note and not became_task(state) else [], extra=extra)

    if state.task_offer is not None:
        state.task_offer.finished, state.task_offer.lead = finished, lead
    try:
        with as_tool_errors():
            outcome = await run(ctx, state, gate, decision, limit=wait_limit(bound, wait, max_wait_seconds))
    except ToolError as exc:
        if lead is None:
            raise
        raise ToolError(f"{lead}\n{exc}") from exc
    return finished(outcome)


def became_task(state: AppState) -> bool:
    """Whether this call answered with a task (whose wait is not the call's: a cap note would mislead)."""
    return state.task_offer is not None and state.task_offer.created is not None


def error_result(exc: AtlasMCPError, lead: str | None = None) -> CallToolResult:
    """A tool error as the call would have answered it, for a result that is not the call's own answer (a task's)."""
    text = worded(exc)
    return CallToolResult(content=[TextContent(text=f"{lead}\n{text}" if lead else text)], is_error=True)


def max_wait(settings: Settings) -> Any:
    """The field of a tool's ``max_wait_seconds`` (``Annotated[float | None, max_wait(settings)]``): its
    description names this server's bound."""
    return Field(ge=0, le=600, description=f"Wait at most this long (capped at {wait_words(settings)}).")


def view_for(ctx: Context, call: GenerationCall, prepared: Prepared | None) -> GalleryView | None:
    """The ``view`` block, for a client that renders the gallery or cannot say whether it does; None for any
    other, and for a call without arguments to show (quick_generate's has no buttons to serve)."""
    if not call.arguments or not _may_render(ctx):
        return None
    seed = prepared.params.get("seed") if prepared is not None else None
    return GalleryView(
        tool=call.tool,
        arguments=_plain(call.arguments),
        seed=seed if isinstance(seed, int) and seed >= 0 else None,
        kind=call.kind,
    )


def _may_render(ctx: Context) -> bool:
    """Whether the client may render the gallery. A 2025-era request over stateless HTTP carries no capabilities
    at all (they went with an ``initialize`` that was another request), so a host that renders MCP Apps there
    could not say so; it still needs the block for Vary and Use as input. Every client that declared its
    capabilities gets it only if it declared Apps."""
    return ctx.client_capabilities is None or client_supports_apps(ctx)


def _plain(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in arguments.items() if value is not None}
