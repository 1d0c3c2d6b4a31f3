"""5. Upload: a 1 GiB file through ``upload_media`` to the emulator, against the same upload made directly.

The file is sparse (a small real PNG, then a hole), so making it costs no disk and reading it no I/O: the
numbers are the server's streaming, not the disk's. The emulator runs in its own process. (The PNG's header
must parse: upload_media judges media by parsing it, not by its first bytes.)
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.emulator_process import EmulatorProcess
from benchmarks.proc import cpu_seconds, memory_mib
from benchmarks.report import Section, Table, Target, median
from benchmarks.rpc import BENCH_KEY, OUR_SERVER, StdioPeer, Workspace, structured

SIZE = 1 << 30
TARGET_PEAK_MB = 150
_CHUNK = 256 * 1024  # what the Atlas client reads per step


def make_file(folder: Path) -> Path:
    """The sparse file, read through once: the kernel zero-fills a hole's page cache on the first read, and
    that (system CPU) would otherwise be charged to whichever upload came first."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "one-gibibyte.png"
    with path.open("wb") as file:
        Image.new("RGB", (16, 16), "teal").save(file, "PNG")  # trailing bytes after IEND are ignored by readers
        file.truncate(SIZE)
    with path.open("rb") as file:
        while file.read(1 << 24):
            pass
    return path


def direct_upload(url: str, path: Path) -> tuple[float, float]:
    """The floor: the same multipart body streamed with httpx from this process; (seconds, CPU seconds)."""
    boundary = secrets.token_hex(16)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                yield chunk
        yield tail

    headers = {
        "Authorization": f"Bearer {BENCH_KEY}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + SIZE + len(tail)),
    }
    started, cpu = time.monotonic(), time.process_time()
    answer = httpx.post(f"{url}/api/v1/model/uploadMedia", content=body(), headers=headers, timeout=300)
    answer.raise_for_status()
    return time.monotonic() - started, time.process_time() - cpu


def emulator_storage(ws: Workspace) -> Path:
    """RAM-backed storage when there is room, so disk write-back does not set the pace of either path."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 3 * SIZE:
        return Path(tempfile.mkdtemp(prefix="atlas-benchmark-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="emulator-storage-", dir=ws.root))


def via_server(peer: StdioPeer, path: Path) -> tuple[float, float]:
    """One upload_media call: (seconds, the server's CPU seconds)."""
    started, cpu = time.monotonic(), cpu_seconds(peer.pid)
    request_id = peer.call_tool("upload_media", {"path": str(path)})
    answer, arrived = peer.collect([request_id])[request_id]
    assert structured(answer)["size_bytes"] == SIZE
    return arrived - started, cpu_seconds(peer.pid) - cpu


def run(ws: Workspace, *, repeats: int = 3) -> Section:
    path = make_file(ws.root / "uploads")
    storage = emulator_storage(ws)
    env = {"ATLASCLOUD_UPLOAD_ROOTS": str(path.parent), "ATLASCLOUD_MAX_UPLOAD_MB": "2048"}
    ours: list[tuple[float, float]] = []
    floor: list[tuple[float, float]] = []
    try:
        with (
            EmulatorProcess(ws, prediction_seconds=1, storage=storage) as emulator,
            StdioPeer(OUR_SERVER, ws.server_env(emulator.url, env), ws.log("upload")) as peer,
        ):
            peer.initialize()
            idle_rss = memory_mib(peer.pid, "VmRSS")
            for _ in range(repeats):
                ours.append(via_server(peer, path))
                shutil.rmtree(storage / "uploads", ignore_errors=True)
                floor.append(direct_upload(emulator.url, path))
                shutil.rmtree(storage / "uploads", ignore_errors=True)
            peak = memory_mib(peer.pid, "VmHWM")
    finally:
        path.unlink(missing_ok=True)
        shutil.rmtree(storage, ignore_errors=True)
    return _section(
        ours=median([seconds for seconds, _ in ours]),
        floor=median([seconds for seconds, _ in floor]),
        server_cpu=median([cpu for _, cpu in ours]),
        floor_cpu=median([cpu for _, cpu in floor]),
        idle_rss=idle_rss,
        peak=peak,
        repeats=repeats,
    )


def _section(
    *, ours: float, floor: float, server_cpu: float, floor_cpu: float, idle_rss: float, peak: float, repeats: int
) -> Section:
    def rate(seconds: float) -> str:
        return f"{SIZE / seconds / 2**20:.0f} MiB/s"

    table = Table(
        ("path", "time", "throughput", "CPU of the sender"),
        [
            (
                "floor: the same multipart stream, sync httpx from the benchmark process",
                f"{floor:.2f} s",
                rate(floor),
                f"{floor_cpu:.2f} s",
            ),
            ("`upload_media` through the server", f"{ours:.2f} s", rate(ours), f"{server_cpu:.2f} s"),
            ("ratio", f"{ours / floor:.2f}×", "", f"{server_cpu / floor_cpu:.2f}×"),
        ],
        caption=(
            f"1 GiB sparse file starting with a small PNG, median of {repeats} uploads each, alternating; emulator in "
            "its own process, storing to RAM (/dev/shm) when there is room."
        ),
    )
    memory = Table(
        ("server", "value"),
        [
            ("RSS before the uploads", f"{idle_rss:.0f} MiB"),
            ("peak RSS (VmHWM) after them", f"**{peak:.0f} MiB** (+{peak - idle_rss:.0f} MiB)"),
        ],
    )
    return Section(
        title="5. Upload",
        tables=[table, memory],
        notes=[
            "The emulator parses the multipart body in Python, so it can set the pace of both paths; the "
            "sender's CPU is the server's own cost whatever the pace.",
        ],
        targets=[
            Target(
                "upload_media 1 GiB: server peak RSS",
                f"{peak:.0f} MiB (+{peak - idle_rss:.0f} MiB over idle), {rate(ours)}",
                f"< {TARGET_PEAK_MB} MB",
                peak * 2**20 < TARGET_PEAK_MB * 10**6,
            )
        ],
    )
