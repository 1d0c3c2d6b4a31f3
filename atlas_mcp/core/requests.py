"""A tool's friendly inputs meet a model's schema: the request mapping.

:data:`BuildParams` is how every generating tool describes its inputs (a function of the model's schema, or of
None when the schema could not be read); :class:`ImageRequest` is generate_image's, :func:`media_params` the video
and audio tools'; :class:`Prepared` is a request checked and ready to submit or to show. Nothing here knows MCP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atlas_mcp.atlas import MediaKind, ModelEntry
from atlas_mcp.core.catalog import InputSchema
from atlas_mcp.core.outputs import family_of
from atlas_mcp.errors import InputError
from atlas_mcp.spend.policy import known_price

__all__ = ["BuildParams", "ImageRequest", "Prepared", "media_params"]

BuildParams = Callable[[InputSchema | None], tuple[dict[str, Any], list[str]]]
"""Turns a tool's friendly inputs into body parameters for a model (its schema, or None when unchecked)."""


def media_params(friendly: list[tuple[tuple[str, ...], Any]], params: dict[str, Any] | None) -> BuildParams:
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


@dataclass(frozen=True)
class Prepared:
    """A checked generation request, ready to submit (or to show, for a dry run)."""

    kind: MediaKind
    model: str
    params: dict[str, Any]
    not_used: list[str]
    entry: ModelEntry | None
    schema: InputSchema | None = None

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body as it would be sent."""
        return {"model": self.model, **self.params}

    def count(self) -> str:
        """What the request makes, in words: "1 image", "4 images", "1 video"."""
        number = self.params.get("num_images", 1) if self.kind == "image" else 1
        entry = self.entry
        family = family_of(self.model, entry.type if entry else self.kind, entry.tags if entry else ())
        noun = {"3d": "3D model", "text": "text"}.get(family, self.kind)  # a 3D model is an Image-type model's
        return f"{number} {noun}{'s' if number != 1 else ''}"

    def catalogue_price(self) -> float | None:
        """The list price for this request, or None when unknown. Live entries name no unit, so an image model's
        ``base_price`` counts per image, as ``output_image_price`` always does: 4 images are never priced as 1;
        ``request_price`` is paid once."""
        listed = self.entry.price if self.entry is not None else None
        if listed is None:
            return None
        count = self.params.get("num_images", 1) if self.kind == "image" else 1
        whole = isinstance(count, int) or (isinstance(count, float) and count.is_integer())
        images = int(count) if whole and count >= 1 else 1
        per_image = (listed.unit or "image").lower() == "image" and listed.output_image_price is None
        parts = [
            (listed.base_price, images if per_image else 1),
            (listed.output_image_price, images),
            (listed.request_price, 1),
        ]
        given = [(amount, times) for amount, times in parts if amount is not None]
        if any(amount < 0 for amount, _ in given):
            return None  # a wrong listing: no estimate rather than one that frees budget
        return known_price(round(sum(amount * times for amount, times in given), 6))
