"""atlascloud-mcp: an MCP server for Atlas Cloud image generation, and the async Atlas client under it.

Importing this package does nothing but define names: no environment reads, no clients, no logging.
"""

from atlas_mcp._version import __version__
from atlas_mcp.atlas import AtlasClient, PollPolicy, Prediction, RetryPolicy, UploadedFile
from atlas_mcp.config import Settings
from atlas_mcp.errors import (
    AtlasAPIError,
    AtlasMCPError,
    AuthenticationError,
    BadResponseError,
    ConfigError,
    InputError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PaidResultError,
    PathRefusedError,
    PredictionFailedError,
    PredictionTimeoutError,
    RateLimitedError,
    SchemaUnavailableError,
    UpstreamUnavailableError,
)

__all__ = [
    "AtlasAPIError",
    "AtlasClient",
    "AtlasMCPError",
    "AuthenticationError",
    "BadResponseError",
    "ConfigError",
    "InputError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "NotFoundError",
    "PaidResultError",
    "PathRefusedError",
    "PollPolicy",
    "Prediction",
    "PredictionFailedError",
    "PredictionTimeoutError",
    "RateLimitedError",
    "RetryPolicy",
    "SchemaUnavailableError",
    "Settings",
    "UploadedFile",
    "UpstreamUnavailableError",
    "__version__",
]
