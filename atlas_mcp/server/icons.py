"""Icons for the server and its tools: one small SVG per modality, drawn for this project, in a light and a dark
variant (an icon inside a data: URI cannot follow the host's text colour, so the theme picks the variant).

Each is a few hundred bytes, declared ``sizes: ["any"]`` as the spec allows for SVG.
"""

from __future__ import annotations

import base64
from typing import Literal

from mcp_types import Icon

__all__ = ["AUDIO", "IMAGE", "SERVER", "VIDEO"]

_FRAME = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="{ink}" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">{body}</svg>'  # noqa: E501

_BODIES = {
    # A picture: frame, sun, two hills.
    "image": '<rect x="3" y="4" width="18" height="16" rx="2"/><circle cx="9" cy="9.5" r="1.8"/>'
    '<path d="M3.5 18l5.5-5.5 4 4 2.5-2.5 5 5"/>',
    # A film frame with a play mark.
    "video": '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="M3 9h2M3 15h2M19 9h2M19 15h2"/>'
    '<path d="M10 9.5v5l4.5-2.5z" fill="{ink}"/>',
    # A sound wave.
    "audio": '<path d="M3 12h2M7 8v8M11 5v14M15 9v6M19 11v2M21 12h0"/>',
    # The server: a globe (Atlas) with a spark (generation).
    "server": '<circle cx="11" cy="13" r="8"/>'
    '<path d="M3 13h16M11 5c-2.5 2.5-2.5 13.5 0 16M11 5c2.5 2.5 2.5 13.5 0 16"/><path d="M19 2.5v4M17 4.5h4"/>',
}
# Dark strokes for light backgrounds, and the other way round.
_INKS: dict[Literal["light", "dark"], str] = {"light": "#1f2937", "dark": "#e5e7eb"}


def _icons(kind: str) -> list[Icon]:
    icons = []
    for theme, ink in _INKS.items():
        svg = _FRAME.format(ink=ink, body=_BODIES[kind].format(ink=ink))
        source = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")
        icons.append(Icon(src=source, mime_type="image/svg+xml", sizes=["any"], theme=theme))
    return icons


IMAGE = _icons("image")
VIDEO = _icons("video")
AUDIO = _icons("audio")
SERVER = _icons("server")
