"""Scrub secrets out of text that may end up in a message, a log line or a tool result.

Atlas's error text is passed on to the caller because it is often the only useful explanation, but
it may echo a header, a JSON field holding a credential, or a signed URL. Everything that leaves the
process through an error goes through :func:`redact` first.

Order matters: the caller's own secrets are replaced on the whole text first (a cut must never leave
half a key behind), then its whitespace is collapsed and it is cut, so that the patterns only ever scan
a short text without long whitespace runs and cannot backtrack for long.

A secret is found in every form an echo may give it: as is, URL-encoded, in base64, in another case, with
its characters spaced out, and in pieces: any run of 8 or more of its characters that starts or ends where
the text breaks (a line break, a space, a quote, the cut of an excerpt) goes too.
"""

from __future__ import annotations

import base64
import logging
import re
import string
from collections.abc import Iterable, Sequence
from urllib.parse import quote

__all__ = ["UrlQueryFilter", "holds_forms", "redact", "secret_forms", "without_forms", "without_secrets"]

REDACTED = "[redacted]"
_MAX_LEN = 500
_SCAN_LEN = 4 * _MAX_LEN  # more than is ever shown, so nothing shown escapes the patterns

# A credential after its scheme ("Bearer x") or after a field name and ":" or "=", in headers
# ("Authorization: Bearer x"), forms ("access_token=x") and JSON ('"api_key": "x"'). The name may be the end of
# a longer one (x-api-key, client_secret, refresh_token). Prose such as "authorization required" stays.
_NAMED_CREDENTIAL = re.compile(
    r"(?i)((?:bearer|basic)\s"
    r"|(?:bearer|token|api[ _-]?key|apikey|authorization|secret|password|passwd|credentials?|signature)"
    r"[\"']?\s?[:=]\s?[\"']?(?:(?:bearer|basic|token)\s)?)"
    r"([A-Za-z0-9._~+/=%-]{8,})"
)
# A URL's query gives access to whoever holds it when it signs the URL (X-Amz-Signature, sig=, token=...).
# The path stays readable; such a query goes. So does a user:password@ in front of the host.
_URL_QUERY = re.compile(r"(?i)(https?://[^\s?#\"'<>]+)\?([^\s#\"'<>]*)")
_SIGNING = re.compile(r"(?i)signature|sig=|token|key|expires|credential|auth|policy|secret|password")
_USERINFO = re.compile(r"(?i)\b(https?://)[^\s/@\"'<>]+@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` without bearer tokens, signed-URL queries or any of ``secrets``; cut to a sane length."""
    text = text[: 4 * _SCAN_LEN]  # nothing past this can be shown; a secret cut here is caught as a piece
    for secret in secrets:
        if secret:
            text = _without(secret, text)
    text = " ".join(text.split())[:_SCAN_LEN]
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _URL_QUERY.sub(_strip_signed_query, text)
    text = _NAMED_CREDENTIAL.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return text if len(text) <= _MAX_LEN else text[: _MAX_LEN - 1] + "…"


def without_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every whole form of each secret (as is, URL-encoded, in base64, spaced out, in any case)
    replaced, and nothing else changed: for a whole tool result, whose layout and length must stay, where an echo
    of the key may sit in an output URL's query. (Pieces of a key are :func:`redact`'s business: they come from
    cut excerpts of Atlas's error text, which passes through it first.) Plain searches, no patterns: a pattern
    made of a caller's key would stay in ``re``'s cache after the request."""
    return without_forms(text, secret_forms(secrets))


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """The forms :func:`without_secrets` looks for, lowered, longest first: worked out once for the many texts of
    one result (a tool result has a dozen), and kept no longer than that."""
    forms = {form.translate(_ASCII_LOWER) for secret in secrets if secret for form in _forms(secret)}
    return tuple(sorted((form for form in forms if len(form) >= _FRAGMENT), key=len, reverse=True))


def without_forms(text: str, forms: Sequence[str]) -> str:
    """``text`` without any of ``forms`` (from :func:`secret_forms`), in any case."""
    if not forms or len(text) < len(forms[-1]):  # longest first: a text shorter than the last holds none
        return text
    lowered = _ascii_lowered(text)  # the same length as text, so its positions are text's
    for form in forms:
        start = lowered.find(form)
        if start < 0:
            continue
        pieces, last = [], 0
        while start >= 0:
            pieces += [text[last:start], REDACTED]
            last = start + len(form)
            start = lowered.find(form, last)
        text = "".join([*pieces, text[last:]])
        lowered = _ascii_lowered(text)
    return text


def holds_forms(text: str, forms: Sequence[str]) -> bool:
    """Whether ``text`` may hold any of ``forms`` (from :func:`secret_forms`), in any case: never a wrong no, and
    a yes only where ``str.lower`` makes a non-ASCII letter ASCII (the Kelvin sign's k)."""
    # An ASCII form is matched by ASCII characters only, which str.lower lowers as _ascii_lowered does (and much
    # faster than str.translate, on text that is not all ASCII); a key of other letters needs the exact lowering.
    ascii_forms = all(form.isascii() for form in forms)
    lowered = text.lower() if ascii_forms else _ascii_lowered(text)
    return any(form in lowered for form in forms)


def _ascii_lowered(text: str) -> str:
    """``text`` with A-Z lowered and nothing else changed (``str.lower`` does just that to ASCII, much faster)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_FRAGMENT = 8  # this many characters of a secret, together, are treated as the secret
_RUN = re.compile(r"[\w.~+/=%-]{" + str(_FRAGMENT) + ",}", re.ASCII)  # characters keys and their encodings use


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return {secret, quote(secret, safe=""), " ".join(secret)} | encoded | {form.rstrip("=") for form in encoded}


def _without(secret: str, text: str) -> str:
    """``text`` without ``secret`` in any of its forms, whole or in pieces at a break."""
    for form in sorted(_forms(secret), key=len, reverse=True):
        if len(form) >= _FRAGMENT:
            text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    lowered = secret.lower()

    def piece(match: re.Match[str]) -> str:
        run = match.group(0)
        low = run.lower()
        for size in range(min(len(run), len(lowered)), _FRAGMENT - 1, -1):
            if low[:size] in lowered:  # the run begins with a piece of the secret: the rest of it was cut away
                return REDACTED + piece_end(run[size:])
        return piece_end(run)

    def piece_end(run: str) -> str:
        low = run.lower()
        for size in range(min(len(run), len(lowered)), _FRAGMENT - 1, -1):
            if low[-size:] in lowered:  # the run ends with a piece of the secret: it goes on past a break
                return run[:-size] + REDACTED
        return run

    return _RUN.sub(piece, text)


def _strip_signed_query(match: re.Match[str]) -> str:
    return f"{match.group(1)}?{REDACTED}" if _SIGNING.search(match.group(2)) else match.group(0)


_ANY_QUERY = re.compile(r"(?i)(https?://[^\s?#\"'<>]+)\?[^\s#\"'<>]*")


class UrlQueryFilter(logging.Filter):
    """Keeps only the scheme, host and path of every URL in a log line.

    Output URLs are signed object-store links whose query is the credential for the file
    (``?Expires=&OSSAccessKeyId=&Signature=``), and httpx logs every request's full URL at INFO. Attached to
    the stderr handler, this covers every logger, ours and the libraries'.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _ANY_QUERY.sub(r"\1", message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True
