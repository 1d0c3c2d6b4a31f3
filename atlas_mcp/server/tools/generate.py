"""The three generate tools: one per kind of model, each a thin description of its arguments in front of the one
paid path (:func:`atlas_mcp.server.toolkit.generate`).

Each tool's arguments become a :class:`GenerationCall` (``*_call`` below), which the gate checks, prices and
guards, and the confirmation asks the user about, before the body pays.

No ``from __future__ import annotations``: the SDK reads the tools' signatures at registration.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, Resolve
from mcp_types import CallToolResult
from pydantic import Field

from atlas_mcp.config import Settings
from atlas_mcp.core.outcome import GenerationResult
from atlas_mcp.core.requests import ImageRequest, media_params
from atlas_mcp.server import icons
from atlas_mcp.server.clients import wait_words
from atlas_mcp.server.gallery import TOOL_META
from atlas_mcp.server.pipeline import Decision, Gate, GenerationCall
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import (
    GENERATING,
    MODEL_ID,
    Confirm,
    DryRun,
    InputUrl,
    ModelId,
    Params,
    RepeatAgain,
    SkipValidation,
    Wait,
    gated,
    generate,
    max_wait,
)

__all__ = ["register_generate_audio", "register_generate_image", "register_generate_video"]


async def image_call(
    prompt: str | None,
    model: str,
    width: int | None,
    height: int | None,
    size: str | None,
    num_images: int,
    seed: int | None,
    image: str | None,
    strength: float | None,
    steps: int | None,
    guidance_scale: float | None,
    params: dict[str, Any] | None,
    dry_run: bool,
    skip_validation: bool,
    confirm: str | None,
    repeat: bool,
) -> GenerationCall:
    request = ImageRequest(
        prompt=prompt,
        width=width,
        height=height,
        size=size,
        num_images=num_images,
        seed=seed,
        image=image,
        strength=strength,
        steps=steps,
        guidance_scale=guidance_scale,
        params=dict(params or {}),
    )
    arguments: dict[str, Any] = {"prompt": prompt, "model": model, "width": width, "height": height, "size": size}
    arguments |= {"num_images": num_images, "seed": seed, "image": image, "strength": strength, "steps": steps}
    arguments |= {"guidance_scale": guidance_scale, "params": params}
    return GenerationCall(
        "generate_image", "image", model, request.to_params, dry_run, skip_validation, confirm, repeat, arguments
    )


async def video_call(
    model: str,
    prompt: str | None,
    image: str | None,
    params: dict[str, Any] | None,
    dry_run: bool,
    skip_validation: bool,
    confirm: str | None,
    repeat: bool,
) -> GenerationCall:
    build = media_params([(("prompt",), prompt), (("image", "image_url"), image)], params)
    arguments = {"model": model, "prompt": prompt, "image": image, "params": params}
    return GenerationCall("generate_video", "video", model, build, dry_run, skip_validation, confirm, repeat, arguments)


async def audio_call(
    model: str,
    text: str | None,
    params: dict[str, Any] | None,
    dry_run: bool,
    skip_validation: bool,
    confirm: str | None,
    repeat: bool,
) -> GenerationCall:
    build = media_params([(("text", "prompt"), text)], params)
    arguments = {"model": model, "text": text, "params": params}
    return GenerationCall("generate_audio", "audio", model, build, dry_run, skip_validation, confirm, repeat, arguments)


image_gate, image_consent = gated(image_call)
video_gate, video_consent = gated(video_call)
audio_gate, audio_consent = gated(audio_call)


def register_generate_image(shelf: ToolShelf, settings: Settings) -> None:
    """Register generate_image: images from a prompt (or, for prompt-less models, from params.image)."""
    bound = wait_words(settings)
    bounded = max_wait(settings)

    @shelf.tool(
        title="Generate image",
        meta=TOOL_META,
        icons=icons.IMAGE,
        description=(
            f"Generate images from a text prompt with an Atlas Cloud model (default {settings.default_model}, "
            "about $0.003 per image). COSTS MONEY on every call, so do not repeat a call that succeeded or "
            f"is still running. Waits for the result (up to {bound}) while reporting progress, then returns "
            "the image URLs, an inline preview and the saved file path. If it is not done by then, the result "
            "has a prediction_id: call check_prediction with it instead of generating again. Parameters are "
            "checked against the model's schema first; dry_run=true shows the request without paying."
        ),
        annotations=GENERATING,
    )
    async def generate_image(
        ctx: Context,
        prompt: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=4000,
                description="What the image should show (models that take no prompt, such as image-to-3D or "
                "upscalers, need only params.image).",
            ),
        ] = None,
        model: Annotated[
            str, Field(max_length=200, pattern=MODEL_ID, description="Atlas model id (see list_models).")
        ] = settings.default_model,
        width: Annotated[int | None, Field(ge=256, le=2048, description="Width in pixels (with height).")] = None,
        height: Annotated[int | None, Field(ge=256, le=2048, description="Height in pixels (with width).")] = None,
        size: Annotated[
            str | None,
            Field(pattern=r"^\d{3,4}\*\d{3,4}$", description="Atlas's own form 'W*H', instead of width/height."),
        ] = None,
        num_images: Annotated[int, Field(ge=1, le=4, description="How many images (each is paid).")] = 1,
        seed: Annotated[
            int | None, Field(ge=-1, le=2**31 - 1, description="Same seed + prompt = same image; -1 random.")
        ] = None,
        image: InputUrl = None,
        strength: Annotated[
            float | None, Field(ge=0, le=1, description="How far to move away from the input image (0-1).")
        ] = None,
        steps: Annotated[
            int | None, Field(ge=1, le=50, description="Inference steps, for models that take them.")
        ] = None,
        guidance_scale: Annotated[
            float | None, Field(ge=0, le=20, description="Prompt adherence, for models that take it.")
        ] = None,
        params: Params = None,
        wait: Wait = True,
        max_wait_seconds: Annotated[float | None, bounded] = None,
        dry_run: DryRun = False,
        skip_validation: SkipValidation = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        gate: Annotated[Gate, Resolve(image_gate)],
        decision: Annotated[Decision, Resolve(image_consent)],
    ) -> Annotated[CallToolResult, GenerationResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds)


def register_generate_video(shelf: ToolShelf, settings: Settings) -> None:
    """Register generate_video: a video model, by id."""
    bound = wait_words(settings)
    bounded = max_wait(settings)

    @shelf.tool(
        title="Generate video",
        meta=TOOL_META,
        icons=icons.VIDEO,
        description=(
            "Generate a video with an Atlas Cloud video model (find one with list_models type=Video; "
            "get_model_info shows its parameters and price). COSTS MONEY on every call. Videos usually take "
            f"longer than one call may wait ({bound}): the result then has a prediction_id; finish with "
            "check_prediction (wait=true) and never resubmit. Results link the video and save it when an "
            "output folder is set; dry_run=true shows the request without paying."
        ),
        annotations=GENERATING,
    )
    async def generate_video(
        model: ModelId,
        ctx: Context,
        prompt: Annotated[
            str | None, Field(min_length=1, max_length=4000, description="What the video should show.")
        ] = None,
        image: InputUrl = None,
        params: Params = None,
        wait: Wait = True,
        max_wait_seconds: Annotated[float | None, bounded] = None,
        dry_run: DryRun = False,
        skip_validation: SkipValidation = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        gate: Annotated[Gate, Resolve(video_gate)],
        decision: Annotated[Decision, Resolve(video_consent)],
    ) -> Annotated[CallToolResult, GenerationResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds)


def register_generate_audio(shelf: ToolShelf, settings: Settings) -> None:
    """Register generate_audio: speech or music, by model id."""
    bound = wait_words(settings)
    bounded = max_wait(settings)

    @shelf.tool(
        title="Generate audio",
        meta=TOOL_META,
        icons=icons.AUDIO,
        description=(
            "Generate speech or music with an Atlas Cloud audio model (find one with list_models type=Audio; "
            "get_model_info shows its parameters, e.g. voices, and price). COSTS MONEY on every call. Waits up "
            f"to {bound}; if not done, finish with check_prediction (wait=true). Results link the audio "
            "file and save it when an output folder is set; dry_run=true shows the request without paying."
        ),
        annotations=GENERATING,
    )
    async def generate_audio(
        model: ModelId,
        ctx: Context,
        text: Annotated[
            str | None,
            Field(min_length=1, max_length=10000, description="What to say or sing (sent as the model's text/prompt)."),
        ] = None,
        params: Params = None,
        wait: Wait = True,
        max_wait_seconds: Annotated[float | None, bounded] = None,
        dry_run: DryRun = False,
        skip_validation: SkipValidation = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        gate: Annotated[Gate, Resolve(audio_gate)],
        decision: Annotated[Decision, Resolve(audio_consent)],
    ) -> Annotated[CallToolResult, GenerationResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds)
