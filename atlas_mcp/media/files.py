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
from atlas_mcp.media.identify import identify

logger = logging.getLogger(__name__)

__all__ = ["OpenedUpload", "open_upload", "output_path", "read_saved_output", "root_paths"]

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
    try:
        resolved = Path(os.path.realpath(candidate))
    except OSError as exc:  # a link on the way vanished while it was being read: the path is changing under us
        raise PathRefusedError(
            f"{raw_path} changed while it was being checked ({exc.strerror}); try again once it is in place."
        ) from None
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
        fd = _open_beneath(root, resolved.relative_to(root).parts)
    except FileNotFoundError:
        raise InputError(f"{raw_path} does not exist. Check the path (allowed folders: {allowed}).") from None
    except OSError as exc:
        raise PathRefusedError(
            f"{raw_path} cannot be opened ({exc.strerror}); a symlink met while opening is refused."
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, socket or device)"
            raise PathRefusedError(f"{raw_path} is {kind}; upload_media sends regular files only.")
        if info.st_nlink > 1:
            raise PathRefusedError(
                f"{raw_path} has {info.st_nlink} hard links: a link inside an allowed folder can be a file from "
                "anywhere, so such files are not uploaded. Upload a copy of it instead (a copy has one link)."
            )
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
        media = identify(file)
        if media is None:
            raise PathRefusedError(
                f"{raw_path} is not an image, video or audio file (judged by parsing its content, not by its "
                "name); upload_media sends media that models take as input, nothing else."
            )
    except BaseException:
        file.close()
        raise
    return OpenedUpload(file=file, path=resolved, size=info.st_size, content_type=media.mime)


_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _open_beneath(root: Path, parts: tuple[str, ...]) -> int:
    """Open ``root/parts...`` one component at a time, never following a symlink, and return the file's fd.

    The path was resolved and checked before; a folder swapped for a symlink after that check (a race) meets
    O_NOFOLLOW here and fails, so the file opened is the one that was checked, or none. The last component is
    opened without blocking: a FIFO would otherwise hang the open. Where the platform cannot open relative to a
    folder, the resolved path is opened and then checked to still be the file that path names, inside the root.
    """
    if not parts:
        raise IsADirectoryError(21, "Is a directory")
    if os.open not in os.supports_dir_fd:  # pragma: no cover - Windows
        target = root.joinpath(*parts)
        fd = os.open(target, _FLAGS)
        real = os.path.realpath(target)
        if Path(real).is_relative_to(root) and os.path.samestat(os.fstat(fd), os.stat(real)):
            return fd
        os.close(fd)
        raise PermissionError(1, "the file changed while it was being opened")
    folder = os.open(root, _FLAGS | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _FLAGS | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(parts[-1], _FLAGS | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    finally:
        os.close(folder)


def output_path(output_dir: Path, prediction_id: str, index: int, extension: str) -> Path:
    """Where output ``index`` of a prediction is saved: named by prediction id, never by prompt text."""
    root = Path(os.path.realpath(output_dir))
    target = root / f"{prediction_id}-{index}{extension}"
    if target.parent != root:  # the id is validated upstream; this keeps it true if that ever changes
        raise PathRefusedError("Refused to write outside ATLASCLOUD_OUTPUT_DIR.")
    return target


def read_saved_output(output_dir: Path, prediction_id: str, index: int, max_bytes: int) -> tuple[Path, bytes] | None:
    """Output ``index`` of a prediction as this server saved it before (before a restart, or by another replica
    sharing the folder): its path and bytes, so that it is not downloaded again. Only a regular file named as
    :func:`output_path` names them, opened without following a link, and at most ``max_bytes``; else ``None``.
    The caller checks that the bytes are what the name's extension says."""
    root = Path(os.path.realpath(output_dir))
    for candidate in sorted(root.glob(f"{prediction_id}-{index}.*")):
        if candidate.suffix in (".txt", ".json") or candidate.name.startswith("."):
            continue  # a transcript's own files
        try:
            descriptor = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        with os.fdopen(descriptor, "rb") as file:
            facts = os.fstat(file.fileno())
            if not stat.S_ISREG(facts.st_mode) or facts.st_size > max_bytes:
                continue
            return candidate, file.read(max_bytes + 1)[:max_bytes]
    return None


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
