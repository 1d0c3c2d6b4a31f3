"""Stand-in outputs for the video and audio models: small, valid, honestly named files.

The emulator does not make MP4s or speech. A "video" is a short animated WebP of the
prompt picture (served as `.webp`, `image/webp`), and "speech" is a WAV tone whose
length follows the text. Enough for a client to download, type-check and show them.
"""

from __future__ import annotations

import io
import math
import struct
import wave

from atlas_mcp.emulator.images import picture_rng, render_picture

_SAMPLE_RATE = 22_050
_VIDEO_FRAMES = 8
_VIDEO_MAX_SIDE = 480


def render_video(*, prompt: str, seed: int, index: int, width: int, height: int, model: str) -> bytes:
    """An animated WebP (at most 480 px a side) that pans slowly across the prompt picture."""
    from PIL import Image

    scale = min(1.0, _VIDEO_MAX_SIDE / max(width, height))
    frame_w, frame_h = max(round(width * scale), 16), max(round(height * scale), 16)
    # Render a slightly larger picture and slide a window across it: cheap, visibly moving.
    margin = max(frame_w // 10, 4)
    still = render_picture(prompt=prompt, seed=seed, index=index, width=frame_w + margin, height=frame_h, model=model)
    frames: list[Image.Image] = []
    for number in range(_VIDEO_FRAMES):
        offset = round(margin * (1 - math.cos(math.pi * number / _VIDEO_FRAMES)) / 2)
        frames.append(still.crop((offset, 0, offset + frame_w, frame_h)))
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=125,
        loop=0,
        quality=70,
        method=0,
    )
    return buffer.getvalue()


def render_audio(*, text: str, speed: float, seed: int) -> bytes:
    """A mono 16-bit WAV: a soft tone, about as long as reading `text` aloud would take."""
    rng = picture_rng(text, seed, 0)
    seconds = min(max(len(text) / 15 / speed, 1.0), 6.0)
    frequency = rng.uniform(220.0, 440.0)
    count = int(seconds * _SAMPLE_RATE)
    fade = _SAMPLE_RATE // 20
    samples = bytearray()
    for n in range(count):
        envelope = min(1.0, n / fade, (count - n) / fade)
        value = 0.3 * envelope * math.sin(2 * math.pi * frequency * n / _SAMPLE_RATE)
        samples += struct.pack("<h", round(value * 32767))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(_SAMPLE_RATE)
        wav.writeframes(bytes(samples))
    return buffer.getvalue()
