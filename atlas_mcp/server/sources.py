"""Media that does not come from this machine's disk: bytes sent inside the call (base64 or a ``data:`` URI), or a
public ``https`` URL to fetch and re-host at Atlas. A remote (HTTP) server has no other way to take a file, and a
local one gains them too.

Either way the bytes are judged by parsing, as a local file is: only a recognised image, video or audio file is
sent, under the extension of what it is, and never more than the upload cap.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import anyio.to_thread

from atlas_mcp.addresses import origin_of
from atlas_mcp.atlas import AtlasClient
from atlas_mcp.errors import AtlasMCPError, InputError
from atlas_mcp.server.media import Media, identify_bytes

__all__ = ["Received", "decode_data", "fetch_url", "judged", "url_name"]


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


async def fetch_url(atlas: AtlasClient, url: str, *, max_bytes: int, origin: str) -> bytes:
    """A public ``https`` file (or one on Atlas's own ``origin``), fetched under the same rules as outputs: public
    addresses only, checked on the connected socket, size-capped."""
    if urlsplit(url).scheme != "https" and origin_of(url) != origin:
        raise InputError("Not uploaded: url must be https (for a file on this machine, use path; for bytes, data).")
    try:
        data, _announced = await atlas.download(url, max_bytes=max_bytes)
    except AtlasMCPError as exc:
        raise InputError(f"Not uploaded: the url could not be fetched: {exc}") from exc
    return data


async def judged(data: bytes, filename: str | None, fallback: str) -> Received:
    """Identify the bytes and name them: a recognised media file, under the extension of what it is."""
    if not data:
        raise InputError("Not uploaded: the file is empty.")
    media = await anyio.to_thread.run_sync(identify_bytes, data)
    if media is None:
        raise InputError("Not uploaded: that is not a recognised image, video or audio file (judged by its content).")
    stem = os.path.splitext(os.path.basename((filename or fallback).replace("\\", "/")))[0]
    stem = "".join(ch for ch in stem if ch.isalnum() or ch in "._- ")[:100].strip(" .") or "upload"
    return Received(data, f"{stem}{media.extension}", media)


def url_name(url: str) -> str:
    """The last path segment of a URL, as a name to start from."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "upload"
