"""How long one tool call may wait, by who is calling (issue 24; the table is docs/clients.md).

A generation that outlives the call comes back as a prediction id the model must poll: a model turn, and tokens,
per look. So a call waits as long as its client allows, and no longer: a client that gives up first shows its
user an error while the job (paid) goes on. Clients say who they are in ``clientInfo`` (the 2025 handshake, or a
2026-era request's envelope); over stateless HTTP a request may carry none, and then the ``User-Agent`` is read.
An unknown client gets the safe bound (45 s: most clients give a request 60 s). ``ATLASCLOUD_WAIT_SECONDS``, when
set, is the bound for every client. While a call waits, progress goes out at least every few seconds (the polls,
and a heartbeat when a poll is slow), which the clients that reset their timeout on progress need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atlas_mcp.config import Settings

__all__ = ["CLIENTS", "SAFE_WAIT_SECONDS", "KnownClient", "identify", "wait_bound", "wait_words"]

SAFE_WAIT_SECONDS = 45.0


@dataclass(frozen=True)
class KnownClient:
    """One client: how it names itself, how long one call of it may wait here, and where that comes from."""

    label: str
    names: tuple[str, ...]  # clientInfo.name values and User-Agent products, lower-case
    wait_seconds: float
    tasks: bool  # declares the Tasks extension (io.modelcontextprotocol/tasks) where it supports it
    evidence: str


# Each row's evidence is the client's own documentation or issue tracker, as collected in
# ../shared/reference/mcp-clients.md (late 2026); docs/clients.md is this table for users.
CLIENTS: tuple[KnownClient, ...] = (
    KnownClient(
        "Claude Code",
        ("claude-code",),
        600.0,
        True,
        "idle timeout 5 min over HTTP and 30 min over stdio, each reset by progress; Tasks from 2.1.304",
    ),
    KnownClient(
        "claude.ai and Claude Desktop connectors",
        ("claude-ai", "claude.ai", "claude-desktop"),
        240.0,
        False,
        "300 s per tool call (Anthropic's connector docs); 60 s of margin",
    ),
    KnownClient("Cursor", ("cursor", "cursor-vscode"), SAFE_WAIT_SECONDS, False, "no documented per-call limit"),
    KnownClient("VS Code (Copilot)", ("visual studio code", "vscode"), SAFE_WAIT_SECONDS, False, "no documented limit"),
    KnownClient("Windsurf", ("windsurf", "windsurf-client"), SAFE_WAIT_SECONDS, False, "no documented limit"),
    KnownClient("Cline", ("cline",), SAFE_WAIT_SECONDS, False, "60 s per request by default (configurable)"),
    KnownClient(
        "MCP Inspector",
        ("mcp-inspector", "inspector-client"),
        SAFE_WAIT_SECONDS,
        False,
        "10 s per request, reset by progress, at most 60 s in all (its defaults)",
    ),
    KnownClient(
        "MCP Python SDK client",
        ("mcp",),
        SAFE_WAIT_SECONDS,
        False,
        "no request timeout of its own; the agent frameworks built on it set theirs, commonly 60 s",
    ),
)


def identify(client_name: str | None, headers: Mapping[str, str] | None = None) -> KnownClient | None:
    """The known client behind a request: by its ``clientInfo.name``, else by its ``User-Agent`` product."""
    name = (client_name or "").strip().lower()
    if not name and headers is not None:
        agent = next((value for key, value in headers.items() if key.lower() == "user-agent"), "")
        name = agent.strip().lower().split("/", 1)[0].split(" ", 1)[0]
    if not name:
        return None
    return next((client for client in CLIENTS if name in client.names), None)


def wait_bound(settings: Settings, client: KnownClient | None) -> float:
    """How long one call of this client may wait: ATLASCLOUD_WAIT_SECONDS when set, else the client's row, else
    the safe bound."""
    if settings.wait_is_set or client is None:
        return settings.wait_seconds
    return client.wait_seconds


def wait_words(settings: Settings) -> str:
    """How long a call waits, as the tools' descriptions say it: the same for every client when
    ATLASCLOUD_WAIT_SECONDS is set, else the safe bound and that known clients get longer."""
    if settings.wait_is_set:
        return f"{settings.wait_seconds:g} s"
    return f"{settings.wait_seconds:g} s, or longer for clients known to allow it"
