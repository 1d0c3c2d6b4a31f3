"""Media that does not come from this machine's disk: bytes sent inside the call (base64 or a ``data:`` URI), or a
public ``https`` URL to fetch and re-host at Atlas. A remote (HTTP) server has no other way to take a file, and a
local one gains them too.

Either way the bytes are judged by parsing, as a local file is: only a recognised image, video or audio file is
sent, under the extension of what it is, and never more than the upload cap. A fetched file goes to a spooled
temporary file (memory for small ones, disk past :data:`SPOOL_BYTES`) and is streamed on from there, as a local
file is: a re-host holds at most one spool's worth in memory, whatever the file's size.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import unquote, urlsplit

import anyio.to_thread

from atlas_mcp.addresses import origin_of
from atlas_mcp.atlas import AtlasClient
from atlas_mcp.errors import AtlasMCPError, InputError
from atlas_mcp.media.identify import Media, identify, identify_bytes
from atlas_mcp.server.results import upload_result

if TYPE_CHECKING:
    from mcp_types import CallToolResult

    from atlas_mcp.server.appstate import AppState

__all__ = [
    "SPOOL_BYTES",
    "Received",
    "decode_data",
    "fetch_url_into",
    "judged",
    "judged_file",
    "url_name",
]

logger = logging.getLogger(__name__)

SPOOL_BYTES = 1024 * 1024  # a fetched file past this goes to disk


@dataclass(frozen=True)
class Received:
    data: bytes
    filename: str
    media: Media


def decode_data(data: str, *, max_bytes: int) -> bytes:
    """The bytes of base64 text or a base64 ``data:`` URI; :class:`InputError` says how to fix anything else."""
    text = data.strip()
    if text[:5].lower() == "data:":
        header, comma, text = text.partition(",")
        if not comma or ";base64" not in header.lower():
            raise InputError("Not uploaded: give data as base64, or as a data: URI ending ';base64,' and then base64.")
    text = "".join(text.split())
    if len(text) > (max_bytes + 2) // 3 * 4 + 4:
        raise InputError(f"Not uploaded: data is over the upload cap of {max_bytes // (1024 * 1024)} MiB.")
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded, altchars=b"-_" if "-" in text or "_" in text else None, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("Not uploaded: data is not valid base64 (standard or URL-safe alphabet).") from None


async def fetch_url_into(atlas: AtlasClient, url: str, file: BinaryIO, *, max_bytes: int, origin: str) -> int:
    """Write a public ``https`` file (or one on Atlas's own ``origin``) into ``file``, fetched under the same rules
    as outputs: public addresses only, checked on the connected socket, size-capped. Returns its size."""
    if urlsplit(url).scheme != "https" and origin_of(url) != origin:
        raise InputError("Not uploaded: url must be https (for a file on this machine, use path; for bytes, data).")
    try:
        await atlas.download_into(url, file.write, max_bytes=max_bytes)
    except AtlasMCPError as exc:
        raise InputError(f"Not uploaded: the url could not be fetched: {exc}") from exc
    return file.tell()


async def judged(data: bytes, filename: str | None, fallback: str) -> Received:
    """Identify the bytes and name them: a recognised media file, under the extension of what it is."""
    if not data:
        raise InputError("Not uploaded: the file is empty.")
    media = await anyio.to_thread.run_sync(identify_bytes, data)
    return Received(data, *_named(media, filename, fallback))


async def judged_file(file: BinaryIO, filename: str | None, fallback: str) -> tuple[str, Media]:
    """:func:`judged` for bytes in a seekable file (read from its start): the name to send and what it is."""
    file.seek(0)
    if not file.read(1):
        raise InputError("Not uploaded: the file is empty.")
    file.seek(0)
    return _named(await anyio.to_thread.run_sync(identify, file), filename, fallback)


def _named(media: Media | None, filename: str | None, fallback: str) -> tuple[str, Media]:
    if media is None:
        raise InputError("Not uploaded: that is not a recognised image, video or audio file (judged by its content).")
    stem = os.path.splitext(os.path.basename((filename or fallback).replace("\\", "/")))[0]
    stem = "".join(ch for ch in stem if ch.isalnum() or ch in "._- ")[:100].strip(" .") or "upload"
    return f"{stem}{media.extension}", media


def url_name(url: str) -> str:
    """The last path segment of a URL, as a name to start from."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "upload"


async def rehost(state: AppState, url: str, filename: str | None) -> CallToolResult:
    """Fetch a public file and upload it to Atlas, streamed through a spooled temporary file, a few at a time.
    Over HTTP with per-request keys, the caller's key is checked with Atlas first: a bearer Atlas refuses costs
    this server no download."""
    if state.remote and not state.settings.http_tokens:
        await state.atlas.balance()  # cheap, and authenticated: AuthenticationError for a key Atlas refuses
    cap = state.settings.max_upload_bytes
    async with state.rehosts:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spooled:
            spool = cast(BinaryIO, spooled)  # typeshed's SpooledTemporaryFile is no BinaryIO, though it reads as one
            size = await fetch_url_into(state.atlas, url, spool, max_bytes=cap, origin=state.settings.base_url)
            name, media = await judged_file(spool, filename, url_name(url))
            spool.seek(0)
            uploaded = await state.atlas.upload(spool, filename=name, content_type=media.mime, size=size)
    logger.info("uploaded %s (%d bytes, sent url)", name, size)
    return upload_result(uploaded, filename=name, content_type=media.mime, size=size)
