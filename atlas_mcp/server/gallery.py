"""The gallery and player: an MCP Apps view (``ui://atlascloud/gallery``) for clients that render one.

The generate tools and ``check_prediction`` point to it in their ``_meta``. A client that negotiated MCP Apps
renders their results in it: images in a grid, video and audio with controls, and buttons that call the tools
back through the host ("Vary", "Use as input", paying after a confirmation, polling a running prediction).
Every other client gets exactly the result it always got; only an Apps client's results carry the ``view``
block, the few facts the buttons need.

The page is one self-contained document (no CDN, no fonts, no fetch) with its own Content-Security-Policy:
its one script and one style sheet are allowed by hash, and media only from Atlas's output hosts (and the
emulator's loopback origin, when that is the Atlas we talk to). A host may drop that policy: the MCP Inspector
wraps the document in its own ``<head>``, so only the host's policy, built from ``_meta.ui.csp``, applies (with
inline script allowed). The page is written to stay safe under that too: no inline handlers, DOM by
``textContent`` only, no Referer sent with media. ``data:`` is in ``resourceDomains`` so inline previews (base64
outputs, posters) load in a host that honours it; the page says so visibly where a host blocks them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from mcp.server.apps import Apps, ResourceCsp

from atlas_mcp.addresses import is_loopback_host, origin_of
from atlas_mcp.config import Settings

__all__ = ["GALLERY_URI", "TOOL_META", "gallery_apps", "gallery_html", "media_origins"]

GALLERY_URI = "ui://atlascloud/gallery"
TOOL_META: dict[str, Any] = {"ui": {"resourceUri": GALLERY_URI}}
"""What a tool that shows its results in the gallery carries in ``_meta`` (the Apps extension's own shape)."""

# Where Atlas's outputs live: signed links on Aliyun OSS and ByteDance TOS buckets (see the reference), and
# Atlas's own hosts. Wildcards are as narrow as the providers allow: the bucket is part of the host name.
OUTPUT_ORIGINS = (
    "https://*.aliyuncs.com",
    "https://*.bytepluses.com",
    "https://*.volces.com",
    "https://*.atlascloud.ai",
)


INLINE = "data:"
"""The scheme of the inline previews; hosts copy ``resourceDomains`` into ``img-src`` and ``media-src``."""


def media_origins(settings: Settings) -> list[str]:
    """The origins the gallery may load media from: Atlas's output hosts, and the emulator when it is our Atlas."""
    origins = list(OUTPUT_ORIGINS)
    base = urlsplit(settings.base_url)
    if base.scheme == "http" and base.hostname is not None and is_loopback_host(base.hostname):
        origins.append(origin_of(settings.base_url))
    return origins


@cache
def _template() -> str:
    return files("atlas_mcp.server").joinpath("gallery.html").read_text(encoding="utf-8")


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def gallery_html(origins: list[str]) -> str:
    """The page, with a policy that allows exactly its own script and style, and media from ``origins``."""
    page = _template()
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert script is not None, "gallery.html has one inline script"
    assert style is not None, "gallery.html has one style sheet"
    media = " ".join(origins)
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_hash(script.group(1))}",
            f"style-src {_hash(style.group(1))}",
            f"img-src data: {media}",
            f"media-src {media}",
            "connect-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
    return page.replace("__CSP__", policy, 1)


def gallery_apps(settings: Settings) -> Apps:
    """The Apps extension carrying the gallery resource, with the CSP a host should apply to it."""
    origins = media_origins(settings)
    apps = Apps()
    apps.add_html_resource(
        GALLERY_URI,
        gallery_html(origins),
        name="gallery",
        title="Atlas Cloud gallery and player",
        description="Shows generated images, video and audio, with Vary and Use as input buttons.",
        csp=ResourceCsp(resource_domains=[INLINE, *origins]),
        prefers_border=True,
    )
    return apps
