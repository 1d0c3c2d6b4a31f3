"""Scale-out with real processes: three HTTP replicas behind HAProxy (round robin), sharing one redis-server,
against the emulator. Callers bring their own keys; budgets and repeats hold across replicas; a replica killed
mid-run fails its own calls cleanly and the others carry on."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from atlas_mcp.emulator import Emulator, PredictionPlan
from atlas_mcp.server.background import STALE_SECONDS

from .conftest import free_port, require_binary
from .harness import CONSOLE_SCRIPT, expect_done, expect_error
from .tasks_client import CreatedTask, TasksClient, get_task, poll_task
from .test_http import connect, http_env
from .test_oauth import PASTED, _Memory, _paid_with, _Person, _tools_list, signed_in

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

KEYS = [f"sk-scale-{n:02d}-{'k' * 20}" for n in range(20)]
STATE_KEY = "request-state-key-for-every-replica-0123456789"
OAUTH_SECRET = "b2F1dGgtc2VjcmV0LWZvci1ldmVyeS1yZXBsaWNhLTA="  # 32 bytes, base64
HAPROXY_CFG = """\
global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 2
    option redispatch
frontend mcp
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    default-server inter 500ms fall 2 rise 2
{servers}
"""


@dataclass
class Cluster:
    origin: str
    replicas: list[subprocess.Popen[bytes]]
    logs: list[Path]
    ports: list[int]
    env: dict[str, str]

    def submitted_by(self) -> list[int]:
        """How many predictions each replica submitted (each logs one line per submit)."""
        return [log.read_text().count("submitted prediction") for log in self.logs]


def _wait_ready(port: int, deadline: float, logs: list[Path]) -> None:
    """Until the replica on ``port`` answers /readyz (its logs in the failure)."""
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, [log.read_text() for log in logs]
        time.sleep(0.05)


@pytest.fixture
def auth_mode() -> str:
    """How the cluster's callers authenticate (a test may override this fixture: "oauth")."""
    return "header"


@pytest.fixture
def cluster(emulator: Emulator, tmp_path: Path, redis_url: str, auth_mode: str) -> Iterator[Cluster]:
    binary = require_binary("haproxy", install="apt-get install haproxy")
    front = free_port()
    env = http_env(
        emulator,
        tmp_path,
        ATLASCLOUD_STATE_URL=redis_url,
        ATLASCLOUD_HTTP_STATE_KEYS=STATE_KEY,
        ATLASCLOUD_BUDGET_USD="0.012",
        ATLASCLOUD_CONFIRM_ABOVE_USD="0.01",  # a single image ($0.003) goes by; four ($0.012) ask first
        ATLASCLOUD_LOG_LEVEL="INFO",
        ATLASCLOUD_OAUTH_SECRET=OAUTH_SECRET,
        ATLASCLOUD_HTTP_PUBLIC_URL=f"http://127.0.0.1:{front}/mcp",  # what OAuth tokens are issued for
    )
    ports = [free_port() for _ in range(3)]
    logs = [tmp_path / f"replica-{n}.log" for n in range(3)]
    replicas = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("ab") as errors:
            replicas.append(
                subprocess.Popen(
                    [CONSOLE_SCRIPT, "serve", "--transport", "http", "--port", str(port), "--auth", auth_mode],
                    env=env,
                    stdout=errors,
                    stderr=errors,
                )
            )
    config = tmp_path / "haproxy.cfg"
    servers = "\n".join(f"    server r{n} 127.0.0.1:{port} check" for n, port in enumerate(ports))
    config.write_text(HAPROXY_CFG.format(port=front, servers=servers))
    proxy = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{front}"
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            _wait_ready(port, deadline, logs)
        time.sleep(1.2)  # HAProxy's checks see all three up (rise 2, every 500 ms)
        yield Cluster(origin, replicas, logs, ports, env)
    finally:
        proxy.terminate()
        for replica in replicas:
            if replica.poll() is None:
                replica.terminate()
        for process in (proxy, *replicas):
            process.wait(timeout=10)


async def test_many_callers_with_their_own_keys_through_haproxy(
    cluster: Cluster, emulator: Emulator, figures: list[str]
) -> None:
    emulator.state.config.prediction_seconds = 0.3
    calls = 200
    owners: dict[str, str] = {}
    refused: dict[str, int] = dict.fromkeys(KEYS, 0)
    started = time.monotonic()

    async def caller(number: int) -> None:
        key = KEYS[number % len(KEYS)]  # ten calls a key, at $0.003 each, against a $0.012 budget a key
        async with connect(cluster.origin, key, "2026" if number % 2 else "2025") as client:
            result = await client.call_tool("generate_image", {"prompt": f"crowd {number}"})
        if result.is_error:
            expect_error("generate_image", result, "budget")
            refused[key] += 1
        else:
            owners[expect_done(result)["prediction_id"]] = key

    async with anyio.create_task_group() as group:
        for number in range(calls):
            group.start_soon(caller, number)
    wall = time.monotonic() - started
    # Every call answered; the budget let exactly four through per key, whichever replicas took them.
    assert len(owners) == 80 and set(refused.values()) == {6}
    assert sorted(owners.values()) == sorted(KEYS * 4)
    for entry in emulator.state.requests:
        owner = next((key for pid, key in owners.items() if pid in entry.path), None)
        if owner is not None and entry.path.startswith("/api/"):
            assert entry.headers.get("authorization") == f"Bearer {owner}", entry.path
    submits = [r for r in emulator.state.requests if r.path.endswith("/generateImage")]
    assert len(submits) == 80
    spread = cluster.submitted_by()
    assert sum(spread) == 80 and all(count > 0 for count in spread), spread
    figures.append(
        f"{calls} calls through HAProxy over 3 replicas, 20 keys: {wall:.1f} s; submits per replica {spread}"
    )


async def test_identical_calls_on_different_replicas_make_one_post_and_the_user_is_asked_once(
    cluster: Cluster, emulator: Emulator
) -> None:
    emulator.state.config.prediction_seconds = 0.5
    ids: list[str] = []

    async def identical(era: str) -> None:
        async with connect(cluster.origin, KEYS[0], era) as client:
            ids.append(expect_done(await client.call_tool("generate_image", {"prompt": "one fox"}))["prediction_id"])

    async with anyio.create_task_group() as group:
        for number in range(12):
            group.start_soon(identical, "2026" if number % 2 else "2025")
    assert len(set(ids)) == 1
    assert len([r for r in emulator.state.requests if r.path.endswith("/generateImage")]) == 1

    # A 2026-era question and its answer may reach different replicas: the sealed round-trip state holds.
    from mcp_types import ElicitResult

    asked: list[str] = []

    async def accept(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"pay": True})

    async with connect(cluster.origin, KEYS[1], "2026", elicitation_callback=accept) as client:
        big = await client.call_tool("generate_image", {"prompt": "four foxes", "num_images": 4})
    assert len(asked) == 1 and "$0.012" in asked[0]
    expect_done(big)


async def test_a_replica_killed_mid_run_fails_its_calls_cleanly(
    cluster: Cluster, emulator: Emulator, figures: list[str]
) -> None:
    emulator.state.config.prediction_seconds = 3.0
    outcomes: dict[int, str] = {}

    async def caller(number: int) -> None:
        try:
            with anyio.fail_after(60):
                async with connect(cluster.origin, KEYS[number % len(KEYS)], "2026") as client:
                    result = await client.call_tool("generate_image", {"prompt": f"victim {number}"})
            outcomes[number] = "error" if result.is_error else "done"
        except TimeoutError:
            outcomes[number] = "hang"
        except Exception:  # the connection to the killed replica dropped: a clean failure, seen at once
            outcomes[number] = "dropped"

    async with anyio.create_task_group() as group:
        for number in range(30):
            group.start_soon(caller, number)
        with anyio.fail_after(20):  # kill it once it has predictions in flight
            while cluster.submitted_by()[1] < 3:
                await anyio.sleep(0.05)
        victim = cluster.replicas[1]
        os.kill(victim.pid, signal.SIGKILL)
        await anyio.sleep(1.5)  # HAProxy marks it down (fall 2, every 500 ms)
        for number in range(30, 45):  # new calls, after the kill
            group.start_soon(caller, number)
    assert "hang" not in outcomes.values(), outcomes
    assert all(outcomes[number] == "done" for number in range(30, 45)), outcomes
    assert list(outcomes.values()).count("done") >= 30, outcomes  # only the killed replica's calls were lost
    submits = [r for r in emulator.state.requests if r.path.endswith("/generateImage")]
    assert len(submits) <= 45  # no call was submitted twice (HAProxy retries connections, never a sent POST)
    lost = [number for number, outcome in outcomes.items() if outcome != "done"]
    assert lost, "the killed replica had calls in flight"
    # The assistant sends a lost call again. Its claim is in Redis: if the dead replica never sent it, it is sent
    # now; if the replica died mid-submit, no live holder can record the outcome, so the call is told to look in
    # list_predictions instead of being sent (it may have been paid). Either way nothing is paid twice.
    async with connect(cluster.origin, KEYS[lost[0] % len(KEYS)], "2026") as client:
        again = await client.call_tool("generate_image", {"prompt": f"victim {lost[0]}"})
    if again.is_error:
        expect_error("generate_image", again, "list_predictions")
    else:
        expect_done(again)
    submits = [r for r in emulator.state.requests if r.path.endswith("/generateImage")]
    assert len(submits) <= 45
    figures.append(
        f"a replica killed with 30 calls in flight: {len(lost)} failed at once ({sorted(set(outcomes.values()))}), "
        f"the other {30 - len(lost)} and all 15 later calls succeeded; {len(submits)} submits for 45 calls"
    )


async def test_a_task_is_answered_by_every_replica_and_finished_after_its_creator_is_killed(
    cluster: Cluster, emulator: Emulator, figures: list[str]
) -> None:
    """Issue 24's "done when" over HTTP: a task made through HAProxy is answered by each replica it did not come
    from (the record is in Redis); its creator killed, the task still completes, taken over by the replica that is
    asked next once the dead waiter's heartbeat is stale."""
    emulator.state.plan_next(PredictionPlan(seconds=STALE_SECONDS / 2))
    async with connect(cluster.origin, KEYS[0], "2026", extensions=[TasksClient()]) as client:
        arguments = {"model": "minimax/lyrics-generation", "text": "a song about herons"}  # $0.001, in the budget
        created = await client.session.call_tool("generate_audio", arguments, allow_claimed=True)
    assert isinstance(created, CreatedTask), created
    (creator,) = [n for n, count in enumerate(cluster.submitted_by()) if count]
    others = [n for n in range(3) if n != creator]
    for n in others:
        async with connect(f"http://127.0.0.1:{cluster.ports[n]}", KEYS[0], "2026", extensions=[TasksClient()]) as c:
            task = await get_task(c.session, created.task_id)
        assert task["status"] == "working", task
        async with connect(f"http://127.0.0.1:{cluster.ports[n]}", KEYS[1], "2026", extensions=[TasksClient()]) as c:
            with pytest.raises(MCPError):  # another caller, on any replica: unknown
                await get_task(c.session, created.task_id)
    os.kill(cluster.replicas[creator].pid, signal.SIGKILL)
    killed = time.monotonic()
    survivor = f"http://127.0.0.1:{cluster.ports[others[0]]}"
    async with connect(survivor, KEYS[0], "2026", extensions=[TasksClient()]) as client:
        done = await poll_task(client.session, created.task_id, timeout=STALE_SECONDS * 3)
    assert done["status"] == "completed", done
    assert done["result"]["structuredContent"]["phase"] == "succeeded", done
    posts = [r for r in emulator.state.requests if r.method == "POST" and "/generate" in r.path]
    assert len(posts) == 1  # taken over, never submitted again
    figures.append(
        f"a task whose replica was killed: completed by another replica {time.monotonic() - killed:.1f} s after "
        f"the kill (a waiter counts as gone after {STALE_SECONDS:g} s of silence)"
    )


@pytest.mark.parametrize("auth_mode", ["oauth"])
async def test_an_oauth_sign_in_on_one_replica_works_on_every_replica_and_after_a_restart(
    cluster: Cluster, emulator: Emulator, auth_mode: str
) -> None:
    """Issue 25: tokens live in Redis as hashes and the keys they stand for are sealed with the shared secret, so a
    token minted through one replica is accepted by each of them, and by a replica started afresh."""
    storage = _Memory()
    async with signed_in(cluster.origin, _Person(), storage) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "a heron"}))
    assert storage.tokens is not None
    token = storage.tokens.access_token
    for port in cluster.ports:
        assert _tools_list(f"http://127.0.0.1:{port}", token) == 200, port
    victim = cluster.replicas[0]
    victim.terminate()
    victim.wait(timeout=10)
    with cluster.logs[0].open("ab") as errors:
        cluster.replicas[0] = subprocess.Popen(victim.args, env=cluster.env, stdout=errors, stderr=errors)
    await anyio.to_thread.run_sync(_wait_ready, cluster.ports[0], time.monotonic() + 30, cluster.logs[:1])
    assert _tools_list(f"http://127.0.0.1:{cluster.ports[0]}", token) == 200  # restarted: nobody is logged out
    assert _paid_with(emulator) == {f"Bearer {PASTED}"}
