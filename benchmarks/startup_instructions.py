"""1b. Cold start in instructions: the same spawn → initialize → tools/list, counted by callgrind, not timed.

Wall-clock start-up swings by 2× on a shared virtual machine from one minute to the next; the number of
instructions a start executes does not (the same binary, inputs and environment give the same count
within a fraction of a percent). So the ratio to the floor is measured here too, where noise cannot move it.
Needs valgrind; without it the section says so and sets no target.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

from benchmarks.report import Section, Table, Target
from benchmarks.rpc import FLOOR_SERVER, INITIALIZE, OUR_SERVER, Workspace

TARGET_RATIO = 1.10  # issue 26
_COLLECTED = re.compile(rb"Collected : (\d+)")


def start(argv: list[str], env: dict[str, str], *, counted: bool) -> int:
    """One cold start up to the tools/list answer; with ``counted``, under callgrind, returning its instructions."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv] if counted else argv
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        for message in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        ):
            process.stdin.write(json.dumps(message).encode() + b"\n")
            process.stdin.flush()
            if "id" in message:
                process.stdout.readline()
        process.stdin.close()
        errors = process.stderr.read()
        process.wait(timeout=600)
    counts = _COLLECTED.findall(errors)
    if counted and not counts:
        raise RuntimeError(f"callgrind reported no count for {argv}: {errors[-500:]!r}")
    return int(counts[-1]) if counts else 0


def run(ws: Workspace) -> Section:
    title = "1b. Cold start in instructions"
    if shutil.which("valgrind") is None:
        return Section(title=title, notes=["valgrind is not installed: no instruction counts."])
    servers = {"floor": (FLOOR_SERVER, ws.python_env()), "ours": (OUR_SERVER, ws.server_env("http://127.0.0.1:9"))}
    counts = {}
    for who, (argv, env) in servers.items():
        start(argv, env, counted=False)  # fills the bytecode cache: every launch after a user's first
        counts[who] = start(argv, env, counted=True)
    floor, ours = counts["floor"], counts["ours"]
    ratio = ours / floor
    table = Table(
        ("server", "instructions to tools/list", "ratio"),
        [
            ("floor: bare MCPServer, one tool", f"{floor / 1e9:.3f} G", "1"),
            ("atlascloud-mcp", f"{ours / 1e9:.3f} G", f"**{ratio:.3f}×**"),
        ],
        caption="callgrind, one start each after one that fills the bytecode cache (repeat runs agree within 0.2 %).",
    )
    return Section(
        title=title,
        tables=[table],
        notes=["Instruction counts do not depend on the machine's load, so this ratio holds where timings swing."],
        targets=[
            Target(
                "cold start to tools/list, ours / floor, in instructions",
                f"{ratio:.3f}× ({ours / 1e9:.3f} G vs {floor / 1e9:.3f} G)",
                f"≤ {TARGET_RATIO:g}×",
                ratio <= TARGET_RATIO,
            )
        ],
    )
