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
# What a model's outputs are: the default media of its type, a 3D file in the requested format, Seed3D's ZIP,
# songs (MP3), or text in outputs[0] (speech-to-text, lyrics) that must never be fetched.
Answers = Literal["media", "3d", "3d-zip", "mp3", "speech-text", "lyrics"]

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
    answers: Answers = "media"
    outputs_per_run: int = 1  # files each run makes (songs come in twos) unless num_images says otherwise

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

    def extension_for(self, params: dict[str, Any]) -> str:
        """The extension of this model's files for a request (a 3D model's follows the `format` asked for)."""
        if self.answers == "3d":
            return str(params.get("format") or "glb").lower()
        if self.answers == "3d-zip":
            return "zip"
        if self.answers == "mp3":
            return "mp3"
        return self.output_extension

    @property
    def answers_text(self) -> bool:
        return self.transcribes or self.answers in ("speech-text", "lyrics")

    @property
    def document(self) -> dict[str, Any]:
        """The schema document, as the fixture has it (a fresh copy)."""
        return _document(self.schema_file)

    @property
    def input_schema(self) -> dict[str, Any]:
        """``components.schemas.Input`` of the document (shared: do not change it)."""
        return _input(self.schema_file)

    def answers_as(self, override: str | Profile | None) -> Profile:
        return override if isinstance(override, Profile) else profile_named(override or self.profile)


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

# --- The families beyond pictures (issue 21): 3D models (listed as Image), songs, speech-to-text and lyrics that
# answer text in outputs[0], and an image model that takes no prompt. Each is a stand-in whose shape the
# reference (atlas-api.md, "Model families and live answer shapes") gives; tests/fixtures/atlas/README.md says which.
FAMILY_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="tencent/hunyuan3d-v2.1/image-to-3d",
        display_name="Hunyuan3D 2.1 Image-to-3D",
        type="Image",
        profile_text="Turns one picture into a textured 3D model: GLB, OBJ, USDZ, FBX or STL.",
        tags=("image-to-3d", "3d"),
        categories=("Image to 3D",),
        base_price="0.16",
        origin_price="0.2",
        unit="model",
        schema_file="image-to-3d.hunyuan3d-v2.1.json",
        profile="signed-urls",
        answers="3d",
    ),
    ModelSpec(
        id="bytedance/seed3d-2.0/image-to-3d",
        display_name="Seed3D 2.0 Image-to-3D",
        type="Image",
        profile_text="ByteDance's image-to-3D model; answers one ZIP with the model and its textures.",
        tags=("image-to-3d", "3d", "seed3d"),
        categories=("Image to 3D",),
        base_price="0.35",
        origin_price="0.35",
        unit="model",
        schema_file="image-to-3d.seed3d-2.0.json",
        profile="extensionless",
        answers="3d-zip",
    ),
    ModelSpec(
        id="atlascloud/real-esrgan/upscale",
        display_name="Real-ESRGAN Upscale",
        type="Image",
        profile_text="Upscales an image 2x or 4x; takes no prompt.",
        tags=("upscale", "image-to-image"),
        categories=("Image to Image",),
        base_price="0.002",
        origin_price="0.002",
        unit="image",
        schema_file="no-prompt.real-esrgan-upscale.json",
        profile="plain",
    ),
    ModelSpec(
        id="bytedance/seed-asr-2.0/speech-to-text",
        display_name="Seed ASR 2.0",
        type="Audio",
        profile_text="Speech to text, priced per minute of audio: the transcript is the output itself.",
        tags=("speech-to-text", "asr"),
        categories=("Audio to Text",),
        base_price="0.009",
        origin_price="0.009",
        unit="minute",
        schema_file="speech-to-text.seed-asr-2.0.json",
        profile="plain",
        answers="speech-text",
    ),
    ModelSpec(
        id="minimax/lyrics-generation",
        display_name="MiniMax Lyrics Generation",
        type="Audio",
        profile_text="Writes a song's lyrics from a theme: the lyrics are the output itself.",
        tags=("lyrics", "text-generation"),
        categories=("Text to Lyrics",),
        base_price="0.001",
        origin_price="0.001",
        unit="request",
        schema_file="lyrics.minimax-lyrics.json",
        profile="plain",
        answers="lyrics",
    ),
    ModelSpec(
        id="minimax/music-2.6",
        display_name="MiniMax Music 2.6",
        type="Audio",
        profile_text="Songs from a prompt and lyrics; two takes a run, as MP3.",
        tags=("text-to-music", "music"),
        categories=("Text to Music",),
        base_price="0.03",
        origin_price="0.035",
        unit="song",
        schema_file="music.minimax-music-2.6.json",
        profile="signed-urls",
        answers="mp3",
        outputs_per_run=2,
    ),
)
MODELS = MODELS + FAMILY_MODELS

_BY_ID = {model.id: model for model in MODELS}


# The live catalogue's families, in proportion (2026-08-22: Video ~177, Image ~118 with 3D, LLM ~65, Audio ~17),
# and the served model each padding entry copies its shape, prices and schema link from.
_FAMILY_SHARES: tuple[tuple[str, int], ...] = (
    ("alibaba/wan-2.2/t2v-480p", 177),
    ("black-forest-labs/flux-schnell", 118),
    ("deepseek-ai/deepseek-v3.2", 65),
    ("minimax/speech-2.5-hd", 17),
)


# --- Live catalogue shapes (issue 21, account and catalogue): listed as recorded, not run -----------------------
# A schema-less LLM entry (contextLength, maxCompletionTokens, coreStrengths... and no `schema`), a model priced
# only per output image, and one priced per request: no `unit`, `discount` beside `actual`. The two image entries
# link FLUX [schnell]'s schema, so a dry run can check and price them.
_LIVE_SHAPES = (
    "catalogue-entry.text-no-schema.json",
    "catalogue-entry.output-image-price.json",
    "catalogue-entry.request-price.json",
)
_SCHEMA_TEMPLATE = "black-forest-labs/flux-schnell"


def _live_shapes(origin: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for name in _LIVE_SHAPES:
        entry: dict[str, Any] = load(name)
        if "schema" in entry:
            entry["schema"] = origin + schema_path(_BY_ID[_SCHEMA_TEMPLATE])
        entries.append(entry)
    return entries


# --- end of the live catalogue shapes ---------------------------------------------------------------------------


def catalogue_listing(origin: str, size: int = 0, *, live_shapes: bool = False) -> list[dict[str, Any]]:
    """Every entry of ``GET /api/v1/models``: the served models, the recorded live shapes if asked for, then padding
    up to ``size`` entries (listed only: a padding model cannot be run; its schema link is its template's)."""
    entries = [catalogue_entry(model, origin) for model in MODELS] + (_live_shapes(origin) if live_shapes else [])
    missing = max(size - len(entries), 0)
    weight = sum(share for _, share in _FAMILY_SHARES)
    counts = [missing * share // weight for _, share in _FAMILY_SHARES]
    counts[0] += missing - sum(counts)
    for (template_id, _), count in zip(_FAMILY_SHARES, counts, strict=True):
        template = _BY_ID[template_id]
        for n in range(1, count + 1):
            entry = catalogue_entry(template, origin)
            family = template.type.lower()
            entry |= {
                "model": f"atlas-catalogue/{family}-{n:03d}",
                "displayName": f"{template.display_name} variant {n}",
                "organization": "atlas-catalogue",
            }
            entries.append(entry)
    return entries


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
