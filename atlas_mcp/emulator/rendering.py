"""The emulator's output files: each painted (or built) on first use from its prediction, then kept in storage."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

from atlas_mcp.emulator.families import render_mp3, render_solid, render_solid_zip
from atlas_mcp.emulator.images import render_picture, render_png
from atlas_mcp.emulator.media import render_audio, render_video
from atlas_mcp.emulator.predictions import Prediction

__all__ = ["render_output", "render_thumbnail", "write_atomically"]


def render_output(prediction: Prediction, index: int) -> bytes:
    submission = prediction.submission
    model = submission.model
    if model.answers == "3d":
        return render_solid(prediction.output_extension, pad_to=prediction.plan.pad_to_bytes)
    if model.answers == "3d-zip":
        return render_solid_zip()
    if model.answers == "mp3":
        return render_mp3(seed=prediction.seed, index=index)
    if model.type == "Audio":
        return render_audio(
            text=submission.params["text"], speed=float(submission.params["speed"]), seed=prediction.seed
        )
    render = render_video if model.type == "Video" else render_png
    return render(
        prompt=str(submission.params.get("prompt") or model.display_name),  # an upscaler takes no prompt
        seed=prediction.seed,
        index=index,
        width=submission.width,
        height=submission.height,
        model=model.id,
    )


def render_thumbnail(prediction: Prediction) -> bytes:
    """A video's still: its first frame's picture, small, as JPEG."""
    submission = prediction.submission
    scale = min(1.0, 320 / max(submission.width, submission.height))
    picture = render_picture(
        prompt=str(submission.params.get("prompt") or submission.model.display_name),
        seed=prediction.seed,
        index=0,
        width=max(round(submission.width * scale), 16),
        height=max(round(submission.height * scale), 16),
        model=submission.model.id,
    )
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Concurrent first downloads may both render; each writes aside and renames over the other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
