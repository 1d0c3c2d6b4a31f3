"""Run in a fresh interpreter by the preview benchmark: the first preview of a process, in time and in memory.

``python preview_probe.py PNG time`` prints the seconds of the first ``make_preview`` (Pillow's import and
its JPEG encoder included); ``... PNG memory`` prints how far one preview raises the peak resident size
(MiB), with Pillow already loaded.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

MAX_SIDE = 1024
BUDGET = 600 * 1024


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmHWM")


def main(png: Path, mode: str) -> float:
    from atlas_mcp.media.previews import make_preview

    data = png.read_bytes()
    if mode == "memory":
        from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401

        before = peak_mib()
        make_preview(data, max_side=MAX_SIDE, max_base64_bytes=BUDGET)
        return peak_mib() - before
    started = time.perf_counter()
    make_preview(data, max_side=MAX_SIDE, max_base64_bytes=BUDGET)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])))
