"""1. Cold start: spawn → initialize answered → tools/list answered, ours against a bare MCPServer.

Both are spoken to in raw JSON-RPC over pipes, in alternating order (ABBA) so drift in the machine's
state hits both alike; once with a warm bytecode cache (every launch after a user's first) and once
without one (the first launch, or a sandbox with PYTHONDONTWRITEBYTECODE). Then: which modules our serve
path imports beyond the floor's, and how the difference splits into imports, building the server and
creating the Atlas client.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmarks import node_server
from benchmarks.report import Section, Table, Target, median, ms
from benchmarks.rpc import FLOOR_SERVER, INITIALIZE, OUR_SERVER, StdioPeer, Workspace

TARGET_RATIO = 1.10  # issue 26
# Nothing connects during start-up; the origin only has to be a valid loopback one.
_UNUSED_ORIGIN = "http://127.0.0.1:9"
_FLOOR_STATEMENT = "import anyio._backends._asyncio; from mcp.server.mcpserver import MCPServer"
# The serve path up to the first answer: imports, building the server, the Atlas client of the lifespan.
_OUR_STATEMENT = (
    "import atlas_mcp.__main__, atlas_mcp.config, atlas_mcp.server; "
    "from atlas_mcp.config import Settings; from atlas_mcp.server import create_server; "
    "from atlas_mcp.atlas import AtlasClient; "
    "create_server(Settings.from_env({'ATLASCLOUD_API_KEY': 'x'})); AtlasClient(api_key='x')"
)
_PROBE = str(Path(__file__).with_name("startup_probe.py"))


@dataclass(frozen=True)
class StartTimes:
    initialized: float
    listed: float


@dataclass(frozen=True)
class ColdStarts:
    floor: list[StartTimes]
    ours: list[StartTimes]
    node: list[StartTimes]  # Atlas's Node server, side by side (warm runs only; empty without node and npm)

    def median(self, who: str, step: str) -> float:
        return median([getattr(sample, step) for sample in getattr(self, who)])

    @property
    def ratio(self) -> float:
        return self.median("ours", "listed") / self.median("floor", "listed")


def start_once(argv: list[str], env: dict[str, str], log: Path) -> StartTimes:
    started = time.monotonic()
    with StdioPeer(argv, env, log) as peer:
        _, initialized = peer.request("initialize", INITIALIZE)
        peer.notify("notifications/initialized")
        _, listed = peer.request("tools/list")
    return StartTimes(initialized - started, listed - started)


def cold_starts(ws: Workspace, runs: int, *, bytecode: bool) -> ColdStarts:
    """Interleaved starts of both servers (and, warm, Atlas's Node server); with ``bytecode``, one untimed start
    each fills the cache first."""
    env = ws.server_env(_UNUSED_ORIGIN, bytecode=bytecode)
    log = ws.log("cold-start")
    node = node_server.installed() if bytecode else None
    result = ColdStarts([], [], [])
    order = [(FLOOR_SERVER, env, result.floor), (OUR_SERVER, env, result.ours)]
    if node is not None:
        order.append((node.command(), node.env(env, _UNUSED_ORIGIN, "x"), result.node))
    if bytecode:
        for argv, environment, _ in order:
            start_once(argv, environment, log)
    for run in range(runs):
        for argv, environment, samples in order if run % 2 == 0 else order[::-1]:
            samples.append(start_once(argv, environment, log))
    return result


@dataclass(frozen=True)
class ImportCost:
    module: str
    self_seconds: float
    cumulative_seconds: float


def _importtime(ws: Workspace, statement: str) -> dict[str, tuple[float, float]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
        env=ws.python_env(),
    )
    costs: dict[str, tuple[float, float]] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        costs[name.strip()] = (int(own) / 1e6, int(cumulative) / 1e6)
    return costs


def imports_beyond_floor(ws: Workspace, repeats: int) -> list[ImportCost]:
    """Modules our serve path imports once the floor's are loaded, with median self and cumulative times."""
    floor_modules: set[str] = set()
    samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
    _importtime(ws, f"{_FLOOR_STATEMENT}; {_OUR_STATEMENT}")  # fills the bytecode cache
    for _ in range(repeats):
        floor_modules |= set(_importtime(ws, _FLOOR_STATEMENT))
        for module, cost in _importtime(ws, f"{_FLOOR_STATEMENT}; {_OUR_STATEMENT}").items():
            samples[module].append(cost)
    return [
        ImportCost(module, median([s for s, _ in costs]), median([c for _, c in costs]))
        for module, costs in samples.items()
        if module not in floor_modules
    ]


def probe(ws: Workspace, repeats: int, *args: str) -> dict[str, float]:
    """Median of each timing the probe script reports, over fresh interpreters."""
    runs = []
    for _ in range(repeats):
        command = [sys.executable, _PROBE, *args]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=ws.python_env())
        runs.append(json.loads(done.stdout))
    return {key: median([run[key] for run in runs]) for key in runs[0]}


def _times_table(warm: ColdStarts, cold: ColdStarts, runs: int) -> Table:
    rows = []
    for label, starts in (("warm bytecode cache", warm), ("no bytecode cache", cold)):
        for who, name in (("floor", "floor: bare MCPServer, one tool"), ("ours", "atlascloud-mcp")):
            samples = getattr(starts, who)
            rows.append(
                (
                    label,
                    name,
                    ms(starts.median(who, "initialized")),
                    ms(starts.median(who, "listed")),
                    f"{ms(min(s.listed for s in samples))} – {ms(max(s.listed for s in samples))}",
                )
            )
        if starts.node:
            rows.append(
                (
                    label,
                    f"Atlas's Node server (npm atlascloud-mcp {node_server.VERSION}, "
                    f"Node {node_server.node_version()})",
                    ms(starts.median("node", "initialized")),
                    ms(starts.median("node", "listed")),
                    f"{ms(min(s.listed for s in starts.node))} – {ms(max(s.listed for s in starts.node))}",
                )
            )
        elif label.startswith("warm"):
            rows.append((label, f"Atlas's Node server: {node_server.SKIPPED}", "", "", ""))
        initialized_ratio = starts.median("ours", "initialized") / starts.median("floor", "initialized")
        rows.append((label, "**ratio ours / floor**", f"{initialized_ratio:.3f}×", f"**{starts.ratio:.3f}×**", ""))
    return Table(
        ("bytecode", "server", "initialize answered", "tools/list answered", "tools/list min – max"),
        rows,
        caption=f"Median of {runs} interleaved starts per server and mode (spawn → answer, raw JSON-RPC over pipes).",
    )


def _imports_tables(costs: list[ImportCost], repeats: int) -> list[Table]:
    total_self = sum(cost.self_seconds for cost in costs)

    def rows(key: str) -> list[tuple[str, str, str]]:
        top = sorted(costs, key=lambda cost: getattr(cost, key), reverse=True)[:8]
        return [(f"`{cost.module}`", ms(cost.cumulative_seconds), ms(cost.self_seconds)) for cost in top]

    caption = (
        f"What our serve path imports that the floor does not (`python -X importtime`, warm cache, median of "
        f"{repeats}; floor modules loaded first, then our imports, `create_server` and the `AtlasClient` of the "
        f"lifespan): {len(costs)} modules, {ms(total_self)} of self time in all. Top 8 by cumulative time:"
    )
    return [
        Table(("module", "cumulative", "self"), rows("cumulative_seconds"), caption=caption),
        Table(("module", "cumulative", "self"), rows("self_seconds"), caption="Top 8 by self time:"),
    ]


def _breakdown_tables(ws: Workspace, repeats: int) -> list[Table]:
    split = probe(ws, repeats, "serve-path")
    httpx_dev = probe(ws, repeats, "httpx")
    httpx_clean = probe(ws, repeats, "httpx", "--no-pygments")
    build = split["ours_build"] - split["floor_build"]
    beyond = split["ours_import"] + build + split["ours_client"]
    breakdown = Table(
        ("step", "floor", "atlascloud-mcp", "difference"),
        [
            (
                "imports",
                ms(split["floor_import"]),
                ms(split["floor_import"] + split["ours_import"]),
                ms(split["ours_import"]),
            ),
            (
                "not at start: `import httpx`, with the first request to Atlas (this env: pygments installed)",
                "—",
                "",
                ms(httpx_dev["import"]),
            ),
            (
                "not at start: `import httpx`, with the first request (clean install: no pygments)",
                "—",
                "",
                ms(httpx_clean["import"]),
            ),
            (
                "building the server (tools and their schemas)",
                ms(split["floor_build"]),
                ms(split["ours_build"]),
                ms(build),
            ),
            ("lifespan: `AtlasClient(...)` (httpcore import, SSL context)", "—", "", ms(split["ours_client"])),
            ("**total before the first answer**", "", "", f"**{ms(beyond)}**"),
        ],
        caption=(
            f"Where the difference goes (in-process timings in fresh interpreters, warm cache, median of {repeats})."
        ),
    )
    return [breakdown]


def _target(mode: str, starts: ColdStarts) -> Target:
    ours, floor = ms(starts.median("ours", "listed"), 0), ms(starts.median("floor", "listed"), 0)
    return Target(
        f"cold start to tools/list, ours / floor ({mode})",
        f"{starts.ratio:.3f}× ({ours} vs {floor})",
        f"≤ {TARGET_RATIO}×",
        starts.ratio <= TARGET_RATIO,
    )


def run(ws: Workspace, *, runs: int = 9, repeats: int = 5) -> Section:
    warm = cold_starts(ws, runs, bytecode=True)
    cold = cold_starts(ws, runs, bytecode=False)
    costs = imports_beyond_floor(ws, repeats)
    tables = [
        _times_table(warm, cold, runs),
        *_imports_tables(costs, repeats),
        *_breakdown_tables(ws, repeats),
    ]
    heaviest = max(costs, key=lambda cost: cost.self_seconds)
    return Section(
        title="1. Cold start",
        tables=tables,
        notes=[
            "The tools are listed from their cards (`atlas_mcp/server/tool_cards.json`, the settings' values put "
            "where the cards' marks are) and each is built, its module imported, on its first call: building the "
            "server is the 'building the server' row, and the tools' bodies are not among the imports above.",
            f"What is still imported beyond the floor, measured: {len(costs)} modules "
            f"({ms(sum(cost.self_seconds for cost in costs))} of self time, none over "
            f"{ms(heaviest.self_seconds)}: `{heaviest.module}`), what the lifespan builds before the first answer "
            "(the Atlas client with the pydantic models of Atlas's answers, the spend guard, the Tasks extension, "
            "the gallery); pydantic and dataclass class creation is most of it.",
            "mcp 2.x already imports `httpx2` (the same API as httpx); our Atlas client imports `httpx` besides, "
            "and httpx 0.28's `__init__` eagerly tries its CLI (`httpx._main`: click, pygments, rich).",
            "The lifespan builds the `AtlasClient` before the server answers `initialize`, but not its HTTP client: "
            "httpx, httpcore and the CA bundle's SSL context come with the first request to Atlas (the lifespan row).",
            f"Without a bytecode cache (a first launch) most of either start is compiling; the ratio is "
            f"{cold.ratio:.3f}× there against {warm.ratio:.3f}× warm, as our extra modules are compiled too.",
        ],
        targets=[_target("warm bytecode", warm), _target("no bytecode cache", cold)],
    )
