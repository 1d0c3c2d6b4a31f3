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
from atlas_mcp.redaction import holds_forms, secret_forms, without_forms
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
    if _untouched(text):
        return text
    parts: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        parts.append(_HIDDEN.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text[last : match.start()]))
        parts.append(_encode_url(match))
        last = match.end()
    parts.append(_HIDDEN.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text[last:]))
    return "".join(parts)


def _untouched(text: str) -> bool:
    """Whether :func:`escape_controls` leaves ``text`` as it is. Every character it rewrites is unprintable; the
    one unprintable character it always keeps, the line break, never sits inside a URL. (A yes is never wrong; a
    tab or a carriage return gets a no, and the full look, which keeps them too.)"""
    return all(line.isprintable() for line in text.split("\n"))


class OutgoingResults:
    """The server middleware that applies all of the above to each ``tools/call`` answer."""

    def __init__(self, settings: Settings, *, remote: bool, store_name: Callable[[Any], str | None]) -> None:
        self.settings = settings
        self.remote = remote
        self.store_name = store_name  # the state store's name, from the lifespan's state (known once it runs)
        # The server's own key, in every form: the same for every answer (a caller's token is worked out per request
        # and not kept)
        self.own_forms = secret_forms([settings.api_key.get_secret_value()] if settings.api_key is not None else [])

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

    def _cleaned(self, result: dict[str, Any], clean: _Cleaner) -> dict[str, Any]:
        if self._spared(result, clean):
            return result  # nearly every answer: nothing in it to change, so nothing to rebuild
        cleaned = dict(result)
        if isinstance(result.get("content"), list):
            content = []
            for block in result["content"]:
                if isinstance(block, dict) and block.get("type") in ("text", "resource_link"):
                    if self._server_file(block):
                        continue  # a file on the server's disk: no use to a caller elsewhere
                    block = _walk(block, clean)
                content.append(block)  # images and audio: our own encoding of bytes, no text of anyone's
            cleaned["content"] = content
        if result.get("structuredContent") is not None:
            cleaned["structuredContent"] = _walk(result["structuredContent"], clean)
        return cleaned

    def _spared(self, result: dict[str, Any], clean: _Cleaner) -> bool:
        """Whether cleaning would leave ``result`` as it is: every text it would visit, looked at all at once."""
        texts: list[str] = []
        for block in result.get("content") or ():
            if isinstance(block, dict) and block.get("type") in ("text", "resource_link"):
                if self._server_file(block):
                    return False
                _gather(block, texts)
        _gather(result.get("structuredContent"), texts)
        return not clean.would_change(" ".join(texts))

    def _server_file(self, block: dict[str, Any]) -> bool:
        return self.remote and str(block.get("uri", "")).lower().startswith("file:")

    def _cleaner(self, ctx: ServerRequestContext[Any, Any]) -> _Cleaner:
        hidden = self._server_paths(ctx) if self.remote else []
        access = get_access_token()
        if access is None:
            return _Cleaner(self.own_forms, hidden)
        secrets = [access.token]
        key = (access.claims or {}).get(KEY_CLAIM)  # OAuth mode: the user's key, behind our token
        if isinstance(key, SecretStr):
            secrets.append(key.get_secret_value())
        forms = sorted({*self.own_forms, *secret_forms(secrets)}, key=len, reverse=True)  # longest first
        return _Cleaner(tuple(forms), hidden)

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


class _Cleaner:
    """One answer's cleaning: the forms of the keys it must not carry and, over HTTP, the server's paths (each with
    what stands for it)."""

    def __init__(self, forms: tuple[str, ...], hidden: list[tuple[str, str]]) -> None:
        self.forms = forms
        self.hidden = hidden

    def __call__(self, text: str) -> str:
        text = escape_controls(without_forms(text, self.forms))
        for found, shown in self.hidden:
            text = text.replace(found, shown)
        return text

    def would_change(self, text: str) -> bool:
        """Whether cleaning could change ``text`` (a yes may be wrong, a no never is: several texts joined by spaces
        may show a key's form across a join, which only costs the full walk)."""
        if not _untouched(text):
            return True
        return holds_forms(text, self.forms) or any(found in text for found, _ in self.hidden)


def _walk(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {key: _walk(item, clean) for key, item in value.items()}
    if isinstance(value, list | tuple):  # a wire-form answer: JSON's types only
        return [_walk(item, clean) for item in value]
    return value


def _gather(value: Any, texts: list[str]) -> None:
    """Every string :func:`_walk` would clean in ``value``, into ``texts``."""
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _gather(item, texts)
    elif isinstance(value, list | tuple):
        for item in value:
            _gather(item, texts)
