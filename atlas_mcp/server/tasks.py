"""MCP Tasks (``io.modelcontextprotocol/tasks``, SEP-2663): a long generation answers with a handle at once, and the
client fetches the result when it is ready, with no time limit on the call.

- Only in the 2026 era, and only to a request whose client declared the extension in that very request (its
  ``_meta`` capabilities), as the extension requires; a legacy ``initialize`` connection never sees one.
- Only the tools that wait for Atlas (:data:`TASK_TOOLS`), and only once everything before paying has run as it
  always does (the quote, the user's confirmation, the budget, the repeat guard) and Atlas has the prediction: the
  pipeline decides (``atlas_mcp.server.pipeline.hand_off``); an image that is done within seconds is still answered
  in the call.
- Tasks live in the state store (:mod:`atlas_mcp.state.tasks`): any replica answers ``tasks/get`` for a task another
  created, and a task whose waiter died (its process was killed, or restarted) is taken over by whichever process
  is asked about it next: Atlas still has the prediction.
- A task id is bound to its payer (the budget's salted hash of the key or team token): another caller's
  ``tasks/get``, ``tasks/update`` or ``tasks/cancel`` is answered exactly as an unknown id is.
- ``tasks/cancel`` stops this server's waiting; it cannot take back what Atlas was paid, and the answer says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CallToolRequestParams, RequestParams
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict, Field

from atlas_mcp.errors import AtlasMCPError
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.background import STALE_SECONDS, TaskOffer, task_wire
from atlas_mcp.state.tasks import TaskBook, TaskRecord

__all__ = ["TASKS_EXTENSION", "TASK_TOOLS", "Tasks", "declared"]

# Advertised in server/discover only: the 2025 initialize answer has no place for extensions (the SDK drops them).
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_TOOLS = frozenset(
    {"generate_image", "generate_video", "generate_audio", "quick_generate", "transcribe_audio", "check_prediction"}
)
_NOT_FOUND = "Failed to retrieve task: Task not found (an unknown id, an expired task, or another caller's)"


class TaskParams(RequestParams):
    model_config = ConfigDict(defer_build=True)  # validated with the first tasks/* request, not built at start

    task_id: str = Field(alias="taskId", min_length=1, max_length=200)


class UpdateTaskParams(TaskParams):
    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


def declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client declared the Tasks extension, in this request, in the 2026 era."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or ctx.params is None:
        return False
    meta = ctx.params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, Mapping) else None
    extensions = capabilities.get("extensions") if isinstance(capabilities, Mapping) else None
    return isinstance(extensions, Mapping) and TASKS_EXTENSION in extensions


class Tasks(Extension):
    """The extension: ``tasks/get``, ``tasks/update``, ``tasks/cancel``, and the offer made to each tools/call."""

    identifier = TASKS_EXTENSION

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", TaskParams, self.get, protocol_versions=modern),
            MethodBinding("tasks/update", UpdateTaskParams, self.update, protocol_versions=modern),
            MethodBinding("tasks/cancel", TaskParams, self.cancel, protocol_versions=modern),
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        state = ctx.lifespan_context
        if params.name not in TASK_TOOLS or not isinstance(state, AppState) or not declared(ctx):
            return await call_next(ctx)
        offer = TaskOffer()
        offered = dataclasses.replace(ctx, lifespan_context=dataclasses.replace(state, task_offer=offer))
        result = await call_next(offered)
        return offer.created if offer.created is not None else result

    async def get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        state, record = await _owned(ctx, params.task_id)
        if record.status == "working" and time.time() - record.beat > STALE_SECONDS:
            from atlas_mcp.server.takeover import take_over  # it renders results: loaded by the first, not at start

            record = await take_over(state, record)
        return task_wire(record)

    async def update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> HandlerResult:
        await _owned(ctx, params.task_id)
        return {}  # this server's tasks never ask for input: every response is for no outstanding request

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> HandlerResult:
        state, record = await _owned(ctx, params.task_id)
        message = (
            f"Cancelled: this server stopped waiting for prediction {record.prediction_id}. Atlas may still run it "
            "and bill it (cancelling cannot take back a paid generation); check_prediction with prediction_id "
            f'"{record.prediction_id}" fetches it.'
        )

        def edit(current: TaskRecord) -> TaskRecord | None:
            return None if current.done else dataclasses.replace(current, status="cancelled", message=message)

        try:
            await _book(state).change(record.task_id, edit)
        except AtlasMCPError as exc:
            raise MCPError(code=INTERNAL_ERROR, message=f"The task could not be cancelled: {exc}") from None
        # A waiter in this process stops now; one in another process, at its next progress write.
        background = state.background
        if background is not None and (scope := background.waiting.get(record.task_id)) is not None:
            scope.cancel()
        return {}


def _book(state: AppState) -> TaskBook:
    return TaskBook(state.spend.store)


async def _owned(ctx: ServerRequestContext[Any, Any], task_id: str) -> tuple[AppState, TaskRecord]:
    """The task, if this caller may see it; else the same error an unknown id gets. Over HTTP the ``Mcp-Name``
    header, which the extension has clients set to the task id for routing, must agree with it."""
    state = ctx.lifespan_context
    if not isinstance(state, AppState):
        raise MCPError(code=INTERNAL_ERROR, message="The server is not ready")
    headers = getattr(ctx.request, "headers", None)
    routed = headers.get("mcp-name") if headers is not None else None
    if routed is not None and routed != task_id:
        raise MCPError(code=INVALID_PARAMS, message="The Mcp-Name header must equal params.taskId")
    try:
        record = await _book(state).read(task_id)
        payer = await state.spend.payer(state.payer_key)
    except AtlasMCPError as exc:
        raise MCPError(code=INTERNAL_ERROR, message=f"Tasks cannot be read now: {exc}") from None
    if record is None or record.payer != payer:
        raise MCPError(code=INVALID_PARAMS, message=_NOT_FOUND)
    return state, record
