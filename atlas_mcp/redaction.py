"""Scrub secrets out of text that may end up in a message, a log line or a tool result.

Atlas's error text is passed on to the caller because it is often the only useful explanation, but
it may echo a header or a signed URL. Everything that leaves the process through an error goes
through :func:`redact` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_BEARER = re.compile(r"(?i)\b(bearer|token|api[_-]?key|authorization)(\s*[:=]?\s*)([A-Za-z0-9._~+/=-]{8,})")
# A query string that signs a URL (X-Amz-Signature, Signature=, token=, sig=...) gives access to whoever
# holds it. The path stays readable; the query goes.
_SIGNED_QUERY = re.compile(
    r"(?i)(https?://[^\s?\"'<>]+)\?[^\s\"'<>]*(?:signature|sig|token|key|expires|credential|auth)[^\s\"'<>]*"
)
_MAX_LEN = 500


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` without bearer tokens, signed-URL queries or any of ``secrets``; cut to a sane length."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    text = _SIGNED_QUERY.sub(lambda m: f"{m.group(1)}?[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_LEN else text[: _MAX_LEN - 1] + "…"
