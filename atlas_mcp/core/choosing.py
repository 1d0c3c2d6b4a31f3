"""Choosing a model for a caller who knows what it wants but not the id, and fitting its inputs to that model.

``quick_generate`` names a model by keyword; ``transcribe_audio`` may name none. The choice is made from the
catalogue alone, in a fixed order that the result explains: the keyword as an exact model id, then as a
display name, then the closest match over the ids, names, tags and descriptions. The catalogue carries no
popularity, so models that match about equally are told apart by price: when they are close in price the
cheapest runs, and when they differ by more than :data:`PRICE_SPREAD` times the caller gets the short list
instead of a guess (an error: nothing was paid, and picking between prices is the user's call).

Everything here is pure over catalogue entries and schemas; the tools fetch them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from atlas_mcp.atlas import MediaKind, ModelEntry
from atlas_mcp.core.catalog import InputSchema
from atlas_mcp.core.requests import BuildParams
from atlas_mcp.core.shown import Shown
from atlas_mcp.errors import InputError

__all__ = [
    "PRICE_SPREAD",
    "Candidate",
    "ModelChoice",
    "choose_model",
    "media_slots",
    "quick_params",
    "speech_to_text_candidates",
    "transcribes",
    "transcription_params",
]

ModelType = Literal["Image", "Video", "Audio"]
MatchedBy = Literal["id", "name", "fuzzy", "default", "given"]

PRICE_SPREAD = 2.0  # tied models further apart in price than this are the user's choice, not ours
TIE_MARGIN = 0.05  # fuzzy scores this close are a tie
MIN_SCORE = 0.5  # below this a model does not match the keyword at all
MAX_LISTED = 5  # models named in an ambiguity or a miss
MAX_WORDS = 8  # of a keyword, scored: a keyword is a few words, and each costs a pass over the whole catalogue
_STRONG, _WEAK, _TYPO = 1.0, 0.6, 0.9  # credit for a word in the id/name/tags, in the description, or misspelt

_WORD = re.compile(r"[a-z0-9]+")
_SPEECH_TO_TEXT = re.compile(
    r"speech[ -]?to[ -]?text|transcri|\bstt\b|\basr\b|whisper|speech recognition|audio[ -]to[ -]text"
)
_TEXT_INPUTS = ("prompt", "text")


class Candidate(Shown):
    """A model that matched, as the caller may pick it."""

    model: str = Field(description="The exact model id: pass it as keyword (or model) to pick this one.")
    name: str | None = Field(default=None, description="Display name.")
    price_usd: float | None = Field(default=None, description="Catalogue price per unit, in dollars.")
    unit: str | None = Field(default=None, description="What the price is per.")

    @classmethod
    def of(cls, entry: ModelEntry) -> Candidate:
        price = entry.price
        return cls(
            model=entry.model,
            name=entry.display_name,
            price_usd=price.base_price if price else None,
            unit=price.unit if price else None,
        )

    def text(self) -> str:
        price = f"${self.price_usd:.4g}/{self.unit or 'run'}" if self.price_usd is not None else "price not listed"
        return f"{self.model} ({self.name or 'no name'}, {price})"


class ModelChoice(Candidate):
    """Which model this call runs, and why."""

    matched_by: MatchedBy = Field(
        description="id: the keyword is its exact id; name: its display name; fuzzy: the closest match; "
        "default: the tool's default choice; given: the caller named it."
    )
    reason: str = Field(description="Why this model, in words.")
    alternatives: list[Candidate] = Field(
        default_factory=list, description="Models that matched about as well (pass one's id to run it instead)."
    )

    def line(self) -> str:
        return f"Model: {self.text()}, chosen because {self.reason}."


def choose_model(entries: Sequence[ModelEntry], keyword: str, model_type: ModelType) -> ModelChoice:
    """The model ``keyword`` means among the catalogue's models of ``model_type``; raises :class:`InputError` when
    none matches, or when the best matches are ambiguous and differ in price by more than :data:`PRICE_SPREAD`×."""
    wanted = _normal(keyword)
    if not wanted:
        raise InputError("keyword is blank: give a model id, a model name or a few words such as 'flux schnell'.")
    exact = next((entry for entry in entries if entry.model.lower() == wanted), None)
    if exact is not None:
        if (exact.type or "").lower() != model_type.lower():
            fix = (
                f"call quick_generate with type={exact.type}"
                if exact.type in ("Image", "Video", "Audio")
                else "quick_generate runs Image, Video and Audio models only"
            )
            raise InputError(
                f"Not sent, nothing was spent: {exact.model} is of type {exact.type}, not {model_type}: {fix}."
            )
        return _chosen(exact, "id", f"'{keyword.strip()}' is its exact model id")
    # Models Atlas hides from its console are run only when named by their exact id.
    listed = [e for e in entries if (e.type or "").lower() == model_type.lower() and e.display_console]
    if not listed:
        raise InputError(f"Atlas lists no {model_type} models right now, so none could be chosen. Nothing was sent.")
    named = [entry for entry in listed if entry.display_name and _normal(entry.display_name) == wanted]
    if named:
        return _settle(named, listed, keyword, "name", f"'{keyword.strip()}' is its display name")
    scored = sorted(((_score(entry, wanted), index) for index, entry in enumerate(listed)), key=lambda s: -s[0])
    best = scored[0][0]
    if best < MIN_SCORE:
        closest = "; ".join(Candidate.of(listed[index]).text() for _, index in scored[:3])
        raise InputError(
            f"Not sent, nothing was spent: no {model_type} model matches '{keyword.strip()}' (the closest: {closest}). "
            f"Call list_models with type={model_type} to see them all, then call quick_generate again with keyword set "
            "to a model id."
        )
    tied = [listed[index] for score, index in scored if score >= best - TIE_MARGIN]
    why = f"it is the closest match for '{keyword.strip()}' among {len(listed)} {model_type} models"
    return _settle(tied, listed, keyword, "fuzzy", why)


def _settle(
    tied: list[ModelEntry], listed: list[ModelEntry], keyword: str, matched_by: MatchedBy, why: str
) -> ModelChoice:
    """One model out of those that match equally: the only one, or the cheapest when their prices are close."""
    if len(tied) == 1:
        return _chosen(tied[0], matched_by, why)
    prices = [_price(entry) for entry in tied]
    known = [price for price in prices if price is not None]
    if len(known) < len(prices) or max(known) > PRICE_SPREAD * min(known):
        order = {entry.model: index for index, entry in enumerate(listed)}
        shown = sorted(tied, key=lambda e: (_price(e) is None, _price(e) or 0.0, order[e.model]))[:MAX_LISTED]
        spread = (
            f"their prices differ by more than {PRICE_SPREAD:g}×" if len(known) == len(prices) else "some list no price"
        )
        more = f" (and {len(tied) - len(shown)} more)" if len(tied) > len(shown) else ""
        raise InputError(
            f"Not sent, nothing was spent: '{keyword.strip()}' matches {len(tied)} models about equally{more}, and "
            f"{spread}, so none was guessed:\n"
            + "\n".join(f"- {Candidate.of(entry).text()}" for entry in shown)
            + "\nAsk the user which one they want if the price matters to them, then call quick_generate again with "
            "the same arguments and keyword set to that model's exact id."
        )
    order = {entry.model: index for index, entry in enumerate(listed)}
    ranked = sorted(tied, key=lambda e: (_price(e) or 0.0, order[e.model]))
    others = ", ".join(entry.model for entry in ranked[1:])
    reason = (
        f"{why}; {others} matched about as well, within {PRICE_SPREAD:g}× in price, and this is the cheapest "
        "(the catalogue has no popularity to go by)"
    )
    return _chosen(ranked[0], matched_by, reason, alternatives=ranked[1:])


def _chosen(
    entry: ModelEntry, matched_by: MatchedBy, reason: str, *, alternatives: Sequence[ModelEntry] = ()
) -> ModelChoice:
    return ModelChoice(
        **Candidate.of(entry).model_dump(),
        matched_by=matched_by,
        reason=reason,
        alternatives=[Candidate.of(other) for other in alternatives],
    )


def _price(entry: ModelEntry) -> float | None:
    return entry.price.base_price if entry.price is not None else None


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _spaced(text: str) -> str:
    """Lower-case words and numbers, one space apart: 'text-to-image' and 'Text to image' read alike, as do
    'FLUX.1 [dev]' and 'flux 1 dev'."""
    return " ".join(_WORD.findall(text.lower()))


def _score(entry: ModelEntry, wanted: str) -> float:
    """How well ``wanted`` names ``entry``, from 0 to 1: mostly how many of its words the entry carries (in its
    id, name or tags; less in its description; misspelt a little), partly how close the whole phrase is."""
    import difflib  # here, not at the top: only a call that chooses a model needs it, and start-up stays lighter

    strong = " ".join([entry.model, entry.display_name or "", *entry.tags]).lower()
    weak = (entry.profile or "").lower()
    strong_words = {word for word in _WORD.findall(strong) if len(word) >= 3}
    words = list(dict.fromkeys(_WORD.findall(wanted)))[:MAX_WORDS]
    if not words:
        return 0.0
    credit = 0.0
    for word in words:
        if word in strong:
            credit += _STRONG
        elif word in weak:
            credit += _WEAK
        elif len(word) >= 3 and (near := difflib.get_close_matches(word, strong_words, n=1, cutoff=0.75)):
            credit += _TYPO * difflib.SequenceMatcher(None, word, near[0]).ratio()
    coverage = credit / len(words)
    if 0.8 * coverage + 0.2 < MIN_SCORE:
        return 0.8 * coverage  # cannot match however close the phrase: spare the costly comparison
    phrase = " ".join(words)  # the words scored, once each: a repeated or overlong keyword is no costlier
    names = [entry.display_name or "", entry.model, entry.model.split("/", 1)[-1], *entry.tags]
    if phrase and phrase in _spaced(strong):
        closeness = 1.0
    else:
        closeness = max(difflib.SequenceMatcher(None, phrase, _spaced(name)).ratio() for name in names if name)
    return 0.8 * coverage + 0.2 * closeness


def speech_to_text_candidates(entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The catalogue's visible Audio models that say they turn speech into text, cheapest first (ties in catalogue
    order). Whether each really takes an audio URL is for its schema to say (see :func:`media_slots`)."""
    found = [
        entry
        for entry in entries
        if (entry.type or "").lower() == "audio" and entry.display_console and _SPEECH_TO_TEXT.search(_described(entry))
    ]
    return sorted(found, key=lambda entry: (_price(entry) is None, _price(entry) or 0.0))  # stable: ties keep order


def _described(entry: ModelEntry) -> str:
    return " ".join([entry.model, entry.display_name or "", entry.profile or "", *entry.tags]).lower()


def media_slots(schema: InputSchema, kind: MediaKind) -> list[str]:
    """The parameters that take a ``kind`` file by URL, required ones first, then in the schema's order: those whose
    ``x-accept`` names the kind (``audio/*``), or that are named for it (``image``, ``image_url``, ``images``,
    ``first_frame_image``...) and hold text. Masks are not inputs to fill with a picture."""
    named = re.compile(rf"(\w+_)?{kind}s?(_urls?)?")
    slots = []
    for name, rules in schema.properties.items():
        if not schema.takes(name) or "mask" in name:
            continue
        accept = _accepts(rules)
        if f"{kind}/" in accept or (not accept and named.fullmatch(name) and _holds_text(rules)):
            slots.append(name)
    return sorted(slots, key=lambda name: name not in schema.required)


def _accepts(rules: dict[str, Any]) -> str:
    items = rules.get("items")
    accept = rules.get("x-accept", items.get("x-accept") if isinstance(items, dict) else None)
    if isinstance(accept, list):
        accept = ",".join(str(item) for item in accept)
    return str(accept).lower() if accept is not None else ""


def _types(rules: dict[str, Any]) -> set[str]:
    declared = rules.get("type")
    listed = declared if isinstance(declared, list) else [declared]
    types = {name for name in listed if isinstance(name, str)}
    for key in ("anyOf", "oneOf"):
        for branch in rules.get(key) or []:
            if isinstance(branch, dict):
                types |= _types(branch)
    return types


def _holds_text(rules: dict[str, Any]) -> bool:
    types = _types(rules)
    return not types or bool(types & {"string", "array"})


def _takes_list(rules: dict[str, Any]) -> bool:
    return "array" in _types(rules)


def _text_slot(schema: InputSchema) -> str | None:
    taken = [name for name in _TEXT_INPUTS if schema.takes(name)]
    return sorted(taken, key=lambda name: name not in schema.required)[0] if taken else None


def quick_params(
    model: str, prompt: str, *, images: Sequence[str], video: str | None, audio: str | None
) -> BuildParams:
    """quick_generate's inputs as the chosen model's parameters: the prompt under its text parameter (``prompt`` or
    ``text``, the required one first), and each kind of media under the first parameter that takes that kind.

    Media the model cannot take is refused, not dropped: the user gave it for a reason, and a generation without it
    would be paid for and wrong.
    """

    def build(schema: InputSchema | None) -> tuple[dict[str, Any], list[str]]:
        if schema is None:  # quick_generate never sends unchecked; kept total for the type
            raise InputError(f"The parameters of {model} could not be read, so nothing was sent.")
        params: dict[str, Any] = {}
        not_used: list[str] = []
        text = _text_slot(schema)
        if text is not None:
            params[text] = prompt
        else:
            not_used.append(f"prompt ({model} takes no text prompt)")
        given: list[tuple[MediaKind, list[str]]] = [
            ("image", list(images)),
            ("video", [video] if video else []),
            ("audio", [audio] if audio else []),
        ]
        for kind, urls in given:
            if not urls:
                continue
            slots = media_slots(schema, kind)
            if not slots:
                raise InputError(
                    f"Not sent, nothing was spent: {model} takes no {kind} input, so the {kind} given cannot be used. "
                    f"Leave it out, or pick a model that takes one (list_models with a keyword such as "
                    f"'{kind}-to') and pass its id as keyword."
                )
            slot = slots[0]
            if _takes_list(schema.properties[slot]):
                params[slot] = urls
            else:
                params[slot] = urls[0]
                if len(urls) > 1:
                    not_used.append(f"{len(urls) - 1} more {kind} URLs ({model}'s {slot} takes one)")
        return params, not_used

    return build


def transcribes(schema: InputSchema) -> bool:
    """Whether a model with this schema turns speech into text: it takes an audio URL and needs no text to speak."""
    return bool(media_slots(schema, "audio")) and not any(name in schema.required for name in _TEXT_INPUTS)


def transcription_params(model: str, audio_url: str, language: str | None) -> BuildParams:
    """transcribe_audio's inputs as the model's parameters; a model that cannot transcribe is refused here, before
    anything is paid (one that takes no audio, or that needs text to speak)."""

    def build(schema: InputSchema | None) -> tuple[dict[str, Any], list[str]]:
        if schema is None:
            raise InputError(f"The parameters of {model} could not be read, so nothing was sent.")
        if not transcribes(schema):
            speaks = [name for name in _TEXT_INPUTS if name in schema.required]
            why = f"it needs {speaks[0]} to speak" if speaks else "it takes no audio input"
            raise InputError(
                f"Not sent, nothing was spent: {model} cannot transcribe: {why} (text-to-speech models run with "
                "generate_audio). Leave model out to use the default speech-to-text model, or find one with "
                "list_models type=Audio keyword=speech."
            )
        slot = media_slots(schema, "audio")[0]
        params: dict[str, Any] = {slot: [audio_url] if _takes_list(schema.properties[slot]) else audio_url}
        not_used: list[str] = []
        if language is not None:
            if schema.takes("language"):
                params["language"] = language
            else:
                not_used.append(f"language ({model} takes none; it detects the language itself)")
        return params, not_used

    return build
