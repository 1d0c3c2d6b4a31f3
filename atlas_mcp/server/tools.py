"""The MCP tools: short adapters between what a model asks for and what the server's machinery does.

No ``from __future__ import annotations`` here: the tool signatures are evaluated by the MCP SDK at
registration, and their defaults and descriptions come from the settings in scope.
"""

import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, Elicit, ListRoots, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import CallToolResult, ListRootsRequest, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from atlas_mcp.atlas import ModelEntry
from atlas_mcp.config import Settings
from atlas_mcp.errors import AtlasMCPError, InputError
from atlas_mcp.server import icons
from atlas_mcp.server.catalog import InputSchema
from atlas_mcp.server.files import open_upload, root_paths
from atlas_mcp.server.gallery import TOOL_META, with_view
from atlas_mcp.server.generation import (
    AppState,
    BuildParams,
    Consent,
    Decision,
    Gate,
    GenerationCall,
    Verdict,
    confirmation,
    finish,
    naming_the_prediction,
    open_gate,
    run,
)
from atlas_mcp.server.listing import (
    HistoryResult,
    ModelInfoResult,
    ModelsResult,
    history_result,
    model_info_result,
    models_result,
)
from atlas_mcp.server.ownership import only_owned, require_owner
from atlas_mcp.server.results import GenerationResult, UploadResult, upload_result

__all__ = ["INSTRUCTIONS", "generate", "register_tools", "wait_limit"]

logger = logging.getLogger(__name__)

MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)+$"

INSTRUCTIONS = """\
This server makes images (and video and audio) with Atlas Cloud models. The default image model is
FLUX.1 [schnell], about $0.003 an image. Generations cost money; everything else is free.
- generate_image submits a generation and waits for it, up to a bound, reporting progress. When it
  finishes you get the image URLs, an inline preview, and where the file was saved.
- If the bound passes first, the result has phase "running" and a prediction_id: call check_prediction
  with it (wait=true). Never resubmit the same generation: that pays twice.
- Parameters are checked against the model's schema before anything is paid; dry_run=true shows the
  exact request and its price without sending it.
- list_models and get_model_info find models and their parameters; generate_video and generate_audio
  run those kinds (they usually outlive one call: finish them with check_prediction).
- quick_generate picks the model from a keyword (it says which and why); transcribe_audio turns speech
  into text. Both cost money and work like generate_image.
- upload_media turns a local file (inside the allowed folders), the file itself as base64 (data), or a
  public https url into a URL for a model input, such as generate_image's `image` (image-to-image, with
  `strength`). Over HTTP the server cannot read your disk: use data or url. list_predictions shows recent jobs.
- chat asks an Atlas LLM (a Text model; paid per token, capped by max_tokens); get_balance, get_usage and
  get_costs read the account (free).
- Money: a generation priced above the user's threshold asks the user first. If your client cannot ask,
  the result is an error with the price and a confirm token: show the user the price, and only if they
  agree call again with the same arguments plus confirm. An identical call within a few minutes returns
  the earlier prediction without paying again (repeat=true only when the user wants another one). A
  daily budget may refuse a call: tell the user what the refusal says.
Ask the user before running many paid generations."""

_GENERATING = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
# Claude Code moves a text-only result over 50,000 characters out of the conversation into a file, unless the
# tool raises its cap. A page of 200 models, 50 predictions with their signed URLs, a schema with hundreds of
# voices, 1,000 report rows or a long chat answer can pass that honestly; 100,000 characters is about its
# 25,000-token limit for any one result.
LONG_RESULT: dict[str, Any] = {"anthropic/maxResultSizeChars": 100_000}
_READING = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)

ModelId = Annotated[str, Field(max_length=200, pattern=MODEL_ID, description="Atlas model id (see list_models).")]
Params = Annotated[
    dict[str, Any] | None,
    Field(description="Other model parameters (see get_model_info), checked against the model's schema."),
]
Wait = Annotated[bool, Field(description="Wait for the result (true) or return the prediction id at once.")]
DryRun = Annotated[
    bool,
    Field(description="Check everything and show the exact request and price without sending it (free, no key)."),
]
SkipValidation = Annotated[
    bool,
    Field(description="Send even if the model's schema cannot be read, unchecked (by default such calls are refused)."),
]
Confirm = Annotated[
    str | None,
    Field(
        max_length=200,
        description="The confirm token from a result that asked for the user's yes; only once they agreed.",
    ),
]
RepeatAgain = Annotated[
    bool,
    Field(description="Pay for another even if an identical generation was just made (else that one is returned)."),
]
InputUrl = Annotated[
    str | None,
    Field(max_length=4096, pattern=r"^https?://", description="Input image URL (use upload_media for a local file)."),
]


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """Our errors become tool errors (``isError`` results the model can read and act on)."""
    try:
        yield
    except AtlasMCPError as exc:
        raise ToolError(str(exc)) from exc


def _state(ctx: Context) -> AppState:
    """The server's state as this call sees it: its request's copy (see ``app.py``), so over HTTP acting with the
    caller's key (or token)."""
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state


ROOTS_WAIT_SECONDS = 5.0  # a client that declares roots but never lists them must not hold upload_media


class _AnyRoot(BaseModel):
    uri: str


class _AnyRoots(BaseModel):
    """roots/list read leniently: a root this server cannot use is left out later, with a line on stderr, instead
    of failing the whole answer (the SDK's own type refuses any root that is not a file: URI)."""

    roots: list[_AnyRoot]


async def _client_roots(ctx: Context) -> ListRoots | _AnyRoots | ListRootsResult | None:
    """The client's workspace roots, unless the user configured upload roots (theirs win).

    In the 2025 era this is a request in the middle of the call, and a client that declared roots may never
    answer it: the wait is bounded. In the 2026 era the question rides the call's InputRequiredResult and the
    client answers it when it calls again, so nothing here waits.
    """
    if _state(ctx).settings.upload_roots:
        return None
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    if not ctx.session.can_send_request:
        return ListRoots()
    try:
        with anyio.fail_after(ROOTS_WAIT_SECONDS):
            listed: _AnyRoots = await ctx.session.send_request(
                ListRootsRequest(), _AnyRoots, metadata=ServerMessageMetadata(related_request_id=ctx.request_id)
            )
            return listed
    except TimeoutError:
        raise ToolError(
            f"Your MCP client says it has workspace roots but did not list them within {ROOTS_WAIT_SECONDS:g} s, so "
            "no folder may be read. Set ATLASCLOUD_UPLOAD_ROOTS in the server's environment to the folders uploads "
            "may come from."
        ) from None


def _gated(
    describe: Callable[..., Any],
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two resolvers in front of a generate tool's body, built over ``describe`` (the tool's arguments ->
    :class:`GenerationCall`): the gate (check, quote, budget, repeats) and the user's confirmation.

    They are resolvers, not code in the body, because asking the user works differently in the two protocol
    eras and the MCP framework hides that: in the 2026 era the call returns with the question and runs again
    with the answer. So they only read state; the body is the only part that pays.
    """

    async def gate(ctx: Context, call: Annotated[GenerationCall, Resolve(describe)]) -> Gate:
        with _as_tool_errors():
            return await open_gate(_state(ctx), call)

    async def consent(ctx: Context, gate: Annotated[Gate, Resolve(gate)]) -> Elicit[Consent] | Verdict:
        with _as_tool_errors():
            return await confirmation(ctx, _state(ctx), gate)

    return gate, consent


def _media_params(friendly: list[tuple[tuple[str, ...], Any]], params: dict[str, Any] | None) -> BuildParams:
    """Body parameters for video and audio models: each friendly input goes under the first of its names
    that the model's schema takes (``text`` or ``prompt`` for speech, say); ``params`` pass through."""

    def build(schema: InputSchema | None) -> tuple[dict[str, Any], list[str]]:
        body = dict(params or {})
        not_used: list[str] = []
        if "model" in body:
            raise InputError("params cannot contain model: use the model argument (params never replace it).")
        for names, value in friendly:
            if value is None:
                continue
            if clash := [name for name in names if name in body]:
                raise InputError(f"params cannot contain {clash[0]}: use the tool's own argument for it.")
            taken = next((name for name in names if schema is None or schema.takes(name)), None)
            if taken is None:  # a model that takes no prompt (an upscaler, lipsync...): sending one is refused
                not_used.append(f"{names[0]} (this model takes no {names[0]})")
                continue
            body[taken] = value
        return body, not_used

    return build


@dataclass(frozen=True)
class ImageRequest:
    """The friendly inputs of generate_image, before they meet a model's schema."""

    prompt: str | None
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

        params: dict[str, Any] = dict(self.params)
        not_used: list[str] = []
        # Sent only to a model whose schema has it: image-to-3D, upscalers and background removal take none.
        if self.prompt is not None and (schema is None or schema.takes("prompt")):
            params = {"prompt": self.prompt, **params}
        elif self.prompt is not None:
            not_used.append("prompt (this model takes no prompt)")

        def offer(name: str, value: Any, *, aliases: tuple[str, ...] = ()) -> None:
            if value is None:
                return
            if clash := [key for key in (name, *aliases) if key in self.params]:
                raise InputError(f"{clash[0]} is given twice (as an argument and in params); keep one.")
            if schema is None:
                if name in _DOCUMENTED_CORE:
                    params[name] = value
                else:
                    not_used.append(f"{name} (the model's parameters could not be read, so it was not sent)")
                return
            for key in (name, *aliases):
                if schema.takes(key):
                    params[key] = [value] if _takes_a_list(schema.properties[key], value) else value
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
        offer("image", self.image, aliases=("images", "image_url"))
        offer("strength", self.strength)
        offer("steps", self.steps, aliases=("num_inference_steps",))
        offer("guidance_scale", self.guidance_scale)
        return params, not_used


def _takes_a_list(rules: dict[str, Any], value: Any) -> bool:
    """Whether one value must go as a list: the parameter is an array (``images``) and the value is not."""
    declared = rules.get("type")
    types = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    return "array" in types and not isinstance(value, list)


# What Atlas documents for flux-schnell: sent as-is when a model's schema cannot be read.
_DOCUMENTED_CORE = frozenset({"size", "num_images", "seed", "image", "strength"})


def wait_limit(settings: Settings, wait: bool, max_wait_seconds: float | None) -> float:
    """How long a call may wait: what the caller asked, within the configured bound; nothing when it asked not to."""
    bound = settings.wait_seconds
    return min(bound, bound if max_wait_seconds is None else max_wait_seconds) if wait else 0.0


_TYPICAL_DURATIONS = "3D models usually take 2–5 minutes, songs minutes, videos 1–5 minutes"


def cap_note(settings: Settings, wait: bool, max_wait_seconds: float | None) -> str | None:
    """Said in the result when the caller asked to wait longer than this server waits, so a long job still
    running is not mistaken for a hung one (the cap itself is ATLASCLOUD_WAIT_SECONDS)."""
    bound = settings.wait_seconds
    if not wait or max_wait_seconds is None or max_wait_seconds <= bound:
        return None
    return (
        f"max_wait_seconds={max_wait_seconds:g} was capped at this server's {bound:g} s (ATLASCLOUD_WAIT_SECONDS). "
        f"{_TYPICAL_DURATIONS}: if it is still running, finish it with check_prediction."
    )


def with_cap_note(result: CallToolResult, note: str | None) -> CallToolResult:
    if note is None:
        return result
    return result.model_copy(update={"content": [*result.content, TextContent(text=note)]})


async def generate(
    ctx: Context, gate: Gate, decision: Decision, *, wait: bool, max_wait_seconds: float | None
) -> CallToolResult:
    """What every generating tool's body does, once its resolvers (see :func:`_gated`) have gated and confirmed the
    call: pay once, wait within the bound, build the result."""
    state = _state(ctx)
    with _as_tool_errors():
        result = await run(ctx, state, gate, decision, limit=wait_limit(state.settings, wait, max_wait_seconds))
    result = with_cap_note(result, cap_note(state.settings, wait, max_wait_seconds))
    return with_view(ctx, result, gate.call, gate.prepared)


def register_tools(server: MCPServer[AppState], settings: Settings) -> None:
    """Add the tools to ``server``; ``settings`` supplies the defaults and bounds shown in their schemas."""
    bound = settings.wait_seconds
    MaxWait = Annotated[
        float | None, Field(ge=0, le=600, description=f"Wait at most this long (capped at {bound:g} s).")
    ]

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
        build = _media_params([(("prompt",), prompt), (("image", "image_url"), image)], params)
        arguments = {"model": model, "prompt": prompt, "image": image, "params": params}
        return GenerationCall(
            "generate_video", "video", model, build, dry_run, skip_validation, confirm, repeat, arguments
        )

    async def audio_call(
        model: str,
        text: str | None,
        params: dict[str, Any] | None,
        dry_run: bool,
        skip_validation: bool,
        confirm: str | None,
        repeat: bool,
    ) -> GenerationCall:
        build = _media_params([(("text", "prompt"), text)], params)
        arguments = {"model": model, "text": text, "params": params}
        return GenerationCall(
            "generate_audio", "audio", model, build, dry_run, skip_validation, confirm, repeat, arguments
        )

    image_gate, image_consent = _gated(image_call)
    video_gate, video_consent = _gated(video_call)
    audio_gate, audio_consent = _gated(audio_call)

    @server.tool(
        title="Generate image",
        meta=TOOL_META,
        icons=icons.IMAGE,
        description=(
            f"Generate images from a text prompt with an Atlas Cloud model (default {settings.default_model}, "
            "about $0.003 per image). COSTS MONEY on every call, so do not repeat a call that succeeded or "
            f"is still running. Waits for the result (up to {bound:g} s) while reporting progress, then returns "
            "the image URLs, an inline preview and the saved file path. If it is not done by then, the result "
            "has a prediction_id: call check_prediction with it instead of generating again. Parameters are "
            "checked against the model's schema first; dry_run=true shows the request without paying."
        ),
        annotations=_GENERATING,
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
        max_wait_seconds: MaxWait = None,
        dry_run: DryRun = False,
        skip_validation: SkipValidation = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        gate: Annotated[Gate, Resolve(image_gate)],
        decision: Annotated[Decision, Resolve(image_consent)],
    ) -> Annotated[CallToolResult, GenerationResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds)

    @server.tool(
        title="Generate video",
        meta=TOOL_META,
        icons=icons.VIDEO,
        description=(
            "Generate a video with an Atlas Cloud video model (find one with list_models type=Video; "
            "get_model_info shows its parameters and price). COSTS MONEY on every call. Videos usually take "
            f"longer than one call may wait ({bound:g} s): the result then has a prediction_id; finish with "
            "check_prediction (wait=true) and never resubmit. Results link the video and save it when an "
            "output folder is set; dry_run=true shows the request without paying."
        ),
        annotations=_GENERATING,
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
        max_wait_seconds: MaxWait = None,
        dry_run: DryRun = False,
        skip_validation: SkipValidation = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        gate: Annotated[Gate, Resolve(video_gate)],
        decision: Annotated[Decision, Resolve(video_consent)],
    ) -> Annotated[CallToolResult, GenerationResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds)

    @server.tool(
        title="Generate audio",
        meta=TOOL_META,
        icons=icons.AUDIO,
        description=(
            "Generate speech or music with an Atlas Cloud audio model (find one with list_models type=Audio; "
            "get_model_info shows its parameters, e.g. voices, and price). COSTS MONEY on every call. Waits up "
            f"to {bound:g} s; if not done, finish with check_prediction (wait=true). Results link the audio "
            "file and save it when an output folder is set; dry_run=true shows the request without paying."
        ),
        annotations=_GENERATING,
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
        max_wait_seconds: MaxWait = None,
        dry_run: DryRun = False,
        skip_validation: SkipValidation = False,
        confirm: Confirm = None,
        repeat: RepeatAgain = False,
        *,
        gate: Annotated[Gate, Resolve(audio_gate)],
        decision: Annotated[Decision, Resolve(audio_consent)],
    ) -> Annotated[CallToolResult, GenerationResult]:
        return await generate(ctx, gate, decision, wait=wait, max_wait_seconds=max_wait_seconds)

    @server.tool(
        title="Check prediction",
        meta=TOOL_META,
        icons=icons.SERVER,
        description=(
            "Read a prediction's state by id (free: nothing is generated or paid), optionally waiting for it "
            f"to finish (up to {bound:g} s). Use it with the prediction_id from a generating call that returned "
            "before it was done. Returns the same result as that call: URLs, previews, saved files (or the "
            "transcript) and price once it has finished."
        ),
        annotations=_READING,
    )
    async def check_prediction(
        prediction_id: Annotated[
            str, Field(min_length=1, max_length=128, description="The prediction_id returned by a generate tool.")
        ],
        ctx: Context,
        wait: Annotated[bool, Field(description="Wait for the prediction to finish.")] = False,
        max_wait_seconds: MaxWait = None,
    ) -> Annotated[CallToolResult, GenerationResult]:
        state = _state(ctx)
        with _as_tool_errors():
            started = time.monotonic()
            await require_owner(state, prediction_id)
            prediction = await state.atlas.get_prediction(prediction_id)
            with naming_the_prediction(prediction.id):
                limit = wait_limit(state.settings, wait, max_wait_seconds)
                finished = await finish(ctx, state, prediction, limit=limit, started=started)
                return with_cap_note(finished, cap_note(state.settings, wait, max_wait_seconds))

    @server.tool(
        title="Upload media",
        icons=icons.SERVER,
        description=(
            "Upload an image, video or audio file to Atlas Cloud and get a URL that models take as input "
            "(e.g. generate_image's `image`). Free. Give one of: path (a local file inside the allowed folders, "
            "ATLASCLOUD_UPLOAD_ROOTS or the client's workspace roots; not over HTTP), data (the file as base64 or "
            "a data: URI, with filename), or url (a public https file to re-host). Hidden files, folders and "
            "non-media files are refused."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def upload_media(
        ctx: Context,
        path: Annotated[str | None, Field(min_length=1, max_length=4096, description="Path of a local file.")] = None,
        data: Annotated[
            str | None,
            Field(min_length=1, description="The file itself: base64, or a data: URI (data:image/png;base64,...)."),
        ] = None,
        filename: Annotated[
            str | None, Field(max_length=255, description="A name for data (the extension follows the content).")
        ] = None,
        url: Annotated[
            str | None,
            Field(max_length=4096, description="A public https file to re-host at Atlas."),
        ] = None,
        client_roots: Annotated[ListRootsResult | _AnyRoots | None, Resolve(_client_roots)] = None,
    ) -> Annotated[CallToolResult, UploadResult]:
        state = _state(ctx)
        given = [name for name, value in (("path", path), ("data", data), ("url", url)) if value is not None]
        if len(given) != 1:
            raise ToolError("Give exactly one of path, data or url" + (f" (got {', '.join(given)})." if given else "."))
        if url is not None:
            from atlas_mcp.server.sources import rehost

            with _as_tool_errors():
                return await rehost(state, url, filename)
        if data is not None:
            from atlas_mcp.server.sources import decode_data, judged

            with _as_tool_errors():
                cap = state.settings.max_upload_bytes
                received = await judged(decode_data(data, max_bytes=cap), filename, "upload")
                if len(received.data) > cap:
                    raise InputError(f"Not uploaded: the file is over the upload cap of {cap // (1024 * 1024)} MiB.")
                uploaded = await state.atlas.upload(
                    io.BytesIO(received.data),
                    filename=received.filename,
                    content_type=received.media.mime,
                    size=len(received.data),
                )
                logger.info("uploaded %s (%d bytes, sent %s)", received.filename, len(received.data), given[0])
                return upload_result(
                    uploaded, filename=received.filename, content_type=received.media.mime, size=len(received.data)
                )
        assert path is not None
        if state.remote:
            raise ToolError(
                "This server runs remotely (over HTTP), so it cannot read files on your machine and no path was read. "
                "Send the file itself as data (base64 or a data: URI, with filename), or a public https url."
            )
        roots = list(state.settings.upload_roots) or root_paths(
            [str(root.uri) for root in (client_roots.roots if client_roots is not None else [])]
        )
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

    @server.tool(
        title="List models",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "List Atlas Cloud models with their type and price (free). Filter by type (Image, Video, Audio, "
            "Text) and a keyword matched against id, name, tags and description; page with offset while has_more. "
            "Then call get_model_info."
        ),
        annotations=_READING,
    )
    async def list_models(
        ctx: Context,
        type: Annotated[
            Literal["Image", "Video", "Audio", "Text"] | None, Field(description="Only models of this type.")
        ] = None,
        keyword: Annotated[
            str | None, Field(max_length=100, description="Words that must all appear (case-insensitive).")
        ] = None,
        include_hidden: Annotated[bool, Field(description="Also list models Atlas hides from its console.")] = False,
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many models.")] = 50,
        offset: Annotated[
            int, Field(ge=0, le=100_000, description="Skip this many matches (the next page: offset + limit).")
        ] = 0,
    ) -> Annotated[CallToolResult, ModelsResult]:
        state = _state(ctx)
        with _as_tool_errors():
            entries = await state.catalog.models()
        words = (keyword or "").lower().split()
        matching = [
            entry
            for entry in entries
            if (include_hidden or entry.display_console)
            and (type is None or (entry.type or "").lower() == type.lower())
            and all(word in _haystack(entry) for word in words)
        ]
        return models_result(matching[offset : offset + limit], total=len(matching), offset=offset)

    @server.tool(
        title="Get model info",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "Show one model's parameters (type, range, allowed values, default, required), its price and unit, "
            "and which tool runs it. Free. Use it before generating with a model you have not used yet."
        ),
        annotations=_READING,
    )
    async def get_model_info(model: ModelId, ctx: Context) -> Annotated[CallToolResult, ModelInfoResult]:
        state = _state(ctx)
        with _as_tool_errors():
            entry = await state.catalog.entry(model)
            if entry is not None and entry.schema_url is None:  # LLM entries may have none: show what is known
                return model_info_result(entry, None)
            details = await state.catalog.details(model)
            return model_info_result(details.entry, details.schema)

    @server.tool(
        title="List predictions",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "The account's recent generations, newest first (free): id, model, status, time, and the first "
            "outputs or the error. Filter by state, model or model_prefix; page through with page."
        ),
        annotations=_READING,
    )
    async def list_predictions(
        ctx: Context,
        page: Annotated[int, Field(ge=1, le=10000, description="Page number, from 1.")] = 1,
        page_size: Annotated[int, Field(ge=1, le=50, description="Predictions per page.")] = 10,
        state: Annotated[
            Literal["running", "succeeded", "failed"] | None,
            Field(description="Only predictions in this state."),
        ] = None,
        model: Annotated[str | None, Field(max_length=200, pattern=MODEL_ID, description="Only this model.")] = None,
        model_prefix: Annotated[
            str | None,
            Field(
                max_length=200,
                pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
                description="Only models whose id starts with this, e.g. 'black-forest-labs/'.",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, HistoryResult]:
        app = _state(ctx)
        with _as_tool_errors():
            history = await app.atlas.list_predictions(
                page=page, size=page_size, model=model, model_prefix=model_prefix, state=state
            )
            history, hidden = await only_owned(app, history)
        listed = history_result(history)
        if hidden:
            note = "Only predictions made with your team token are listed; others on this page were left out."
            listed.content.insert(0, TextContent(text=note))
        return listed


def _haystack(entry: ModelEntry) -> str:
    return " ".join([entry.model, entry.display_name or "", entry.profile or "", *entry.tags]).lower()
