"""Inline previews: a picture shrunk into a small JPEG, without letting any picture take the server's memory.

A PNG of 8900² RGBA is 331 KB on the wire and 317 MB decoded; four of them once took the server to 2.65 GB.
So a picture's decoded size is read from its header before anything is decoded (after asking JPEGs to decode
at a reduced scale, which they can), a picture bigger than the decode budget is not previewed at all, and
decodes in flight share that budget: one waits for room instead of stacking on the others. A decoded picture is
reduced at once, so the conversions and the resize work on a small copy.

Pillow is imported where the work is: start-up stays light.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property

import anyio

__all__ = ["DECODE_BUDGET_BYTES", "DecodeBudget", "Preview", "Probe", "make_preview", "probe_image"]

DECODE_BUDGET_BYTES = 160 * 1024 * 1024  # all decodes at once; with the server's ~100 MB, well under 300 MB
# Bytes per pixel as Pillow holds them in memory (RGB is padded to 4).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 4, "PA": 4, "I;16": 2, "I;16B": 2, "I;16L": 2}


@dataclass(frozen=True)
class Preview:
    """An inline JPEG preview of a full-size image."""

    jpeg: bytes
    width: int
    height: int
    full_width: int
    full_height: int

    @cached_property
    def encoded(self) -> str:
        """The JPEG in base64, as a result carries it: encoded once, however often the preview is shown."""
        return base64.b64encode(self.jpeg).decode("ascii")


@dataclass(frozen=True)
class Probe:
    """What a picture's header says, before it is decoded."""

    width: int
    height: int
    decoded_bytes: int  # memory its decoding takes, at the scale it would be decoded


def probe_image(data: bytes, *, max_side: int) -> Probe | None:
    """Read the header only; None when Pillow cannot read it as a picture."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a bomb is judged by its size below, not by Pillow's warning
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                image.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 where that suffices
                decoded_width, decoded_height = image.size
                per_pixel = _BYTES_PER_PIXEL.get(image.mode, 4)
    except Exception:  # hostile headers make Pillow raise nearly anything
        return None
    return Probe(width, height, decoded_width * decoded_height * per_pixel)


def make_preview(data: bytes, *, max_side: int, max_base64_bytes: int) -> Preview | None:
    """A JPEG of ``data`` whose longest side is at most ``max_side`` and whose base64 fits ``max_base64_bytes``.

    Returns ``None`` when the bytes are not a picture Pillow can read, or no preview fits the budget. It decodes
    the whole picture: call it only for one whose :func:`probe_image` fits the memory it is given.
    """
    from PIL import Image

    max_jpeg = max_base64_bytes * 3 // 4
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image: Image.Image = Image.open(io.BytesIO(data))
            full_width, full_height = image.size
            image.draft("RGB", (max_side, max_side))
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    factor = max(image.size) // (2 * max_side)
    if factor >= 2:  # shrink right away, so nothing below works on the full picture
        image = image.reduce(factor)
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, "white")
        image.paste(rgba, mask=rgba.getchannel("A"))
    elif image.mode != "RGB":
        image = image.convert("RGB")
    side = max_side
    while side >= 128:
        scale = min(1.0, side / max(image.size))
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        # resize() into a new image (no full-size copy); reducing_gap=1 halves 2048² time at no visible cost
        candidate = image if scale == 1.0 else image.resize(target, Image.Resampling.LANCZOS, reducing_gap=1.0)
        for quality in (85, 72, 60):
            buffer = io.BytesIO()
            candidate.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= max_jpeg:
                return Preview(buffer.getvalue(), candidate.width, candidate.height, full_width, full_height)
        side = int(side * 0.75)
    return None


class DecodeBudget:
    """Bytes that decodes in flight may hold together; a decode waits until its share is free."""

    def __init__(self, capacity: int = DECODE_BUDGET_BYTES) -> None:
        self.capacity = capacity
        self._used = 0
        self._changed = anyio.Condition()

    def fits(self, amount: int) -> bool:
        return amount <= self.capacity

    @asynccontextmanager
    async def hold(self, amount: int) -> AsyncIterator[None]:
        """Hold ``amount`` bytes (at most the capacity) for the body's time."""
        amount = min(amount, self.capacity)
        async with self._changed:
            while self._used + amount > self.capacity:
                await self._changed.wait()
            self._used += amount
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):  # given back even when the call is cancelled meanwhile
                async with self._changed:
                    self._used -= amount
                    self._changed.notify_all()
