"""``doctor --record``: every Atlas request and answer the doctor's steps make, written as JSON lines for a bug
report, with nothing secret in them. Redaction happens before anything is written, never after.

One line per exchange, in the form of ``tests/fixtures/atlas/`` (``status``, the headers that matter, ``body``),
tagged with the endpoint and the model:

- the API key goes, in every form :func:`~atlas_mcp.redaction.without_secrets` knows, and no ``Authorization``
  header is ever written;
- a URL keeps its path and its query's parameter names, not their values (signed links expire, but are keys until
  then); an upload's URL keeps only its host;
- the account's id, name and email in a balance become ``[account]``;
- prompts and texts become their length (``[prompt: 42 characters]``) unless the user asks to keep them;
- an output file's bytes are never written: its type, size and first bytes' signature are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx  # imported only by the doctor's --record, which talks to Atlas at once

from atlas_mcp.redaction import without_secrets

__all__ = ["Recorder", "RecordingTransport"]

_KEPT_HEADERS = ("content-type", "retry-after", "content-length")
_PROMPT_FIELDS = frozenset({"prompt", "negative_prompt", "text", "lyrics", "content", "input"})
_ACCOUNT_FIELDS = frozenset({"id", "name", "email", "account_id", "account_name", "user_id", "username"})
_URL = re.compile(r"https?://[^\s\"'<>]+")
_MAX_BODY_CHARS = 20_000  # a catalogue page is kept whole only up to this; then its first entries


@dataclass
class Recorder:
    """Where the exchanges go (JSON lines, opened when the first one comes), and what must not appear in them."""

    path: Path
    secrets: list[str]
    keep_prompts: bool = False
    lines: int = 0
    endpoints: dict[str, int] = field(default_factory=dict)

    def write(self, entry: dict[str, Any]) -> None:
        text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
        text = without_secrets(text, self.secrets)  # the last look: a key the walk below missed goes here
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
        self.lines += 1
        self.endpoints[entry["endpoint"]] = self.endpoints.get(entry["endpoint"], 0) + 1

    def summary(self) -> str:
        shown = ", ".join(f"{count} {endpoint}" for endpoint, count in sorted(self.endpoints.items()))
        return f"{self.lines} exchanges with Atlas ({shown or 'none'})"

    def record(self, request: httpx.Request, response: httpx.Response, body: bytes) -> None:
        sent = _json(request.content) if request.content else None
        model = sent.get("model") if isinstance(sent, dict) else None
        entry: dict[str, Any] = {
            "endpoint": f"{request.method} {_path_shape(request.url.path)}",
            "model": model if isinstance(model, str) else None,
            "request": {
                "method": request.method,
                "path": request.url.path,
                "query": sorted({name for name, _ in parse_qsl(request.url.query.decode())}),
                "body": self._clean(sent, upload=False) if sent is not None else None,
            },
            "response": self._answer(request, response, body),
        }
        self.write(entry)

    def _answer(self, request: httpx.Request, response: httpx.Response, body: bytes) -> dict[str, Any]:
        headers = {name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers}
        answer: dict[str, Any] = {"status": response.status_code, "headers": headers}
        parsed = _json(body)
        if parsed is None:  # an output file (or a page that is not JSON): what it is, never its bytes
            answer["file"] = {
                "type": response.headers.get("content-type"),
                "size": len(body),
                "signature": body[:16].hex(),
            }
            return answer
        upload = "upload" in request.url.path.lower()
        answer["body"] = _shortened(self._clean(parsed, upload=upload))
        return answer

    def _clean(self, value: Any, *, upload: bool, key: str = "", within: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self._clean(v, upload=upload, key=k.lower(), within=key or within) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean(item, upload=upload, key=key, within=within) for item in value]
        if not isinstance(value, str):
            return value
        if (within == "account" and key in _ACCOUNT_FIELDS) or key in ("email", "account_name", "account_id"):
            return "[account]"
        if key in _PROMPT_FIELDS and not self.keep_prompts and not value.startswith(("http://", "https://")):
            return f"[{key}: {len(value)} characters]"
        return _URL.sub(lambda match: _bare_url(match.group(0), upload=upload), value)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _bare_url(url: str, *, upload: bool) -> str:
    """A URL with its query's values dropped (their names kept); an upload's URL with only its host."""
    parts = urlsplit(url)
    if upload:
        return f"{parts.scheme}://{parts.netloc}/[upload]"
    names = "&".join(f"{name}=" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, names, ""))


def _path_shape(path: str) -> str:
    """The endpoint without its ids: /api/v1/model/prediction/{id}, /emulator-storage/outputs/{id}/{file}."""
    path = re.sub(r"/[0-9a-f]{16,}(?=/|$)", "/{id}", path)
    return re.sub(r"(/outputs/\{id\}|/uploads/\{id\})/[^/]+$", r"\1/{file}", path)


def _shortened(body: Any) -> Any:
    """A long list (a catalogue page of 400 models) keeps its first entries and says how many there were."""
    if len(json.dumps(body)) <= _MAX_BODY_CHARS:
        return body
    if isinstance(body, dict):
        return {key: _shortened(value) for key, value in body.items()}
    if isinstance(body, list):
        kept: list[Any] = []
        for item in body:
            if len(json.dumps(kept)) > _MAX_BODY_CHARS // 2:
                break
            kept.append(item)
        return [*kept, {"recorded": f"{len(kept)} of {len(body)} entries"}]
    return body


class RecordingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands every exchange to a :class:`Recorder` on its way back."""

    def __init__(self, recorder: Recorder, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.recorder = recorder
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()  # decoded: the answer handed on says so (no content-encoding, its own length)
        await response.aclose()
        self.recorder.record(request, response, body)
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            status_code=response.status_code,
            headers=headers,
            content=body,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
