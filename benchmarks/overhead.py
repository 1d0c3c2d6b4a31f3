"""2. Per-call overhead: ``check_prediction`` over stdio against the same GET made directly with httpx.

The prediction runs for an hour, so each call is one GET and a small result: no download, no preview.
Calls alternate between the two paths and the difference is taken pair by pair.
"""

from __future__ import annotations

import time

import httpx

from atlas_mcp.emulator import Emulator, EmulatorConfig, PredictionPlan
from benchmarks.report import Section, Table, Target, median, ms, percentile
from benchmarks.rpc import BENCH_KEY, FLOOR_SERVER, OUR_SERVER, StdioPeer, Workspace, structured

TARGET_P50 = 0.002
_WARMUP = 30


def submit_running(http: httpx.Client, emulator: Emulator) -> str:
    """A prediction that stays "processing" for the whole benchmark."""
    emulator.state.plan_next(PredictionPlan(seconds=3600))
    answer = http.post(
        "/api/v1/model/generateImage", json={"model": "black-forest-labs/flux-schnell", "prompt": "still running"}
    )
    answer.raise_for_status()
    prediction_id: str = answer.json()["data"]["id"]
    return prediction_id


def via_mcp(peer: StdioPeer, prediction_id: str) -> float:
    started = time.monotonic()
    request_id = peer.call_tool("check_prediction", {"prediction_id": prediction_id})
    answer, arrived = peer.collect([request_id])[request_id]
    assert structured(answer)["phase"] == "running"
    return arrived - started


def floor_ping(peer: StdioPeer) -> float:
    started = time.monotonic()
    request_id = peer.call_tool("ping", {})
    return peer.collect([request_id])[request_id][1] - started


def direct(http: httpx.Client, prediction_id: str) -> float:
    started = time.monotonic()
    answer = http.get(f"/api/v1/model/prediction/{prediction_id}")
    assert answer.json()["data"]["status"] in ("created", "processing")
    return time.monotonic() - started


def run(ws: Workspace, *, calls: int = 400) -> Section:
    with (
        Emulator(EmulatorConfig()) as emulator,
        httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {BENCH_KEY}"}) as http,
        StdioPeer(OUR_SERVER, ws.server_env(emulator.url), ws.log("overhead")) as peer,
        StdioPeer(FLOOR_SERVER, ws.python_env(), ws.log("overhead-floor")) as floor,
    ):
        peer.initialize()
        floor.initialize()
        prediction_id = submit_running(http, emulator)
        for _ in range(_WARMUP):
            via_mcp(peer, prediction_id)
            direct(http, prediction_id)
            floor_ping(floor)
        emulator.state.clear_requests()
        mcp_times: list[float] = []
        http_times: list[float] = []
        ping_times: list[float] = []
        for call in range(calls):
            if call % 2 == 0:
                mcp_times.append(via_mcp(peer, prediction_id))
                http_times.append(direct(http, prediction_id))
            else:
                http_times.append(direct(http, prediction_id))
                mcp_times.append(via_mcp(peer, prediction_id))
            ping_times.append(floor_ping(floor))
        upstream = len(emulator.state.requests)
    differences = [m - h for m, h in zip(mcp_times, http_times, strict=True)]
    p50 = percentile(differences, 50)

    def row(name: str, values: list[float]) -> tuple[str, str, str, str]:
        return (name, ms(percentile(values, 50), 2), ms(percentile(values, 95), 2), ms(percentile(values, 99), 2))

    table = Table(
        ("path", "p50", "p95", "p99"),
        [
            row("floor: GET /api/v1/model/prediction/{id} with httpx", http_times),
            row("`check_prediction` over stdio (raw JSON-RPC)", mcp_times),
            row("**difference, pair by pair**", differences),
            row("for scale: `ping` on the bare MCPServer over stdio (the SDK's own round trip)", ping_times),
        ],
        caption=(
            f"{calls} calls of each, alternating, against the in-process emulator; "
            f"{upstream} requests reached it ({upstream - calls} besides the direct GETs: one GET per tool call)."
        ),
    )
    return Section(
        title="2. Per-call overhead",
        tables=[table],
        notes=[
            "The difference is what a tool call costs beyond its HTTP request: JSON-RPC over the pipes, the MCP "
            "SDK's dispatch and argument validation, parsing the prediction, building text and structured "
            f"content. Of its median, about {ms(median(ping_times), 2)} is the SDK's round trip for any tool "
            f"(the `ping` row), so our own code adds about {ms(p50 - median(ping_times), 2)} per call.",
        ],
        targets=[
            Target(
                "check_prediction overhead over the bare GET, p50",
                f"{ms(p50, 2)} (p95 {ms(percentile(differences, 95), 2)})",
                f"< {ms(TARGET_P50, 0)}",
                p50 < TARGET_P50,
            )
        ],
    )
