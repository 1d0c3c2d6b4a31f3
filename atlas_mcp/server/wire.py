"""The stdio wire read and written on the event loop, with no worker thread per line.

The SDK's stdio transport reads every line, and writes every message, in a worker thread: a line in, then a
write and a flush out, three thread hops a call. On a small machine those hops are most of what a quick tool call
costs beyond its own work (docs/benchmarks.md, section 2). Where the descriptors allow it, this module reads and
writes on the event loop instead, waiting for readiness as it would for a socket, and never makes a descriptor
non-blocking for another holder of it (the shell, ``uvx``, the client):

- a socket, which is what Node clients give a server (Claude Desktop, Claude Code, Cursor, VS Code and the
  Inspector spawn it over socket pairs), is read and written with ``MSG_DONTWAIT``, one call at a time;
- a pipe, which is what Python clients give, is opened afresh through ``/proc/self/fd`` (Linux): an open file
  description of its own, which can be non-blocking alone.

Anything else (a terminal, a file, a pipe where there is no ``/proc``) is served as the SDK serves it, through
worker threads. While serving, fd 1 points at stderr, as the SDK has it, so that nothing stray reaches the wire.
"""

from __future__ import annotations

import codecs
import io
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TextIO

import anyio

if sys.platform != "win32":  # pragma: no branch - served through the SDK's threads there
    import fcntl

__all__ = ["LineSplitter", "WireLines", "WireWriter", "claimed_stdout", "open_end", "opened_stdin"]

_CHUNK = 1 << 16


@dataclass(frozen=True)
class _Socket:
    """A socket read and written without blocking, call by call: its descriptor's own mode is left as it is."""

    sock: socket.socket

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> bytes:
        return self.sock.recv(_CHUNK, socket.MSG_DONTWAIT)

    def send(self, data: memoryview) -> int:
        return self.sock.send(data, socket.MSG_DONTWAIT)

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class _Pipe:
    """A pipe opened afresh, non-blocking in a description no one else holds."""

    fd: int

    def fileno(self) -> int:
        return self.fd

    def receive(self) -> bytes:
        return os.read(self.fd, _CHUNK)

    def send(self, data: memoryview) -> int:
        return os.write(self.fd, data)

    def close(self) -> None:
        os.close(self.fd)


End = _Socket | _Pipe


def open_end(fd: int, *, writing: bool) -> End | None:
    """A non-blocking end of the wire on ``fd`` (a socket or a pipe), or None where only threads can serve it."""
    if sys.platform == "win32" or not hasattr(socket, "MSG_DONTWAIT"):
        return None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None
    if stat.S_ISSOCK(mode):
        try:
            duplicate = _duplicate(fd)
        except OSError:
            return None
        try:
            return _Socket(socket.socket(fileno=duplicate))
        except OSError:
            os.close(duplicate)
            return None
    if stat.S_ISFIFO(mode) and sys.platform == "linux":
        flags = (os.O_WRONLY if writing else os.O_RDONLY) | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            return _Pipe(os.open(f"/proc/self/fd/{fd}", flags))
        except OSError:  # no /proc, or a sandbox that refuses it
            return None
    return None


def _duplicate(fd: int) -> int:
    """A close-on-exec copy of ``fd`` that cannot land on a standard descriptor (one may be closed)."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _close(end: End) -> None:
    """Close an end, waking (with ClosedResourceError) any task still waiting on it."""
    with suppress(anyio.NoEventLoopError):  # no event loop: nothing can be waiting
        anyio.notify_closing(end.fileno())
    end.close()


class LineSplitter:
    """Bytes in, lines out, exactly as the SDK's text reader (``TextIOWrapper``, UTF-8) gives them: bad bytes
    replaced, ``\\r\\n`` and a lone ``\\r`` read as ``\\n``, each line with its newline, the last without when the
    stream ends without one. Chunks may split anything, a character or a ``\\r\\n`` included."""

    def __init__(self) -> None:
        self._decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")("replace"), True)
        self._partial: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        return self._split(self._decoder.decode(chunk))

    def end(self) -> list[str]:
        """The lines still held when the stream ends."""
        lines = self._split(self._decoder.decode(b"", final=True))
        rest = "".join(self._partial)
        self._partial.clear()
        return [*lines, rest] if rest else lines

    def _split(self, text: str) -> list[str]:
        lines: list[str] = []
        start = 0
        while (end := text.find("\n", start)) >= 0:
            self._partial.append(text[start : end + 1])
            lines.append("".join(self._partial))
            self._partial.clear()
            start = end + 1
        if start < len(text):
            self._partial.append(text[start:])  # kept in pieces: a long line is joined once, not once a chunk
        return lines


class WireLines:
    """stdin's lines, read on the event loop; the stream ends at EOF (or when the client resets the socket)."""

    def __init__(self, end: End) -> None:
        self._end = end

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        splitter = LineSplitter()
        while chunk := await self._receive():
            for line in splitter.feed(chunk):
                yield line
        for line in splitter.end():
            yield line

    async def _receive(self) -> bytes:
        while True:
            try:
                return self._end.receive()
            except BlockingIOError:
                await anyio.wait_readable(self._end.fileno())
            except ConnectionResetError:  # the client went away: as good as EOF
                return b""


class WireWriter:
    """stdout for the SDK's transport: each message written whole on the event loop, waiting while the client has
    not read what came before."""

    def __init__(self, end: End) -> None:
        self._end = end

    async def write(self, text: str) -> None:
        data = memoryview(text.encode())
        while data:
            try:
                data = data[self._end.send(data) :]
            except BlockingIOError:
                await anyio.wait_writable(self._end.fileno())

    async def flush(self) -> None:
        """Nothing is held back: :meth:`write` has sent it all."""


@contextmanager
def opened_stdin() -> Iterator[WireLines | None]:
    """stdin's lines, read on the event loop; None where only the SDK's threaded reader can read it."""
    end = open_end(0, writing=False)
    if end is None:
        yield None
        return
    try:
        yield WireLines(end)
    finally:
        _close(end)


@contextmanager
def claimed_stdout() -> Iterator[WireWriter | None]:
    """stdout's wire, written on the event loop, with fd 1 pointed at stderr while serving (so that a stray print
    or a library's output misses the wire) and put back after. None where the SDK's own writer must serve it (it
    claims fd 1 the same way)."""
    claimed = _claim_stdout()
    if claimed is None:
        yield None
        return
    end, wire = claimed
    try:
        yield WireWriter(end)
    finally:
        with suppress(OSError, ValueError):  # a client gone takes stdout with it
            sys.stdout.flush()
        _close(end)
        with suppress(OSError):
            os.dup2(wire, 1)
        os.close(wire)


def _claim_stdout() -> tuple[End, int] | None:
    """A non-blocking end on stdout's wire and a copy of fd 1 to put back, fd 1 now pointed at stderr; None, with
    nothing changed, where that cannot be done."""
    end = open_end(1, writing=True) if _backed_by_fd(sys.stdout, 1) else None
    if end is None:
        return None
    with suppress(OSError, ValueError):
        sys.stdout.flush()
    try:
        wire = _duplicate(1)
    except OSError:
        end.close()
        return None
    try:
        _divert(1)
    except OSError:
        os.close(wire)
        end.close()
        return None
    return end, wire


def _divert(fd: int) -> None:
    try:
        target = os.dup(2)
    except OSError:
        target = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(target, fd)
    finally:
        os.close(target)


def _backed_by_fd(stream: TextIO, fd: int) -> bool:
    try:
        return stream.buffer.fileno() == fd
    except (AttributeError, OSError, ValueError):
        return False
