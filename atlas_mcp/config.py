"""Settings, read from the environment once, when ``main()`` runs — never at import.

Every setting has one environment variable, a default a newcomer can live with, and a check that fails
at start with one line naming the variable. The API key is a :class:`pydantic.SecretStr`: its ``repr``
and ``str`` are masked, so printing the settings cannot leak it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from atlas_mcp.addresses import is_loopback_host
from atlas_mcp.errors import ConfigError
from atlas_mcp.state import parse_state_url

DEFAULT_BASE_URL = "https://api.atlascloud.ai"
DEFAULT_MODEL = "black-forest-labs/flux-schnell"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

_T = TypeVar("_T")


class Settings(BaseModel):
    """Everything configurable, with the environment variable that sets it in each description."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr | None = Field(default=None, description="ATLASCLOUD_API_KEY: your Atlas Cloud API key.")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="ATLASCLOUD_BASE_URL: the Atlas origin.")
    http_timeout: float = Field(
        default=30.0, gt=0, le=600, allow_inf_nan=False, description="ATLASCLOUD_HTTP_TIMEOUT: seconds per request."
    )
    wait_seconds: float = Field(
        default=45.0,
        ge=0,
        le=600,
        allow_inf_nan=False,
        description="ATLASCLOUD_WAIT_SECONDS: longest a tool call waits for a prediction.",
    )
    output_dir: Path | None = Field(
        default=None, description="ATLASCLOUD_OUTPUT_DIR: where full-size outputs are saved."
    )
    upload_roots: tuple[Path, ...] = Field(
        default=(), description="ATLASCLOUD_UPLOAD_ROOTS: folders upload_media may read from (os.pathsep-separated)."
    )
    max_upload_mb: float = Field(
        default=256.0,
        gt=0,
        le=10240,
        allow_inf_nan=False,
        description="ATLASCLOUD_MAX_UPLOAD_MB: largest file upload_media sends (at most 10 GiB).",
    )
    preview_max_side: int = Field(
        default=1024, ge=64, le=4096, description="ATLASCLOUD_PREVIEW_MAX_SIDE: longest side of an inline preview."
    )
    preview_budget_kb: int = Field(
        default=600,
        ge=0,
        le=900,
        description="ATLASCLOUD_PREVIEW_BUDGET_KB: base64 bytes all previews of a result may use.",
    )
    default_model: str = Field(
        default=DEFAULT_MODEL, description="ATLASCLOUD_DEFAULT_MODEL: model used when none is given."
    )
    state_url: SecretStr | None = Field(
        default=None,
        description="ATLASCLOUD_STATE_URL: where budgets, repeats and confirmations live: sqlite:////path.db "
        "(default: state.db in the user's data folder) or redis://host:port/0. Secret: it may hold a password.",
    )
    budget_usd: float | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="ATLASCLOUD_BUDGET_USD: most that generations may cost per rolling 24 h, per API key "
        "(unset: no budget).",
    )
    budget_account_usd: float | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="ATLASCLOUD_BUDGET_ACCOUNT_USD: most that generations paid with the server's own "
        "ATLASCLOUD_API_KEY may cost per rolling 24 h, all callers together (HTTP team tokens included; unset: no "
        "account-wide cap).",
    )
    confirm_above_usd: float | None = Field(
        default=0.25,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="ATLASCLOUD_CONFIRM_ABOVE_USD: ask the user before a generation quoted above this ('0' asks every "
        "time, 'off' never asks).",
    )
    repeat_window_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="ATLASCLOUD_REPEAT_WINDOW_S: an identical generation within this many seconds returns the "
        "earlier one instead of paying again (0: off).",
    )
    http_allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="ATLASCLOUD_HTTP_ALLOWED_HOSTS: Host header values the HTTP server answers (comma-separated, "
        "'name:*' for any port); unset: loopback names only.",
    )
    http_tokens: tuple[SecretStr, ...] = Field(
        default=(),
        description="ATLASCLOUD_HTTP_TOKENS: bearer tokens clients must present (comma-separated); set, the "
        "server's ATLASCLOUD_API_KEY pays for all of them. Unset: each request brings its own Atlas key.",
    )
    http_share_account_usage: bool = Field(
        default=False,
        description="ATLASCLOUD_HTTP_SHARE_ACCOUNT_USAGE: with ATLASCLOUD_HTTP_TOKENS, '1' lets every team token "
        "read the whole account's usage and costs (get_usage, get_costs); unset, those tools are refused to them.",
    )
    http_public_url: str | None = Field(
        default=None,
        description="ATLASCLOUD_HTTP_PUBLIC_URL: the /mcp URL clients use (behind a proxy); in OAuth mode the "
        "resource its tokens are issued for, and the issuer's origin.",
    )
    oauth_secret: SecretStr | None = Field(
        default=None,
        description="ATLASCLOUD_OAUTH_SECRET: 32 random bytes in base64 (openssl rand -base64 32) that encrypt the "
        "Atlas keys users paste in OAuth mode (serve --transport http --auth oauth); every replica needs the same.",
    )
    http_state_keys: tuple[SecretStr, ...] = Field(
        default=(),
        description="ATLASCLOUD_HTTP_STATE_KEYS: secrets (32+ characters, comma-separated, newest first) that seal "
        "the state a 2026-era call carries between rounds; every replica needs the same. Unset: one per process.",
    )
    http_max_body_mb: float = Field(
        default=4.0,
        gt=0,
        le=1024,
        allow_inf_nan=False,
        description="ATLASCLOUD_HTTP_MAX_BODY_MB: largest request body the HTTP server reads.",
    )
    http_body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="ATLASCLOUD_HTTP_BODY_TIMEOUT: seconds a request body may take to arrive, once reading it "
        "starts (then 408).",
    )
    log_level: LogLevel = Field(
        default="INFO", description="ATLASCLOUD_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR (stderr)."
    )

    @property
    def wait_is_set(self) -> bool:
        """Whether ATLASCLOUD_WAIT_SECONDS was given: then it is every client's wait bound, and the per-client
        table (atlas_mcp.server.clients) is not used."""
        return "wait_seconds" in self.model_fields_set

    @property
    def http_max_body_bytes(self) -> int:
        return int(self.http_max_body_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from ``environ`` (default ``os.environ``); a bad value raises :class:`ConfigError`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}

        def read(name: str, field: str, parse: Callable[[str], _T]) -> None:
            raw = env.get(name, "").strip()
            if not raw:
                return
            try:
                values[field] = parse(raw)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{name}: {exc}") from None

        read("ATLASCLOUD_API_KEY", "api_key", _parse_key)
        read("ATLASCLOUD_BASE_URL", "base_url", _parse_origin)
        read("ATLASCLOUD_HTTP_TIMEOUT", "http_timeout", _parse_float)
        read("ATLASCLOUD_WAIT_SECONDS", "wait_seconds", _parse_float)
        read("ATLASCLOUD_OUTPUT_DIR", "output_dir", _parse_dir)
        read("ATLASCLOUD_UPLOAD_ROOTS", "upload_roots", _parse_roots)
        read("ATLASCLOUD_MAX_UPLOAD_MB", "max_upload_mb", _parse_float)
        read("ATLASCLOUD_PREVIEW_MAX_SIDE", "preview_max_side", int)
        read("ATLASCLOUD_PREVIEW_BUDGET_KB", "preview_budget_kb", int)
        read("ATLASCLOUD_DEFAULT_MODEL", "default_model", str)
        read("ATLASCLOUD_STATE_URL", "state_url", lambda raw: SecretStr(parse_state_url(raw)))
        read("ATLASCLOUD_BUDGET_USD", "budget_usd", _parse_float)
        read("ATLASCLOUD_BUDGET_ACCOUNT_USD", "budget_account_usd", _parse_float)
        read("ATLASCLOUD_CONFIRM_ABOVE_USD", "confirm_above_usd", _parse_threshold)
        read("ATLASCLOUD_REPEAT_WINDOW_S", "repeat_window_s", _parse_float)
        read("ATLASCLOUD_HTTP_ALLOWED_HOSTS", "http_allowed_hosts", _parse_hosts)
        read("ATLASCLOUD_HTTP_TOKENS", "http_tokens", _parse_tokens)
        read("ATLASCLOUD_HTTP_SHARE_ACCOUNT_USAGE", "http_share_account_usage", _parse_switch)
        read("ATLASCLOUD_HTTP_PUBLIC_URL", "http_public_url", _parse_public_url)
        read("ATLASCLOUD_HTTP_STATE_KEYS", "http_state_keys", _parse_state_keys)
        read("ATLASCLOUD_OAUTH_SECRET", "oauth_secret", _parse_oauth_secret)
        read("ATLASCLOUD_HTTP_MAX_BODY_MB", "http_max_body_mb", _parse_float)
        read("ATLASCLOUD_HTTP_BODY_TIMEOUT", "http_body_timeout", _parse_float)
        read("ATLASCLOUD_LOG_LEVEL", "log_level", str.upper)
        try:
            return cls(**values)
        except ValidationError as exc:  # the range and literal checks of the fields
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            variable = _VARIABLES.get(field, "settings")
            raise ConfigError(f"{variable}: {first['msg']} (got {values.get(field)!r})") from None


_VARIABLES = {
    "http_timeout": "ATLASCLOUD_HTTP_TIMEOUT",
    "wait_seconds": "ATLASCLOUD_WAIT_SECONDS",
    "max_upload_mb": "ATLASCLOUD_MAX_UPLOAD_MB",
    "preview_max_side": "ATLASCLOUD_PREVIEW_MAX_SIDE",
    "preview_budget_kb": "ATLASCLOUD_PREVIEW_BUDGET_KB",
    "log_level": "ATLASCLOUD_LOG_LEVEL",
    "budget_usd": "ATLASCLOUD_BUDGET_USD",
    "budget_account_usd": "ATLASCLOUD_BUDGET_ACCOUNT_USD",
    "confirm_above_usd": "ATLASCLOUD_CONFIRM_ABOVE_USD",
    "repeat_window_s": "ATLASCLOUD_REPEAT_WINDOW_S",
    "http_max_body_mb": "ATLASCLOUD_HTTP_MAX_BODY_MB",
    "http_body_timeout": "ATLASCLOUD_HTTP_BODY_TIMEOUT",
}


def _parse_oauth_secret(raw: str) -> SecretStr:
    """32 random bytes in base64; the value itself is never echoed."""
    try:
        secret = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("expected 32 random bytes in base64 (openssl rand -base64 32)") from None
    if len(secret) != 32:
        raise ValueError(f"expected 32 bytes in base64, got {len(secret)} (openssl rand -base64 32)")
    return SecretStr(raw.strip())


_QUOTES = "'\"`“”‘’«»„‚"


def _parse_key(raw: str) -> SecretStr:
    # Never echo the value: it is a secret, even when it is a wrong one.
    if raw[0] in _QUOTES or raw[-1] in _QUOTES:
        raise ValueError("the key is wrapped in quotes; paste it again without them")
    if any(ch.isspace() for ch in raw) or not raw.isprintable():
        raise ValueError("the key contains spaces or control characters; paste it again without quotes")
    return SecretStr(raw)


def _parse_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None


def _parse_switch(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1 or 0")


def _parse_threshold(raw: str) -> float | None:
    if raw.lower() in ("off", "never", "none"):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"expected a price in dollars such as 0.25, or 'off', got {raw!r}") from None


def _parse_hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    for host in hosts:
        if "/" in host or "@" in host or any(ch.isspace() for ch in host):
            raise ValueError(f"expected host names like mcp.example.com or mcp.example.com:443, got {host!r}")
    return hosts


def _parse_tokens(raw: str) -> tuple[SecretStr, ...]:
    # Never echo a token: they are secrets, even wrong ones.
    tokens = tuple(item.strip() for item in raw.split(",") if item.strip())
    if any(len(token) < 16 or not token.isprintable() or any(ch.isspace() for ch in token) for token in tokens):
        raise ValueError("each token needs 16 or more printable characters and no spaces (e.g. openssl rand -hex 32)")
    return tuple(SecretStr(token) for token in tokens)


def _parse_state_keys(raw: str) -> tuple[SecretStr, ...]:
    keys = tuple(item.strip() for item in raw.split(",") if item.strip())
    if any(len(key) < 32 for key in keys):
        raise ValueError("each key needs 32 or more characters of secret randomness (e.g. openssl rand -hex 32)")
    return tuple(SecretStr(key) for key in keys)


def _parse_public_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ValueError(f"expected the URL clients use, like https://mcp.example.com/mcp, got {raw!r}")
    return raw.rstrip("/")


def _parse_origin(raw: str) -> str:
    parts = urlsplit(raw.rstrip("/"))
    if "@" in parts.netloc:
        # A user:password@ would be sent with every request and shown in logs; the value itself is not echoed.
        raise ValueError("give the origin without a user name or password in it, e.g. https://api.atlascloud.ai")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an origin like https://api.atlascloud.ai, got {raw!r}")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"give only the origin (scheme://host[:port]) without a path, got {raw!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        # The key travels in a header: plain http is only acceptable when it never leaves the machine.
        raise ValueError(f"plain http is only allowed for a loopback emulator; use https for {parts.hostname}")
    return f"{parts.scheme}://{parts.netloc}"


def _parse_dir(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise ValueError(f"expected an absolute path, got {raw!r}")
    return path


def _parse_roots(raw: str) -> tuple[Path, ...]:
    roots = []
    for item in raw.split(os.pathsep):
        if not item.strip():
            continue
        path = _parse_dir(item.strip())
        if not path.is_dir():
            raise ValueError(f"{item!r} is not an existing folder")
        roots.append(path.resolve())
    return tuple(roots)
