"""Long jobs' handles (MCP Tasks), kept in the state store so that any replica, or the same one after a restart,
can answer for a task another process created.

A task is one JSON record under ``task:<id>``, written with the store's atomic claim (it is new) and swap (nobody
changed it since it was read): the waiter that reports progress, a ``tasks/cancel`` and a replica taking over a
waiter that died can never overwrite each other's writes unseen. The record names its payer (the same salted hash
the budget uses), so a caller can only ever see its own tasks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from atlas_mcp.state.base import StateStore

__all__ = ["TERMINAL", "TaskBook", "TaskRecord", "TaskStatus"]

TaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
_PREFIX = "task:"
_TRIES = 8  # swaps lost in a row to other writers before giving up (each loser re-reads; the others are few)


@dataclass(frozen=True)
class TaskRecord:
    """One task as the store holds it. Times are epoch seconds; ``beat`` is when its waiter last wrote."""

    task_id: str
    payer: str
    tool: str
    prediction_id: str
    created: float
    updated: float
    ttl_seconds: float
    poll_ms: int
    status: TaskStatus = "working"
    message: str | None = None
    result: dict[str, Any] | None = None  # the tool's result, as the call would have answered it
    waiter: str = ""  # the process that waits for it
    beat: float = 0.0
    # What a process taking over needs to finish it as the creator would have: how the result is rendered and
    # which budget entry the price settles. JSON-ready values only.
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def encode(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, raw: str) -> TaskRecord | None:
        try:
            data = json.loads(raw)
            return cls(**data) if isinstance(data, dict) else None
        except (TypeError, ValueError):
            return None


class TaskBook:
    """Tasks over a :class:`StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def create(self, record: TaskRecord) -> None:
        """Write a new task; it can be read (by any process on the store) when this returns."""
        key, ttl = _PREFIX + record.task_id, record.ttl_seconds
        held = await self.store.claim(key, record.encode(), ttl=ttl, now=time.time())
        if held is not None:  # 192 random bits collided: not in this universe, but never overwrite a task
            raise RuntimeError("task id already in use")

    async def read(self, task_id: str) -> TaskRecord | None:
        raw = await self.store.peek(_PREFIX + task_id, now=time.time())
        return TaskRecord.decode(raw) if raw is not None else None

    async def change(
        self, task_id: str, edit: Callable[[TaskRecord], TaskRecord | None]
    ) -> tuple[TaskRecord | None, bool]:
        """Apply ``edit`` atomically: read, edit, swap, again if another writer came first. ``edit`` returns None
        to leave the record as it is. Returns the record as it now stands (None: no such task) and whether this
        call changed it."""
        key = _PREFIX + task_id
        for _ in range(_TRIES):
            now = time.time()
            raw = await self.store.peek(key, now=now)
            record = TaskRecord.decode(raw) if raw is not None else None
            if raw is None or record is None:
                return None, False
            edited = edit(record)
            if edited is None:
                return record, False
            edited = replace(edited, updated=now)
            left = max(record.created + record.ttl_seconds - now, 1.0)
            if await self.store.swap(key, raw, edited.encode(), ttl=left, now=now):
                return edited, True
        return await self.read(task_id), False
