"""Work that outlives the call that started it: the waiters behind MCP Tasks, and the followers that finish what a
call stopped waiting for.

Both run in one task group the server's lifespan owns (so they end with the server, never with a request), with
the request's own view of the state: the same Atlas key, the same payer. A waiter's progress is its task's status
message, written to the state store, and each write is also its heartbeat: a task whose waiter stopped writing (its
process died) is taken over by whichever process is asked about it next (:mod:`atlas_mcp.server.tasks`).

A follower is a waiter nobody is told about: a call that returned "still running" leaves one behind, so that once
Atlas finishes, the outputs are saved to the output folder and the price settles, whether or not anyone asks again.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from atlas_mcp.errors import AtlasMCPError
from atlas_mcp.redaction import without_secrets
from atlas_mcp.server.progress import Stopwatch
from atlas_mcp.state import StateStore
from atlas_mcp.state.tasks import TaskBook, TaskRecord

if TYPE_CHECKING:
    from mcp_types import CallToolResult

    from atlas_mcp.core.outcome import Outcome

__all__ = [
    "FOLLOWERS_AT_ONCE",
    "STALE_SECONDS",
    "TASK_TTL_SECONDS",
    "TASK_WAIT_SECONDS",
    "Background",
    "Finished",
    "TaskOffer",
    "Work",
    "task_wire",
]

logger = logging.getLogger(__name__)

TASK_WAIT_SECONDS = 3600.0  # a task waits this long for Atlas; then it completes with "still running" and the id
TASK_TTL_SECONDS = 24 * 3600.0  # a task is kept this long after it was created, then forgotten
STALE_SECONDS = 30.0  # a working task whose waiter has not written for this long has lost its waiter
BEAT_SECONDS = 2.0  # progress is written to the store at most this often (the heartbeat reports every 8 s)
LET_GO_SECONDS = 3.0  # a stopping server spends at most this long handing its tasks over
FOLLOWERS_AT_ONCE = 64  # predictions followed after their call returned, per process

Work = Callable[[Stopwatch, float], Awaitable["Outcome"]]
"""What is left of a paid call once Atlas has its prediction: wait (within the given seconds), settle, build."""

Finished = Callable[["Outcome | AtlasMCPError"], "CallToolResult"]
"""How the tool that made the task renders what its work ended with, a result or the error it would have raised."""


@dataclass
class TaskOffer:
    """The permission, per request, to answer with a task: made only for a ``tools/call`` whose client declared the
    extension in that very request (2026 era). The tool says how its result is rendered (``finished``), the pipeline
    hands the work over, and :attr:`created` is the ``CreateTaskResult`` the request then answers with."""

    finished: Finished | None = None
    lead: str | None = None  # said first in the result (a model the tool chose), also by a process taking it over
    created: dict[str, Any] | None = None


def iso(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_wire(record: TaskRecord) -> dict[str, Any]:
    """A task as the extension puts it on the wire (``tasks/get``; plus ``resultType: "task"`` when created)."""
    wire: dict[str, Any] = {
        "taskId": record.task_id,
        "status": record.status,
        "createdAt": iso(record.created),
        "lastUpdatedAt": iso(record.updated),
        "ttlMs": int(record.ttl_seconds * 1000),
        "pollIntervalMs": record.poll_ms,
    }
    if record.message:
        wire["statusMessage"] = record.message
    if record.status == "completed" and record.result is not None:
        wire["result"] = record.result
    if record.status == "failed":
        wire["error"] = {"code": -32603, "message": record.message or "The task failed"}
    return wire


@dataclass
class Background:
    """The lifespan's task group and this process's name in the task records."""

    store: StateStore
    group: anyio.abc.TaskGroup
    name: str = field(default_factory=lambda: secrets.token_hex(6))
    following: set[str] = field(default_factory=set)  # predictions this process's followers follow
    waiting: dict[str, anyio.CancelScope] = field(default_factory=dict)  # task id -> its waiter here

    @property
    def book(self) -> TaskBook:
        return TaskBook(self.store)

    async def start_task(
        self,
        *,
        payer: str,
        tool: str,
        prediction_id: str,
        poll_ms: int,
        work: Work,
        finished: Finished,
        facts: dict[str, Any],
        secrets_known: list[str],
        message: str,
    ) -> dict[str, Any]:
        """Create the task (durably: any process on the store can read it when this returns), start its waiter,
        and return the ``CreateTaskResult``."""
        now = time.time()
        record = TaskRecord(
            task_id=secrets.token_urlsafe(24),
            payer=payer,
            tool=tool,
            prediction_id=prediction_id,
            created=now,
            updated=now,
            ttl_seconds=TASK_TTL_SECONDS,
            poll_ms=poll_ms,
            message=message,
            waiter=self.name,
            beat=now,
            facts=facts,
        )
        await self.book.create(record)
        self.wait_on(record, work, finished, secrets_known)
        return {"resultType": "task", **task_wire(record)}

    def wait_on(self, record: TaskRecord, work: Work, finished: Finished, secrets_known: list[str]) -> None:
        """Run ``work`` for ``record`` in the background, and store what it ends with as the task's result."""
        self.group.start_soon(self._wait, record, work, finished, secrets_known, name=f"task {record.task_id[:8]}")

    async def _wait(self, record: TaskRecord, work: Work, finished: Finished, secrets_known: list[str]) -> None:
        task_id = record.task_id
        last_write = 0.0

        async def report(_value: float, _total: float | None, message: str | None) -> None:
            nonlocal last_write
            if time.monotonic() - last_write < BEAT_SECONDS or not message:
                return
            last_write = time.monotonic()
            if not await self._progress(task_id, message):
                scope.cancel()  # cancelled, or another process took it over: stop waiting here

        with anyio.CancelScope() as scope:
            self.waiting[task_id] = scope
            try:
                try:
                    outcome: Outcome | AtlasMCPError = await work(Stopwatch(report, None), TASK_WAIT_SECONDS)
                except AtlasMCPError as exc:
                    outcome = exc
                result = finished(outcome).model_dump(by_alias=True, mode="json", exclude_none=True)
                await self._complete(task_id, _scrubbed(result, secrets_known))
            except anyio.get_cancelled_exc_class():
                raise
            except Exception:  # a defect: the task must not stay "working" with nobody behind it
                logger.exception("the waiter of task %s failed", task_id)
                await self._complete(task_id, None, failure=record.prediction_id)
            finally:
                self.waiting.pop(task_id, None)

    async def _progress(self, task_id: str, message: str) -> bool:
        """Write a progress message (and so a heartbeat); False when this process should stop waiting."""

        def edit(record: TaskRecord) -> TaskRecord | None:
            if record.done or record.waiter != self.name:
                return None
            return replace(record, message=message, beat=time.time())

        try:
            record, changed = await self.book.change(task_id, edit)
        except AtlasMCPError:
            logger.warning("could not write task %s's progress; still waiting", task_id)
            return True
        return changed or (record is not None and not record.done and record.waiter == self.name)

    async def _complete(self, task_id: str, result: dict[str, Any] | None, *, failure: str | None = None) -> None:
        def edit(record: TaskRecord) -> TaskRecord | None:
            if record.done:
                return None
            if result is not None:
                return replace(record, status="completed", result=result, message="Finished.", beat=time.time())
            return replace(
                record,
                status="failed",
                message=(
                    f"This server failed while waiting for prediction {failure}; Atlas still has it. Call "
                    f'check_prediction with prediction_id "{failure}" to get the result (do not generate again).'
                ),
            )

        with anyio.CancelScope(shield=True):
            try:
                await self.book.change(task_id, edit)
            except AtlasMCPError:
                logger.warning("could not store task %s's result; another process will finish it", task_id)

    async def let_go(self) -> None:
        """On the way out: this process's tasks are left for the next process asked about them to take over at
        once (their waiters end with this process; Atlas still has the predictions)."""

        def edit(record: TaskRecord) -> TaskRecord | None:
            return None if record.done or record.waiter != self.name else replace(record, beat=0.0)

        with anyio.CancelScope(shield=True), anyio.move_on_after(LET_GO_SECONDS):
            for task_id in list(self.waiting):
                try:
                    await self.book.change(task_id, edit)
                except AtlasMCPError:
                    logger.warning(
                        "could not hand task %s over; another process takes it in %g s", task_id, STALE_SECONDS
                    )

    def follow(self, prediction_id: str, work: Callable[[], Awaitable[object]]) -> None:
        """Follow a prediction a call stopped waiting for, once per process, within :data:`FOLLOWERS_AT_ONCE`."""
        if prediction_id in self.following:
            return
        if len(self.following) >= FOLLOWERS_AT_ONCE:
            logger.info("not following prediction %s: %d are followed already", prediction_id, len(self.following))
            return
        self.following.add(prediction_id)
        self.group.start_soon(self._follow, prediction_id, work, name=f"follow {prediction_id}")

    async def _follow(self, prediction_id: str, work: Callable[[], Awaitable[object]]) -> None:
        try:
            await work()
            logger.info("prediction %s finished after its call returned: settled, outputs saved", prediction_id)
        except AtlasMCPError as exc:
            logger.info("prediction %s, followed after its call returned: %s", prediction_id, exc)
        except Exception:
            logger.exception("following prediction %s failed", prediction_id)
        finally:
            self.following.discard(prediction_id)


def _scrubbed(value: Any, known: list[str]) -> Any:
    """No secret this request knows is stored in a task's result (the outgoing middleware would hide it anyway)."""
    if isinstance(value, str):
        return without_secrets(value, known)
    if isinstance(value, dict):
        return {key: _scrubbed(item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item, known) for item in value]
    return value
