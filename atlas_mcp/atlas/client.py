"""The async Atlas Cloud client, :class:`AtlasClient`: the façade every caller uses.

Here: predictions (quote, submit once, read, wait, history), uploads, the catalogue and the account. Built on
:mod:`~atlas_mcp.atlas.transport` (connections, the key, retries, deadlines, the one error-translation point),
with output downloads (:mod:`~atlas_mcp.atlas.downloads`) and chat (:mod:`~atlas_mcp.atlas.chat`) beside it. It
knows HTTP and Atlas, nothing of MCP. The billable submit and the upload are sent once, never retried.
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread
from pydantic import SecretStr, ValidationError

from atlas_mcp.addresses import origin_of
from atlas_mcp.atlas.account import Balance, UsagePage
from atlas_mcp.atlas.chat import CHAT_PATH, Chat, OnChunk
from atlas_mcp.atlas.downloads import Downloads
from atlas_mcp.atlas.models import (
    HistoryPage,
    ModelEntry,
    Prediction,
    Quote,
    UploadedFile,
    error_text,
    named_ids,
    unwrap,
)
from atlas_mcp.atlas.polling import Durations, PollPolicy
from atlas_mcp.atlas.transport import MAX_PREDICTION_BODY, MAYBE_SENT, Answer, RetryPolicy, retry_after_seconds
from atlas_mcp.errors import (
    AtlasAPIError,
    AtlasMCPError,
    BadResponseError,
    InputError,
    InvalidRequestError,
    NotFoundError,
    PredictionTimeoutError,
    UpstreamUnavailableError,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CHAT_PATH",
    "NOT_VISIBLE_YET",
    "AtlasClient",
    "HistoryState",
    "MediaKind",
    "OnChunk",
    "RetryPolicy",
    "UsageReport",
    "validate_prediction_id",
]

logger = logging.getLogger(__name__)

MediaKind = Literal["image", "video", "audio"]
HistoryState = Literal["running", "succeeded", "failed"]
UsageReport = Literal["usage", "costs"]
_USAGE_PATHS: dict[UsageReport, str] = {"usage": "/public/v1/model-usage", "costs": "/public/v1/model-costs"}

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
_RECENT_SUBMITS = 1024  # ids remembered for the warm-up grace

_E = TypeVar("_E", bound=AtlasMCPError)

OnPoll = Callable[[Prediction, int], Awaitable[None]]
"""Called after every poll of :meth:`AtlasClient.wait` with the prediction and the number of polls so far."""


def validate_prediction_id(prediction_id: str) -> str:
    """Return the id if it can only ever name a prediction; raise :class:`InputError` otherwise.

    Ids are pasted into a URL path, so ``x/../../history`` must never get that far.
    """
    candidate = prediction_id.strip()
    if not _PREDICTION_ID.fullmatch(candidate):
        raise InputError(
            "That is not a prediction id: ids are 1-128 letters, digits, '-' or '_'. "
            "Pass the id exactly as it was returned when the prediction was submitted."
        )
    return candidate


class AtlasClient(Chat, Downloads):
    """An async client for Atlas Cloud's prediction API: the façade every caller uses.

    Predictions (quote, submit, read, wait, history), uploads, the catalogue and the account live here; chat and
    output downloads in their own modules, all over one :class:`~atlas_mcp.atlas.transport.Transport`.
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
        max_prediction_bytes: int = MAX_PREDICTION_BODY,
        warmup_grace: float = 30.0,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            transport=transport,
            max_body_bytes=max_body_bytes,
            max_prediction_bytes=max_prediction_bytes,
        )
        self.poll = poll or PollPolicy()
        self.durations = Durations()  # shared with every with_key view, as the poll policy is
        self.warmup_grace = warmup_grace
        # id -> (when it was submitted, its model): a read that cannot find it yet is not proof it does not exist
        self._submitted: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    async def __aenter__(self) -> AtlasClient:
        return self

    # -- predictions ----------------------------------------------------------------------------------

    def submit_url(self, kind: MediaKind) -> str:
        """Where :meth:`submit` posts a generation of this kind (shown by dry runs)."""
        return self.origin + _SUBMIT_PATHS[kind]

    async def submit(self, model: str, params: Mapping[str, Any], *, kind: MediaKind = "image") -> Prediction:
        """Start a prediction. Billable: sent exactly once, never retried, whatever happens.

        Some models answer synchronously: the returned prediction may already be done, outputs and all.
        """
        if not model.strip():
            raise InputError("A model id is required, e.g. 'black-forest-labs/flux-schnell'.")
        body = _generation_body(model, params)
        named = ""
        try:
            answer = await self.send(
                "POST", _SUBMIT_PATHS[kind], json_body=body, idempotent=False, max_body=self.max_prediction
            )
            named = named_ids(unwrap(answer.body))
            prediction = self._prediction(answer)
        except BadResponseError as exc:  # Atlas said yes (2xx) in a form we cannot read: it may be running
            said = f" The answer named {named}." if named else ""
            raise BadResponseError(f"{exc}{said} {MAYBE_SENT}").about("maybe_received", named=named) from exc
        self.submitted(prediction.id, model=prediction.model or model)
        return prediction

    def submitted(self, prediction_id: str, *, model: str | None, seconds_ago: float = 0.0) -> None:
        """Remember a submit of ours (made ``seconds_ago``; by another process of ours that handed the wait over),
        so that Atlas not knowing the id for its first seconds reads as "not visible yet", not as an unknown id."""
        self._submitted[prediction_id] = (time.monotonic() - max(seconds_ago, 0.0), model)
        while len(self._submitted) > _RECENT_SUBMITS:
            self._submitted.popitem(last=False)

    async def quote(self, model: str, params: Mapping[str, Any]) -> Quote:
        """Atlas's own price for exactly this generation, before paying for it. Free, so it is retried like a read."""
        if not model.strip():
            raise InputError("A model id is required, e.g. 'black-forest-labs/flux-schnell'.")
        answer = await self.send(
            "POST", "/api/v1/model/calculate", json_body=_generation_body(model, params), idempotent=True
        )
        return self.parse(Quote, unwrap(answer.body), "quote")

    async def get_prediction(self, prediction_id: str) -> Prediction:
        """Read a prediction's current state. A failed prediction answered with HTTP 5xx is returned, not raised.

        Right after a submit Atlas may answer 404 or 400 for an id it has just handed out. Within
        ``warmup_grace`` seconds of our own submit of that id, that reads as "not visible yet": a running
        prediction whose status is :data:`NOT_VISIBLE_YET`. Later, or for an id we did not submit, it is an error.
        """
        return (await self._read(prediction_id))[0]

    async def _read(self, prediction_id: str) -> tuple[Prediction, float | None]:
        """The prediction and the ``Retry-After`` Atlas answered with, if any."""
        candidate = validate_prediction_id(prediction_id)
        path = f"/api/v1/model/prediction/{quote(candidate, safe='')}"
        try:
            answer = await self.send("GET", path, idempotent=True, max_body=self.max_prediction)
        except (NotFoundError, InvalidRequestError) as exc:
            if exc.status not in (400, 404):
                raise
            when, model = self._submitted.get(candidate, (None, None))
            age = None if when is None else time.monotonic() - when
            if age is not None and age < self.warmup_grace:
                return Prediction(id=candidate, status=NOT_VISIBLE_YET, model=model), None
            since = f", {age:.0f} s after it was submitted" if age is not None else ""
            raise NotFoundError(
                f"Atlas does not know prediction {candidate} (HTTP {exc.status}{since}).", status=exc.status
            ).about("unknown_id", prediction_id=candidate) from exc
        return self._prediction(answer), retry_after_seconds(answer.headers)

    async def wait(
        self, prediction: Prediction, *, timeout: float, on_poll: OnPoll | None = None, soonest: float | None = None
    ) -> Prediction:
        """Poll until the prediction is done (succeeded or failed) and return it.

        The polls follow :attr:`poll`, from the submit when it was ours, steered by how long this model's recent
        runs took or else by ``soonest`` (what its family never ends sooner than; :mod:`~atlas_mcp.atlas.polling`).
        Raises :class:`PredictionTimeoutError` (carrying the last state seen) when ``timeout`` seconds pass
        first. Cancelling the calling task stops the polling at once.
        """
        submitted_at, model = self._submitted.get(prediction.id, (None, prediction.model))
        model = prediction.model or model
        now = time.monotonic()
        started = submitted_at if submitted_at is not None else now
        earliest = self.durations.earliest(model) or soonest
        polls = 0
        last, pause, running_at = prediction, None, 0.0
        with anyio.move_on_after(timeout):
            while not last.done:
                delay = self.poll.delay(time.monotonic() - started, earliest)
                await anyio.sleep(delay if pause is None else max(delay, min(pause, self.poll.max_sparse)))
                looked = time.monotonic() - started
                try:
                    last, pause = await self._read(last.id)
                except (AtlasAPIError, BadResponseError) as exc:
                    raise _about_prediction(exc, last.id) from exc
                polls += 1
                if not last.done:
                    running_at = looked
                if on_poll is not None:
                    await on_poll(last, polls)
        if last.done:
            if last.phase == "succeeded":
                self.durations.learn(model, running_at)
            return last
        raise PredictionTimeoutError(
            f"Prediction {last.id} is still {last.status} after {timeout:g} s; it goes on running at Atlas.",
            prediction=last,
        ).about("still_running", prediction_id=last.id)

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
        answer = await self.send("GET", "/api/v1/model/history", params=query, idempotent=True)
        history = self.parse(HistoryPage, unwrap(answer.body), "history page")
        items = [
            item.model_copy(update={"result": self.redacted(item.result, item.result.error)}) if item.result else item
            for item in history.items
            if _PREDICTION_ID.fullmatch(item.id) and (item.result is None or _PREDICTION_ID.fullmatch(item.result.id))
        ]
        if len(items) < len(history.items):
            logger.warning("left out %d history items whose ids are not ids", len(history.items) - len(items))
        return history.model_copy(update={"items": tuple(items)})

    def _prediction(self, answer: Answer) -> Prediction:
        prediction = self.parse(Prediction, unwrap(answer.body), "prediction")
        if not _PREDICTION_ID.fullmatch(prediction.id):
            # It would reach a file name, a log line and the caller's text: never pass on what it holds.
            raise BadResponseError("Atlas answered with a prediction id that is not an id (unsafe characters).")
        reason = prediction.error
        if prediction.phase == "failed" and not reason:
            reason = error_text(answer.body)  # some failures carry the reason only in the outer message
        return self.redacted(prediction, reason)

    # -- account ----------------------------------------------------------------------------------------

    async def balance(self) -> Balance:
        """The account's balance (``/public/v1/balance``): a cheap way to learn whether the key is accepted."""
        answer = await self.send("GET", "/public/v1/balance", idempotent=True)
        return self.parse(Balance, unwrap(answer.body), "balance")

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
        answer = await self.send("GET", _USAGE_PATHS[report], params=query, idempotent=True)
        return self.parse(UsagePage, answer.body, f"{report} report")

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
        answer = await self.send(
            "POST", "/api/v1/model/uploadMedia", content=stream(), headers=headers, idempotent=False, bounded=False
        )
        return self.parse(UploadedFile, unwrap(answer.body), "upload answer")

    # -- catalogue ------------------------------------------------------------------------------------

    async def list_models(self) -> list[ModelEntry]:
        """The public model catalogue (no key needed)."""
        answer = await self.send("GET", "/api/v1/models", idempotent=True, authenticated=False)
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

        elsewhere = origin_of(schema_url) != self.origin
        try:
            if elsewhere:
                await self.check_public_https(schema_url, "schema URL")
            answer = await self.send("GET", schema_url, idempotent=True, authenticated=False)
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


def _generation_body(model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a generation (and of its quote): the model, always ours, and the parameters."""
    nested = params.get("input")
    if "model" in params or (isinstance(nested, Mapping) and "model" in nested):
        raise InputError("'model' cannot be set inside the parameters; pass it as the model argument.")
    return {"model": model, **params}


def _about_prediction(exc: _E, prediction_id: str) -> _E:
    """The same error, naming the prediction whose wait it broke: with the id, the caller can finish the job
    with a free read instead of paying for it again."""
    detailed = copy.copy(exc)
    detailed.args = (
        f"Prediction {prediction_id} was submitted, but reading its state failed: {exc} It may still be running "
        "at Atlas.",
    )
    return detailed.about("still_running", prediction_id=prediction_id)
