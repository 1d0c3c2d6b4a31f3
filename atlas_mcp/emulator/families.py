"""Stand-in outputs for the families beyond pictures: 3D models, archives, songs and the text of speech.

Each file is tiny but honestly formed, so a client judges it by its header as it would a real one: a glTF binary
with its 12-byte header and JSON chunk, an OBJ of one triangle, a binary STL whose triangle count matches its length,
FBX's binary magic, a USDZ (a ZIP whose first entry is a .usdc), and Seed3D's ZIP of a GLB and its texture. A song
is a run of MPEG-1 Layer III frames. Speech-to-text and lyric models answer text, in ``outputs[0]``.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

from atlas_mcp.emulator.images import picture_rng

__all__ = ["SOLID_FORMATS", "lyrics_text", "render_mp3", "render_solid", "render_solid_zip", "speech_text"]

SOLID_FORMATS = ("glb", "obj", "usdz", "fbx", "stl")
_TRIANGLE = ((0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))


def render_solid(file_format: str, *, pad_to: int | None = None) -> bytes:
    """One triangle in ``file_format`` (glb, obj, usdz, fbx, stl); a GLB is padded to ``pad_to`` bytes with a
    binary chunk, as real models of tens of megabytes are."""
    if file_format == "obj":
        return b"# emulator\no triangle\n" + b"".join(b"v %g %g %g\n" % v for v in _TRIANGLE) + b"f 1 2 3\n"
    if file_format == "stl":
        facet = struct.pack("<3f", 0, 0, 1) + b"".join(struct.pack("<3f", *v) for v in _TRIANGLE) + b"\x00\x00"
        return b"emulator binary STL".ljust(80, b" ") + struct.pack("<I", 1) + facet
    if file_format == "fbx":
        return b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400) + bytes(64)
    if file_format == "usdz":
        return _zip([("model.usdc", b"PXR-USDC" + bytes(56)), ("texture.png", b"\x89PNG\r\n\x1a\n")])
    return _glb(pad_to)


def render_solid_zip() -> bytes:
    """What Seed3D 2.0 answers: one ZIP holding the model and its texture."""
    return _zip([("model.glb", _glb(None)), ("texture.png", b"\x89PNG\r\n\x1a\n"), ("README.txt", b"Seed3D output\n")])


def _glb(pad_to: int | None) -> bytes:
    document = {"asset": {"version": "2.0", "generator": "atlascloud-mcp emulator"}, "scenes": [{"nodes": []}]}
    chunk = json.dumps(document).encode()
    chunk += b" " * (-len(chunk) % 4)
    body = struct.pack("<I4s", len(chunk), b"JSON") + chunk
    if pad_to is not None and pad_to > 12 + len(body) + 8:
        filler = pad_to - 12 - len(body) - 8
        filler -= filler % 4
        body += struct.pack("<I4s", filler, b"BIN\x00") + bytes(filler)
    return b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # USDZ members are stored, not deflated
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def render_mp3(*, seed: int, index: int, seconds: float = 2.0) -> bytes:
    """MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz) of silence, about ``seconds`` long; an ID3 tag names the take."""
    frame_bytes = 417  # 144 * 128000 / 44100, without padding
    header = bytes((0xFF, 0xFB, 0x90, 0x00))
    frames = max(int(seconds * 44100 / 1152), 8)
    title = f"emulator take {index + 1} ({seed})".encode()
    frame = b"TIT2" + struct.pack(">I", len(title) + 1) + b"\x00\x00\x00" + title
    tag = b"ID3\x03\x00\x00" + _syncsafe(len(frame)) + frame
    return tag + (header + bytes(frame_bytes - 4)) * frames


def _syncsafe(size: int) -> bytes:
    return bytes(((size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F))


_SPOKEN = (
    "atlas cloud turns the recording into text sentence by sentence and every word here stands in for one that "
    "a speaker said aloud in the audio file the caller uploaded before asking for this transcript"
)
_WORDS = tuple(_SPOKEN.split(" "))


def speech_text(*, seed: int, characters: int = 5000) -> str:
    """A transcript of about ``characters`` characters: sentences of stand-in words, ending in a full stop."""
    rng = picture_rng("speech", seed, 0)
    sentences: list[str] = []
    length = 0
    while length < characters:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
        sentence = " ".join(words).capitalize() + "."
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)[:characters].rstrip() + "."


def lyrics_text(prompt: str) -> str:
    """A short song's words about ``prompt``, in the verse and chorus markers lyric models write."""
    theme = prompt.strip() or "the city at night"
    return (
        f"[Verse]\nWe walked along {theme}\nThe lights were low, the sky was wide\n\n"
        f"[Chorus]\nSing it out, {theme}\nSing it out, and hold the line\n"
    )
