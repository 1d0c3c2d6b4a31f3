"""When a running prediction is looked at: the policy's arithmetic, what a model's past runs teach, what its family
says, and Atlas's Retry-After. Counts of polls and lower bounds on gaps only (a sleep is never shorter than asked):
speed targets live in the benchmarks."""

from __future__ import annotations

import itertools

import pytest

from atlas_mcp.atlas import AtlasClient, Durations, PollPolicy
from atlas_mcp.emulator import Emulator, PredictionPlan

from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio

FLUX = "black-forest-labs/flux-schnell"
PREDICTION_PATH = "/api/v1/model/prediction/"


def _read_times(emulator: Emulator) -> list[float]:
    return [r.at for r in emulator.state.requests if r.method == "GET" and r.path.startswith(PREDICTION_PATH)]


def _polls_until(policy: PollPolicy, seconds: float, earliest: float | None) -> list[float]:
    times, now = [], 0.0
    while not times or times[-1] < seconds:
        now += policy.delay(now, earliest)
        times.append(now)
    return times


def test_a_model_known_to_take_ten_seconds_is_seen_done_within_a_tenth_in_at_most_8_looks() -> None:
    policy = PollPolicy()
    for seconds in (1.0, 2.0, 5.0, 10.0, 30.0, 120.0, 300.0):
        learned = Durations()
        learned.learn("m", seconds * 0.95)  # its last run was still going at 95 % of this one's length
        times = _polls_until(policy, seconds, learned.earliest("m"))
        late = times[-1] - seconds
        assert late <= max(0.1 * seconds - policy.reserve, policy.near_interval) + 1e-9, (seconds, times)
        if seconds == 10.0:
            assert len(times) <= 8, times


def test_with_nothing_known_the_lag_stays_a_share_of_the_wait() -> None:
    policy = PollPolicy()
    times = _polls_until(policy, 10.0, None)
    assert all(b - a <= max(0.1 * a, policy.min_interval) + 1e-9 for a, b in itertools.pairwise(times))
    assert times[0] == policy.min_interval


def test_a_long_job_is_still_looked_at_twice_a_minute_before_its_usual_end() -> None:
    times = _polls_until(PollPolicy(), 240.0, 200.0)
    assert times[0] == 1.0  # one early look: a fast failure is not left waiting for the usual end
    assert all(b - a <= 30.0 for a, b in itertools.pairwise(times))


def test_durations_remember_the_shortest_recent_runs_of_a_bounded_set_of_models() -> None:
    durations = Durations()
    durations.learn("m", 0.0)  # seen done at its first look: nothing learned
    durations.learn(None, 4.0)
    assert durations.earliest("m") is None
    for seconds in (9.0, 4.0, *([10.0] * 8)):
        durations.learn("m", seconds)
    assert durations.earliest("m") == 0.85 * 10.0  # only the last 8 runs count
    for index in range(300):
        durations.learn(f"other-{index}", 1.0)
    assert durations.earliest("m") is None  # the least recently run models are forgotten


async def test_a_second_run_of_a_model_is_looked_at_less_often(emulator: Emulator) -> None:
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, poll=PollPolicy()) as atlas:
        counts = []
        for _ in range(2):
            before = len(_read_times(emulator))
            emulator.state.plan_next(PredictionPlan(seconds=3.0))
            done = await atlas.wait(await atlas.submit(FLUX, {"prompt": "x"}), timeout=20)
            assert done.phase == "succeeded"
            counts.append(len(_read_times(emulator)) - before)
    assert counts[1] <= counts[0] / 2, counts


async def test_a_family_that_takes_long_is_looked_at_once_early_then_near_its_usual_end(emulator: Emulator) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=2.5))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, poll=PollPolicy()) as atlas:
        submitted = await atlas.submit(FLUX, {"prompt": "x"})
        submitted_at = emulator.state.requests[-1].at
        await atlas.wait(submitted, timeout=20, soonest=2.0)
    times = _read_times(emulator)
    assert len(times) >= 3
    assert times[0] - submitted_at >= 0.95  # one early look at 1 s (a fast failure) …
    assert times[1] - times[0] >= 0.95  # … then nothing until the family's soonest end, 2 s after the submit


async def test_atlas_retry_after_on_a_read_is_the_least_pause_before_the_next(emulator: Emulator) -> None:
    emulator.state.config.poll_retry_after = 0.5
    emulator.state.plan_next(PredictionPlan(seconds=1.6))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, poll=PollPolicy()) as atlas:
        submitted = await atlas.submit(FLUX, {"prompt": "x"})
        assert (await atlas.wait(submitted, timeout=20)).phase == "succeeded"
    times = _read_times(emulator)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps and min(gaps) >= 0.45, gaps  # without it the policy looks every 0.2 s
