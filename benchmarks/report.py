"""Results as markdown: one section per benchmark, a summary of the targets on top."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.proc import Machine


@dataclass(frozen=True)
class Target:
    """One goal, what was measured against it, and whether it was met."""

    measure: str
    result: str
    goal: str
    met: bool


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""


@dataclass
class Section:
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between the closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


def render(sections: Sequence[Section], machine: Machine, command: str, wall_seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Reproduce with `{command}` (about {wall_seconds / 60:.0f} min; loopback only, no key, no cost; "
        "`--only NAME` runs one part without writing this file). Every figure is set against a floor measured "
        "in the same run; medians unless marked. Speed targets live here only, never in the unit tests.",
        "",
        f"Machine: {machine.describe()}.",
        "",
        "## Targets",
        "",
    ]
    targets = [target for section in sections for target in section.targets]
    lines += _table(
        Table(
            ("measure", "result", "target", "met"),
            [(t.measure, t.result, t.goal, "yes" if t.met else "**no**") for t in targets],
        )
    )
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        for table in section.tables:
            if table.caption:
                lines += [table.caption, ""]
            lines += [*_table(table), ""]
        lines += [f"- {note}" for note in section.notes]
    return "\n".join(lines).rstrip() + "\n"


def _table(table: Table) -> list[str]:
    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    return [row(table.headers), row(["---"] * len(table.headers)), *(row(cells) for cells in table.rows)]
