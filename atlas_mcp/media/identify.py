"""What a file is, judged by parsing its header with the libraries that read such files, not by two bytes.

A text file that starts with ``BM`` is not a bitmap, nor is one that starts with ``ID3`` an MP3. So an image is
what Pillow can open (its header parsed, not its pixels decoded) in one of the formats models take; audio and
MP4/QuickTime video are what mutagen can parse (MPEG frames found in sync, FLAC's STREAMINFO, Ogg pages, a
RIFF/WAVE ``fmt`` chunk, MP4 atoms); WebM/Matroska is an EBML header whose DocType says so. Anything else,
SVG and HTML included, is not media. Uploads are judged this way, and so are outputs before they are saved:
the extension of a saved file comes from here, never from a URL.

Both libraries are imported on first use: serving starts without them.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["Media", "identify", "identify_bytes"]


@dataclass(frozen=True)
class Media:
    mime: str
    extension: str  # with the dot; from this closed list only

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")


# Pillow format -> what we call it. Not EPS (PostScript), not XBM or other formats models do not take.
_IMAGES = {
    "PNG": Media("image/png", ".png"),
    "JPEG": Media("image/jpeg", ".jpg"),
    "MPO": Media("image/jpeg", ".jpg"),
    "GIF": Media("image/gif", ".gif"),
    "WEBP": Media("image/webp", ".webp"),
    "BMP": Media("image/bmp", ".bmp"),
    "TIFF": Media("image/tiff", ".tiff"),
    "AVIF": Media("image/avif", ".avif"),
}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_DOCTYPE_ID = 0x4282
_HEADER_BYTES = 4096


def identify_bytes(data: bytes) -> Media | None:
    return identify(io.BytesIO(data))


def identify(file: BinaryIO) -> Media | None:
    """The media a seekable binary file holds, or None. The file's position is restored."""
    start = file.tell()
    try:
        for judge in (_image, _matroska, _audio_or_mp4):
            file.seek(start)
            media = judge(file)
            if media is not None:
                return media
        return None
    finally:
        file.seek(start)


def _image(file: BinaryIO) -> Media | None:
    from PIL import Image

    Image.init()
    formats = [name for name in _IMAGES if name in Image.OPEN]  # MPO comes through JPEG; AVIF only where built
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # hostile headers warn a lot; a failure is what counts
            with Image.open(file, formats=formats) as image:
                width, height = image.size
                kind = image.format
    except Exception:  # Pillow raises many things on broken headers (OSError, SyntaxError, struct.error...)
        return None
    return _IMAGES.get(kind or "") if width > 0 and height > 0 else None


def _audio_or_mp4(file: BinaryIO) -> Media | None:
    from mutagen import File as MutagenFile
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.oggflac import OggFLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    head = file.read(12)
    file.seek(-len(head), io.SEEK_CUR)
    try:
        parsed = MutagenFile(file, options=[MP3, FLAC, OggVorbis, OggOpus, OggFLAC, WAVE, MP4, AIFF])
    except Exception:  # mutagen's own errors, and anything a hostile header provokes
        return None
    if parsed is None:
        return None
    if isinstance(parsed, MP4):
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return Media("audio/mp4", ".m4a")
        return Media("video/quicktime", ".mov") if brand == b"qt  " else Media("video/mp4", ".mp4")
    kinds: list[tuple[type, Media]] = [
        (MP3, Media("audio/mpeg", ".mp3")),
        (FLAC, Media("audio/flac", ".flac")),
        (WAVE, Media("audio/wav", ".wav")),
        (AIFF, Media("audio/aiff", ".aiff")),
        ((OggVorbis, OggOpus, OggFLAC), Media("audio/ogg", ".ogg")),  # type: ignore[list-item]
    ]
    return next((media for kind, media in kinds if isinstance(parsed, kind)), None)


def _matroska(file: BinaryIO) -> Media | None:
    """WebM and Matroska: an EBML header element whose DocType child says which."""
    data = file.read(_HEADER_BYTES)
    if not data.startswith(_EBML_MAGIC):
        return None
    size, at = _vint(data, len(_EBML_MAGIC))
    if size is None:
        return None
    end = min(len(data), at + size)
    while at < end:
        element, at = _vint(data, at, keep_marker=True)
        length, at = _vint(data, at) if element is not None else (None, at)
        if element is None or length is None or at + length > len(data):
            return None
        if element == _DOCTYPE_ID:
            doctype = data[at : at + length].rstrip(b"\x00")
            if doctype == b"webm":
                return Media("video/webm", ".webm")
            return Media("video/x-matroska", ".mkv") if doctype == b"matroska" else None
        at += length
    return None


def _vint(data: bytes, at: int, *, keep_marker: bool = False) -> tuple[int | None, int]:
    """An EBML variable-length integer at ``at``: its value (the ID keeps its length marker) and where it ends."""
    if at >= len(data) or data[at] == 0:
        return None, at
    first = data[at]
    length = 9 - first.bit_length()  # a leading 1 in the first byte's top bits marks the length
    if at + length > len(data):
        return None, at
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    return value, at + length
