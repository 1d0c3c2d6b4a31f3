"""The tools, one module per family, and the one table that names them in the order clients list them.

Each module's ``register_<tool>`` function adds one tool (title, icons, annotations, a description that may
name the settings' bounds); the bodies and the shared kit live at module level (:mod:`atlas_mcp.server.toolkit`).
The order of :data:`REGISTRY` is the order of ``tools/list``, which tests/snapshots pins.

The server starts with each tool as its card shows it (:mod:`atlas_mcp.server.shelf`): a tool's module is
imported, and the tool built, on its first call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from atlas_mcp.server.shelf import ToolShelf, shelved_tools

if TYPE_CHECKING:
    from mcp.server.mcpserver.tools import Tool

    from atlas_mcp.config import Settings

__all__ = ["INSTRUCTIONS", "REGISTRY", "build_tool", "built_tools", "register_of"]

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


# Each tool and the module (in this package) whose register_<tool> adds it, in the order of tools/list.
REGISTRY: tuple[tuple[str, str], ...] = (
    ("generate_image", "generate"),
    ("generate_video", "generate"),
    ("generate_audio", "generate"),
    ("check_prediction", "predictions"),
    ("upload_media", "upload"),
    ("list_models", "catalogue"),
    ("get_model_info", "catalogue"),
    ("list_predictions", "predictions"),
    ("quick_generate", "quick"),
    ("transcribe_audio", "transcribe"),
    ("chat", "chat"),
    ("get_balance", "account"),
    ("get_usage", "account"),
    ("get_costs", "account"),
)


def built_tools(settings: Settings) -> list[Tool]:
    """Every tool, in order, as its card shows it with ``settings``' defaults and bounds; each is built on its
    first call."""
    return shelved_tools(settings, lambda name, shelf: build_tool(name, settings, shelf))


def build_tool(name: str, settings: Settings, shelf: ToolShelf | None = None) -> Tool:
    """One tool, built for real (its module imported); ``shelf`` to build it with another output schema source."""
    shelf = shelf if shelf is not None else ToolShelf()
    register_of(name)(shelf, settings)
    return shelf.tools[-1]


def register_of(name: str) -> Callable[[ToolShelf, Settings], None]:
    """The function that adds the tool ``name`` to a shelf."""
    module = importlib.import_module(f"{__name__}.{dict(REGISTRY)[name]}")
    register: Callable[[ToolShelf, Settings], None] = getattr(module, f"register_{name}")
    return register
