"""6. Preview: time and bytes to turn an emulator-rendered PNG into the inline JPEG preview.

The floor is decoding the PNG, which any preview must do. The first preview of a process also imports
Pillow and its JPEG encoder, and each preview holds decoded pixels for a while: both measured in fresh
interpreters (preview_probe.py).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PIL import Image

from atlas_mcp.emulator.images import render_png
from atlas_mcp.media.previews import make_preview
from benchmarks.report import Section, Table, median, ms
from benchmarks.rpc import Workspace

SIDES = (1024, 2048)
MAX_SIDE = 1024
BUDGET = 600 * 1024
_PROBE = str(Path(__file__).with_name("preview_probe.py"))
_PROMPT = "a lighthouse on a cliff at sunset, watercolor"


def render(side: int) -> bytes:
    return render_png(prompt=_PROMPT, seed=7, index=0, width=side, height=side, model="black-forest-labs/flux-schnell")


def fresh_process(ws: Workspace, png: Path, mode: str, repeats: int = 3) -> float:
    """Median of what preview_probe.py reports over fresh interpreters: "time" (s) or "memory" (MiB)."""
    runs = []
    for _ in range(repeats):
        command = [sys.executable, _PROBE, str(png), mode]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=ws.python_env())
        runs.append(float(json.loads(done.stdout)))
    return median(runs)


def one_preview_mib(ws: Workspace) -> float:
    """How far one preview of a 1024×1024 output raises a process's peak RSS."""
    png = ws.root / "preview-1024.png"
    if not png.exists():
        png.write_bytes(render(1024))
    return fresh_process(ws, png, "memory")


def timed(action: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return median(samples)


def decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def run(ws: Workspace, *, repeats: int = 7) -> Section:
    rows = []
    for side in SIDES:
        png = render(side)
        preview = make_preview(png, max_side=MAX_SIDE, max_base64_bytes=BUDGET)
        assert preview is not None
        took = timed(partial(make_preview, png, max_side=MAX_SIDE, max_base64_bytes=BUDGET), repeats)
        floor = timed(partial(decode, png), repeats)
        base64_bytes = (len(preview.jpeg) + 2) // 3 * 4
        rows.append(
            (
                f"{side}×{side}",
                f"{len(png) / 1024:.0f} KiB",
                ms(floor),
                ms(took),
                f"{took / floor:.1f}×",
                f"{preview.width}×{preview.height}, {len(preview.jpeg) / 1024:.0f} KiB",
                f"{base64_bytes / 1024:.0f} KiB of {BUDGET // 1024}",
            )
        )
    memory = one_preview_mib(ws)
    first = fresh_process(ws, ws.root / "preview-1024.png", "time")
    table = Table(
        ("output", "PNG", "floor: decode only", "make_preview", "ratio", "JPEG preview", "base64 / budget"),
        rows,
        caption=f"Median of {repeats} in this process (Pillow already loaded); emulator-rendered PNGs.",
    )
    return Section(
        title="6. Preview",
        tables=[table],
        notes=[
            f"The first preview of a process takes {ms(first, 0)} for the 1024×1024 PNG (Pillow's import and its "
            "JPEG encoder included; median of 3 fresh interpreters): the first image of each session pays it.",
            f"One 1024×1024 preview raises a process's peak RSS by {memory:.1f} MiB (the decoded image and the "
            "copy it shrinks).",
        ],
    )
