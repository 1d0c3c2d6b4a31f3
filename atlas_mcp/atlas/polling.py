"""When to look at a running prediction: :class:`PollPolicy`, steered by what is known (:class:`Durations`).

A prediction that ends at ``T`` is seen by the first poll at or after ``T``; the user waits that long plus the
finish (download, save, preview). Polling often keeps that lag small and costs requests; polling rarely is cheap
and late. What settles it is knowing when the job will end:

- a model this process has run before ended no sooner than its recent runs did, so there is nothing to see
  before then: one early look (a fast failure), then nothing until the earliest of those runs, then dense polling;
- a family that always takes minutes (video, 3D, songs) is treated the same way, from its usual shortest time;
- with nothing known, the interval grows with the time already waited, so the lag stays a share of the job's
  length and the number of polls grows only logarithmically with it.

Atlas's ``Retry-After`` on a read, when it sends one, is honoured as the least delay before the next.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

__all__ = ["Durations", "PollPolicy"]

_MODELS_KEPT = 256  # models whose recent durations are remembered, least recently run forgotten first
_RUNS_KEPT = 8  # durations kept per model
_EARLIEST_SHARE = 0.85  # dense polling starts at this share of the shortest recent run


@dataclass(frozen=True)
class PollPolicy:
    """The interval before the next look at a running prediction, ``elapsed`` seconds after the wait began.

    Near the end (or with nothing known) it is ``ratio × elapsed − reserve``: the lag stays within about
    ``ratio`` of the job's length with ``reserve`` seconds of it left for submitting and finishing, clamped to
    ``[min_interval, max_interval]`` (``near_interval`` once the expected end is close: a run known to take
    about a second is worth a look every 50 ms for the few tenths around its end). Before ``earliest``, the
    known soonest end, it looks once after ``first_look`` seconds, then waits for ``earliest`` (in steps of at
    most ``max_sparse``, so a long job is still looked at twice a minute).
    """

    min_interval: float = 0.2
    ratio: float = 0.1
    max_interval: float = 10.0
    reserve: float = 0.15
    near_interval: float = 0.05
    first_look: float = 1.0
    max_sparse: float = 30.0

    def delay(self, elapsed: float, earliest: float | None = None) -> float:
        dense = self.ratio * elapsed - self.reserve
        if earliest is None or earliest <= 0:
            return _clamp(dense, self.min_interval, self.max_interval)
        if elapsed < earliest:
            ahead = earliest - elapsed
            if elapsed < self.first_look:
                ahead = min(ahead, self.first_look - elapsed)
            return max(min(ahead, self.max_sparse), self.near_interval)
        return _clamp(dense, self.near_interval, self.max_interval)

    def quicker(self, seconds: float) -> PollPolicy:
        """This policy with every floor at ``seconds`` (the test suite's emulator ends jobs in milliseconds)."""
        return PollPolicy(
            min_interval=seconds,
            ratio=self.ratio,
            max_interval=self.max_interval,
            reserve=self.reserve,
            near_interval=min(seconds, self.near_interval),
            first_look=seconds,
            max_sparse=seconds,
        )


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class Durations:
    """How long each model's recent runs took, as seen by this process: the soonest a new run of it can end.

    A run's duration is taken as the last moment it was seen running, which is never after its end; a run seen
    done at its first look teaches nothing. Bounded: :data:`_RUNS_KEPT` runs for each of :data:`_MODELS_KEPT`
    models.
    """

    def __init__(self) -> None:
        self._runs: OrderedDict[str, deque[float]] = OrderedDict()

    def learn(self, model: str | None, still_running_at: float) -> None:
        if not model or still_running_at <= 0:
            return
        runs = self._runs.pop(model, None) or deque(maxlen=_RUNS_KEPT)
        runs.append(still_running_at)
        self._runs[model] = runs
        while len(self._runs) > _MODELS_KEPT:
            self._runs.popitem(last=False)

    def earliest(self, model: str | None) -> float | None:
        """The soonest a run of ``model`` is likely to end, from its recent runs; ``None`` when none is known."""
        runs = self._runs.get(model or "")
        return _EARLIEST_SHARE * min(runs) if runs else None
