"""The emulator's model catalogue: what each model is called, costs, accepts and how it answers.

A model's parameters are its schema document, a fixture file in ``tests/fixtures/atlas/schemas/`` written in
one of the shapes the live service uses; the emulator serves that document and validates submits against
it, so the listing, the schema and the validation can never disagree. How the model answers (status words,
synchronous answers, warm-up 404s, inline outputs...) is its profile.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from atlas_mcp.emulator.fixtures import load
from atlas_mcp.emulator.profiles import Profile, profile_named

ModelType = Literal["Image", "Video", "Audio", "Text"]

# Pixel bounds for a free-form `size` ("W*H") and for the `width`/`height` keys some samples send.
MIN_SIDE = 256
MAX_SIDE = 2048
DEFAULT_SIZE = "1024*1024"

_ENDPOINTS: dict[str, str] = {
    "Image": "/api/v1/model/generateImage",
    "Video": "/api/v1/model/generateVideo",
    "Audio": "/api/v1/model/generateAudio",
}
_OUTPUT_EXTENSIONS: dict[str, str] = {"Image": "png", "Video": "webp", "Audio": "wav"}


@dataclass(frozen=True)
class ModelSpec:
    """A catalogue entry, the fixture that holds its schema, and the profile it answers in."""

    id: str
    display_name: str
    type: ModelType
    profile_text: str  # the catalogue's "profile": a sentence about the model
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    base_price: str  # dollars per `unit`, a string as Atlas sends it
    origin_price: str
    unit: str
    schema_file: str  # under tests/fixtures/atlas/schemas/
    profile: str  # see atlas_mcp.emulator.profiles
    display_console: bool = True
    # LLMs: dollars per million tokens, as strings (see catalogue-entry.text.json), and the paths they speak
    input_price: str | None = None
    output_price: str | None = None
    supported_protocols: tuple[str, ...] = ()
    # Answers with a transcript (text and ``stt_result``, as answers/prediction.completed.transcript.json) instead of
    # files: a speech-to-text model.
    transcribes: bool = False

    @property
    def organization(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def price(self) -> float:
        return float(self.base_price)

    @property
    def endpoint(self) -> str | None:
        """The submit path for this model, or None for models served elsewhere (LLMs)."""
        return _ENDPOINTS.get(self.type)

    @property
    def output_extension(self) -> str:
        return _OUTPUT_EXTENSIONS.get(self.type, "bin")

    @property
    def document(self) -> dict[str, Any]:
        """The schema document, as the fixture has it (a fresh copy)."""
        return _document(self.schema_file)

    @property
    def input_schema(self) -> dict[str, Any]:
        """``components.schemas.Input`` of the document (shared: do not change it)."""
        return _input(self.schema_file)

    def answers_as(self, override: str | None) -> Profile:
        return profile_named(override or self.profile)


@functools.cache
def _input(schema_file: str) -> dict[str, Any]:
    schema: dict[str, Any] = _document(schema_file)["components"]["schemas"]["Input"]
    return schema


def _document(schema_file: str) -> dict[str, Any]:
    document: dict[str, Any] = load(f"schemas/{schema_file}")
    return document


_FLUX_TAGS = ("text-to-image", "image-to-image", "flux")

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="black-forest-labs/flux-schnell",
        display_name="FLUX.1 [schnell]",
        type="Image",
        profile_text="FLUX.1 [schnell] is the fastest FLUX text-to-image model, a 12B rectified flow transformer.",
        tags=_FLUX_TAGS,
        categories=("Text to Image",),
        base_price="0.003",
        origin_price="0.003",
        unit="image",
        schema_file="model-with-default.flux-schnell.json",
        profile="signed-urls",
    ),
    ModelSpec(
        id="black-forest-labs/flux-dev",
        display_name="FLUX.1 [dev]",
        type="Image",
        profile_text="FLUX.1 [dev] trades speed for detail, with tunable steps and guidance.",
        tags=_FLUX_TAGS,
        categories=("Text to Image",),
        base_price="0.012",
        origin_price="0.025",
        unit="image",
        schema_file="model-with-default.flux-dev.json",
        profile="warm-up-404",
    ),
    ModelSpec(
        id="black-forest-labs/flux-dev-legacy",
        display_name="FLUX.1 [dev] (legacy)",
        type="Image",
        profile_text="Earlier FLUX.1 [dev] deployment, kept for existing integrations.",
        tags=_FLUX_TAGS,
        categories=("Text to Image",),
        base_price="0.02",
        origin_price="0.025",
        unit="image",
        schema_file="no-model.flux-dev-legacy.json",
        profile="plain",
        display_console=False,
    ),
    ModelSpec(
        id="openai/gpt-image-2/text-to-image",
        display_name="GPT Image 2 Text-to-Image",
        type="Image",
        profile_text="OpenAI's image model, text to image.",
        tags=("text-to-image", "openai"),
        categories=("Text to Image",),
        base_price="0.04",
        origin_price="0.04",
        unit="image",
        schema_file="model-required-absent.gpt-image-2.json",
        profile="queued-starting",
    ),
    ModelSpec(
        id="bytedance/seedream-v4",
        display_name="Seedream 4.0",
        type="Image",
        profile_text="ByteDance's image model; its schema writes types as lists and unions.",
        tags=("text-to-image", "image-to-image", "seedream"),
        categories=("Text to Image",),
        base_price="0.027",
        origin_price="0.03",
        unit="image",
        schema_file="type-lists-and-unions.seedream-v4.json",
        profile="base64-outputs",
    ),
    ModelSpec(
        id="google/nano-banana/text-to-image",
        display_name="Nano Banana Text-to-Image",
        type="Image",
        profile_text="Google's image model; answers the submit with the finished images.",
        tags=("text-to-image", "google"),
        categories=("Text to Image",),
        base_price="0.038",
        origin_price="0.039",
        unit="image",
        schema_file="model-with-default.nano-banana.json",
        profile="synchronous",
    ),
    ModelSpec(
        id="alibaba/wan-2.2/t2v-480p",
        display_name="Wan 2.2 Text-to-Video 480p",
        type="Video",
        profile_text="Wan 2.2 turns a text prompt into a short 480p video clip.",
        tags=("text-to-video", "wan"),
        categories=("Text to Video",),
        base_price="0.15",
        origin_price="0.2",
        unit="video",
        schema_file="model-required-absent.wan-2.2-t2v-480p.json",
        profile="warm-up-400",
    ),
    ModelSpec(
        id="minimax/speech-2.5-hd",
        display_name="MiniMax Speech 2.5 HD",
        type="Audio",
        profile_text="High-definition text-to-speech with many voices.",
        tags=("text-to-speech", "minimax"),
        categories=("Text to Audio",),
        base_price="0.05",
        origin_price="0.05",
        unit="request",
        schema_file="model-with-default.speech-2.5-hd.json",
        profile="data-uri-outputs",
    ),
    ModelSpec(
        id="openai/whisper-large-v3",
        display_name="Whisper Large v3",
        type="Audio",
        profile_text="Speech to text: transcribes an audio file, with timed segments.",
        tags=("speech-to-text", "transcription", "whisper"),
        categories=("Audio to Text",),
        base_price="0.006",
        origin_price="0.006",
        unit="request",
        schema_file="model-with-default.whisper-large-v3.json",
        profile="plain",
        transcribes=True,
    ),
    ModelSpec(
        id="deepseek-ai/deepseek-v3.2",
        display_name="DeepSeek V3.2",
        type="Text",
        profile_text="General-purpose chat model, served by the OpenAI-compatible /v1 API.",
        tags=("llm", "chat"),
        categories=("LLM",),
        base_price="0",
        origin_price="0",
        unit="1M tokens",
        schema_file="chat.deepseek-v3.2.json",
        profile="plain",
        input_price="0.28",
        output_price="0.42",
        supported_protocols=("/chat/completions", "/responses", "/messages"),
    ),
)

_BY_ID = {model.id: model for model in MODELS}


def find_model(model_id: str) -> ModelSpec | None:
    return _BY_ID.get(model_id)


def schema_path(model: ModelSpec) -> str:
    return f"/emulator-storage/schemas/{model.id}.json"


def catalogue_entry(model: ModelSpec, origin: str) -> dict[str, Any]:
    """The model as `GET /api/v1/models` lists it: the keys of ``catalogue-entry.json``, prices as strings
    (an LLM's as ``catalogue-entry.text.json`` has them: per-token prices and its protocols)."""
    if model.input_price is not None and model.output_price is not None:
        per_token = {"input_price": model.input_price, "output_price": model.output_price, "discount": "1"}
        return {
            **_entry(model, origin),
            "price": {"actual": per_token, "origin": dict(per_token)},
            "supported_protocols": list(model.supported_protocols),
            "display_console": model.display_console,
        }
    return _entry(model, origin)


def _entry(model: ModelSpec, origin: str) -> dict[str, Any]:
    return {
        "model": model.id,
        "displayName": model.display_name,
        "type": model.type,
        "profile": model.profile_text,
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


def schema_document(model: ModelSpec, origin: str) -> dict[str, Any]:
    """The model's OpenAPI document: its fixture, with ``servers`` pointing here rather than at Atlas."""
    document = model.document
    document["servers"] = [{"url": origin}]
    return document
