"""The poll schedule of :class:`PollPolicy`, by arithmetic: when it looks, how often, how late it sees the end.

``AtlasClient.wait`` sleeps ``policy.delay(elapsed, earliest)`` before each GET, with ``elapsed`` counted from the
submit and ``earliest`` what is known of the model (:class:`~atlas_mcp.atlas.Durations`: 85 % of the shortest of
its recent runs, each taken as the last moment it was seen running; else its family's soonest end; else nothing).
A prediction that ends at ``T`` is seen by the first poll at or after ``T``. The lag the user sees adds what no
policy changes: submitting, and finishing (fetch, save, preview, send).
"""

from __future__ import annotations

from dataclasses import dataclass

from atlas_mcp.atlas import Durations, PollPolicy

LAG_SHARE = 0.10
LAG_FLOOR = 0.25
MAX_POLLS_AT_10 = 8
LOW, HIGH = 1.0, 300.0  # the T the lag target covers
SHOWN = (1.0, 2.0, 5.0, 10.0, 60.0, 300.0)
_GRID = [LOW * (HIGH / LOW) ** (step / 599) for step in range(600)]  # log-spaced T in [LOW, HIGH]


def lag_target(seconds: float) -> float:
    return max(LAG_SHARE * seconds, LAG_FLOOR)


@dataclass(frozen=True)
class Costs:
    """What the server adds to a job's T whatever the policy, as measured."""

    fixed: float  # submitting + finishing, once per job
    per_poll: float  # how much longer each real interval is than the policy's delay


@dataclass(frozen=True)
class Prior:
    """What is known of the model when a job of length T starts."""

    label: str
    spread: float | None = None  # its recent runs took T × (1 ± spread); None: none known
    soonest: float | None = None  # else its family's soonest end, in seconds
    low: float = LOW  # the T this knowledge applies to

    def earliest(self, policy: PollPolicy, seconds: float, per_poll: float) -> float | None:
        if self.spread is None:
            return self.soonest
        durations = Durations()
        for factor in (1 - self.spread, 1.0, 1 + self.spread):  # each seen running until its last poll before it ended
            previous = seconds * factor
            durations.learn("model", max(t for t in [0.0, *schedule(policy, per_poll, None, previous)] if t < previous))
        return durations.earliest("model")


PRIORS = (
    Prior("the model's recent runs took T ± 10 %", spread=0.10),
    Prior("the model's recent runs took T ± 25 %", spread=0.25),
    Prior("first run of a video model (its family: 20 s at the soonest)", soonest=20.0, low=20.0),
    Prior("nothing known (a first image, speech or transcript)"),
)


def schedule(policy: PollPolicy, per_poll: float, earliest: float | None, seconds: float) -> list[float]:
    """Times of the polls from the submit, up to the first at or after ``seconds``."""
    times: list[float] = []
    now = 0.0
    while not times or times[-1] < seconds:
        now += policy.delay(now, earliest) + per_poll
        times.append(now)
    return times


@dataclass(frozen=True)
class Outcome:
    prior: Prior
    polls: dict[float, int]
    lags: dict[float, float]  # including the fixed costs
    worst_ratio: float
    worst_at: float

    @property
    def meets_lag(self) -> bool:
        return self.worst_ratio <= 1.0

    @property
    def meets_polls(self) -> bool:
        return self.polls.get(10.0, 0) <= MAX_POLLS_AT_10


def evaluate(policy: PollPolicy, prior: Prior, costs: Costs) -> Outcome:
    polls: dict[float, int] = {}
    lags: dict[float, float] = {}
    worst = (0.0, prior.low)
    for seconds in sorted({*_GRID, *SHOWN}):
        if seconds < prior.low:
            continue
        times = schedule(policy, costs.per_poll, prior.earliest(policy, seconds, costs.per_poll), seconds)
        lag = times[-1] - seconds + costs.fixed
        worst = max(worst, (lag / lag_target(seconds), seconds))
        if seconds in SHOWN:
            polls[seconds], lags[seconds] = len(times), lag
    return Outcome(prior=prior, polls=polls, lags=lags, worst_ratio=worst[0], worst_at=worst[1])


def outcomes(costs: Costs, policy: PollPolicy | None = None) -> list[Outcome]:
    return [evaluate(policy or PollPolicy(), prior, costs) for prior in PRIORS]
