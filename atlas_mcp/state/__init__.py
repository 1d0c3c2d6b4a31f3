"""Where spend safety's state lives: one small interface (:class:`StateStore`), three backends.

- ``sqlite:///abs/path.db`` (the default: ``state.db`` in the user's data directory) for one machine, shared by
  every server process on it;
- ``redis://host:port/db`` for replicas on several machines;
- :class:`MemoryStore`, for tests.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from atlas_mcp.state.base import MICRO, MemoryStore, Spending, StateStore

__all__ = ["MICRO", "MemoryStore", "Spending", "StateStore", "default_state_path", "open_store", "parse_state_url"]


def default_state_path() -> Path:
    """``state.db`` in the platform's per-user data folder (``~/.local/share/atlascloud-mcp`` on Linux,
    ``~/Library/Application Support/atlascloud-mcp`` on macOS, ``%LOCALAPPDATA%\\atlascloud-mcp`` on Windows)."""
    import platformdirs

    return platformdirs.user_data_path("atlascloud-mcp", appauthor=False) / "state.db"


def parse_state_url(raw: str) -> str:
    """Check an ``ATLASCLOUD_STATE_URL``; returns it unchanged. Raises ValueError naming what is wrong, never
    echoing the URL (a Redis URL may hold a password)."""
    parts = urlsplit(raw)
    if parts.scheme in ("redis", "rediss", "unix"):
        return raw
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or not parts.path.strip("/"):
            raise ValueError("give an absolute path after sqlite://, e.g. sqlite:////home/me/atlas-state.db")
        return raw
    raise ValueError("expected sqlite:////absolute/path.db or redis://host:port/0")


def open_store(url: str | None) -> StateStore:
    """The store for ``url`` (None: the default SQLite file). Nothing connects until the first operation."""
    if url is None:
        from atlas_mcp.state.sqlite_store import SqliteStore

        return SqliteStore(default_state_path())
    if url.startswith("sqlite:"):
        from atlas_mcp.state.sqlite_store import SqliteStore

        return SqliteStore(_sqlite_path(url))
    from atlas_mcp.state.redis_store import RedisStore

    return RedisStore(url)


def _sqlite_path(url: str) -> Path:
    """``sqlite:////abs/x.db`` (SQLAlchemy's form) and ``sqlite:///abs/x.db`` both mean ``/abs/x.db``;
    ``sqlite:///C:/x.db`` is a Windows path."""
    path = unquote(urlsplit(url).path).lstrip("/")
    return Path(path if len(path) > 1 and path[1] == ":" else "/" + path)
