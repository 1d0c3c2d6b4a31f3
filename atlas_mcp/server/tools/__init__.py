"""The tools, one module per family, and the one table that registers them in the order clients list them.

Each module's ``register_*`` functions add one tool each (title, icons, annotations, a description that may
name the settings' bounds); the bodies and the shared kit live at module level (:mod:`atlas_mcp.server.toolkit`).
The order below is the order of ``tools/list``, which tests/snapshots pins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.tools.account import register_get_balance, register_get_costs, register_get_usage
from atlas_mcp.server.tools.catalogue import register_get_model_info, register_list_models
from atlas_mcp.server.tools.chat import register_chat
from atlas_mcp.server.tools.generate import register_generate_audio, register_generate_image, register_generate_video
from atlas_mcp.server.tools.predictions import register_check_prediction, register_list_predictions
from atlas_mcp.server.tools.quick import register_quick_generate
from atlas_mcp.server.tools.transcribe import register_transcribe_audio
from atlas_mcp.server.tools.upload import register_upload_media

if TYPE_CHECKING:
    from mcp.server.mcpserver.tools import Tool

    from atlas_mcp.config import Settings

__all__ = ["INSTRUCTIONS", "REGISTRY", "built_tools"]

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


REGISTRY: tuple[Callable[[ToolShelf, Settings], None], ...] = (
    register_generate_image,
    register_generate_video,
    register_generate_audio,
    register_check_prediction,
    register_upload_media,
    register_list_models,
    register_get_model_info,
    register_list_predictions,
    register_quick_generate,
    register_transcribe_audio,
    register_chat,
    register_get_balance,
    register_get_usage,
    register_get_costs,
)


def built_tools(settings: Settings) -> list[Tool]:
    """Every tool, in order; ``settings`` supplies the defaults and bounds shown in their schemas."""
    shelf = ToolShelf()
    for register in REGISTRY:
        register(shelf, settings)
    return shelf.tools
