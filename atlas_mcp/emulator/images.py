"""Paints the emulator's stand-in outputs: a picture that shows what was asked for.

A real model's picture cannot be checked by eye against its prompt in a test or a demo;
this one can: the prompt is written across it, large, on a background whose colours
come from a hash of prompt and seed, so equal requests give equal bytes and different
requests look different. Pillow is imported here, where it is used, not at package import.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageFont

_MAX_PROMPT_CHARS = 400
# Shapes are drawn at this fraction of the picture and scaled up: soft edges, cheap at 2048 px.
_SHAPE_SCALE = 8


def picture_rng(prompt: str, seed: int, index: int) -> random.Random:
    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _background(width: int, height: int, rng: random.Random) -> Image.Image:
    """A four-corner gradient with a few soft translucent discs over it."""
    from PIL import Image, ImageDraw, ImageFilter

    hue = rng.random()
    corners = [
        _colour(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.45, 0.75), rng.uniform(0.55, 0.9)),
        _colour(hue + 0.12 + rng.uniform(0, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.5, 0.85)),
        _colour(hue - 0.15 - rng.uniform(0, 0.1), rng.uniform(0.5, 0.8), rng.uniform(0.35, 0.7)),
        _colour(hue + 0.45 + rng.uniform(-0.05, 0.05), rng.uniform(0.35, 0.65), rng.uniform(0.3, 0.6)),
    ]
    seed_image = Image.new("RGB", (2, 2))
    seed_image.putdata(corners)
    small_w, small_h = max(width // _SHAPE_SCALE, 8), max(height // _SHAPE_SCALE, 8)
    small = seed_image.resize((small_w, small_h), Image.Resampling.BILINEAR)

    overlay = Image.new("RGBA", (small_w, small_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for _ in range(rng.randint(5, 9)):
        radius = rng.uniform(0.08, 0.3) * min(small_w, small_h)
        cx, cy = rng.uniform(0, small_w), rng.uniform(0, small_h)
        fill = (*_colour(hue + rng.uniform(-0.3, 0.3), 0.35, 0.98), rng.randint(40, 90))
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    overlay = overlay.filter(ImageFilter.GaussianBlur(radius=max(min(small_w, small_h) / 120, 0.5)))
    small = Image.alpha_composite(small.convert("RGBA"), overlay).convert("RGB")
    return small.resize((width, height), Image.Resampling.BILINEAR)


def _wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Greedy word wrap by measured width; words longer than a line are broken by character."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= max_width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:
            if font.getlength(line + char) > max_width and line:
                lines.append(line)
                line = ""
            line += char
    if line:
        lines.append(line)
    return lines or [""]


def _fit_text(prompt: str, width: int, height: int) -> tuple[ImageFont.FreeTypeFont, list[str], int]:
    """The largest font (down to a readable floor) whose wrapped prompt fits the text box."""
    from PIL import ImageFont

    box_w, box_h = width * 0.8, height * 0.62
    # Start from about five letters' width per line or one line filling the box, then shrink.
    size = max(int(min(box_w / 5, box_h / 1.25)), 12)
    floor = max(int(min(width, height) / 40), 11)
    while True:
        font = ImageFont.load_default(size=size)
        assert isinstance(font, ImageFont.FreeTypeFont)  # Pillow >= 10.1 bundles a scalable font
        lines = _wrap(prompt, font, box_w)
        line_height = round(size * 1.25)
        if len(lines) * line_height <= box_h or size <= floor:
            max_lines = max(int(box_h // line_height), 1)
            if len(lines) > max_lines:
                lines = [*lines[: max_lines - 1], lines[max_lines - 1].rstrip() + " …"]
            return font, lines, line_height
        size = max(int(size * 0.85), floor)


def render_picture(*, prompt: str, seed: int, index: int, width: int, height: int, model: str) -> Image.Image:
    """The stand-in picture for output `index` of a prediction, exactly `width` × `height`."""
    from PIL import Image, ImageDraw, ImageFont

    rng = picture_rng(prompt, seed, index)
    image = _background(width, height, rng)
    text = " ".join(prompt.split())
    if len(text) > _MAX_PROMPT_CHARS:
        text = text[: _MAX_PROMPT_CHARS - 1].rstrip() + "…"
    font, lines, line_height = _fit_text(text, width, height)

    block_h = len(lines) * line_height
    block_w = max(font.getlength(line) for line in lines)
    pad = line_height * 0.6
    top = (height - block_h) / 2
    panel = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(panel).rounded_rectangle(
        ((width - block_w) / 2 - pad, top - pad, (width + block_w) / 2 + pad, top + block_h + pad),
        radius=pad,
        fill=(15, 15, 25, 120),
    )
    # Only the panel's bounding box needs compositing, which keeps 2048 px renders fast.
    box = panel.getbbox()
    if box is not None:
        region = image.crop(box).convert("RGBA")
        image.paste(Image.alpha_composite(region, panel.crop(box)).convert("RGB"), box[:2])

    draw = ImageDraw.Draw(image)
    shadow = max(line_height // 24, 1)
    for number, line in enumerate(lines):
        x = (width - font.getlength(line)) / 2
        y = top + number * line_height + (line_height - font.size) / 2
        draw.text((x + shadow, y + shadow), line, font=font, fill=(0, 0, 0))
        draw.text((x, y), line, font=font, fill=(255, 255, 255))

    footer_font = ImageFont.load_default(size=max(min(width, height) // 48, 11))
    assert isinstance(footer_font, ImageFont.FreeTypeFont)
    footer = f"Atlas emulator · {model} · seed {seed} · {width}x{height}"
    if index:
        footer += f" · #{index + 1}"
    margin = max(min(width, height) // 64, 4)
    footer_y = height - margin - footer_font.size
    draw.text((margin + 1, footer_y + 1), footer, font=footer_font, fill=(0, 0, 0))
    draw.text((margin, footer_y), footer, font=footer_font, fill=(255, 255, 255))
    return image


def render_png(*, prompt: str, seed: int, index: int, width: int, height: int, model: str) -> bytes:
    """`render_picture` encoded as PNG (fast compression: outputs are served, not archived)."""
    image = render_picture(prompt=prompt, seed=seed, index=index, width=width, height=height, model=model)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
