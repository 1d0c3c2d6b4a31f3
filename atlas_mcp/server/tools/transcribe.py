"""transcribe_audio: speech to text with an Atlas speech-to-text model.

A speech-to-text model is an Audio model like any other to Atlas (it runs through generateAudio), so this is a
generate tool: the same resolvers gate and confirm it, the same body pays, waits and builds the result, and
the transcript is part of that one result (so check_prediction finishing a long transcription returns and
saves it too). What is its own: choosing the model when none is named, and refusing one that cannot transcribe.

No ``from __future__ import annotations``: the SDK reads the signatures at registration (see toolkit.py).
"""

from collections.abc import Sequence
from typing import Annotated

from mcp.server.mcpserver import Context, Resolve
from mcp_types import CallToolResult
from pydantic import Field

from atlas_mcp.atlas import ModelEntry
from atlas_mcp.config import Settings
from atlas_mcp.core.choosing import Candidate, ModelChoice, speech_to_text_candidates, transcribes, transcription_params
from atlas_mcp.core.outcome import ChosenResult
from atlas_mcp.errors import AtlasMCPError, InputError, SchemaUnavailableError
from atlas_mcp.server import icons
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.clients import wait_words
from atlas_mcp.server.pipeline import Decision, Gate, GenerationCall
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import (
    GENERATING,
    MODEL_ID,
    Confirm,
    DryRun,
    RepeatAgain,
    Wait,
    as_tool_errors,
    gated,
    generate,
    max_wait,
    state_of,
)

__all__ = ["register_transcribe_audio"]

MAX_SCHEMA_CHECKS = 5  # speech-to-text candidates whose schema is read to find the default, at most


async def _default_model(state: AppState, entries: Sequence[ModelEntry]) -> ModelChoice:
    """The cheapest listed speech-to-text model whose schema takes an audio URL (and no text to speak). The
    catalogue says nothing of quality or popularity, and every call costs money: the cheapest is the default that
    surprises no one."""
    candidates = speech_to_text_candidates(entries)
    for entry in candidates[:MAX_SCHEMA_CHECKS]:
        try:
            details = await state.catalog.details(entry.model)
        except (SchemaUnavailableError, InputError):
            continue  # unreadable now: the next one may do
        if transcribes(details.schema):
            others = [Candidate.of(other) for other in candidates if other.model != entry.model]
            reason = (
                "no model was named, and it is the cheapest speech-to-text model Atlas lists"
                if others
                else "no model was named, and it is the speech-to-text model Atlas lists"
            )
            return ModelChoice(
                **Candidate.of(entry).model_dump(), matched_by="default", reason=reason, alternatives=others
            )
    raise InputError(
        "Not sent, nothing was spent: Atlas lists no speech-to-text model that takes an audio URL right now. Look "
        "with list_models type=Audio keyword=speech, and pass one's id as model."
    )


async def pick(ctx: Context, model: str | None) -> ModelChoice:
    with as_tool_errors():
        state = state_of(ctx)
        try:
            entries = await state.catalog.models()
        except AtlasMCPError as exc:
            raise SchemaUnavailableError(
                f"The Atlas model catalogue could not be read ({exc}). Nothing was sent; try again in a minute."
            ) from exc
        if model is None:
            return await _default_model(state, entries)
        entry = next((e for e in entries if e.model == model), None)
        if entry is None:
            raise InputError(
                f"Not sent, nothing was spent: Atlas has no model {model!r}. Leave model out to use the default "
                "speech-to-text model, or find one with list_models type=Audio keyword=speech."
            )
        if (entry.type or "").lower() != "audio":
            raise InputError(
                f"Not sent, nothing was spent: {model} is of type {entry.type}, not a speech-to-text (Audio) "
                "model. Leave model out to use the default one."
            )
        return ModelChoice(**Candidate.of(entry).model_dump(), matched_by="given", reason="it was named")


async def transcribe_call(
    choice: Annotated[ModelChoice, Resolve(pick)],
    audio_url: str,
    language: str | None,
    dry_run: bool,
    confirm: str | None,
    repeat: bool,
) -> GenerationCall:
    build = transcription_params(choice.model, audio_url, language)
    return GenerationCall("transcribe_audio", "audio", choice.model, build, dry_run, False, confirm, repeat)


transcribe_gate, transcribe_consent = gated(transcribe_call)


def register_transcribe_audio(shelf: ToolShelf, settings: Settings) -> None:
    bound = wait_words(settings)
    bounded = max_wait(settings)

    @shelf.tool(
        title="Transcribe audio",
        icons=icons.AUDIO,
        description=(
            "Turn speech in an audio file into text with an Atlas Cloud speech-to-text model (by default the "
            "cheapest one listed; name another with model). Give audio_url: a public https URL, or for a local "
            "file call upload_media first and pass the url it returns. COSTS MONEY on every call, with the same "
            "checks as generate_*: dry_run=true shows the model, request and price for free. Returns the "
            "transcript, with timed segments when the model gives them, saved as .txt and .json next to other "
            f"outputs when an output folder is set. Waits up to {bound}; if not done, finish with "
            "check_prediction (wait=true), never by transcribing again."
        ),
        annotations=GENERATING,
    )
    async def transcribe_audio(
        audio_url: Annotated[
            str,
            Field(
                max_length=4096,
                pattern=r"^https?://",
                description="The recording: an https URL, or the url upload_media returned for a local file.",
            ),
        ],
        ctx: Context,
        model: Annotated[
            str | None,
            Field(max_length=200, pattern=MODEL_ID, description="A speech-to-text model id (default: the cheapest)."),
        ] = None,
        language: Annotated[
            str | None,
            Field(
                min_length=2,
                max_length=16,
                pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})?$",
                description="The spoken language (e.g. en), for models that take one; by default the model detects it.",
            ),
        ] = None,
        wait: Wait = True,
        max_wait_seconds: Annotated[float | None, bounded] = None,
        dry_run: DryRun = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        choice: Annotated[ModelChoice, Resolve(pick)],
        gate: Annotated[Gate, Resolve(transcribe_gate)],
        decision: Annotated[Decision, Resolve(transcribe_consent)],
    ) -> Annotated[CallToolResult, ChosenResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds, choice=choice)
