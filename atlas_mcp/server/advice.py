"""The next step after an error, in this server's tool words.

The Atlas client knows nothing of MCP: its errors say what happened and carry the facts (``situation``,
``prediction_id``, ``named``, see :mod:`atlas_mcp.errors`). Here those facts become what the model should do with
the tools it has, appended to the message when a tool call ends in an error.
"""

from __future__ import annotations

from atlas_mcp.errors import AtlasMCPError

__all__ = ["next_step", "worded"]


def next_step(exc: AtlasMCPError) -> str | None:
    """What to do next, with this server's tools, or None when the message already says all there is."""
    if exc.situation == "maybe_received":
        look = "Look at list_predictions before trying again, so that nothing is paid twice."
        return f"Look for the id it named with check_prediction, if it is a usable one. {look}" if exc.named else look
    if exc.situation == "answer_maybe_billed":
        return "Check get_usage before asking the same again."
    if exc.situation == "still_running" and exc.prediction_id:
        return "Call check_prediction with this id later to get the result, instead of submitting it again."
    if exc.situation == "unknown_id":
        return "Check the id: pass it exactly as a generate tool returned it, or find it with list_predictions."
    return None


def worded(exc: AtlasMCPError) -> str:
    """The error's message, with the next step when there is one."""
    step = next_step(exc)
    return f"{exc} {step}" if step else str(exc)
