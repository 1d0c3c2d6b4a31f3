"""Everything that speaks HTTP to Atlas Cloud, and nothing of MCP."""

from atlas_mcp.atlas.client import (
    NOT_VISIBLE_YET,
    AtlasClient,
    HistoryState,
    MediaKind,
    PollPolicy,
    RetryPolicy,
    validate_prediction_id,
)
from atlas_mcp.atlas.models import (
    Balance,
    HistoryItem,
    HistoryPage,
    ModelEntry,
    Money,
    Output,
    Prediction,
    Quote,
    Segment,
    Transcript,
    UploadedFile,
)

__all__ = [
    "NOT_VISIBLE_YET",
    "AtlasClient",
    "Balance",
    "HistoryItem",
    "HistoryPage",
    "HistoryState",
    "MediaKind",
    "ModelEntry",
    "Money",
    "Output",
    "PollPolicy",
    "Prediction",
    "Quote",
    "RetryPolicy",
    "Segment",
    "Transcript",
    "UploadedFile",
    "validate_prediction_id",
]
