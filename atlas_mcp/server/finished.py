"""The memory of finished predictions' outputs: a succeeded prediction's outputs never change, so a second look at
one is answered from here (or, after a restart, from the files saved in the output folder) instead of Atlas."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atlas_mcp.core.outcome import OutputInfo
    from atlas_mcp.media.previews import Preview

__all__ = ["Fetched", "FinishedOutputs"]

Fetched = tuple[list["OutputInfo"], list["Preview | None"]]


class FinishedOutputs:
    """What finished predictions' outputs were found to be (their facts, saved paths and previews), so that a
    second look at one (check_prediction again, a task polled twice) downloads nothing: a succeeded prediction's
    outputs never change. Least recently used first out, bounded by entries and by the previews' bytes."""

    def __init__(self, entries: int = 128, max_bytes: int = 16 * 1024 * 1024) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._held: OrderedDict[Hashable, tuple[Fetched, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> Fetched | None:
        found = self._held.get(key)
        if found is None:
            return None
        self._held.move_to_end(key)
        outputs, images = found[0]
        return [info.model_copy() for info in outputs], list(images)

    def put(self, key: Hashable, fetched: Fetched) -> None:
        size = sum(len(image.jpeg) * 7 // 3 for image in fetched[1] if image is not None)  # the JPEG and its base64
        if size > self._max_bytes // 4:
            return  # one huge set of previews would push out everything else
        if key in self._held:
            self._bytes -= self._held.pop(key)[1]
        self._held[key] = (fetched, size)
        self._bytes += size
        while len(self._held) > self._entries or self._bytes > self._max_bytes:
            self._bytes -= self._held.popitem(last=False)[1][1]
