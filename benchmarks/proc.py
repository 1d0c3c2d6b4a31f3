"""What /proc says about a process and the machine (Linux only; no psutil)."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS


_CGROUP_V1 = Path("/sys/fs/cgroup/cpu")  # the cpu controller's own hierarchy
_CGROUP_V2 = Path("/sys/fs/cgroup")
_PERIOD_US = 100_000


@contextmanager
def cpu_limit(pid: int, cores: float) -> Iterator[bool]:
    """Hold ``pid`` to ``cores`` of CPU time with a CFS quota in its own cgroup, as an orchestrator's CPU limit
    (Kubernetes' ``limits.cpu``, compose's ``cpus``) holds a replica. Yields False, changing nothing, where
    cgroups cannot be written (not root, or a read-only /sys/fs/cgroup)."""
    quota = int(cores * _PERIOD_US)
    if (_CGROUP_V1 / "cpu.cfs_quota_us").is_file():
        group, settings = (
            _CGROUP_V1 / f"atlas-bench-{pid}",
            {"cpu.cfs_period_us": str(_PERIOD_US), "cpu.cfs_quota_us": str(quota)},
        )
    elif "cpu" in _read(_CGROUP_V2 / "cgroup.subtree_control").split():
        group, settings = _CGROUP_V2 / f"atlas-bench-{pid}", {"cpu.max": f"{quota} {_PERIOD_US}"}
    else:
        yield False
        return
    try:
        group.mkdir()
        for name, value in settings.items():
            (group / name).write_text(f"{value}\n")
        (group / "cgroup.procs").write_text(f"{pid}\n")
    except OSError:
        with suppress(OSError):
            group.rmdir()
        yield False
        return
    try:
        yield True
    finally:
        for left in _read(group / "cgroup.procs").split():  # still running: back to the root group
            with suppress(OSError):
                (group.parent / "cgroup.procs").write_text(f"{left}\n")
        with suppress(OSError):
            group.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def memory_mib(pid: int, field: str) -> float:
    """A ``VmXxx`` line of /proc/<pid>/status in MiB: ``VmHWM`` is peak RSS, ``VmRSS`` the current one."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"{field} not in /proc/{pid}/status")


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    python: str
    os: str
    date: str

    def describe(self) -> str:
        return (
            f"{self.cpu}, {self.cores} cores, {self.ram_gib:.1f} GiB RAM; Python {self.python}; {self.os}; {self.date}"
        )


def machine() -> Machine:
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        ram_gib=_mem_total_kib() / 1024 / 1024,
        python=f"{platform.python_version()} ({platform.python_implementation()}, the project's uv environment)",
        os=_os_name(),
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _mem_total_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _os_name() -> str:
    pretty = platform.platform()
    release = Path("/etc/os-release")
    if release.is_file():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = f"{line.split('=', 1)[1].strip(chr(34))}, kernel {platform.release()}"
    return pretty
