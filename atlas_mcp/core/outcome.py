"""What a tool call hands back, as data: the structured results (their fields are the tools' output schemas).

These are the facts a result is rendered from (text for the model, previews, links: see
:mod:`atlas_mcp.server.results`), and nothing here knows MCP. Field descriptions are what clients read in
``tools/list``: change them on purpose (tests/snapshots).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from atlas_mcp.core.choosing import ModelChoice
from atlas_mcp.core.shown import Shown
from atlas_mcp.spend.policy import SpendReport

__all__ = [
    "MAX_SEGMENTS",
    "MAX_TRANSCRIPT_CHARS",
    "ChosenResult",
    "GalleryView",
    "GenerationResult",
    "Outcome",
    "OutputInfo",
    "PriceQuote",
    "SegmentInfo",
    "SubmitRequest",
    "TranscriptInfo",
    "UploadResult",
]

# A transcript in a result stays well inside what clients accept (about 25k tokens); the saved files hold all of it.
MAX_TRANSCRIPT_CHARS = 20_000
MAX_SEGMENTS = 500  # in the structured result


class OutputInfo(Shown):
    """One output of a prediction."""

    url: str | None = Field(
        default=None, description="The full-size output at Atlas (it expires after a while); None when sent inline."
    )
    inline: bool = Field(default=False, description="Atlas sent the file inside its answer (base64), not as a URL.")
    text: str | None = Field(default=None, description="A text output (some models answer with text, not files).")
    saved_path: str | None = Field(
        default=None, description="Where the full-size file was saved, when an output dir is set."
    )
    preview: bool = Field(default=False, description="Whether an inline preview image is part of this result.")
    width: int | None = Field(default=None, description="Full-size width in pixels, when known.")
    height: int | None = Field(default=None, description="Full-size height in pixels, when known.")
    size_bytes: int | None = Field(default=None, description="Full-size file size in bytes, when fetched.")
    media_type: str | None = Field(default=None, description="The file's MIME type, judged from its bytes.")
    note: str | None = Field(default=None, description="Why there is no preview or saved file, when there is not.")


class SubmitRequest(Shown):
    """Exactly what a generation sends to Atlas (shown by dry runs)."""

    method: Literal["POST"] = "POST"
    url: str = Field(description="The Atlas endpoint.")
    body: dict[str, Any] = Field(description="The JSON body, model included.")


class PriceQuote(Shown):
    """What a generation costs before it runs."""

    price_usd: float = Field(description="The quoted price, in dollars.")
    source: Literal["atlas", "catalogue"] = Field(
        description="'atlas': Atlas's own quote for this exact request; 'catalogue': the list price, as an estimate."
    )
    estimate: bool = Field(description="True when the final price may differ from this one.")

    def text(self) -> str:
        if self.source == "atlas":
            return f"${self.price_usd:.4g} (Atlas's quote{', an estimate' if self.estimate else ''})"
        return f"about ${self.price_usd:.4g} (estimated from the catalogue price)"


class GalleryView(Shown):
    """What only the gallery needs (sent only to clients that render it): how to ask for the same again."""

    tool: str = Field(description="The tool that made this generation.")
    arguments: dict[str, Any] = Field(description="Its arguments, for Vary (a new seed) and Use as input.")
    seed: int | None = Field(default=None, description="The seed sent; None when Atlas picked one at random.")
    kind: Literal["image", "video", "audio"] = Field(description="What the model makes.")


class SegmentInfo(Shown):
    """One timed piece of a transcript."""

    start: float | None = Field(default=None, description="Seconds from the start of the audio.")
    end: float | None = Field(default=None, description="Seconds from the start of the audio.")
    text: str = Field(description="What was said in it.")


class TranscriptInfo(Shown):
    """What a speech-to-text model heard."""

    text: str = Field(description=f"The transcript (cut at {MAX_TRANSCRIPT_CHARS:,} characters: see truncated).")
    truncated: bool = Field(default=False, description="True when text was cut; the saved .txt file has all of it.")
    language: str | None = Field(default=None, description="The language the model heard, when it says.")
    segments: list[SegmentInfo] = Field(
        default_factory=list, description=f"Timed segments, when the model gives them (the first {MAX_SEGMENTS})."
    )
    segment_count: int = Field(default=0, description="How many segments the model gave in all.")
    saved_text_path: str | None = Field(default=None, description="The transcript saved as .txt, when saving is on.")
    saved_json_path: str | None = Field(
        default=None,
        description="The transcript with its segments saved as .json, when saving is on and there are segments.",
    )
    note: str | None = Field(default=None, description="Why it was not saved, when it was not.")


class GenerationResult(Shown):
    """A prediction as this server reports it, whatever state it is in (or the request a dry run would send)."""

    prediction_id: str | None = Field(
        description="Atlas's id for the prediction; pass it to check_prediction. None for a dry run."
    )
    model: str | None = Field(default=None, description="The model that ran.")
    status: str = Field(description="Atlas's own word for the state (created, processing, completed, failed...).")
    phase: Literal["dry_run", "not_sent", "running", "succeeded", "failed"] = Field(
        description="The state, normalised. not_sent: spend safety stopped it (see status and next_step)."
    )
    outputs: list[OutputInfo] = Field(default_factory=list, description="The outputs, when it succeeded.")
    price_usd: float | None = Field(default=None, description="What Atlas charged, when it says.")
    quote: PriceQuote | None = Field(
        default=None, description="The price quoted before submitting (and for a dry run)."
    )
    error: str | None = Field(default=None, description="Atlas's reason, for a failed prediction.")
    error_code: str | None = Field(default=None, description="Atlas's error code, when it gives one.")
    predict_time_seconds: float | None = Field(default=None, description="Atlas's compute time, when it says.")
    waited_seconds: float = Field(description="How long this call waited for the prediction.")
    not_used: list[str] = Field(default_factory=list, description="Inputs that were not sent, and why.")
    next_step: str | None = Field(default=None, description="What to do next, when there is something to do.")
    request: SubmitRequest | None = Field(default=None, description="For a dry run: the request that would be sent.")
    reused: bool = Field(
        default=False,
        description="True when an identical generation was sent shortly before: this is its prediction, not "
        "paid again.",
    )
    confirm: str | None = Field(
        default=None, description="For status confirmation_required: pass it back as confirm once the user agreed."
    )
    spend: SpendReport | None = Field(default=None, description="Spending in the last 24 h, and the budget left.")
    transcript: TranscriptInfo | None = Field(
        default=None, description="For a speech-to-text model: the transcript, its segments and its saved files."
    )
    view: GalleryView | None = Field(
        default=None,
        exclude=True,  # present only where the gallery renders the result: see atlas_mcp.server.gallery
        description="For clients that show the gallery: what its buttons need to call the tools again.",
    )


class UploadResult(Shown):
    """A local file now stored at Atlas."""

    url: str = Field(description="The Atlas URL of the file; pass it as a model input (e.g. generate_image's image).")
    filename: str = Field(description="The file's name.")
    content_type: str = Field(description="The media type, judged from the file's bytes.")
    size_bytes: int = Field(description="The file's size in bytes.")


class ChosenResult(GenerationResult):
    """A generation whose model the tool chose: the generation's result plus the choice."""

    choice: ModelChoice | None = Field(default=None, description="Which model ran and why.")


@dataclass(frozen=True)
class Outcome:
    """What a generating call ends with, as data: the structured result, the text for the model, and the inline
    previews (JPEGs in base64, as a result carries them). Every path of the paid pipeline ends in one (a dry run, a
    decline, a request for the user's confirmation, a prediction running or finished), and it is rendered once, by
    the tool that asked (``atlas_mcp.server.results.render``), with whatever that tool adds: a model choice, a note,
    the gallery's view.
    """

    result: GenerationResult
    text: str
    previews: tuple[str, ...] = ()
    is_error: bool = False  # the call did not do what was asked (a confirmation is needed): the model must act
