"""Everything that speaks HTTP to Atlas Cloud, and nothing of MCP."""

from atlas_mcp.atlas.client import AtlasClient, MediaKind, PollPolicy, RetryPolicy, validate_prediction_id
from atlas_mcp.atlas.models import HistoryItem, HistoryPage, ModelEntry, Prediction, UploadedFile

__all__ = [
    "AtlasClient",
    "HistoryItem",
    "HistoryPage",
    "MediaKind",
    "ModelEntry",
    "PollPolicy",
    "Prediction",
    "RetryPolicy",
    "UploadedFile",
    "validate_prediction_id",
]
