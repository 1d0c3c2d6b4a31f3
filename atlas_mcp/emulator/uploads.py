"""Receives `uploadMedia` bodies straight to disk, however large, without holding them in memory.

Starlette's `request.form()` would spool big parts to the system temp dir and copy them
again; parsing the stream here writes each part once, into the storage folder, in
batches handed to a worker thread so the event loop never blocks on disk.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from anyio import to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from atlas_mcp.emulator.state import Upload

if TYPE_CHECKING:  # the callbacks' TypedDict exists only for type checkers
    from python_multipart.multipart import MultipartCallbacks

_FLUSH_BYTES = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(Exception):
    """The request cannot be stored as an upload; `message` says what to send instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def safe_filename(name: str) -> str:
    """The last path component, restricted to URL- and filesystem-safe characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    cleaned = _UNSAFE.sub("_", base).strip("._")[:128]
    return cleaned or "upload"


class _FilePartWriter:
    """python-multipart callbacks that route the `file` part's bytes into a file under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.filename = ""
        self.content_type = "application/octet-stream"
        self.size = 0
        self.complete = False
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self._capturing = False
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if options.get(b"name") != b"file" or self.file is not None or self.complete:
            return  # other fields, and any second "file" part, are read and dropped
        raw_name = options.get(b"filename")
        if raw_name is None:
            raise UploadError('the "file" part must be a file: give it a filename and a content type')
        self.filename = safe_filename(raw_name.decode("utf-8", "replace"))
        declared = self._headers.get(b"content-type", b"").decode("latin-1").strip()
        self.content_type = declared or "application/octet-stream"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / self.filename
        self.file = self.path.open("wb")
        self._capturing = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._capturing:
            self.pending.append(data[start:end])
            self.pending_bytes += end - start

    def _part_end(self) -> None:
        if self._capturing:
            self._capturing = False
            self.complete = True

    async def flush(self) -> None:
        if self.file is not None and self.pending:
            chunks, self.pending, self.pending_bytes = self.pending, [], 0
            self.size += sum(len(c) for c in chunks)
            await to_thread.run_sync(self.file.writelines, chunks)


async def store_upload(content_type: str | None, stream: AsyncIterator[bytes], uploads_dir: Path) -> Upload:
    """Parse a multipart body from `stream` and keep its `file` part under `uploads_dir/<key>/`."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError('send multipart/form-data with one part named "file" (a filename and content type)')
    key = secrets.token_hex(16)
    writer = _FilePartWriter(uploads_dir / key)
    parser = MultipartParser(params[b"boundary"], writer.callbacks())
    try:
        try:
            async for chunk in stream:
                parser.write(chunk)
                if writer.pending_bytes >= _FLUSH_BYTES:
                    await writer.flush()
            parser.finalize()
            await writer.flush()
        except MultipartParseError as exc:
            raise UploadError(f"the multipart body could not be parsed: {exc}") from exc
        finally:
            if writer.file is not None:
                writer.file.close()
        if not writer.complete or writer.path is None:
            raise UploadError('no "file" part found: send multipart/form-data with a part named "file"')
    except BaseException:
        shutil.rmtree(writer.folder, ignore_errors=True)
        raise
    return Upload(key, writer.filename, writer.content_type, writer.size, writer.path)
