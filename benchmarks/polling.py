"""The poll schedule of :class:`PollPolicy`, by arithmetic: when it looks, how often, how late it sees the end.

``AtlasClient.wait`` sleeps ``policy.delay(elapsed)`` before each GET, with ``elapsed`` counted from the
start of the wait; a prediction that ends at ``T`` is seen by the first poll at or after ``T``. The lag the
user sees adds what no policy changes: submitting, and finishing (fetch, save, preview, send).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from atlas_mcp.atlas import PollPolicy

LAG_SHARE = 0.15
LAG_FLOOR = 0.3
MAX_POLLS_AT_10 = 8
# The lag-first pick keeps this much below the target, so that run-to-run noise does not tip it over.
HEADROOM = 0.95
HORIZON = 45.0  # ATLASCLOUD_WAIT_SECONDS' default: no wait polls longer
_GRID = itertools.product(
    (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0),
    (0.1, 0.11, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75),
    (1.0, 2.0, 3.0, 5.0, 10.0),
)
GRID = [PollPolicy(low, ratio, high) for low, ratio, high in _GRID if low <= high]


def lag_target(seconds: float) -> float:
    return max(LAG_SHARE * seconds, LAG_FLOOR)


@dataclass(frozen=True)
class Costs:
    """What the server adds to a job's T whatever the policy, as measured."""

    fixed: float  # submitting + finishing, once per job
    per_poll: float  # how much longer each real interval is than the policy's delay


def schedule(policy: PollPolicy, per_poll: float, horizon: float = HORIZON) -> list[float]:
    """Times of the polls from the start of the wait."""
    times: list[float] = []
    now = 0.0
    while now < horizon:
        now += policy.delay(now) + per_poll
        times.append(now)
    return times


def seen(times: Sequence[float], seconds: float) -> tuple[int, float]:
    """(polls made, poll lag) for a prediction that ends ``seconds`` after the wait starts."""
    for count, at in enumerate(times, start=1):
        if at >= seconds:
            return count, at - seconds
    raise ValueError(f"no poll within the horizon for T = {seconds}")


def worst_lag_ratio(times: Sequence[float], fixed: float, low: float = 1.0) -> tuple[float, float]:
    """The largest lag / target over every T from ``low`` to the horizon, and the T where it is.

    The lag peaks just after a poll (the next is a whole interval away), so only those T are tried.
    """
    worst = (0.0, low)
    for seconds in [low, *(at + 1e-9 for at in times[:-1] if at >= low)]:
        _, lag = seen(times, seconds)
        worst = max(worst, ((lag + fixed) / lag_target(seconds), seconds))
    return worst


@dataclass(frozen=True)
class Outcome:
    policy: PollPolicy
    polls: dict[float, int]
    lags: dict[float, float]  # including the fixed costs
    worst_ratio: float
    worst_at: float
    polls_at_horizon: int

    @property
    def meets_lag(self) -> bool:
        return self.worst_ratio <= 1.0

    @property
    def meets_polls(self) -> bool:
        return self.polls[10.0] <= MAX_POLLS_AT_10


def evaluate(policy: PollPolicy, durations: Sequence[float], costs: Costs) -> Outcome:
    times = schedule(policy, costs.per_poll)
    results = {seconds: seen(times, seconds) for seconds in (*durations, 10.0)}
    worst_ratio, worst_at = worst_lag_ratio(times, costs.fixed)
    return Outcome(
        policy=policy,
        polls={seconds: polls for seconds, (polls, _) in results.items()},
        lags={seconds: lag + costs.fixed for seconds, (_, lag) in results.items()},
        worst_ratio=worst_ratio,
        worst_at=worst_at,
        polls_at_horizon=len(times),
    )


LAG_FIRST = f"lag first: fewest polls by T = 10 s with the lag ≤ {HEADROOM:.0%} of the target at every T"
POLLS_FIRST = "polls first: least worst-case lag with ≤ 8 polls by T = 10 s"
BOTH = "meets both targets"


def fewest_polls_on_target(durations: Sequence[float], costs: Costs) -> int | None:
    """The fewest polls by T = 10 s of any grid policy whose lag is within target at every T."""
    counts = [o.polls[10.0] for o in (evaluate(p, durations, costs) for p in GRID) if o.meets_lag]
    return min(counts, default=None)


def candidates(durations: Sequence[float], costs: Costs) -> list[tuple[str, Outcome]]:
    """The current policy, then the grid's best under each target (and under both, if any policy meets both)."""
    outcomes = [evaluate(policy, durations, costs) for policy in GRID]
    chosen = [("current", evaluate(PollPolicy(), durations, costs))]
    lag_ok = [o for o in outcomes if o.worst_ratio <= HEADROOM]
    polls_ok = [o for o in outcomes if o.meets_polls]
    both = [o for o in outcomes if o.meets_lag and o.meets_polls]
    if lag_ok:
        chosen.append((LAG_FIRST, min(lag_ok, key=lambda o: (o.polls[10.0], o.polls_at_horizon))))
    if polls_ok:
        chosen.append((POLLS_FIRST, min(polls_ok, key=lambda o: (o.worst_ratio, o.polls_at_horizon))))
    if both:
        chosen.append((BOTH, min(both, key=lambda o: (o.polls[10.0], o.worst_ratio))))
    return chosen
