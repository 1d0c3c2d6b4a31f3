"""A client side of MCP Tasks (SEP-2663) for the tests: the Python SDK ships none, so this is the smallest one the
SDK's public extension API allows: declare the extension, claim ``resultType: "task"``, and poll ``tasks/get``.

``TasksClient()`` in ``Client(extensions=[...])`` makes a call that is answered with a task come back as the final
``CallToolResult``, polled to the end as a real client would; ``allow_claimed=True`` on ``session.call_tool`` hands
the test the task itself, and :func:`get_task`, :func:`cancel_task` the raw methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import anyio
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientSession
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import Field, TypeAdapter

TASKS = "io.modelcontextprotocol/tasks"
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class CreatedTask(Result):
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    created_at: str = Field(alias="createdAt")
    last_updated_at: str = Field(alias="lastUpdatedAt")
    ttl_ms: int | None = Field(alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskParams
    name_param = "taskId"


class CancelTask(Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskParams
    name_param = "taskId"


_ANY = TypeAdapter(dict[str, Any])


async def get_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    return await session.send_request(GetTask(params=TaskParams(taskId=task_id)), _ANY)  # type: ignore[type-var]


async def cancel_task(session: ClientSession, task_id: str) -> dict[str, Any]:
    return await session.send_request(CancelTask(params=TaskParams(taskId=task_id)), _ANY)  # type: ignore[type-var]


async def poll_task(session: ClientSession, task_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """``tasks/get`` until the task is terminal, at the interval the server asks for (at most 0.5 s in tests)."""
    with anyio.fail_after(timeout):
        while True:
            task = await get_task(session, task_id)
            if task["status"] in TERMINAL:
                return task
            await anyio.sleep(min(task.get("pollIntervalMs", 500), 500) / 1000)


class TasksClient(ClientExtension):
    """Declares the extension on every request and resolves a task into the call's final result."""

    identifier = TASKS

    def __init__(self) -> None:
        self.seen: list[CreatedTask] = []

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return (ResultClaim(result_type="task", model=CreatedTask, resolve=self._resolve),)

    async def _resolve(self, created: CreatedTask, ctx: ClaimContext) -> CallToolResult:
        self.seen.append(created)
        task = await poll_task(ctx.session, created.task_id)
        if task["status"] != "completed":
            raise RuntimeError(f"task {created.task_id} ended {task['status']}: {task.get('statusMessage')}")
        return CallToolResult.model_validate(task["result"])
