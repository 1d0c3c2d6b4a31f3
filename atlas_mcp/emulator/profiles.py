"""How the emulated service answers for a model: each profile is one set of shapes the live service has shown.

Profiles are data. Every model in the catalogue has one; ``EmulatorConfig.profile`` puts every model under
the same one, so that a test can run the whole tool set against each shape. What each field imitates is
recorded in ``tests/fixtures/atlas/`` (see its README).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

__all__ = ["PROFILES", "OutputForm", "Profile", "profile_named", "with_warm_up"]

OutputForm = Literal["url", "signed-url", "base64", "data-uri"]


@dataclass(frozen=True)
class Profile:
    name: str
    # The status words while running, in order; the first holds for the first tenth of the run.
    running_words: tuple[str, ...] = ("created", "processing")
    # The submit answer waits for the end and already holds the outputs (no poll needed).
    synchronous: bool = False
    # For this long after a submit, reading the prediction answers not_visible_status (404 or 400).
    not_visible_seconds: float = 0.0
    not_visible_status: Literal[400, 404] = 404
    # A failure's `error` is an object with a numeric code, and `error_code` is set, instead of a plain string.
    error_object: bool = False
    # How outputs are given: plain URLs, signed object-store URLs (that refuse a Referer), or inline.
    outputs: OutputForm = "url"
    # The quote (/api/v1/model/calculate) says its price is an estimate.
    quote_estimated: bool = False
    # Output links carry no file extension (signed object-store keys such as Seed3D's): only the bytes say what it is.
    extensionless: bool = False
    # What the prediction's id is called: the docs say `id`; Atlas's own client also reads these two.
    id_name: Literal["id", "prediction_id", "request_id"] = "id"


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile("plain"),
        Profile("signed-urls", outputs="signed-url"),
        Profile("queued-starting", running_words=("queued", "starting", "processing"), error_object=True),
        Profile("synchronous", synchronous=True, outputs="signed-url"),
        Profile("warm-up-404", not_visible_seconds=0.6, not_visible_status=404),
        Profile("warm-up-400", not_visible_seconds=0.6, not_visible_status=400),
        Profile("base64-outputs", outputs="base64"),
        Profile("data-uri-outputs", outputs="data-uri", quote_estimated=True),
        Profile("extensionless", outputs="signed-url", extensionless=True),
        Profile("request-id", id_name="request_id"),
    )
}


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown emulator profile {name!r}; use one of {', '.join(PROFILES)}") from None


def with_warm_up(profile: Profile, seconds: float | None) -> Profile:
    """The profile with its warm-up window set to ``seconds`` (``EmulatorConfig.warm_up_seconds``); a profile
    without a warm-up, or ``None``, leaves it as it is."""
    if seconds is None or profile.not_visible_seconds == 0:
        return profile
    return dataclasses.replace(profile, not_visible_seconds=seconds)
