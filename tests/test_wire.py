"""The stdio wire on the event loop (atlas_mcp.server.wire), over real pipes and socket pairs: lines as the SDK's
text reader gives them, answers that wait for a slow reader without stopping the loop, and descriptors left in
the mode their other holders expect."""

from __future__ import annotations

import io
import itertools
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_mcp.server.wire import LineSplitter, WireLines, WireWriter, open_end

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the pipe path needs Linux's /proc")

_PIECES = [b"a", b"{}", b" ", b"\n", b"\r", b"\r\n", "é".encode(), "€".encode(), "😀".encode(), b"\xff", b"\xe2\x82"]


def _as_the_sdk_reads(data: bytes) -> list[str]:
    """The lines the SDK's own stdin reader yields for these bytes."""
    return list(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace"))


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.sampled_from(_PIECES), max_size=30), cuts=st.lists(st.integers(0, 120), max_size=8))
def test_lines_are_split_as_the_sdk_s_text_reader_splits_them(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut < len(data))})
    splitter = LineSplitter()
    lines = [line for start, end in itertools.pairwise(bounds) for line in splitter.feed(data[start:end])]
    assert [*lines, *splitter.end()] == _as_the_sdk_reads(data)


@contextmanager
def _wire(kind: str) -> Iterator[tuple[int, int]]:
    """(read fd, write fd) of a fresh pipe or socket pair, closed after."""
    if kind == "pipe":
        read_fd, write_fd = os.pipe()
    else:
        left, right = socket.socketpair()
        read_fd, write_fd = left.detach(), right.detach()
    try:
        yield read_fd, write_fd
    finally:
        for fd in (read_fd, write_fd):
            os.close(fd)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["pipe", "socket pair"])
async def test_lines_come_through_a_pipe_or_socket_pair_and_the_descriptor_stays_blocking(kind: str) -> None:
    data = b'{"jsonrpc": "2.0", "id": 1}\r\n' + "{€}\n".encode() * 3000 + b"last, with no newline"
    with _wire(kind) as (read_fd, write_fd):
        end = open_end(read_fd, writing=False)
        assert end is not None
        writer = threading.Thread(target=_write_slowly, args=(kind, write_fd, data))
        writer.start()
        try:
            lines = [line async for line in WireLines(end)]
        finally:
            writer.join()
            end.close()
        assert os.get_blocking(read_fd)  # the shell, uvx or the client holding it sees it as it was
    assert lines == _as_the_sdk_reads(data)


def _write_slowly(kind: str, fd: int, data: bytes) -> None:
    """Write in small pieces with pauses (so that the reader waits), then end the stream as a client does."""
    for start in range(0, len(data), 4000):
        os.write(fd, data[start : start + 4000])
        time.sleep(0.001)
    if kind == "pipe":  # the last write end closed (fd kept, pointed at the null device, for the fixture to close)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    else:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_WR)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["pipe", "socket pair"])
async def test_a_long_answer_waits_for_a_slow_reader_while_the_loop_runs_on(kind: str) -> None:
    answer = "x" * (4 << 20) + "\n"  # far more than a pipe or socket buffer holds
    received = bytearray()
    ticks = 0

    def read_slowly(fd: int) -> None:
        while len(received) < len(answer):
            time.sleep(0.002)
            received.extend(os.read(fd, 1 << 16))

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.001)
            ticks += 1

    with _wire(kind) as (read_fd, write_fd):
        end = open_end(write_fd, writing=True)
        assert end is not None
        reader = threading.Thread(target=read_slowly, args=(read_fd,))
        reader.start()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(tick)
                with anyio.fail_after(60):
                    await WireWriter(end).write(answer)
                group.cancel_scope.cancel()
        finally:
            reader.join(timeout=60)
            end.close()
        assert os.get_blocking(write_fd)
    assert received == answer.encode()
    assert ticks > 10  # the loop ran while the answer waited for its reader


def test_only_a_socket_or_a_pipe_is_served_on_the_loop(tmp_path: Path) -> None:
    for kind in ("pipe", "socket pair"):
        with _wire(kind) as (read_fd, write_fd):
            for fd, writing in ((read_fd, False), (write_fd, True)):
                end = open_end(fd, writing=writing)
                assert end is not None, kind
                end.close()
    afile = tmp_path / "requests.jsonl"
    afile.write_text("{}\n")
    with afile.open("rb") as opened:
        assert open_end(opened.fileno(), writing=False) is None  # a file: the SDK's threads read it
    primary, secondary = os.openpty()
    try:
        assert open_end(secondary, writing=False) is None  # a terminal: the same
    finally:
        os.close(primary)
        os.close(secondary)
