"""quick_generate: a generation for a caller who knows what it wants but not the model id.

The tool chooses the model (see :mod:`atlas_mcp.core.choosing`), fits the prompt and media to it, and from
there is a generate tool like the others: the same resolvers gate and confirm it, and the same body pays,
waits and builds the result, to which it adds which model ran and why.

No ``from __future__ import annotations``: the SDK reads the signatures at registration (see toolkit.py).
"""

from typing import Annotated, Literal

import anyio.to_thread
from mcp.server.mcpserver import Context, Resolve
from mcp_types import CallToolResult
from pydantic import Field

from atlas_mcp.atlas import MediaKind
from atlas_mcp.config import Settings
from atlas_mcp.core.choosing import ModelChoice, choose_model, quick_params
from atlas_mcp.core.outcome import ChosenResult
from atlas_mcp.errors import AtlasMCPError, SchemaUnavailableError
from atlas_mcp.server import icons
from atlas_mcp.server.clients import wait_words
from atlas_mcp.server.pipeline import Decision, Gate, GenerationCall
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import (
    GENERATING,
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

__all__ = ["register_quick_generate"]

_KINDS: dict[str, MediaKind] = {"Image": "image", "Video": "video", "Audio": "audio"}
MAX_IMAGE_URLS = 8

MediaUrl = Annotated[str, Field(max_length=4096, pattern=r"^https?://")]


async def choose(ctx: Context, keyword: str, type: Literal["Image", "Video", "Audio"]) -> ModelChoice:
    with as_tool_errors():
        try:
            entries = await state_of(ctx).catalog.models()
        except AtlasMCPError as exc:
            raise SchemaUnavailableError(
                f"The Atlas model catalogue could not be read ({exc}), so no model could be chosen. Nothing was "
                "sent; try again in a minute."
            ) from exc
        # Scoring a few words against a catalogue of hundreds takes a tenth of a second at worst: not on the loop
        # that serves every other call.
        return await anyio.to_thread.run_sync(choose_model, entries, keyword, type)


async def quick_call(
    choice: Annotated[ModelChoice, Resolve(choose)],
    type: Literal["Image", "Video", "Audio"],
    prompt: str,
    image_url: str | None,
    image_urls: list[str] | None,
    video_url: str | None,
    audio_url: str | None,
    dry_run: bool,
    confirm: str | None,
    repeat: bool,
) -> GenerationCall:
    images = [url for url in [image_url, *(image_urls or [])] if url is not None]
    build = quick_params(choice.model, prompt, images=images, video=video_url, audio=audio_url)
    # Never skip validation: a model chosen by keyword is only run with parameters its schema accepts.
    return GenerationCall("quick_generate", _KINDS[type], choice.model, build, dry_run, False, confirm, repeat)


quick_gate, quick_consent = gated(quick_call)


def register_quick_generate(shelf: ToolShelf, settings: Settings) -> None:
    bound = wait_words(settings)
    bounded = max_wait(settings)

    @shelf.tool(
        title="Quick generate",
        icons=icons.SERVER,
        description=(
            "Generate an image, video or audio without knowing the model id: give a keyword (a model id, its name, "
            "or words such as 'flux schnell', 'seedream', 'wan'), the type and the prompt, plus any input media "
            "URLs (use upload_media first for a local file). It picks the best matching model (exact id, then "
            "name, then closest match; among equal matches the cheapest) and says which and why; when equal "
            "matches differ in price by more than 2× it returns the short list instead of guessing. COSTS MONEY on "
            f"every call, with the same checks as generate_*: parameters checked before paying, dry_run=true to "
            f"see the model, request and price for free, the user asked above their price threshold. Waits up to "
            f"{bound}; if not done, finish with check_prediction. For other parameters, use generate_image, "
            "generate_video or generate_audio with the model id this returns."
        ),
        annotations=GENERATING,
    )
    async def quick_generate(
        keyword: Annotated[
            str, Field(min_length=1, max_length=200, description="A model id, a model name, or words that describe it.")
        ],
        type: Annotated[Literal["Image", "Video", "Audio"], Field(description="What to make.")],
        prompt: Annotated[
            str,
            Field(min_length=1, max_length=10000, description="What to make (for speech models: what to say)."),
        ],
        ctx: Context,
        image_url: Annotated[
            MediaUrl | None, Field(description="An input image (image-to-image, image-to-video).")
        ] = None,
        image_urls: Annotated[
            list[MediaUrl] | None,
            Field(max_length=MAX_IMAGE_URLS, description="Several input images, for models that take a list."),
        ] = None,
        video_url: Annotated[MediaUrl | None, Field(description="An input video.")] = None,
        audio_url: Annotated[MediaUrl | None, Field(description="An input audio file.")] = None,
        wait: Wait = True,
        max_wait_seconds: Annotated[float | None, bounded] = None,
        dry_run: DryRun = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        choice: Annotated[ModelChoice, Resolve(choose)],
        gate: Annotated[Gate, Resolve(quick_gate)],
        decision: Annotated[Decision, Resolve(quick_consent)],
    ) -> Annotated[CallToolResult, ChosenResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds, choice=choice)
