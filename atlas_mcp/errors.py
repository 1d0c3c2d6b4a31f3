"""One exception tree for everything that can go wrong between a caller and Atlas.

Every message is written for the one who has to act on it (often a language model): it says what went
wrong. What to do next in a tool's words is the server's to add (``atlas_mcp.server.advice``), from the facts
an error carries: :attr:`~AtlasMCPError.situation`, :attr:`~AtlasMCPError.prediction_id` and ``maybe_sent``. No
message ever contains the API key; text that comes from Atlas passes through :func:`atlas_mcp.redaction.redact`
before it lands in a message.

    AtlasMCPError
    ├── ConfigError                  a setting is missing or malformed (raised at start, or when a tool needs it)
    ├── InputError                   the caller's input is wrong; nothing was sent to Atlas
    │   └── PathRefusedError         a local path is outside the allowed roots, hidden, or not a regular file
    ├── AtlasAPIError                Atlas answered with an error (``status`` holds the HTTP status)
    │   ├── AuthenticationError      401/403: the key is missing, wrong or revoked
    │   ├── InsufficientBalanceError 402: the account cannot pay for the call
    │   ├── NotFoundError            404: no such prediction or model
    │   ├── InvalidRequestError      400/422: Atlas refused the parameters
    │   ├── RateLimitedError         429 after the capped retries (``retry_after`` when Atlas said)
    │   └── UpstreamUnavailableError 5xx, network failure or request timeout, after the capped retries
    ├── BadResponseError             Atlas answered, but not in any form it documents
    ├── SchemaUnavailableError       a model's parameter schema could not be read; nothing was sent
    ├── SpendRefusedError            spend safety stopped a paid call (budget, confirmation); nothing was sent
    ├── StateUnavailableError        the spend-safety store cannot be used, so paid calls are refused
    ├── PredictionFailedError        the prediction ended failed/canceled/timed out upstream (``prediction``)
    ├── PredictionTimeoutError       our own wait bound ran out; the prediction goes on (``prediction``)
    └── PaidResultError              something failed after Atlas accepted a prediction; the message names its id
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from atlas_mcp.atlas.models import Prediction

__all__ = [
    "AtlasAPIError",
    "AtlasMCPError",
    "AuthenticationError",
    "BadResponseError",
    "ConfigError",
    "InputError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "NotFoundError",
    "PaidResultError",
    "PathRefusedError",
    "PredictionFailedError",
    "PredictionTimeoutError",
    "RateLimitedError",
    "SchemaUnavailableError",
    "Situation",
    "SpendRefusedError",
    "StateUnavailableError",
    "UpstreamUnavailableError",
]


Situation = Literal["maybe_received", "answer_maybe_billed", "still_running", "unknown_id"]
"""Where an error leaves the caller, as a fact: a billable request may have reached Atlas (``maybe_received``); a
chat answer may have begun and be billed (``answer_maybe_billed``); the prediction goes on at Atlas
(``still_running``); Atlas does not know the prediction id it was asked about (``unknown_id``)."""

_Error = TypeVar("_Error", bound="AtlasMCPError")


class AtlasMCPError(Exception):
    """The root: catch this to catch everything this package raises on purpose."""

    situation: Situation | None = None
    prediction_id: str | None = None  # the prediction the error is about, when there is one
    named: str | None = None  # the ids an unreadable answer to a submit named, when it named any

    def about(
        self: _Error, situation: Situation, *, prediction_id: str | None = None, named: str | None = None
    ) -> _Error:
        """This error, with the facts the next step is worded from (see :data:`Situation`)."""
        self.situation = situation
        self.prediction_id = prediction_id or self.prediction_id
        self.named = named or self.named
        return self

    @property
    def maybe_billed(self) -> bool:
        """Whether a paid request that failed this way may still have reached Atlas and be billed (so its money
        is kept on hold and it is never resent blindly). Most errors are refusals: nothing was billed."""
        return False


class ConfigError(AtlasMCPError):
    """A setting is missing or malformed; the message names the environment variable."""


class InputError(AtlasMCPError):
    """The caller's input cannot be used; nothing was sent to Atlas and nothing was spent."""


class PathRefusedError(InputError):
    """A local path may not be read or written; the message says which roots are allowed."""


class AtlasAPIError(AtlasMCPError):
    """Atlas answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(AtlasAPIError):
    """The API key is missing, wrong or revoked."""


class InsufficientBalanceError(AtlasAPIError):
    """The account's balance cannot pay for the call."""


class NotFoundError(AtlasAPIError):
    """No such prediction, model or file."""


class InvalidRequestError(AtlasAPIError):
    """Atlas refused the request's parameters."""


class RateLimitedError(AtlasAPIError):
    """Atlas kept answering 429 after the capped retries."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class UpstreamUnavailableError(AtlasAPIError):
    """Atlas could not be reached or kept failing (5xx, network error, request timeout). ``maybe_sent``: a
    billable request may have reached Atlas anyway (a timeout, a reset, a gateway's 5xx): do not resend it blindly."""

    def __init__(self, message: str, *, status: int | None = None, maybe_sent: bool = False) -> None:
        super().__init__(message, status=status)
        self.maybe_sent = maybe_sent

    @property
    def maybe_billed(self) -> bool:
        return self.maybe_sent


class BadResponseError(AtlasMCPError):
    """Atlas answered in a form it does not document (not JSON, no prediction id, too large...)."""

    @property
    def maybe_billed(self) -> bool:
        return True  # it answered: whatever it said, it may have accepted the request


class SchemaUnavailableError(AtlasMCPError):
    """A model's parameters could not be read, so a call could not be checked before paying for it."""


class SpendRefusedError(AtlasMCPError):
    """Spend safety stopped a paid call before anything was sent: the budget, a confirmation, an unclear repeat."""


class StateUnavailableError(AtlasMCPError):
    """The spend-safety store (SQLite file or Redis) cannot be used. Paid calls fail closed; free tools go on."""


class PredictionFailedError(AtlasMCPError):
    """The prediction reached a final state other than success; the reason is Atlas's own."""

    def __init__(self, message: str, *, prediction: Prediction) -> None:
        super().__init__(message)
        self.prediction = prediction


class PredictionTimeoutError(AtlasMCPError):
    """Our wait ran out before the prediction finished. It is still running upstream."""

    def __init__(self, message: str, *, prediction: Prediction) -> None:
        super().__init__(message)
        self.prediction = prediction


class PaidResultError(AtlasMCPError):
    """Something failed after Atlas accepted a prediction (and may bill it); the message names the prediction's id
    and says how to get the result without paying again."""
