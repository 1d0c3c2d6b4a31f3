"""The MCP tools: short adapters between what a model asks for and what the Atlas client does.

No ``from __future__ import annotations`` here: the tool signatures are evaluated by the MCP SDK at
registration, and their defaults and descriptions come from the settings in scope."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import anyio.to_thread
from mcp.server.mcpserver import Context, ListRoots, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ListRootsResult, ToolAnnotations
from pydantic import Field

from atlas_mcp.atlas import AtlasClient, Prediction
from atlas_mcp.config import Settings
from atlas_mcp.errors import AtlasMCPError, InputError, PredictionFailedError, PredictionTimeoutError
from atlas_mcp.server.catalog import InputSchema, ModelCatalog
from atlas_mcp.server.files import open_upload
from atlas_mcp.server.results import GenerationResult, UploadResult, generation_result, upload_result

__all__ = ["AppState", "register_tools"]

logger = logging.getLogger(__name__)

MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)+$"


@dataclass
class AppState:
    """What lives as long as the server: the settings, the one Atlas client, the cached catalogue."""

    settings: Settings
    atlas: AtlasClient
    catalog: ModelCatalog


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """Our errors become tool errors (``isError`` results the model can read and act on)."""
    try:
        yield
    except AtlasMCPError as exc:
        raise ToolError(str(exc)) from exc


def _state(ctx: Context) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


async def _client_roots(ctx: Context) -> ListRoots | None:
    """Ask the client for its workspace roots, unless the user configured upload roots (theirs win)."""
    if _state(ctx).settings.upload_roots:
        return None
    capabilities = ctx.client_capabilities
    return ListRoots() if capabilities is not None and capabilities.roots is not None else None


def _root_paths(result: ListRootsResult | None) -> list[Path]:
    paths = []
    for root in result.roots if result is not None else []:
        parts = urlsplit(str(root.uri))
        if parts.scheme == "file" and parts.path:
            paths.append(Path(unquote(parts.path)))
    return paths


@dataclass(frozen=True)
class ImageRequest:
    """The friendly inputs of generate_image, before they meet a model's schema."""

    prompt: str
    width: int | None
    height: int | None
    size: str | None
    num_images: int
    seed: int | None
    image: str | None
    strength: float | None
    steps: int | None
    guidance_scale: float | None
    params: dict[str, Any]

    def to_params(self, schema: InputSchema | None) -> tuple[dict[str, Any], list[str]]:
        """The body parameters for the model, and what was not used (and why)."""
        reserved = {"model", "prompt"} & set(self.params)
        if reserved:
            raise InputError(
                f"params cannot contain {', '.join(sorted(reserved))}: "
                "use the model and prompt arguments (params never replace them)."
            )
        if (self.width is None) != (self.height is None):
            raise InputError("Give both width and height (or size as 'W*H'), not just one of them.")
        if self.size is not None and self.width is not None:
            raise InputError("Give either size or width/height, not both.")

        params: dict[str, Any] = {"prompt": self.prompt, **self.params}
        not_used: list[str] = []

        def offer(name: str, value: Any, *, aliases: tuple[str, ...] = ()) -> None:
            if value is None:
                return
            if schema is None:
                if name in _DOCUMENTED_CORE:
                    params[name] = value
                else:
                    not_used.append(f"{name} (the model's parameters could not be read, so it was not sent)")
                return
            for key in (name, *aliases):
                if schema.takes(key):
                    params[key] = value
                    return
            not_used.append(f"{name} (this model has no such parameter)")

        size = self.size or (f"{self.width}*{self.height}" if self.width is not None else None)
        if size is not None and schema is not None and not schema.takes("size") and schema.takes("width"):
            width, height = (int(side) for side in size.split("*"))
            offer("width", width)
            offer("height", height)
        else:
            offer("size", size)
        if self.num_images != 1:
            offer("num_images", self.num_images)
        offer("seed", self.seed)
        offer("image", self.image)
        offer("strength", self.strength)
        offer("steps", self.steps, aliases=("num_inference_steps",))
        offer("guidance_scale", self.guidance_scale)
        return params, not_used


# What Atlas documents for flux-schnell: sent as-is when a model's schema cannot be read.
_DOCUMENTED_CORE = frozenset({"size", "num_images", "seed", "image", "strength"})


INSTRUCTIONS = """\
This server makes images with Atlas Cloud models (default: FLUX.1 [schnell], about $0.003 an image).
- generate_image submits a generation (it costs money) and waits for it, up to a bound, showing progress.
  When it finishes you get the image URLs, an inline preview, and where the file was saved.
- If the wait bound passes first, the result carries a prediction_id and phase "running": call
  check_prediction with that id (wait=true) to finish. Never resubmit the same generation: that pays twice.
- upload_media turns a local file (inside the allowed folders) into a URL, for generate_image's `image`
  input (image-to-image, with `strength`).
Ask the user before running many paid generations."""


def register_tools(server: MCPServer[AppState], settings: Settings) -> None:
    """Add the tools to ``server``; ``settings`` supplies the defaults shown in their schemas."""
    bound = settings.wait_seconds

    @server.tool(
        title="Generate image",
        description=(
            f"Generate images from a text prompt with an Atlas Cloud model (default {settings.default_model}, "
            "about $0.003 per image). COSTS MONEY on every call, so do not repeat a call that succeeded or "
            f"is still running. Waits for the result (up to {bound:g} s) while reporting progress, then returns "
            "the image URLs, an inline preview and the saved file path. If it is not done by then, the result "
            "has a prediction_id: call check_prediction with it instead of generating again."
        ),
        annotations=ToolAnnotations(
            title="Generate image",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def generate_image(
        prompt: Annotated[str, Field(min_length=1, max_length=4000, description="What the image should show.")],
        ctx: Context,
        model: Annotated[
            str, Field(max_length=200, pattern=MODEL_ID, description="Atlas model id.")
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
        image: Annotated[
            str | None,
            Field(
                max_length=4096,
                pattern=r"^https?://",
                description="Input image URL for image-to-image (use upload_media for a local file).",
            ),
        ] = None,
        strength: Annotated[
            float | None, Field(ge=0, le=1, description="How far to move away from the input image (0-1).")
        ] = None,
        steps: Annotated[
            int | None, Field(ge=1, le=50, description="Inference steps, for models that take them.")
        ] = None,
        guidance_scale: Annotated[
            float | None, Field(ge=0, le=20, description="Prompt adherence, for models that take it.")
        ] = None,
        params: Annotated[
            dict[str, Any] | None,
            Field(description="Other model parameters, sent as given (they cannot set model or prompt)."),
        ] = None,
        wait: Annotated[bool, Field(description="Wait for the result (true) or return the id at once.")] = True,
        max_wait_seconds: Annotated[
            float | None, Field(ge=0, le=600, description=f"Wait at most this long (capped at {bound:g} s).")
        ] = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        state = _state(ctx)
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
        with _as_tool_errors():
            schema = await state.catalog.input_schema(model)
            body, not_used = request.to_params(schema)
            started = time.monotonic()
            await ctx.report_progress(0, None, f"Submitting to {model}")
            prediction = await state.atlas.submit(model, body, kind="image")
            logger.info("submitted prediction %s (%s)", prediction.id, model)
            limit = min(bound, max_wait_seconds if max_wait_seconds is not None else bound) if wait else 0.0
            return await _finish(ctx, state, prediction, limit=limit, started=started, not_used=not_used)

    @server.tool(
        title="Check prediction",
        description=(
            "Read a prediction's state by id (free: nothing is generated or paid), optionally waiting for it "
            f"to finish (up to {bound:g} s). Use it with the prediction_id from a generate_image call that "
            "returned before the image was ready. Returns the same result as generate_image: URLs, previews, "
            "saved files and price once it has finished."
        ),
        annotations=ToolAnnotations(
            title="Check prediction", read_only_hint=True, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def check_prediction(
        prediction_id: Annotated[
            str, Field(min_length=1, max_length=128, description="The prediction_id returned by generate_image.")
        ],
        ctx: Context,
        wait: Annotated[bool, Field(description="Wait for the prediction to finish.")] = False,
        max_wait_seconds: Annotated[
            float | None, Field(ge=0, le=600, description=f"Wait at most this long (capped at {bound:g} s).")
        ] = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        state = _state(ctx)
        with _as_tool_errors():
            started = time.monotonic()
            prediction = await state.atlas.get_prediction(prediction_id)
            limit = min(bound, max_wait_seconds if max_wait_seconds is not None else bound) if wait else 0.0
            return await _finish(ctx, state, prediction, limit=limit, started=started, not_used=())

    @server.tool(
        title="Upload media",
        description=(
            "Upload a local image, video or audio file to Atlas Cloud and get a URL that models take as input "
            "(e.g. generate_image's `image`). Free. Only files inside the allowed folders "
            "(ATLASCLOUD_UPLOAD_ROOTS, or the client's workspace roots) can be sent; hidden files, folders and "
            "non-media files are refused."
        ),
        annotations=ToolAnnotations(
            title="Upload media",
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=False,
            open_world_hint=True,
        ),
    )
    async def upload_media(
        path: Annotated[str, Field(min_length=1, max_length=4096, description="Path of the local file.")],
        ctx: Context,
        client_roots: Annotated[ListRootsResult | None, Resolve(_client_roots)] = None,
    ) -> Annotated[CallToolResult, UploadResult]:
        state = _state(ctx)
        roots = list(state.settings.upload_roots) or _root_paths(client_roots)
        with _as_tool_errors():
            opened = await anyio.to_thread.run_sync(
                lambda: open_upload(path, roots, max_bytes=state.settings.max_upload_bytes)
            )
            try:
                uploaded = await state.atlas.upload(
                    opened.file, filename=opened.path.name, content_type=opened.content_type, size=opened.size
                )
            finally:
                opened.close()
            logger.info("uploaded %s (%d bytes)", opened.path.name, opened.size)
            return upload_result(
                uploaded, filename=opened.path.name, content_type=opened.content_type, size=opened.size
            )


async def _finish(
    ctx: Context,
    state: AppState,
    prediction: Prediction,
    *,
    limit: float,
    started: float,
    not_used: list[str] | tuple[str, ...],
) -> CallToolResult:
    """Wait (bounded, with progress) for a prediction, then build the result or raise its failure."""

    async def on_poll(current: Prediction, polls: int) -> None:
        elapsed = time.monotonic() - started
        await ctx.report_progress(elapsed, limit or None, f"{current.status} after {elapsed:.1f} s (poll {polls})")

    if not prediction.done and limit > 0:
        try:
            prediction = await state.atlas.wait(prediction, timeout=limit, on_poll=on_poll)
        except PredictionTimeoutError as exc:
            prediction = exc.prediction
    if prediction.phase == "failed":
        reason = prediction.error or "Atlas gave no reason"
        raise PredictionFailedError(
            f"Prediction {prediction.id} {prediction.status}: {reason}. Nothing to show; "
            "change the prompt or parameters before trying again.",
            prediction=prediction,
        )
    if prediction.done:
        await ctx.report_progress(time.monotonic() - started, limit or None, "Fetching the outputs")
    return await generation_result(
        prediction,
        atlas=state.atlas,
        settings=state.settings,
        waited_seconds=time.monotonic() - started,
        not_used=not_used,
    )
