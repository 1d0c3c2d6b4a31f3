"""What a model's outputs are: decided by the model's family first, then by what each file says it is.

Atlas's families answer differently. Speech-to-text and lyric models put the text itself in ``outputs[0]`` (Atlas's
audio docs: it "can occasionally look like a URL. Never blindly treat outputs[0] as something to download; branch
on the model type"), so their outputs are never fetched. 3D models (listed as ``Image``) answer GLB, OBJ, USDZ, FBX,
STL or a ZIP of them, often behind a signed link with no extension, so a file is judged by its first bytes before
the rest is read: a 3D model or an archive is kept when there is a folder to keep it in and is never a preview, and
nothing is downloaded that will neither be shown nor saved.

This module knows nothing of MCP: the results module asks it and writes the answers down.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from atlas_mcp.media.identify import Media, identify_bytes

__all__ = [
    "HEAD_BYTES",
    "Family",
    "OutputPlan",
    "family_of",
    "identify_output",
    "identify_solid",
    "plan_for",
    "solid_label",
    "soonest_end",
    "usual_duration",
]

Family = Literal["image", "video", "audio", "3d", "text", "llm"]
HEAD_BYTES = 4096  # what is read of a file before deciding whether the rest is worth reading

# Task words in a model id (``bytedance/seed-asr-2.0/speech-to-text``) or its tags that say what comes back.
_TEXT_PHRASES = ("speech-to-text", "audio-to-text", "transcri", "lyric")
_TEXT_WORDS = frozenset(("asr", "stt"))  # whole words only: "asr" is inside other names
_SOLID_TASKS = ("image-to-3d", "text-to-3d", "to-3d", "3d-model", "seed3d", "hunyuan3d", "sam-3d", "trellis", "rodin")

_GLB = Media("model/gltf-binary", ".glb")
_OBJ = Media("model/obj", ".obj")
_USDZ = Media("model/vnd.usdz+zip", ".usdz")
_FBX = Media("application/octet-stream", ".fbx")  # FBX has no registered media type
_STL = Media("model/stl", ".stl")
_ZIP = Media("application/zip", ".zip")
_SOLID_NAMES = {".glb": "GLB", ".obj": "OBJ", ".usdz": "USDZ", ".fbx": "FBX", ".stl": "STL", ".zip": "ZIP archive"}
_OBJ_KEYWORDS = frozenset(("v", "vt", "vn", "vp", "f", "l", "o", "g", "s", "mtllib", "usemtl"))
_MODEL_MEMBERS = (".glb", ".gltf", ".obj", ".fbx", ".stl", ".usd", ".usda", ".usdc", ".usdz", ".ply", ".mtl")


def _words(model_id: str | None, tags: Iterable[str]) -> str:
    return " ".join([(model_id or "").lower(), *(tag.lower() for tag in tags)])


def family_of(model_id: str | None, model_type: str | None, tags: Iterable[str] = ()) -> Family:
    """The family a model's outputs belong to: its catalogue type, refined by the task its id and tags name."""
    return _family(model_id, model_type, tuple(tags))


@lru_cache(maxsize=1024)  # asked on every look at a prediction, of the few models a server sees
def _family(model_id: str | None, model_type: str | None, tags: tuple[str, ...]) -> Family:
    words = _words(model_id, tags)
    kind = (model_type or "").strip().lower()
    if kind in ("text", "llm"):
        return "llm"
    tokens = set(re.split(r"[^a-z0-9]+", words))
    # A music model takes lyrics as input ("lyrics-to-music"): it answers sound, not text.
    says_text = (any(phrase in words for phrase in _TEXT_PHRASES) or not _TEXT_WORDS.isdisjoint(tokens)) and not (
        {"music", "song", "songs"} & tokens
    )
    if says_text and kind in ("", "audio"):
        return "text"
    if any(task in words for task in _SOLID_TASKS):
        return "3d"
    if kind in ("video", "audio"):
        return kind  # type: ignore[return-value]  # narrowed by the test above
    return "image"


def usual_duration(family: Family, model_id: str | None = None) -> str:
    """What such a job usually takes at Atlas, said when one is still running, so that a long job is not taken
    for a hung one (nor polled every few seconds)."""
    tokens = set(re.split(r"[^a-z0-9]+", (model_id or "").lower()))
    if family == "video":
        return "Videos usually take 1–5 minutes"
    if family == "3d":
        return "3D models usually take 2–5 minutes"
    if family == "audio" and tokens & {"music", "song", "songs", "suno"}:
        return "Songs usually take 1–4 minutes"
    if family == "audio":
        return "Speech usually takes seconds, long texts up to a few minutes"
    if family == "text":
        return "Transcripts and lyrics usually take under a minute; long recordings take longer"
    return "Images usually take seconds; large edits and upscales up to a minute or two"


def soonest_end(family: Family, model_id: str | None = None) -> float | None:
    """The fewest seconds such a job takes at Atlas, for polling a model this process has not run yet: nothing is
    worth a look before then but a fast failure. ``None`` where jobs may end within seconds."""
    tokens = set(re.split(r"[^a-z0-9]+", (model_id or "").lower()))
    if family == "video":
        return 20.0
    if family == "3d":
        return 60.0
    if family == "audio" and tokens & {"music", "song", "songs", "suno"}:
        return 30.0
    return None


@dataclass(frozen=True)
class OutputPlan:
    """What to do with one file output, decided before its body is read past its head."""

    fetch: bool  # read it at all
    preview: bool  # it may become an inline preview (images only)
    reason: str | None = None  # why it is not fetched, for the result's note


def plan_for(family: Family, *, saving: bool, previews: bool, url_extension: str) -> OutputPlan:
    """Whether a file output is worth a download: it is, when it can be saved or shown.

    Images are shown; a 3D model, an archive, a video or a sound is not a preview, so without a folder to save
    it in, its link is all the caller needs (the thumbnail, when Atlas gives one, is the preview)."""
    looks_like_image = url_extension in ("", ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tiff", ".avif")
    preview = previews and family == "image" and looks_like_image
    if saving or preview:
        return OutputPlan(fetch=True, preview=preview)
    return OutputPlan(fetch=False, preview=False, reason=None)


def identify_output(data: bytes) -> Media | None:
    """What an output file is: an image, video or sound (as uploads are judged), or a 3D model or archive."""
    return identify_bytes(data) or identify_solid(data)


def identify_solid(data: bytes, *, total: int | None = None) -> Media | None:
    """A 3D model or a ZIP archive, judged by its header: glTF binary, FBX, USDZ (a ZIP whose first entry is a
    USD file), any other ZIP, binary or ASCII STL, Wavefront OBJ. ``total`` is the whole file's length when only
    its head is given (a binary STL's triangle count must match it)."""
    length = len(data) if total is None else total
    if data[:4] == b"glTF" and len(data) >= 12 and struct.unpack_from("<I", data, 4)[0] in (1, 2):
        return _GLB
    if data.startswith(b"Kaydara FBX Binary"):
        return _FBX
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if _binary_stl(data, length):
        return _STL
    head = data[:HEAD_BYTES].decode("ascii", errors="replace").lower()
    if head.lstrip().startswith("solid") and "facet" in head:
        return _STL
    if _looks_like_obj(head):
        return _OBJ
    return None


def solid_label(media: Media, size: int | None) -> str | None:
    """ "3D model (GLB, 12.3 MB)", or None for anything that is not a 3D model or archive."""
    name = _SOLID_NAMES.get(media.extension)
    if name is None:
        return None
    what = "Archive" if media.extension == ".zip" else "3D model"
    shown = name.removesuffix(" archive") if what == "Archive" else name
    return f"{what} ({shown}, {size / 1_000_000:.1f} MB)" if size is not None else f"{what} ({shown})"


def _zip_kind(data: bytes) -> Media:
    """USDZ when the first entry is a USD file (the USDZ rule); otherwise a ZIP, saved as it is, never unpacked."""
    name_length = struct.unpack_from("<H", data, 26)[0] if len(data) >= 30 else 0
    first = data[30 : 30 + name_length].decode("utf-8", errors="replace").lower()
    if first.endswith((".usd", ".usda", ".usdc")):
        return _USDZ
    return _ZIP


def _binary_stl(data: bytes, length: int) -> bool:
    """An 80-byte header, a triangle count, then 50 bytes a triangle: the count must account for every byte."""
    if length < 84 or len(data) < 84:
        return False
    triangles: int = struct.unpack_from("<I", data, 80)[0]
    return triangles > 0 and 84 + 50 * triangles == length


def _looks_like_obj(head: str) -> bool:
    lines = [line.strip() for line in head.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return False
    vertices = sum(1 for line in lines if line.startswith("v "))
    known = sum(
        1 for line in lines if line.split(" ", 1)[0] in ("v", "vt", "vn", "f", "o", "g", "mtllib", "usemtl", "s")
    )
    return vertices >= 3 and known >= len(lines) * 0.8


def zip_holds_a_model(data: bytes) -> bool:
    """Whether a whole ZIP lists a 3D file (a note for the caller; the archive is kept as it is either way)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(name.lower().endswith(_MODEL_MEMBERS) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
