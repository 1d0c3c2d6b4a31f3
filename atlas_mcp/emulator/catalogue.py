"""The emulator's model catalogue: what each model is called, costs, accepts and returns.

Everything the emulator knows about a model lives here, so the catalogue listing
(`GET /api/v1/models`), the per-model OpenAPI schema documents and the request
validation can never disagree with one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ModelType = Literal["Image", "Video", "Audio", "Text"]
ParamType = Literal["string", "integer", "number", "boolean"]

# Pixel bounds for `size` ("W*H") and for the `width`/`height` keys some samples send.
MIN_SIDE = 256
MAX_SIDE = 2048
DEFAULT_SIZE = "1024*1024"


@dataclass(frozen=True)
class Param:
    """One input property of a model, rendered into its schema and enforced on submit."""

    name: str
    type: ParamType
    description: str
    default: Any = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    max_length: int | None = None
    # "size": a "W*H" string with each side within MIN_SIDE..MAX_SIDE; "uri": a URL of a file.
    format: Literal["size", "uri"] | None = None

    def to_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.default is not None:
            schema["default"] = self.default
        if self.enum is not None:
            schema["enum"] = list(self.enum)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.format == "uri":
            schema["format"] = "uri"
        return schema


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue entry plus what the emulator needs to run a prediction for it."""

    id: str
    display_name: str
    type: ModelType
    profile: str
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    base_price: str  # dollars per `unit`, a string as Atlas sends it
    origin_price: str
    unit: str
    params: tuple[Param, ...]
    display_console: bool = True
    output_extension: str = "png"

    @property
    def organization(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def price(self) -> float:
        return float(self.base_price)

    @property
    def endpoint(self) -> str | None:
        """The submit path for this model, or None for models served elsewhere (LLMs)."""
        return {
            "Image": "/api/v1/model/generateImage",
            "Video": "/api/v1/model/generateVideo",
            "Audio": "/api/v1/model/generateAudio",
        }.get(self.type)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _prompt(description: str = "Text description of the image to generate.") -> Param:
    return Param("prompt", "string", description, required=True, max_length=2000)


def _seed() -> Param:
    return Param(
        "seed",
        "integer",
        "Random seed; -1 picks one at random. The same seed and prompt give the same result.",
        default=-1,
        minimum=-1,
        maximum=2147483647,
    )


_FLUX_COMMON: tuple[Param, ...] = (
    _prompt(),
    Param(
        "size",
        "string",
        f"Output size as 'width*height' in pixels, each side {MIN_SIDE}-{MAX_SIDE}.",
        default=DEFAULT_SIZE,
        format="size",
    ),
    Param("num_images", "integer", "How many images to generate.", default=1, minimum=1, maximum=4),
    _seed(),
    Param("image", "string", "URL of an input image for image-to-image generation.", format="uri"),
    Param(
        "strength",
        "number",
        "How far image-to-image may move away from `image` (0 keeps it, 1 ignores it).",
        default=0.8,
        minimum=0,
        maximum=1,
    ),
    Param("mask_image", "string", "URL of a mask: white areas are repainted.", format="uri"),
    Param(
        "enable_sync_mode",
        "boolean",
        "Wait for the result and return it in the submit response.",
        default=False,
    ),
    Param(
        "enable_base64_output",
        "boolean",
        "Return outputs as base64 strings instead of URLs.",
        default=False,
    ),
    Param("enable_safety_checker", "boolean", "Screen outputs for unsafe content.", default=True),
)

_FLUX_DEV_EXTRA: tuple[Param, ...] = (
    Param(
        "num_inference_steps",
        "integer",
        "Denoising steps: more is slower and finer.",
        default=28,
        minimum=1,
        maximum=50,
    ),
    Param(
        "guidance_scale",
        "number",
        "How closely to follow the prompt.",
        default=3.5,
        minimum=1,
        maximum=20,
    ),
)

_FLUX_TAGS = ("text-to-image", "image-to-image", "flux")

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="black-forest-labs/flux-schnell",
        display_name="FLUX.1 [schnell]",
        type="Image",
        profile="FLUX.1 [schnell] is the fastest FLUX text-to-image model, a 12B rectified flow transformer.",
        tags=_FLUX_TAGS,
        categories=("Text to Image",),
        base_price="0.003",
        origin_price="0.003",
        unit="image",
        params=_FLUX_COMMON,
    ),
    ModelSpec(
        id="black-forest-labs/flux-dev",
        display_name="FLUX.1 [dev]",
        type="Image",
        profile="FLUX.1 [dev] trades speed for detail, with tunable steps and guidance.",
        tags=_FLUX_TAGS,
        categories=("Text to Image",),
        base_price="0.012",
        origin_price="0.025",
        unit="image",
        params=(*_FLUX_COMMON[:4], *_FLUX_DEV_EXTRA, *_FLUX_COMMON[4:]),
    ),
    ModelSpec(
        id="black-forest-labs/flux-dev-legacy",
        display_name="FLUX.1 [dev] (legacy)",
        type="Image",
        profile="Earlier FLUX.1 [dev] deployment, kept for existing integrations.",
        tags=_FLUX_TAGS,
        categories=("Text to Image",),
        base_price="0.02",
        origin_price="0.025",
        unit="image",
        params=(*_FLUX_COMMON[:4], *_FLUX_DEV_EXTRA, *_FLUX_COMMON[4:]),
        display_console=False,
    ),
    ModelSpec(
        id="alibaba/wan-2.2/t2v-480p",
        display_name="Wan 2.2 Text-to-Video 480p",
        type="Video",
        profile="Wan 2.2 turns a text prompt into a short 480p video clip.",
        tags=("text-to-video", "wan"),
        categories=("Text to Video",),
        base_price="0.15",
        origin_price="0.2",
        unit="video",
        params=(
            _prompt("Text description of the video to generate."),
            Param("negative_prompt", "string", "What the video should not show."),
            Param("duration", "integer", "Clip length in seconds.", default=5, enum=(5, 8)),
            Param(
                "size",
                "string",
                "Frame size as 'width*height'.",
                default="832*480",
                enum=("832*480", "480*832"),
            ),
            _seed(),
            Param(
                "enable_sync_mode",
                "boolean",
                "Wait for the result and return it in the submit response.",
                default=False,
            ),
        ),
        output_extension="webp",
    ),
    ModelSpec(
        id="minimax/speech-2.5-hd",
        display_name="MiniMax Speech 2.5 HD",
        type="Audio",
        profile="High-definition text-to-speech with many voices.",
        tags=("text-to-speech", "minimax"),
        categories=("Text to Audio",),
        base_price="0.05",
        origin_price="0.05",
        unit="request",
        params=(
            Param("text", "string", "The text to speak.", required=True, max_length=5000),
            Param(
                "voice_id",
                "string",
                "Which voice speaks.",
                default="Wise_Woman",
                enum=("Wise_Woman", "Friendly_Person", "Deep_Voice_Man", "Calm_Woman"),
            ),
            Param("speed", "number", "Speaking rate.", default=1.0, minimum=0.5, maximum=2.0),
            Param(
                "enable_sync_mode",
                "boolean",
                "Wait for the result and return it in the submit response.",
                default=False,
            ),
        ),
        output_extension="wav",
    ),
    ModelSpec(
        id="deepseek-ai/deepseek-v3.2",
        display_name="DeepSeek V3.2",
        type="Text",
        profile="General-purpose chat model, served by the OpenAI-compatible /v1 API.",
        tags=("llm", "chat"),
        categories=("LLM",),
        base_price="0.28",
        origin_price="0.28",
        unit="1M tokens",
        params=(),
    ),
)

_BY_ID = {model.id: model for model in MODELS}


def find_model(model_id: str) -> ModelSpec | None:
    return _BY_ID.get(model_id)


def schema_path(model: ModelSpec) -> str:
    return f"/emulator-storage/schemas/{model.id}.json"


def catalogue_entry(model: ModelSpec, origin: str) -> dict[str, Any]:
    """The model as `GET /api/v1/models` lists it (prices are strings, as on Atlas)."""
    return {
        "model": model.id,
        "displayName": model.display_name,
        "type": model.type,
        "profile": model.profile,
        "organization": model.organization,
        "tags": list(model.tags),
        "categories": list(model.categories),
        "schema": origin + schema_path(model),
        "price": {
            "actual": {"base_price": model.base_price, "unit": model.unit, "discount": "1"},
            "origin": {"base_price": model.origin_price, "unit": model.unit, "discount": "1"},
        },
        "display_console": model.display_console,
    }


def _output_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "Prediction id (32 hex characters)."},
            "model": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["created", "processing", "completed", "succeeded", "failed"],
            },
            "outputs": {"type": "array", "items": {"type": "string", "format": "uri"}},
            "urls": {"type": "object", "properties": {"get": {"type": "string", "format": "uri"}}},
            "has_nsfw_contents": {"type": "array", "items": {"type": "boolean"}},
            "metrics": {"type": "object", "properties": {"predict_time": {"type": "number"}}},
            "price": {"type": "number"},
            "created_at": {"type": "string", "format": "date-time"},
            "completed_at": {"type": "string", "format": "date-time"},
            "error": {"type": "string"},
        },
    }


def schema_document(model: ModelSpec) -> dict[str, Any]:
    """The model's OpenAPI 3 document, whose `components.schemas.Input` clients validate against."""
    input_schema: dict[str, Any] = {
        "type": "object",
        "required": [p.name for p in model.params if p.required],
        "properties": {p.name: p.to_schema() for p in model.params},
        "x-order-properties": [p.name for p in model.params],
    }
    paths: dict[str, Any] = {}
    if model.endpoint is not None:
        paths[model.endpoint] = {
            "post": {
                "summary": f"Generate with {model.display_name}",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Input"}}},
                },
                "responses": {
                    "200": {
                        "description": "The prediction",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Output"}}},
                    }
                },
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": model.display_name, "description": model.profile, "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": {"Input": input_schema, "Output": _output_schema()}},
    }
