"""One call's clock and its progress notifications.

Hosts print a progress value as it comes ("— 1.6700615969994033"), and the protocol wants each value larger
than the one before. So a call's values are its seconds so far to a tenth, and a report that would repeat (or go
back on) the last value sent goes a tenth past it instead: two reports in the same tenth of a second, or a wait
reported before the submit, still count up.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

__all__ = ["Report", "Stopwatch"]

Report = Callable[[float, float | None, str | None], Awaitable[None]]
"""Where a report goes: a call's progress notifications (``ctx.report_progress``), or a task's status message."""


class Stopwatch:
    """Started with the call (or the task); ``total`` is its wait bound (None or 0: no bound to show)."""

    def __init__(self, report: Report, total: float | None) -> None:
        self._send = report
        self._total = total or None
        self._started = time.monotonic()
        self._last: float | None = None
        self._last_at = self._started

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def quiet_for(self) -> float:
        """Seconds since the last report (or the start)."""
        return time.monotonic() - self._last_at

    def next_value(self) -> float:
        """The value the next report sends: seconds so far to a tenth, always past the last one sent."""
        value = round(self.elapsed(), 1)
        if self._last is not None and value <= self._last:
            value = round(self._last + 0.1, 1)
        self._last = value
        self._last_at = time.monotonic()
        return value

    async def report(self, message: str) -> None:
        await self._send(self.next_value(), self._total, message)
