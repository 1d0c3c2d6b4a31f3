"""``uv run python -m benchmarks``: run every benchmark, print the markdown, write it to docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    concurrency,
    overhead,
    preview,
    spending,
    startup,
    startup_instructions,
    streamable,
    time_to_image,
    upload,
)
from benchmarks.proc import machine
from benchmarks.report import Section, render
from benchmarks.rpc import Workspace

COMMAND = "uv run python -m benchmarks"
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

Benchmark = Callable[[Workspace], Section]
BENCHMARKS: dict[str, Benchmark] = {
    "startup": startup.run,
    "startup-instructions": startup_instructions.run,
    "overhead": overhead.run,
    "time-to-image": time_to_image.run,
    "concurrency": concurrency.run,
    "upload": upload.run,
    "preview": preview.run,
    "spending": spending.run,
    "http": streamable.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file to write (default: %(default)s)"
    )
    parser.add_argument(
        "--only", choices=sorted(BENCHMARKS), action="append", help="run only these (repeatable); nothing is written"
    )
    args = parser.parse_args(argv)
    if sys.platform != "linux":
        parser.error("the benchmarks read /proc: run them on Linux")
    chosen = args.only or list(BENCHMARKS)
    started = time.monotonic()
    sections = []
    with tempfile.TemporaryDirectory(prefix="atlas-benchmarks-") as scratch:
        workspace = Workspace(Path(scratch))
        for number, name in enumerate(chosen, start=1):
            print(f"[{number}/{len(chosen)}] {name} …", file=sys.stderr, flush=True)
            sections.append(BENCHMARKS[name](workspace))
    markdown = render(sections, machine(), COMMAND, time.monotonic() - started)
    print(markdown)
    if args.only is None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown)
        print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
