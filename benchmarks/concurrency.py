"""4. Concurrency: many ``generate_image`` calls at once through one stdio session.

The emulator runs in its own process; the server's CPU time and peak memory come from /proc. The floor
for memory is the bare MCPServer's resident size, for time the job's own T. A second burst with previews
turned off shows what the previews cost.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from benchmarks.emulator_process import EmulatorProcess, prediction_gets, storage_gets
from benchmarks.preview import one_preview_mib
from benchmarks.proc import cpu_seconds, memory_mib
from benchmarks.report import Section, Table, median, ms, percentile
from benchmarks.rpc import FLOOR_SERVER, OUR_SERVER, StdioPeer, Workspace, structured, unique

SECONDS = 2.0
_PROMPT = "a red fox in the snow, photo"


@dataclass(frozen=True)
class Burst:
    wall: float
    lags: list[float]
    previews: int
    server_cpu: float
    emulator_cpu: float
    polls: int
    downloads: int
    idle_rss: float
    peak_rss: float
    rss_after: float


def floor_rss(ws: Workspace) -> float:
    """Resident MiB of the bare MCPServer after initialize and tools/list."""
    with StdioPeer(FLOOR_SERVER, ws.python_env(), ws.log("floor-rss")) as floor:
        floor.initialize()
        floor.request("tools/list")
        return memory_mib(floor.pid, "VmRSS")


def burst(ws: Workspace, emulator: EmulatorProcess, calls: int, **settings: str) -> Burst:
    env = ws.server_env(emulator.url, {"ATLASCLOUD_OUTPUT_DIR": str(ws.root / "concurrency"), **settings})
    with StdioPeer(OUR_SERVER, env, ws.log("concurrency")) as peer:
        peer.initialize()
        warmup = peer.call_tool("generate_image", {"prompt": unique(_PROMPT)})
        peer.collect([warmup])  # reads the catalogue and loads Pillow: not what is measured here
        idle_rss = memory_mib(peer.pid, "VmRSS")
        emulator.clear_requests()
        cpu_before, emulator_cpu_before = cpu_seconds(peer.pid), cpu_seconds(emulator.pid)
        sent = time.monotonic()
        # Each call a different request: identical ones would be answered by the first (the repeat guard).
        ids = [peer.call_tool("generate_image", {"prompt": unique(_PROMPT)}, progress=True) for _ in range(calls)]
        answers = peer.collect(ids)
        wall = time.monotonic() - sent
        requests = emulator.requests()
        return Burst(
            wall=wall,
            lags=[arrived - sent - SECONDS for _, arrived in answers.values()],
            previews=sum(1 for answer, _ in answers.values() if structured(answer)["outputs"][0]["preview"]),
            server_cpu=cpu_seconds(peer.pid) - cpu_before,
            emulator_cpu=cpu_seconds(emulator.pid) - emulator_cpu_before,
            polls=prediction_gets(requests),
            downloads=storage_gets(requests),
            idle_rss=idle_rss,
            peak_rss=memory_mib(peer.pid, "VmHWM"),
            rss_after=memory_mib(peer.pid, "VmRSS"),
        )


def run(ws: Workspace, *, calls: int = 100) -> Section:
    with EmulatorProcess(ws, prediction_seconds=SECONDS) as emulator:
        with_previews = burst(ws, emulator, calls)
        without = burst(ws, emulator, calls, ATLASCLOUD_PREVIEW_BUDGET_KB="0")
    floor = floor_rss(ws)
    per_preview = one_preview_mib(ws)
    cores = os.cpu_count() or 1

    def column(b: Burst) -> list[str]:
        return [
            f"{b.wall:.2f} s ({b.wall / SECONDS:.2f}× T)",
            f"{ms(median(b.lags), 0)} / {ms(percentile(b.lags, 95), 0)} / {ms(max(b.lags), 0)}",
            f"{b.previews} of {calls}",
            f"{b.server_cpu:.2f} s ({ms(b.server_cpu / calls)} per call)",
            f"{b.emulator_cpu:.2f} s",
            f"{b.polls} ({b.polls / calls:g} per call)",
            str(b.downloads),
            f"{b.idle_rss:.0f} MiB → {b.rss_after:.0f} MiB",
            f"**{b.peak_rss:.0f} MiB** ({b.peak_rss / floor:.1f}× the floor)",
        ]

    labels = [
        "wall time, first call sent → last result in",
        "lag per call beyond T: p50 / p95 / max",
        "results with an inline preview",
        "server CPU (user + system)",
        "emulator CPU, for scale (renders each 1024×1024 PNG)",
        "polls (prediction GETs)",
        "output downloads",
        "server RSS idle (after one call) → after the burst",
        "server peak RSS (VmHWM)",
    ]
    table = Table(
        ("measure", "previews on (default)", "previews off"),
        [(label, on, off) for label, on, off in zip(labels, column(with_previews), column(without), strict=True)],
        caption=(
            f"{calls} concurrent `generate_image` calls, T = {SECONDS:g} s, one stdio session, outputs saved to "
            f"disk; emulator in its own process. Floor: the bare MCPServer's RSS after tools/list, {floor:.0f} MiB."
        ),
    )
    return Section(
        title="4. Concurrency",
        tables=[table],
        notes=[
            "The emulator renders every output on its first download, in Python threads under one GIL; with all "
            "jobs ending together, those renders set the wall time past T (a CDN serves them against Atlas).",
            f"Previews account for {with_previews.peak_rss - without.peak_rss:.0f} MiB of the peak and "
            f"{with_previews.server_cpu - without.server_cpu:.2f} s of the CPU: up to 40 run at once (anyio's "
            f"default thread limit), each raising the peak by about {per_preview:.1f} MiB (section 6). At most "
            f"{cores} at once (one per core: they are CPU-bound) would put the peak near "
            f"{without.peak_rss + cores * per_preview:.0f} MiB.",
        ],
    )
