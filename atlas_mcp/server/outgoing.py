"""The last look at every tool result before it leaves: no key, no invisible control, and over HTTP no path on
the server.

A result is built from Atlas's answers, and Atlas (or whatever answers in its place) chooses the text of an
output URL: it may carry the caller's key in its query, or a right-to-left override (U+202E) that makes
``…/photo<U+202E>gnp.exe`` read as ``…/photoexe.png``. Over HTTP the caller is not on this machine, so the
absolute paths of saved files and of the state store tell it nothing it can use and a stranger too much.

One middleware sees every ``tools/call`` answer, errors included, and every task's (``tasks/get``), so no tool
can forget it:

- every form of the payer's key (and of the server's own) becomes ``[redacted]``, in the text, the structured
  content and the links;
- inside a URL, every control, format (bidi) and non-ASCII space character is percent-encoded, which names the
  same file and shows what is there; elsewhere bidi controls and C0 controls are written as ``\\u202e`` escapes;
- over HTTP, a saved file is named relative to the output folder, the state store is "the server's state store",
  and links to files on the server's disk are left out.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from pydantic import SecretStr

from atlas_mcp.config import Settings
from atlas_mcp.redaction import secret_forms, without_forms
from atlas_mcp.server.caller import KEY_CLAIM

__all__ = ["OutgoingResults", "escape_controls"]

# A URL as it sits in text: up to an ASCII space, quote or angle bracket; anything else in it is checked below.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\x00-\x20\"'<>]*")
# Outside URLs: the bidi embeddings, overrides and isolates (never needed to write a language), and C0 controls
# other than tab and line breaks (a terminal acts on them).
_HIDDEN = re.compile("[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _invisible(char: str) -> bool:
    return unicodedata.category(char)[0] in "CZ"  # controls, format characters, unassigned, spaces, separators


def _encode_url(match: re.Match[str]) -> str:
    url = match.group(0)
    if url.isascii() and url.isprintable():
        return url
    return "".join(
        "".join(f"%{byte:02X}" for byte in c.encode(errors="surrogatepass")) if _invisible(c) else c for c in url
    )


def escape_controls(text: str) -> str:
    """``text`` with every invisible character of its URLs percent-encoded, and the bidi and C0 controls of the
    rest written out as ``\\uXXXX``."""
    if text.isascii() and text.isprintable():
        return text
    parts: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        parts.append(_HIDDEN.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text[last : match.start()]))
        parts.append(_encode_url(match))
        last = match.end()
    parts.append(_HIDDEN.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text[last:]))
    return "".join(parts)


class OutgoingResults:
    """The server middleware that applies all of the above to each ``tools/call`` answer."""

    def __init__(self, settings: Settings, *, remote: bool, store_name: Callable[[Any], str | None]) -> None:
        self.settings = settings
        self.remote = remote
        self.store_name = store_name  # the state store's name, from the lifespan's state (known once it runs)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)  # already in its wire form: a dict
        if ctx.method not in ("tools/call", "tasks/get") or not isinstance(result, dict):
            return result
        clean = self._cleaner(ctx)
        if ctx.method == "tools/call":
            return self._cleaned(result, clean)
        cleaned = dict(result)  # a task: its status message, and the tool's result once it is done
        if isinstance(result.get("statusMessage"), str):
            cleaned["statusMessage"] = clean(result["statusMessage"])
        if isinstance(result.get("result"), dict):
            cleaned["result"] = self._cleaned(result["result"], clean)
        return cleaned

    def _cleaned(self, result: dict[str, Any], clean: Callable[[str], str]) -> dict[str, Any]:
        cleaned = dict(result)
        if isinstance(result.get("content"), list):
            content = []
            for block in result["content"]:
                if isinstance(block, dict) and block.get("type") in ("text", "resource_link"):
                    if self.remote and str(block.get("uri", "")).lower().startswith("file:"):
                        continue  # a file on the server's disk: no use to a caller elsewhere
                    block = _walk(block, clean)
                content.append(block)  # images and audio: our own encoding of bytes, no text of anyone's
            cleaned["content"] = content
        if result.get("structuredContent") is not None:
            cleaned["structuredContent"] = _walk(result["structuredContent"], clean)
        return cleaned

    def _cleaner(self, ctx: ServerRequestContext[Any, Any]) -> Callable[[str], str]:
        secrets = [self.settings.api_key.get_secret_value()] if self.settings.api_key is not None else []
        access = get_access_token()
        if access is not None:
            secrets.append(access.token)
            key = (access.claims or {}).get(KEY_CLAIM)  # OAuth mode: the user's key, behind our token
            if isinstance(key, SecretStr):
                secrets.append(key.get_secret_value())
        hidden = self._server_paths(ctx) if self.remote else []

        forms = secret_forms(secrets)

        def clean(text: str) -> str:
            text = escape_controls(without_forms(text, forms))
            for found, shown in hidden:
                text = text.replace(found, shown)
            return text

        return clean

    def _server_paths(self, ctx: ServerRequestContext[Any, Any]) -> list[tuple[str, str]]:
        """What over HTTP stands for a place on the server: the output folder (its files by their names) and the
        state store."""
        pairs: list[tuple[str, str]] = []
        store = self.store_name(ctx.lifespan_context)
        if store:
            pairs.append((store, "the server's state store"))
        folder = self.settings.output_dir
        if folder is not None:
            for form in dict.fromkeys((str(folder), os.path.realpath(folder), str(Path(folder).resolve()))):
                pairs.append((form.rstrip(os.sep) + os.sep, ""))
            for form in dict.fromkeys((str(folder), os.path.realpath(folder))):
                pairs.append((form, "the output folder"))
        return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)  # /a/out/ before /a/out, /p/a before /a


def _walk(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {key: _walk(item, clean) for key, item in value.items()}
    if isinstance(value, list | tuple):  # a wire-form answer: JSON's types only
        return [_walk(item, clean) for item in value]
    return value
