"""What upstream error text may carry, and what is left of it once it is passed on."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_mcp.redaction import holds_forms, redact, secret_forms, without_forms

from .conftest import TEST_KEY


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("Authorization: Bearer sk-abc123456789", "sk-abc123456789", "Authorization: Bearer [redacted]"),
        ("echo Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "eyJhbGciOi", "Bearer [redacted]"),
        ("bearer: abcdefgh12345678", "abcdefgh12345678", "bearer: [redacted]"),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "Basic [redacted]"),
        ('{"api_key": "sk-live-abcdefgh1234"}', "sk-live-abcdefgh1234", '"api_key": "[redacted]"'),
        ("{'Authorization': 'Bearer tok_0123456789'}", "tok_0123456789", "'Authorization': 'Bearer [redacted]'"),
        ("x-api-key: abcdef123456", "abcdef123456", "x-api-key: [redacted]"),
        ("apikey=abcdef123456", "abcdef123456", "apikey=[redacted]"),
        ("API key: abcdef123456", "abcdef123456", "API key: [redacted]"),
        ("access_token=abcdefgh12345&x=1", "abcdefgh12345", "access_token=[redacted]&x=1"),
        ("refresh-token: 0123456789abcdef", "0123456789abcdef", "refresh-token: [redacted]"),
        ('client_secret: "abcdefghijk"', "abcdefghijk", 'client_secret: "[redacted]"'),
        ("password=hunter2hunter2", "hunter2hunter2", "password=[redacted]"),
        (
            "see https://bucket.s3.amazonaws.com/out/1.png?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIAX%2F2024"
            "&X-Amz-Signature=abcdef0123 now",
            "abcdef0123",
            "https://bucket.s3.amazonaws.com/out/1.png?[redacted] now",
        ),
        (
            "https://acct.blob.core.windows.net/c/f.png?sv=2021-08-06&se=2030&sig=abc%2Bdef%3D",
            "abc%2Bdef",
            "https://acct.blob.core.windows.net/c/f.png?[redacted]",
        ),
        (
            "https://storage.googleapis.com/b/o.png?X-Goog-Expires=900&X-Goog-Signature=0123abcd",
            "0123abcd",
            "https://storage.googleapis.com/b/o.png?[redacted]",
        ),
        ("HTTPS://CDN.EXAMPLE/x.png?Token=abcdefgh", "abcdefgh", "HTTPS://CDN.EXAMPLE/x.png?[redacted]"),
        ("https://user:pa55word@host.example/x", "pa55word", "https://[redacted]@host.example/x"),
    ],
)
def test_credentials_and_signed_urls_are_redacted(text: str, gone: str, kept: str) -> None:
    redacted = redact(text)
    assert gone not in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "Authorization required for this call",
        "token limit exceeded: maximum 4096",
        "Prediction 3f2a9c1e5b2d4f6a8c0e3f2a9c1e5b2d failed: NSFW content detected",
        "see https://cdn.example/outputs/3f2a9c1e/0.png?size=1024&format=png",
        "Insufficient balance, please top up",
        "Unauthorized: invalid or missing API key",
    ],
)
def test_ordinary_text_stays_readable(text: str) -> None:
    assert redact(text) == text


def test_the_callers_own_secrets_go_as_given_and_url_encoded() -> None:
    secret = "ab+cd/ef=gh12345"
    redacted = redact(f"got {secret} in a header and ab%2Bcd%2Fef%3Dgh12345 in a URL", [secret])
    assert "gh12345" not in redacted
    assert redacted.count("[redacted]") == 2


def test_a_secret_past_the_cut_is_not_half_kept() -> None:
    text = "x" * 495 + TEST_KEY
    redacted = redact(text, [TEST_KEY])
    assert len(redacted) <= 500
    assert TEST_KEY[:5] not in redacted


def test_whitespace_is_collapsed_and_the_length_capped() -> None:
    redacted = redact("a \n\t b" + " word" * 1000)
    assert redacted.startswith("a b word")
    assert len(redacted) == 500 and redacted.endswith("…")


@pytest.mark.parametrize(
    "hostile",
    [
        "token" + " " * 1_000_000 + "!",
        "token=" * 200_000,
        "https://a/" + "?" * 1_000_000,
        "https://" + "a" * 1_000_000,
        "a_" * 500_000 + "token",
        "Bearer " + "a" * 7 + " " + "Bearer " * 100_000,
    ],
    ids=["spaces", "repeated-names", "queries", "long-host", "underscores", "bearers"],
)
def test_redaction_is_linear_on_hostile_text(hostile: str) -> None:
    started = time.monotonic()
    redact(hostile, [TEST_KEY])
    assert time.monotonic() - started < 1.0


secret_alphabet = st.characters(categories=["Ll", "Lu", "Nd"], max_codepoint=127) | st.sampled_from("-_")


@settings(max_examples=100, deadline=None)
@given(
    before=st.text(max_size=600),
    after=st.text(max_size=600),
    secret=st.text(secret_alphabet, min_size=8, max_size=64).filter(lambda s: s not in "[redacted]"),
)
def test_a_secret_never_survives(before: str, after: str, secret: str) -> None:
    redacted = redact(f"{before}{secret}{after}", [secret])
    assert secret not in redacted
    assert len(redacted) <= 500


def _windows(secret: str) -> set[str]:
    return {secret[i : i + 8].lower() for i in range(len(secret) - 7)}


@pytest.mark.parametrize(
    ("form", "text"),
    [
        ("wrapped over a line break", f"Authorization: Bearer {TEST_KEY[:13]}\n{TEST_KEY[13:]} was refused"),
        ("wrapped in a JSON string", f'{{"detail": "bad key {TEST_KEY[:9]}\\n{TEST_KEY[9:]}"}}'),
        ("split by an excerpt's cut", "x" * 7990 + TEST_KEY),
        ("cut short", "Bearer " + TEST_KEY[:12]),
        ("lowercased", TEST_KEY.lower()),
        ("uppercased", "KEY " + TEST_KEY.upper()),
        ("spaced out", "k: " + " ".join(TEST_KEY)),
        ("in base64", "Basic " + base64.b64encode(TEST_KEY.encode()).decode()),
        ("in url-safe base64, unpadded", base64.urlsafe_b64encode(TEST_KEY.encode()).decode().rstrip("=")),
    ],
)
def test_the_key_goes_in_every_form_an_echo_gives_it(form: str, text: str) -> None:
    redacted = redact(text, [TEST_KEY])
    assert not any(window in redacted.lower() for window in _windows(TEST_KEY)), redacted
    for encoded in (base64.b64encode(TEST_KEY.encode()).decode(), " ".join(TEST_KEY)):
        assert encoded[:20].lower() not in redacted.lower()


@settings(max_examples=100, deadline=None)
@given(
    before=st.text(max_size=300),
    after=st.text(max_size=300),
    secret=st.text(secret_alphabet, min_size=16, max_size=64),
    split=st.floats(0, 1),
    breaker=st.sampled_from(["\n", "\r\n", " ", "\\n", '"\n"']),
)
def test_a_secret_broken_anywhere_leaves_no_eight_characters_together(
    before: str, after: str, secret: str, split: float, breaker: str
) -> None:
    cut = 8 + round(split * (len(secret) - 16))
    redacted = redact(f"{before} {secret[:cut]}{breaker}{secret[cut:]} {after}", [secret])
    assert not any(window in redacted.lower() for window in _windows(secret)), redacted


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(max_size=200),
    after=st.text(max_size=200),
    secret=st.text(secret_alphabet, min_size=8, max_size=40) | st.text(min_size=8, max_size=20),
    upper=st.booleans(),
)
def test_the_quick_look_for_a_key_never_misses_one(before: str, after: str, secret: str, upper: bool) -> None:
    """The result middleware skips an answer that holds_forms finds nothing in (issue 26): that no must be right,
    on text of any letters, whatever the key's case and its letters."""
    forms = secret_forms([secret])
    for text in (f"{before}{secret.upper() if upper else secret}{after}", f"{before}×{after}"):
        if without_forms(text, forms) != text:
            assert holds_forms(text, forms)
