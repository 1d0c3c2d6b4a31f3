"""The one way this package speaks HTTP to Atlas: connections, the key, retries, deadlines, and the one point where
an HTTP outcome becomes a parsed model or an error of :mod:`atlas_mcp.errors` (:meth:`Transport.send`).

One :class:`httpx.AsyncClient` per lifetime, built on first use; every request has an explicit timeout; idempotent
requests are retried with capped, jittered backoff (honouring ``Retry-After``); the billable ones are sent once.
Every call is bounded twice: httpx's timeout bounds each phase (connect, each read), and a deadline of twice that
bounds the whole call, retries and their pauses included (an upload's body excepted). The concerns built on it
(:mod:`~atlas_mcp.atlas.downloads`, :mod:`~atlas_mcp.atlas.chat`, the predictions in
:mod:`~atlas_mcp.atlas.client`) use only its public methods. It knows nothing of MCP: errors carry facts
(``maybe_sent``, ``status``), and the server says what to do next in its own words.
"""

from __future__ import annotations

import copy
import http.cookiejar
import json
import logging
import math
import random
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic import BaseModel, SecretStr, ValidationError

from atlas_mcp._version import __version__
from atlas_mcp.addresses import origin_of
from atlas_mcp.atlas.models import Prediction, error_text, named_ids, unwrap
from atlas_mcp.errors import (
    AtlasAPIError,
    AuthenticationError,
    BadResponseError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    UpstreamUnavailableError,
)
from atlas_mcp.redaction import redact

if TYPE_CHECKING:
    # At run time httpx is imported by the methods that use it: the server builds this client before it answers
    # initialize, and importing httpx there cost ~60 M of a cold start's 3.6 G instructions.
    import httpx


__all__ = [
    "MAX_PREDICTION_BODY",
    "MAYBE_SENT",
    "Answer",
    "BearerAuth",
    "NotJSON",
    "RetryPolicy",
    "Transport",
    "read_answer",
    "retry_after_seconds",
]

logger = logging.getLogger(__name__)

# A prediction may carry its outputs inline (base64 or data: URIs, megabytes each): its answers may be this big.
MAX_PREDICTION_BODY = 64 * 1024 * 1024
# An idle connection is reused for at most this long. Many servers close idle ones at 5 s (uvicorn's, Node's and
# Apache's default), and a request sent on a connection the server is closing that moment fails with a read
# error: harmless for a GET, which is retried, but a billable submit would then end as "may have gone through".
_KEEPALIVE_SECONDS = 4.0
MAYBE_SENT = "The request may still have reached Atlas."

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T", bound="Transport")


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


class BearerAuth:
    """Adds the key only to requests for Atlas's own origin, so a schema or output URL on another host never sees it.

    A callable, which httpx takes as auth: no subclass of ``httpx.Auth``, so building a client imports no httpx.
    """

    def __init__(self, key: SecretStr | None, origin: str) -> None:
        self._key = key
        self.origin = origin

    def __call__(self, request: httpx.Request) -> httpx.Request:
        if self._key is not None and origin_of(str(request.url)) == self.origin:
            request.headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return request


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: httpx.Headers


class NotJSON:
    """A body that did not parse as JSON (an HTML error page, a truncated answer); keeps a readable excerpt."""

    def __init__(self, text: str) -> None:
        self.text = text


class Transport:
    """Atlas's origin, the key, the connections and the policies; :meth:`send` and what it stands on.

    Use it (through :class:`~atlas_mcp.atlas.client.AtlasClient`) as an async context manager, or call
    :meth:`aclose`. ``transport`` lets tests and embedders route requests anywhere (an ASGI app) without patching.
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | str | None,
        base_url: str = "https://api.atlascloud.ai",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_body_bytes: int = 8 * 1024 * 1024,
        max_prediction_bytes: int = MAX_PREDICTION_BODY,
    ) -> None:
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        self._key = key if key is not None and key.get_secret_value() else None
        self.origin = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.max_body = max_body_bytes
        self.max_prediction = max_prediction_bytes
        self.deadline = 2 * timeout  # for a whole call or download, retries included, however slowly it arrives
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._auth = BearerAuth(self._key, self.origin)
        self._root = self  # the client that owns the connections (a with_key view shares its root's)

    async def __aenter__(self: _T) -> _T:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._root is self and self._client is not None:
            await self._client.aclose()

    def with_key(self: _T, api_key: SecretStr | str | None) -> _T:
        """This client acting with another key: the same connections, retry and poll policies and submit memory,
        another ``Authorization``. For a server whose callers each bring their own key: the view lives as long as
        one request, and only its own requests ever carry its key (closing it closes nothing)."""
        view = copy.copy(self)
        key = SecretStr(api_key) if isinstance(api_key, str) else api_key
        view._key = key if key is not None and key.get_secret_value() else None
        view._auth = BearerAuth(view._key, self.origin)
        return view

    @property
    def http(self) -> httpx.AsyncClient:
        """The one HTTP client, built on first use: loading the CA bundle costs ~25 ms that a server
        should not spend before answering ``initialize``."""
        root = self._root
        if root._client is None:
            import httpx

            root._client = httpx.AsyncClient(
                base_url=self.origin,
                timeout=httpx.Timeout(self._timeout, connect=min(10.0, self._timeout)),
                headers={"User-Agent": f"atlascloud-mcp/{__version__}", "Accept": "application/json"},
                transport=self._transport,
                limits=httpx.Limits(keepalive_expiry=_KEEPALIVE_SECONDS),
                follow_redirects=False,
                # One connection pool serves every caller of an HTTP server: a cookie one caller's answer set would
                # ride along with the next caller's requests. Atlas's API needs none, so none is ever kept.
                cookies=_no_cookies(),
                # HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, SSL_CERT_FILE, SSL_CERT_DIR: users behind a corporate
                # proxy connect at all only with them. The key stays bound to Atlas's origin (BearerAuth).
                trust_env=True,
            )
        return root._client

    async def send_streaming(self, request: httpx.Request) -> httpx.Response:
        """Send a built request with the key (it is for Atlas's origin) and hand back the response unread."""
        return await self.http.send(request, stream=True, auth=self._auth)

    # -- the one place HTTP becomes models or errors -------------------------------------------------

    async def send(
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
    ) -> Answer:
        """One call, retried if idempotent; with ``bounded``, all of it (tries and pauses) within the deadline.

        A quick failure is retried up to the policy's attempts; slow ones use the deadline up, and a pause
        that would outlast it is not taken: the caller hears the last answer's error at once instead.
        """
        if authenticated:
            self.require_key()
        budget = self.deadline if bounded else None
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
                    max_body or self.max_body,
                )
                return await self._attempts(exchange, method, idempotent, give_up_at)
        except TimeoutError as exc:
            raise self.network_error(exc, idempotent) from exc

    def require_key(self) -> None:
        """Raise :class:`AuthenticationError`, saying how to set one, unless a key is configured."""
        if self._key is None:
            raise AuthenticationError(
                "No Atlas API key is configured: set ATLASCLOUD_API_KEY in the server's environment "
                "(get a key from the Atlas Cloud dashboard). Nothing was sent."
            )

    async def _attempts(
        self, exchange: Callable[[], Awaitable[Answer]], method: str, idempotent: bool, give_up_at: float
    ) -> Answer:
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
                raise self.network_error(exc, idempotent) from exc
            if _retryable(answer) and attempt < attempts:
                pause = self.retry.delay(attempt, retry_after_seconds(answer.headers))
                if anyio.current_time() + pause < give_up_at:
                    logger.info("Atlas answered %s on %s; retry %d of %d", answer.status, method, attempt, attempts - 1)
                    await anyio.sleep(pause)
                    continue
            self.raise_for_error(answer, idempotent)
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
    ) -> Answer:
        request = self.http.build_request(method, url, json=json_body, params=params, content=content, headers=headers)
        # Public documents (catalogue, schemas) are fetched without the key: it only goes where it is needed.
        response = await self.http.send(request, stream=True, auth=self._auth if authenticated else None)
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
        return read_answer(response, raw)

    def raise_for_error(self, answer: Answer, idempotent: bool) -> None:
        status = _effective_status(answer)
        if 200 <= status < 300:
            if isinstance(answer.body, NotJSON):
                raise BadResponseError(
                    "Atlas answered with a body that is not JSON; the service may be having trouble. Try again later."
                )
            return
        if status >= 500 and _terminal_prediction(answer.body):
            return  # a failed prediction reported with a 5xx: an answer, not an outage
        text = self.upstream_text(answer.body)
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
            retry_after = retry_after_seconds(answer.headers)
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
            then = f" {MAYBE_SENT}" if not idempotent else " Try again in a minute."
            error = UpstreamUnavailableError(
                f"Atlas is having trouble (HTTP {status}).{detail}{then}", status=status, maybe_sent=not idempotent
            )
            raise error.about("maybe_received") if not idempotent else error
        raise AtlasAPIError(f"Atlas answered HTTP {status}.{detail}", status=status)

    def network_error(self, exc: Exception, idempotent: bool) -> UpstreamUnavailableError:
        import httpx

        timed_out = isinstance(exc, (httpx.TimeoutException, TimeoutError))
        what = "did not answer in time" if timed_out else "could not be reached"
        message = f"Atlas {what} ({type(exc).__name__})."
        # Without a connection nothing was sent, so even the billable POST may simply be tried again.
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if not idempotent and not never_sent:
            return UpstreamUnavailableError(f"{message} {MAYBE_SENT}", maybe_sent=True).about("maybe_received")
        if not idempotent:
            message += " Nothing was sent."
        return UpstreamUnavailableError(f"{message} Check the network or ATLASCLOUD_BASE_URL and try again.")

    def upstream_text(self, body: Any) -> str | None:
        text = body.text if isinstance(body, NotJSON) else error_text(body)
        if text is None and isinstance(body, dict):
            text = error_text(unwrap(body))
        secrets_ = [self._key.get_secret_value()] if self._key else []
        if isinstance(body, NotJSON):
            text = _strip_markup(text or "")
        return redact(text, secrets_) if text else None

    def redacted(self, prediction: Prediction, reason: str | None) -> Prediction:
        """The prediction with ``reason`` as its error, scrubbed: it is Atlas's text and may echo secrets."""
        if not reason:
            return prediction
        secrets_ = [self._key.get_secret_value()] if self._key else []
        return prediction.model_copy(update={"error": redact(reason, secrets_)})

    def parse(self, model: type[_M], payload: Any, what: str) -> _M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in err["loc"]) or "(body)" for err in exc.errors()})
            raise BadResponseError(
                f"Atlas's {what} is missing or has malformed fields ({', '.join(fields)}). Try again later."
            ) from None


def read_answer(response: httpx.Response, raw: bytes | bytearray) -> Answer:
    """An answer read in full: its JSON, or the start of whatever else it was."""
    body: Any
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        # Kept long enough for redaction to see a secret whole before anything is cut (redact() cuts at 500).
        body = NotJSON(bytes(raw[:4096]).decode("utf-8", "replace"))
    return Answer(status=response.status_code, body=body, headers=response.headers)


def _strip_markup(text: str) -> str:
    return re.sub(r"<[^>]+>", " ", text)


def _effective_status(answer: Answer) -> int:
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


def _retryable(answer: Answer) -> bool:
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


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: rare for APIs; fall back to our own backoff
    return seconds if seconds >= 0 else None
