"""The async Atlas Cloud client: quote, submit, read, wait for and list predictions; upload files; read the
catalogue, the balance, usage and costs; chat with an LLM.

It knows HTTP and Atlas, nothing of MCP. One :class:`httpx.AsyncClient` per lifetime; every request has
an explicit timeout; GETs are retried with capped, jittered backoff (honouring ``Retry-After``); the
billable submit and the upload are sent once, never retried. All HTTP outcomes become either a parsed
model or one exception of :mod:`atlas_mcp.errors`, in :meth:`AtlasClient._send`.

Every call is bounded twice: httpx's timeout bounds each phase (connect, each read), and a deadline of twice
that bounds the whole call, retries and their pauses included, so neither a server that drips its answer
byte by byte nor a string of slow failures can hold a call longer (an upload's body excepted).
Output files are fetched only from https hosts whose every address is public (or from Atlas's own origin).
"""

from __future__ import annotations

import copy
import http.cookiejar
import json
import logging
import math
import random
import re
import secrets
import socket
import time
import urllib.request
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread
from pydantic import BaseModel, SecretStr, ValidationError

from atlas_mcp._version import __version__
from atlas_mcp.addresses import is_public_address, origin_of
from atlas_mcp.atlas.models import (
    Balance,
    ChatAnswer,
    ChatChunk,
    HistoryPage,
    ModelEntry,
    Prediction,
    Quote,
    UploadedFile,
    UsagePage,
    error_text,
    named_ids,
    unwrap,
)
from atlas_mcp.errors import (
    AtlasAPIError,
    AtlasMCPError,
    AuthenticationError,
    BadResponseError,
    InputError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PredictionTimeoutError,
    RateLimitedError,
    UpstreamUnavailableError,
)
from atlas_mcp.redaction import redact

if TYPE_CHECKING:
    # At run time httpx is imported by the methods that use it: the server builds this client before it answers
    # initialize, and importing httpx there cost ~60 M of a cold start's 3.6 G instructions.
    import httpx

__all__ = [
    "CHAT_PATH",
    "NOT_VISIBLE_YET",
    "AtlasClient",
    "HistoryState",
    "MediaKind",
    "OnChunk",
    "PollPolicy",
    "RetryPolicy",
    "UsageReport",
    "validate_prediction_id",
]

logger = logging.getLogger(__name__)

MediaKind = Literal["image", "video", "audio"]
HistoryState = Literal["running", "succeeded", "failed"]
UsageReport = Literal["usage", "costs"]
CHAT_PATH = "/v1/chat/completions"
_USAGE_PATHS: dict[UsageReport, str] = {"usage": "/public/v1/model-usage", "costs": "/public/v1/model-costs"}
_CHAT_BILLED = (
    "The model may have started answering and Atlas may bill it: check get_usage before asking the same again."
)

NOT_VISIBLE_YET = "submitted"
"""Our status word for a prediction Atlas accepted but does not show yet: right after a submit, a read may
answer 404 or 400 for a while. It counts as running."""
_SUBMIT_PATHS: dict[MediaKind, str] = {
    "image": "/api/v1/model/generateImage",
    "video": "/api/v1/model/generateVideo",
    "audio": "/api/v1/model/generateAudio",
}
_PREDICTION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_UPLOAD_CHUNK = 1024 * 1024  # per read from disk; 1 MiB took a quarter off upload CPU against 256 KiB
# A prediction may carry its outputs inline (base64 or data: URIs, megabytes each): its answers may be this big.
_MAX_PREDICTION_BODY = 64 * 1024 * 1024
_RECENT_SUBMITS = 1024  # ids remembered for the warm-up grace
# An idle connection is reused for at most this long. Many servers close idle ones at 5 s (uvicorn's, Node's and
# Apache's default), and a request sent on a connection the server is closing that moment fails with a read
# error: harmless for a GET, which is retried, but a billable submit would then end as "may have gone through".
_KEEPALIVE_SECONDS = 4.0
HEAD_BYTES = 4096  # what download_head_first reads of a file before asking whether the rest is wanted
_MAYBE_SENT = (
    "The request may still have reached Atlas: look at list_predictions before trying again, "
    "so that nothing is paid twice."
)

_M = TypeVar("_M", bound=BaseModel)
_E = TypeVar("_E", bound=AtlasMCPError)

OnPoll = Callable[[Prediction, int], Awaitable[None]]
"""Called after every poll of :meth:`AtlasClient.wait` with the prediction and the number of polls so far."""
OnChunk = Callable[[ChatChunk, str], Awaitable[None]]
"""Called for every streamed piece of a chat answer, with the piece and the whole text so far."""


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent requests (GETs) are retried: capped attempts, full-jitter backoff, capped Retry-After."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # Honour the server's word, capped, with a little jitter so many clients do not return together.
            return min(retry_after, self.max_retry_after) + random.uniform(0, 0.1)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass(frozen=True)
class PollPolicy:
    """When to look at a running prediction: quickly at first, then less often, never rarer than ``max_interval``.

    The interval grows with the time already waited (``ratio``), so the lag between "done upstream" and
    "seen here" stays a fixed fraction of the job's length while the number of polls grows only
    logarithmically with it.
    """

    # Lag first: these keep "done upstream" to "seen here" within max(15 % of T, 0.3 s) at every T, at
    # about 27 polls by 10 s. Fewer polls (8 by 10 s) would mean up to 3x that lag; docs/benchmarks.md.
    min_interval: float = 0.2
    ratio: float = 0.1
    max_interval: float = 3.0

    def delay(self, elapsed: float) -> float:
        return max(self.min_interval, min(self.max_interval, self.ratio * elapsed))


def validate_prediction_id(prediction_id: str) -> str:
    """Return the id if it can only ever name a prediction; raise :class:`InputError` otherwise.

    Ids are pasted into a URL path, so ``x/../../history`` must never get that far.
    """
    candidate = prediction_id.strip()
    if not _PREDICTION_ID.fullmatch(candidate):
        raise InputError(
            "That is not a prediction id: ids are 1-128 letters, digits, '-' or '_' "
            "(as returned by generate_image). Pass the id exactly as it was returned."
        )
    return candidate


class _BearerAuth:
    """Adds the key only to requests for Atlas's own origin, so a schema or output URL on another host never sees it.

    A callable, which httpx takes as auth: no subclass of ``httpx.Auth``, so building a client imports no httpx.
    """

    def __init__(self, key: SecretStr | None, origin: str) -> None:
        self._key = key
        self._origin = origin

    def __call__(self, request: httpx.Request) -> httpx.Request:
        if self._key is not None and origin_of(str(request.url)) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return request


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any
    headers: httpx.Headers


class AtlasClient:
    """An async client for Atlas Cloud's prediction API.

    Use it as an async context manager (or call :meth:`aclose`). ``transport`` lets tests and embedders
    route requests anywhere (an ASGI app, a mock transport) without patching.
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | str | None,
        base_url: str = "https://api.atlascloud.ai",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_body_bytes: int = 8 * 1024 * 1024,
        max_prediction_bytes: int = _MAX_PREDICTION_BODY,
        warmup_grace: float = 30.0,
    ) -> None:
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._key = key if key is not None and key.get_secret_value() else None
        self._origin = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.poll = poll or PollPolicy()
        self._max_body = max_body_bytes
        self._max_prediction = max_prediction_bytes
        self._deadline = 2 * timeout  # for a whole call or download, retries included, however slowly it arrives
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._auth = _BearerAuth(self._key, self._origin)
        self._root = self  # the client that owns the connections (a with_key view shares its root's)
        self.warmup_grace = warmup_grace
        # id -> (when it was submitted, its model): a read that cannot find it yet is not proof it does not exist
        self._submitted: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    async def __aenter__(self) -> AtlasClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._root is self and self._client is not None:
            await self._client.aclose()

    def with_key(self, api_key: SecretStr | str | None) -> AtlasClient:
        """This client acting with another key: the same connections, retry and poll policies and submit memory,
        another ``Authorization``. For a server whose callers each bring their own key: the view lives as long as
        one request, and only its own requests ever carry its key (closing it closes nothing)."""
        view = copy.copy(self)
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        view._key = key if key is not None and key.get_secret_value() else None
        view._auth = _BearerAuth(view._key, self._origin)
        return view

    @property
    def _http(self) -> httpx.AsyncClient:
        """The one HTTP client, built on first use: loading the CA bundle costs ~25 ms that a server
        should not spend before answering ``initialize``."""
        root = self._root
        if root._client is None:
            import httpx

            root._client = httpx.AsyncClient(
                base_url=self._origin,
                timeout=httpx.Timeout(self._timeout, connect=min(10.0, self._timeout)),
                headers={"User-Agent": f"atlascloud-mcp/{__version__}", "Accept": "application/json"},
                transport=self._transport,
                limits=httpx.Limits(keepalive_expiry=_KEEPALIVE_SECONDS),
                follow_redirects=False,
                # One connection pool serves every caller of an HTTP server: a cookie one caller's answer set would
                # ride along with the next caller's requests. Atlas's API needs none, so none is ever kept.
                cookies=_no_cookies(),
                # HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, SSL_CERT_FILE, SSL_CERT_DIR: users behind a corporate
                # proxy connect at all only with them. The key stays bound to Atlas's origin (_BearerAuth).
                trust_env=True,
            )
        return root._client

    # -- predictions ----------------------------------------------------------------------------------

    def submit_url(self, kind: MediaKind) -> str:
        """Where :meth:`submit` posts a generation of this kind (shown by dry runs)."""
        return self._origin + _SUBMIT_PATHS[kind]

    async def submit(self, model: str, params: Mapping[str, Any], *, kind: MediaKind = "image") -> Prediction:
        """Start a prediction. Billable: sent exactly once, never retried, whatever happens.

        Some models answer synchronously: the returned prediction may already be done, outputs and all.
        """
        if not model.strip():
            raise InputError("A model id is required, e.g. 'black-forest-labs/flux-schnell'.")
        body = _generation_body(model, params)
        named = ""
        try:
            answer = await self._send(
                "POST", _SUBMIT_PATHS[kind], json_body=body, idempotent=False, max_body=self._max_prediction
            )
            named = named_ids(unwrap(answer.body))
            prediction = self._prediction(answer)
        except BadResponseError as exc:  # Atlas said yes (2xx) in a form we cannot read: it may be running
            said = f" The answer named {named}: look for it with check_prediction." if named else ""
            raise BadResponseError(f"{exc}{said} {_MAYBE_SENT}") from exc
        self._submitted[prediction.id] = (time.monotonic(), prediction.model or model)
        while len(self._submitted) > _RECENT_SUBMITS:
            self._submitted.popitem(last=False)
        return prediction

    async def quote(self, model: str, params: Mapping[str, Any]) -> Quote:
        """Atlas's own price for exactly this generation, before paying for it. Free, so it is retried like a read."""
        if not model.strip():
            raise InputError("A model id is required, e.g. 'black-forest-labs/flux-schnell'.")
        answer = await self._send(
            "POST", "/api/v1/model/calculate", json_body=_generation_body(model, params), idempotent=True
        )
        return self._parse(Quote, unwrap(answer.body), "quote")

    async def get_prediction(self, prediction_id: str) -> Prediction:
        """Read a prediction's current state. A failed prediction answered with HTTP 5xx is returned, not raised.

        Right after a submit Atlas may answer 404 or 400 for an id it has just handed out. Within
        ``warmup_grace`` seconds of our own submit of that id, that reads as "not visible yet": a running
        prediction whose status is :data:`NOT_VISIBLE_YET`. Later, or for an id we did not submit, it is an error.
        """
        candidate = validate_prediction_id(prediction_id)
        path = f"/api/v1/model/prediction/{quote(candidate, safe='')}"
        try:
            answer = await self._send("GET", path, idempotent=True, max_body=self._max_prediction)
        except (NotFoundError, InvalidRequestError) as exc:
            if exc.status not in (400, 404):
                raise
            when, model = self._submitted.get(candidate, (None, None))
            age = None if when is None else time.monotonic() - when
            if age is not None and age < self.warmup_grace:
                return Prediction(id=candidate, status=NOT_VISIBLE_YET, model=model)
            since = f", {age:.0f} s after it was submitted" if age is not None else ""
            raise NotFoundError(
                f"Atlas does not know prediction {candidate} (HTTP {exc.status}{since}). Check the id: pass it "
                "exactly as a generate tool returned it, or find it with list_predictions.",
                status=exc.status,
            ) from exc
        return self._prediction(answer)

    async def balance(self) -> Balance:
        """The account's balance (``/public/v1/balance``): a cheap way to learn whether the key is accepted."""
        answer = await self._send("GET", "/public/v1/balance", idempotent=True)
        return self._parse(Balance, unwrap(answer.body), "balance")

    async def usage(
        self,
        report: UsageReport,
        *,
        start_date: str,
        end_date: str,
        group_by: Sequence[str] = (),
        model_types: Sequence[str] = (),
        model_ids: Sequence[str] = (),
        limit: int | None = None,
        page: str | None = None,
    ) -> UsagePage:
        """Daily usage or cost buckets (``/public/v1/model-usage``, ``/public/v1/model-costs``) for a date range
        (``YYYY-MM-DD``, the end exclusive). Lists go as Atlas's ``group_by[]=...`` repeated keys."""
        query: dict[str, str | int | Sequence[str]] = {"start_date": start_date, "end_date": end_date}
        for name, values in (("group_by", group_by), ("model_types", model_types), ("model_ids", model_ids)):
            if values:
                query[f"{name}[]"] = list(values)
        if limit is not None:
            query["limit"] = limit
        if page:
            query["page"] = page
        answer = await self._send("GET", _USAGE_PATHS[report], params=query, idempotent=True)
        return self._parse(UsagePage, answer.body, f"{report} report")

    async def chat(self, body: Mapping[str, Any], *, timeout: float, on_chunk: OnChunk | None = None) -> ChatAnswer:
        """One OpenAI-compatible chat completion (``POST /v1/chat/completions``). Billable: sent once, never retried.

        With ``"stream": true`` in ``body`` the answer is read as it is streamed (server-sent events), and
        ``on_chunk`` hears every piece; an answer that comes whole (a gateway that does not stream) is read too.
        Bounded by ``timeout``: what arrived by then is returned with ``partial`` set and ``finish_reason``
        "timeout"; a stream that breaks off after some text comes back the same way ("connection_lost").
        """
        self.require_key()
        text: list[str] = []
        final = ChatAnswer(text="", partial=True, finish_reason="timeout")
        with anyio.move_on_after(timeout):
            final = await self._chat(body, text, on_chunk)
        if final.partial:
            final = final.model_copy(update={"text": "".join(text)})
        return final

    async def _chat(self, body: Mapping[str, Any], text: list[str], on_chunk: OnChunk | None) -> ChatAnswer:
        import httpx

        request = self._http.build_request(
            "POST", CHAT_PATH, json=dict(body), headers={"Accept": "text/event-stream, application/json"}
        )
        try:
            response = await self._http.send(request, stream=True, auth=self._auth)
        except httpx.TransportError as exc:
            raise self._chat_network_error(exc) from exc
        try:
            streamed = response.headers.get("content-type", "").startswith("text/event-stream")
            if not streamed or response.status_code >= 300:
                answer = await self._whole(response, request)
                try:
                    self._raise_for_error(answer, idempotent=False)
                except UpstreamUnavailableError as exc:
                    raise UpstreamUnavailableError(
                        str(exc).replace(_MAYBE_SENT, _CHAT_BILLED), status=exc.status, maybe_sent=True
                    ) from exc
                whole = self._parse(ChatChunk, answer.body, "chat answer")
                text.append(whole.text)
                if on_chunk is not None:
                    await on_chunk(whole, whole.text)
                return ChatAnswer(
                    text=whole.text, finish_reason=whole.finish_reason, model=whole.model, usage=whole.usage
                )
            return await self._read_stream(response, text, on_chunk)
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def _read_stream(self, response: httpx.Response, text: list[str], on_chunk: OnChunk | None) -> ChatAnswer:
        """Server-sent events: ``data: {chunk}`` lines until ``data: [DONE]``; comments and other fields skipped."""
        import httpx

        finish: str | None = None
        model: str | None = None
        usage = None
        size = 0
        try:
            async for line in response.aiter_lines():
                size += len(line)
                if size > self._max_body:
                    return ChatAnswer(text="", partial=True, finish_reason="too_large", model=model, usage=usage)
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    raw = json.loads(data)
                except ValueError:
                    logger.debug("skipping a chat stream line that is not JSON")
                    continue
                if isinstance(raw, dict) and raw.get("error") is not None:
                    said = self._upstream_text(raw) or "no reason given"
                    raise UpstreamUnavailableError(
                        f"Atlas broke off the chat answer: {said}. {_CHAT_BILLED}", maybe_sent=True
                    )
                chunk = self._parse(ChatChunk, raw, "chat stream piece")
                finish = chunk.finish_reason or finish
                model = chunk.model or model
                usage = chunk.usage or usage
                if chunk.text:
                    text.append(chunk.text)
                if on_chunk is not None and (chunk.text or chunk.finish_reason):
                    await on_chunk(chunk, "".join(text))
        except httpx.TransportError as exc:
            if not text:
                raise self._chat_network_error(exc) from exc
            logger.info("the chat stream broke off after %d pieces (%s)", len(text), type(exc).__name__)
            return ChatAnswer(text="", partial=True, finish_reason="connection_lost", model=model, usage=usage)
        if finish is None:  # the stream ended without the model saying it was done
            return ChatAnswer(text="", partial=True, finish_reason="connection_lost", model=model, usage=usage)
        return ChatAnswer(text="".join(text), finish_reason=finish, model=model, usage=usage)

    async def _whole(self, response: httpx.Response, request: httpx.Request) -> _Answer:
        """A response that is not a stream, read whole (size-capped) and parsed as :meth:`_exchange` does."""
        raw = bytearray()
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > self._max_body:
                raise BadResponseError(
                    f"Atlas's answer to {request.method} {request.url.path} exceeded {self._max_body // 1024} KiB; "
                    f"refused to read further. {_CHAT_BILLED}"
                )
        return _answer(response, raw)

    def _chat_network_error(self, exc: Exception) -> UpstreamUnavailableError:
        error = self._network_error(exc, idempotent=False)
        if not error.maybe_sent:
            return error
        return UpstreamUnavailableError(str(error).replace(_MAYBE_SENT, _CHAT_BILLED), maybe_sent=True)

    async def wait(self, prediction: Prediction, *, timeout: float, on_poll: OnPoll | None = None) -> Prediction:
        """Poll until the prediction is done (succeeded or failed) and return it.

        Raises :class:`PredictionTimeoutError` (carrying the last state seen) when ``timeout`` seconds pass
        first. Cancelling the calling task stops the polling at once.
        """
        started = time.monotonic()
        polls = 0
        last = prediction
        with anyio.move_on_after(timeout):
            while not last.done:
                await anyio.sleep(self.poll.delay(time.monotonic() - started))
                try:
                    last = await self.get_prediction(last.id)
                except (AtlasAPIError, BadResponseError) as exc:
                    raise _about_prediction(exc, last.id) from exc
                polls += 1
                if on_poll is not None:
                    await on_poll(last, polls)
        if last.done:
            return last
        raise PredictionTimeoutError(
            f"Prediction {last.id} is still {last.status} after {timeout:g} s; it goes on running at Atlas. "
            f"Call check_prediction with this id later to get the result.",
            prediction=last,
        )

    async def list_predictions(
        self,
        *,
        page: int = 1,
        size: int = 20,
        model: str | None = None,
        model_prefix: str | None = None,
        state: HistoryState | None = None,
        prediction_id: str | None = None,
    ) -> HistoryPage:
        """One page of the account's generation history, newest first.

        Filters use Atlas's newer query form (``state``, ``modelPrefix``); one prediction is found by id with the
        older form's ``sessionID``, which the newer one has no word for.
        """
        if not 1 <= size <= 50 or page < 1:
            raise InputError("page starts at 1 and size is 1 to 50.")
        query: dict[str, str | int] = {"no": page, "size": size}
        if model:
            query["model"] = model
        if model_prefix:
            query["modelPrefix"] = model_prefix
        if state:
            query["state"] = state
        if prediction_id:
            query["sessionID"] = validate_prediction_id(prediction_id)
        answer = await self._send("GET", "/api/v1/model/history", params=query, idempotent=True)
        history = self._parse(HistoryPage, unwrap(answer.body), "history page")
        items = [
            item.model_copy(update={"result": self._redacted(item.result, item.result.error)}) if item.result else item
            for item in history.items
            if _PREDICTION_ID.fullmatch(item.id) and (item.result is None or _PREDICTION_ID.fullmatch(item.result.id))
        ]
        if len(items) < len(history.items):
            logger.warning("left out %d history items whose ids are not ids", len(history.items) - len(items))
        return history.model_copy(update={"items": tuple(items)})

    # -- files ----------------------------------------------------------------------------------------

    async def upload(self, file: BinaryIO, *, filename: str, content_type: str, size: int) -> UploadedFile:
        """Upload ``size`` bytes of an open file as multipart/form-data, streamed in chunks (never read whole)."""
        boundary = secrets.token_hex(16)
        safe_name = quote(filename, safe=" ._-()[]+,@")
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def stream() -> AsyncIterator[bytes]:
            yield head
            remaining = size
            while remaining > 0:
                chunk = await anyio.to_thread.run_sync(file.read, min(_UPLOAD_CHUNK, remaining))
                if not chunk:
                    raise InputError(f"{filename} shrank while it was being uploaded; try again.")
                remaining -= len(chunk)
                yield chunk
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        # Not bounded as a whole: a large file takes as long as the link needs; each read and write is bounded.
        answer = await self._send(
            "POST", "/api/v1/model/uploadMedia", content=stream(), headers=headers, idempotent=False, bounded=False
        )
        return self._parse(UploadedFile, unwrap(answer.body), "upload answer")

    async def download(self, url: str, *, max_bytes: int) -> tuple[bytes, str | None]:
        """Fetch an output file (for a preview or a saved copy): https or Atlas's origin only, size-capped.

        Redirects are followed by hand, at most three, and only to places the first URL could have been:
        https hosts whose every address is public, checked before connecting and again on the connected
        socket. The whole fetch, redirects included, is bounded by the client's deadline. Returns the bytes
        and the announced content type.
        """
        data = bytearray()
        announced = await self.download_into(url, data.extend, max_bytes=max_bytes)
        return bytes(data), announced

    async def download_head_first(
        self, url: str, *, max_bytes: int, wanted: Callable[[str | None, bytes], bool]
    ) -> tuple[bytes, str | None, bool]:
        """:meth:`download`, but asks ``wanted`` (with the announced content type and the first
        :data:`HEAD_BYTES`) whether the rest is worth reading. Returns the bytes read, the content type and whether
        the file is complete: a file nobody wants stops after its head (a 40 MB 3D model is not read to make a
        preview it cannot be)."""
        data = bytearray()
        announced, complete = await self._bounded_download(url, max_bytes, data.extend, wanted)
        return bytes(data), announced, complete

    async def download_into(self, url: str, write: Callable[[bytes], object], *, max_bytes: int) -> str | None:
        """:meth:`download`, handing each piece to ``write`` as it arrives (a file: nothing is held whole in
        memory). Returns the announced content type."""
        announced, _complete = await self._bounded_download(url, max_bytes, write, None)
        return announced

    async def _bounded_download(
        self,
        url: str,
        max_bytes: int,
        write: Callable[[bytes], object],
        wanted: Callable[[str | None, bytes], bool] | None,
    ) -> tuple[str | None, bool]:
        import httpx

        try:
            with anyio.fail_after(self._deadline):
                return await self._download(url, max_bytes, write, wanted)
        except TimeoutError:
            raise UpstreamUnavailableError(
                f"The output file took longer than {self._deadline:g} s to fetch; its URL still works for a later try."
            ) from None
        except (ValueError, httpx.InvalidURL) as exc:  # Atlas's URL (or a redirect's) that is no URL at all
            raise BadResponseError(f"The output URL is malformed ({type(exc).__name__}); not fetched.") from exc

    async def _download(
        self,
        url: str,
        max_bytes: int,
        write: Callable[[bytes], object],
        wanted: Callable[[str | None, bytes], bool] | None = None,
    ) -> tuple[str | None, bool]:
        """The fetch itself: the announced content type, and whether the whole file was read (``wanted`` may stop
        it after its head)."""
        import httpx

        for _hop in range(4):
            own_origin = await self._check_download_url(url)
            request = self._http.build_request("GET", url, headers={"Accept": "*/*"})
            try:
                response = await self._http.send(request, stream=True, auth=None)  # output files are public
            except httpx.TransportError as exc:
                raise UpstreamUnavailableError(
                    f"The output file could not be fetched ({type(exc).__name__}); its URL still works for a later try."
                ) from exc
            try:
                # Through a proxy the socket's peer is the proxy, which connects by its own lookup: then only the
                # check of the URL's host, resolved here before sending, applies.
                peer = None if _via_proxy(url) else _peer_address(response)
                if not own_origin and peer is not None and not is_public_address(peer):
                    raise BadResponseError("The output URL points at a private or local address; not fetched.")
                if response.is_redirect and "location" in response.headers:
                    url = str(response.url.join(response.headers["location"]))
                    continue
                if response.status_code != 200:
                    raise NotFoundError(
                        f"The output file answered HTTP {response.status_code}; it may have expired.",
                        status=response.status_code,
                    )
                announced = response.headers.get("content-length")
                if announced is not None and announced.isdigit() and int(announced) > max_bytes:
                    raise BadResponseError(f"The output file is larger than {max_bytes // 1048576} MiB; not fetched.")
                content_type: str | None = response.headers.get("content-type")
                received = 0
                head = bytearray() if wanted is not None else None
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > max_bytes:
                        raise BadResponseError(
                            f"The output file is larger than {max_bytes // 1048576} MiB; stopped reading."
                        )
                    write(chunk)
                    if head is not None and wanted is not None:
                        head += chunk
                        if len(head) >= HEAD_BYTES:
                            if not wanted(content_type, bytes(head)):
                                return content_type, False
                            head = None
                if head is not None and wanted is not None and not wanted(content_type, bytes(head)):
                    return content_type, False
                return content_type, True
            finally:
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        raise BadResponseError("The output URL redirected too many times; not fetched.")

    async def _check_download_url(self, url: str) -> bool:
        """Refuse a URL we must not fetch; return whether it is on Atlas's own origin (trusted as configured)."""
        if origin_of(url) == self._origin:
            return True
        await self._check_public_https(url, "output URL")
        return False

    async def _check_public_https(self, url: str, what: str) -> None:
        """An https URL whose host resolves only to public addresses, or :class:`BadResponseError`.

        Resolving here catches every spelling of a private address (``127.1``, ``2130706433``,
        ``localhost.``, a name in /etc/hosts), not only the literal ones.
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme != "https" or not host:
            raise BadResponseError(f"Only https {what}s (or Atlas's own origin) are fetched; this one is not.")
        refused = BadResponseError(f"The {what} points at a private or local address; not fetched.")
        if host == "localhost" or host.endswith(".localhost"):
            raise refused
        port = parts.port or 443  # a malformed port raises ValueError: the URL is no URL
        try:
            addresses = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UpstreamUnavailableError(
                f"The host of the {what} could not be resolved ({type(exc).__name__}); try again later."
            ) from exc
        if not addresses or not all(is_public_address(str(address[4][0])) for address in addresses):
            raise refused

    # -- catalogue ------------------------------------------------------------------------------------

    async def list_models(self) -> list[ModelEntry]:
        """The public model catalogue (no key needed)."""
        answer = await self._send("GET", "/api/v1/models", idempotent=True, authenticated=False)
        items = unwrap(answer.body)
        if isinstance(items, dict):
            items = items.get("items") or items.get("models")
        if not isinstance(items, list):
            raise BadResponseError("Atlas answered the model list with something that is not a list.")
        models = []
        for item in items:
            try:
                models.append(ModelEntry.model_validate(item))
            except ValidationError:
                logger.debug("skipping an unreadable catalogue entry")
        return models

    async def get_schema(self, schema_url: str) -> dict[str, Any]:
        """A model's OpenAPI schema document. Public: fetched without the key, from https or Atlas's origin only."""
        import httpx

        elsewhere = origin_of(schema_url) != self._origin
        try:
            if elsewhere:
                await self._check_public_https(schema_url, "schema URL")
            answer = await self._send("GET", schema_url, idempotent=True, authenticated=False)
        except (ValueError, httpx.InvalidURL) as exc:
            raise BadResponseError(f"The model's schema URL is malformed ({type(exc).__name__}); not fetched.") from exc
        except UpstreamUnavailableError as exc:
            if not elsewhere:
                raise
            # Another host than Atlas's: ATLASCLOUD_BASE_URL is not the thing to check.
            host = urlsplit(schema_url).hostname
            cause = exc.__cause__ or exc
            raise UpstreamUnavailableError(
                f"The host that serves this model's schema ({host}) did not answer ({type(cause).__name__}); "
                "Atlas itself may be fine. Try again in a minute.",
                status=exc.status,
            ) from exc
        if not isinstance(answer.body, dict):
            raise BadResponseError("The model's schema document is not a JSON object.")
        return answer.body

    # -- the one place HTTP becomes models or errors -------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        authenticated: bool = True,
        json_body: Any = None,
        params: Mapping[str, str | int | Sequence[str]] | None = None,
        content: AsyncIterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        bounded: bool = True,
        max_body: int | None = None,
    ) -> _Answer:
        """One call, retried if idempotent; with ``bounded``, all of it (tries and pauses) within the deadline.

        A quick failure is retried up to the policy's attempts; slow ones use the deadline up, and a pause
        that would outlast it is not taken: the caller hears the last answer's error at once instead.
        """
        if authenticated:
            self.require_key()
        budget = self._deadline if bounded else None
        give_up_at = anyio.current_time() + (budget if budget is not None else math.inf)
        try:
            with anyio.fail_after(budget):
                exchange = partial(
                    self._exchange,
                    method,
                    url,
                    json_body,
                    params,
                    content,
                    headers,
                    authenticated,
                    max_body or self._max_body,
                )
                return await self._attempts(exchange, method, idempotent, give_up_at)
        except TimeoutError as exc:
            raise self._network_error(exc, idempotent) from exc

    def require_key(self) -> None:
        """Raise :class:`AuthenticationError`, saying how to set one, unless a key is configured."""
        if self._key is None:
            raise AuthenticationError(
                "No Atlas API key is configured: set ATLASCLOUD_API_KEY in the server's environment "
                "(get a key from the Atlas Cloud dashboard). Nothing was sent."
            )

    async def _attempts(
        self, exchange: Callable[[], Awaitable[_Answer]], method: str, idempotent: bool, give_up_at: float
    ) -> _Answer:
        import httpx

        attempts = self.retry.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                answer = await exchange()
            except httpx.TransportError as exc:
                pause = self.retry.delay(attempt, None)
                if attempt < attempts and anyio.current_time() + pause < give_up_at:
                    await anyio.sleep(pause)
                    continue
                raise self._network_error(exc, idempotent) from exc
            if _retryable(answer) and attempt < attempts:
                pause = self.retry.delay(attempt, _retry_after(answer.headers))
                if anyio.current_time() + pause < give_up_at:
                    logger.info("Atlas answered %s on %s; retry %d of %d", answer.status, method, attempt, attempts - 1)
                    await anyio.sleep(pause)
                    continue
            self._raise_for_error(answer, idempotent)
            return answer
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    async def _exchange(
        self,
        method: str,
        url: str,
        json_body: Any,
        params: Mapping[str, str | int | Sequence[str]] | None,
        content: AsyncIterator[bytes] | None,
        headers: Mapping[str, str] | None,
        authenticated: bool,
        max_body: int,
    ) -> _Answer:
        request = self._http.build_request(method, url, json=json_body, params=params, content=content, headers=headers)
        # Public documents (catalogue, schemas) are fetched without the key: it only goes where it is needed.
        response = await self._http.send(request, stream=True, auth=self._auth if authenticated else None)
        try:
            raw = bytearray()
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) > max_body:
                    raise BadResponseError(
                        f"Atlas's answer to {method} {request.url.path} exceeded {max_body // 1024} KiB; "
                        "refused to read further."
                    )
        finally:
            with anyio.CancelScope(shield=True):  # give the connection back even when the deadline struck
                await response.aclose()
        return _answer(response, raw)

    def _raise_for_error(self, answer: _Answer, idempotent: bool) -> None:
        status = _effective_status(answer)
        if 200 <= status < 300:
            if isinstance(answer.body, _NotJSON):
                raise BadResponseError(
                    "Atlas answered with a body that is not JSON; the service may be having trouble. Try again later."
                )
            return
        if status >= 500 and _terminal_prediction(answer.body):
            return  # a failed prediction reported with a 5xx: an answer, not an outage
        text = self._upstream_text(answer.body)
        detail = f" Atlas said: {text}" if text else ""
        if status in (401, 403):
            raise AuthenticationError(
                f"Atlas refused the API key (HTTP {status}).{detail} Check ATLASCLOUD_API_KEY.", status=status
            )
        if status == 402 or "balance" in (text or "").lower():
            raise InsufficientBalanceError(
                f"The Atlas account's balance is too low for this call (HTTP {status}).{detail} "
                "Top up at the Atlas Cloud console; nothing was generated.",
                status=status,
            )
        if status == 404:
            raise NotFoundError(f"Atlas has no such resource (HTTP 404).{detail}", status=404)
        if status == 429:
            retry_after = _retry_after(answer.headers)
            when = f"in {retry_after:g} s" if retry_after is not None else "in a little while"
            raise RateLimitedError(
                f"Atlas is rate-limiting this key (HTTP 429).{detail} Try again {when}.", retry_after=retry_after
            )
        if status in (400, 409, 413, 415, 422):
            raise InvalidRequestError(
                f"Atlas refused the request (HTTP {status}).{detail} Fix the parameters and try again.",
                status=status,
            )
        if status >= 500:
            # A gateway's 502/504 may come after Atlas took the job: the billable POST cannot be assumed unsent.
            then = f" {_MAYBE_SENT}" if not idempotent else " Try again in a minute."
            raise UpstreamUnavailableError(
                f"Atlas is having trouble (HTTP {status}).{detail}{then}", status=status, maybe_sent=not idempotent
            )
        raise AtlasAPIError(f"Atlas answered HTTP {status}.{detail}", status=status)

    def _network_error(self, exc: Exception, idempotent: bool) -> UpstreamUnavailableError:
        import httpx

        timed_out = isinstance(exc, (httpx.TimeoutException, TimeoutError))
        what = "did not answer in time" if timed_out else "could not be reached"
        message = f"Atlas {what} ({type(exc).__name__})."
        # Without a connection nothing was sent, so even the billable POST may simply be tried again.
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if not idempotent and not never_sent:
            return UpstreamUnavailableError(f"{message} {_MAYBE_SENT}", maybe_sent=True)
        if not idempotent:
            message += " Nothing was sent."
        return UpstreamUnavailableError(f"{message} Check the network or ATLASCLOUD_BASE_URL and try again.")

    def _upstream_text(self, body: Any) -> str | None:
        text = body.text if isinstance(body, _NotJSON) else error_text(body)
        if text is None and isinstance(body, dict):
            text = error_text(unwrap(body))
        secrets_ = [self._key.get_secret_value()] if self._key else []
        if isinstance(body, _NotJSON):
            text = _strip_markup(text or "")
        return redact(text, secrets_) if text else None

    def _prediction(self, answer: _Answer) -> Prediction:
        prediction = self._parse(Prediction, unwrap(answer.body), "prediction")
        if not _PREDICTION_ID.fullmatch(prediction.id):
            # It would reach a file name, a log line and the caller's text: never pass on what it holds.
            raise BadResponseError("Atlas answered with a prediction id that is not an id (unsafe characters).")
        reason = prediction.error
        if prediction.phase == "failed" and not reason:
            reason = error_text(answer.body)  # some failures carry the reason only in the outer message
        return self._redacted(prediction, reason)

    def _redacted(self, prediction: Prediction, reason: str | None) -> Prediction:
        """The prediction with ``reason`` as its error, scrubbed: it is Atlas's text and may echo secrets."""
        if not reason:
            return prediction
        secrets_ = [self._key.get_secret_value()] if self._key else []
        return prediction.model_copy(update={"error": redact(reason, secrets_)})

    def _parse(self, model: type[_M], payload: Any, what: str) -> _M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in err["loc"]) or "(body)" for err in exc.errors()})
            raise BadResponseError(
                f"Atlas's {what} is missing or has malformed fields ({', '.join(fields)}). Try again later."
            ) from None


def _answer(response: httpx.Response, raw: bytes | bytearray) -> _Answer:
    """An answer read in full: its JSON, or the start of whatever else it was."""
    body: Any
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        # Kept long enough for redaction to see a secret whole before anything is cut (redact() cuts at 500).
        body = _NotJSON(bytes(raw[:4096]).decode("utf-8", "replace"))
    return _Answer(status=response.status_code, body=body, headers=response.headers)


def _generation_body(model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a generation (and of its quote): the model, always ours, and the parameters."""
    nested = params.get("input")
    if "model" in params or (isinstance(nested, Mapping) and "model" in nested):
        raise InputError("'model' cannot be set inside the parameters; pass it as the model argument.")
    return {"model": model, **params}


class _NotJSON:
    """A body that did not parse as JSON (an HTML error page, a truncated answer); keeps a readable excerpt."""

    def __init__(self, text: str) -> None:
        self.text = text


def _about_prediction(exc: _E, prediction_id: str) -> _E:
    """The same error, naming the prediction whose wait it broke: with the id, the caller can finish the job
    with a free read instead of paying for it again."""
    detailed = copy.copy(exc)
    detailed.args = (
        f"Prediction {prediction_id} was submitted, but reading its state failed: {exc} It may still be running "
        "at Atlas: call check_prediction with this id later instead of submitting again.",
    )
    return detailed


def _via_proxy(url: str) -> bool:
    """Whether the environment sends requests for ``url`` through a proxy, as httpx (trusting it) decides:
    a proxy for the scheme (or ALL_PROXY), and the host not in NO_PROXY (``*``, the host, or a parent domain)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    host = (parts.hostname or "").lower()
    for entry in proxies.get("no", "").lower().split(","):
        entry = entry.strip().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return False
    return True


def _peer_address(response: httpx.Response) -> str | None:
    """The address the response really came from, when the transport says (a socket does; an ASGI app not).

    The host was resolved and checked before connecting; this closes the gap of a name that resolves
    differently the second time (DNS rebinding).
    """
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    peer = get_extra_info("server_addr") if callable(get_extra_info) else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def _strip_markup(text: str) -> str:
    return re.sub(r"<[^>]+>", " ", text)


def _effective_status(answer: _Answer) -> int:
    """HTTP status, or the envelope's ``code`` when a 200 carries an error envelope (``data`` null)."""
    body = answer.body
    if answer.status == 200 and isinstance(body, dict) and body.get("data") is None and "code" in body:
        try:
            code = int(str(body["code"]))
        except ValueError:
            return answer.status
        if code >= 400:
            return code
    return answer.status


def _terminal_prediction(body: Any) -> bool:
    data = unwrap(body)
    if not isinstance(data, dict) or not named_ids(data):
        return False
    try:
        return Prediction.model_validate(data).phase == "failed"
    except ValidationError:
        return False


def _retryable(answer: _Answer) -> bool:
    status = _effective_status(answer)
    if status == 429:
        return True
    return status >= 500 and not _terminal_prediction(answer.body)


class _RefuseCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


def _no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that refuses to store anything (every ``Set-Cookie`` is dropped)."""
    return http.cookiejar.CookieJar(policy=_RefuseCookies())


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: rare for APIs; fall back to our own backoff
    return seconds if seconds >= 0 else None
