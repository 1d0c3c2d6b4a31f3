"""Local files in and out: which paths may be read for upload, and where outputs may be written.

A model may be prompt-injected, so a path it hands us is hostile until proven otherwise:
resolve it (``~``, ``..``, every symlink), then check it lies inside an allowed root, then refuse hidden
components below the root, then open it without following a final symlink and without blocking (a
FIFO would otherwise hang the open), then check the *opened* file is the regular file that was checked.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from atlas_mcp.errors import InputError, PathRefusedError

logger = logging.getLogger(__name__)

__all__ = ["OpenedUpload", "open_upload", "output_path", "root_paths", "sniff_media_type"]

_HOW_TO_CONFIGURE = (
    "Set ATLASCLOUD_UPLOAD_ROOTS in the server's environment to the folders uploads may come from "
    "(separated by '{sep}'), or let your MCP client declare its workspace roots."
)


@dataclass
class OpenedUpload:
    """A checked, opened regular file, ready to stream. Close it when done."""

    file: BinaryIO
    path: Path
    size: int
    content_type: str

    def close(self) -> None:
        self.file.close()


def open_upload(raw_path: str, roots: Sequence[Path], *, max_bytes: int) -> OpenedUpload:
    """Resolve, confine, open and identify a file for upload, or raise :class:`PathRefusedError` saying why."""
    if not roots:
        raise PathRefusedError(
            "upload_media is not enabled: no folders are allowed yet. " + _HOW_TO_CONFIGURE.format(sep=os.pathsep)
        )
    if not raw_path.strip() or "\x00" in raw_path:
        raise InputError("Give the path of a local file, e.g. /home/me/Pictures/cat.png.")
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    candidate = Path(raw_path.strip()).expanduser()
    if not candidate.is_absolute():
        candidate = real_roots[0] / candidate
    resolved = Path(os.path.realpath(candidate))
    root = next((r for r in real_roots if resolved == r or resolved.is_relative_to(r)), None)
    allowed = ", ".join(str(r) for r in real_roots)
    if root is None:
        raise PathRefusedError(
            f"{raw_path} is outside the folders upload_media may read ({allowed}); symlinks are followed "
            "before this check. Move or copy the file into one of them. " + _HOW_TO_CONFIGURE.format(sep=os.pathsep)
        )
    hidden = [part for part in resolved.relative_to(root).parts if part.startswith(".")]
    if hidden:
        raise PathRefusedError(
            f"{raw_path} is in or is a hidden file or folder ({hidden[0]}); those often hold keys and "
            "settings, so they are never uploaded unless a root names the hidden folder itself."
        )
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{raw_path} does not exist. Check the path (allowed folders: {allowed}).") from None
    except OSError as exc:
        raise PathRefusedError(f"{raw_path} cannot be opened ({exc.strerror}).") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
            raise PathRefusedError(f"{raw_path} is {kind}; upload_media sends regular files only.")
        if info.st_size == 0:
            raise InputError(f"{raw_path} is empty; there is nothing to upload.")
        if info.st_size > max_bytes:
            raise PathRefusedError(
                f"{raw_path} is {info.st_size / 1048576:.1f} MiB, over the {max_bytes / 1048576:.0f} MiB limit "
                "(ATLASCLOUD_MAX_UPLOAD_MB)."
            )
        os.set_blocking(fd, True)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    try:
        content_type = sniff_media_type(file.read(64))
        file.seek(0)
        if content_type is None:
            raise PathRefusedError(
                f"{raw_path} is not an image, video or audio file (judged by its content, not its name); "
                "upload_media sends media that models take as input, nothing else."
            )
    except BaseException:
        file.close()
        raise
    return OpenedUpload(file=file, path=resolved, size=info.st_size, content_type=content_type)


def sniff_media_type(head: bytes) -> str | None:
    """The media type a file's first bytes announce, or ``None`` when they are not a known image/video/audio."""
    signatures: list[tuple[int, bytes, str]] = [
        (0, b"\x89PNG\r\n\x1a\n", "image/png"),
        (0, b"\xff\xd8\xff", "image/jpeg"),
        (0, b"GIF87a", "image/gif"),
        (0, b"GIF89a", "image/gif"),
        (0, b"BM", "image/bmp"),
        (0, b"II*\x00", "image/tiff"),
        (0, b"MM\x00*", "image/tiff"),
        (0, b"\x1aE\xdf\xa3", "video/webm"),
        (0, b"ID3", "audio/mpeg"),
        (0, b"OggS", "audio/ogg"),
        (0, b"fLaC", "audio/flac"),
    ]
    for offset, magic, media_type in signatures:
        if head[offset : offset + len(magic)] == magic:
            return media_type
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}[head[8:12]]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1"):
            return "image/heic"
        if brand.startswith(b"M4A"):
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "audio/mpeg"  # an MPEG audio frame without an ID3 tag
    return None


def output_path(output_dir: Path, prediction_id: str, index: int, extension: str) -> Path:
    """Where output ``index`` of a prediction is saved: named by prediction id, never by prompt text."""
    root = Path(os.path.realpath(output_dir))
    target = root / f"{prediction_id}-{index}{extension}"
    if target.parent != root:  # the id is validated upstream; this keeps it true if that ever changes
        raise PathRefusedError("Refused to write outside ATLASCLOUD_OUTPUT_DIR.")
    return target


_DRIVE = re.compile(r"/[A-Za-z]:/")


def root_paths(uris: Iterable[str]) -> list[Path]:
    """The local folders among a client's root URIs; every other root is left out, with a line on stderr.

    A root is a ``file:`` URI of an absolute local path, with an empty or ``localhost`` host, that is not the
    file system's own root. It is percent-decoded first, and then any ``.`` or ``..`` segment refuses it:
    ``file:///work/a/..%2F..%2F`` must not become ``/work``. (``file:`` and ``file:.`` reach us as ``file:///``, the
    SDK having parsed them as URLs: the whole file system, refused.)
    """
    paths = []
    for uri in uris:
        why = None
        try:
            parts = urlsplit(uri)
        except ValueError:
            parts, why = None, "not a URI"
        if parts is not None:
            path = unquote(parts.path)
            if os.name == "nt" and _DRIVE.match(path):
                path = path[1:]  # file:///C:/Users/me -> C:/Users/me
            segments = path.replace("\\", "/").split("/")
            if parts.scheme != "file":
                why = f"a {parts.scheme or 'relative'} URI, not a local folder"
            elif parts.netloc.lower() not in ("", "localhost"):
                why = "a folder on another host"
            elif not os.path.isabs(path) or "\x00" in path:
                why = "not an absolute path"
            elif any(segment in (".", "..") for segment in segments):
                why = "it climbs out of itself with '.' or '..'"
            elif Path(path) == Path(Path(path).anchor):
                why = "it is the whole file system"  # what 'file:' and 'file:.' become once parsed as URLs
        if why is None:
            paths.append(Path(path))
        else:
            logger.warning("ignoring the client's root %r: %s", uri[:200], why)
    return paths
