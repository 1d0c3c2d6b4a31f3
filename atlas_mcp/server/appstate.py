"""The server's state: what lives as long as the server, and the copy of it each request gets.

A request's copy knows who it is (its :class:`~atlas_mcp.server.caller.Caller`: whose key its Atlas calls carry,
whose money it spends), built once by the server's per-request middleware (see ``app.py``) and read by every tool
through :func:`atlas_mcp.server.toolkit.state_of`. No code reads the process's key mid-request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import anyio

from atlas_mcp.atlas import AtlasClient
from atlas_mcp.config import Settings
from atlas_mcp.core.catalog import ModelCatalog
from atlas_mcp.media.previews import DecodeBudget
from atlas_mcp.server.background import Background, TaskOffer
from atlas_mcp.server.caller import Caller
from atlas_mcp.server.finished import FinishedOutputs
from atlas_mcp.spend.policy import SpendGuard

__all__ = ["REHOSTS_AT_ONCE", "AppState"]

REHOSTS_AT_ONCE = 4  # upload_media url re-hosts in flight per server: each holds a download and its spool


@dataclass
class AppState:
    """What lives as long as the server: the settings, the one Atlas client, the cached catalogue; and, in the
    copy each request gets (:meth:`for_request`), who that request is."""

    settings: Settings
    atlas: AtlasClient  # in a request's copy: acting with that request's key (Caller.key)
    catalog: ModelCatalog
    previews: DecodeBudget  # the memory preview decodes in flight share (each holds a full-size bitmap)
    spend: SpendGuard  # budget, repeats and confirmation tokens, over the state store
    caller: Caller = field(default_factory=Caller)  # whose key, whose money
    remote: bool = False  # served over HTTP: the caller's files are not on this machine
    # A 2026-era call that comes back with the user's answer: a digest of the sealed request state it brought,
    # the answer's one-use key (a replay of the same state is not a second "yes").
    sealed_state: str | None = None
    # url re-hosts in flight (each holds a download and a spool); shared by every caller's view of this state
    rehosts: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(REHOSTS_AT_ONCE))
    # What finished predictions' outputs were found to be: a second look downloads nothing
    finished: FinishedOutputs = field(default_factory=FinishedOutputs)
    # Work that outlives its request (tasks' waiters, collectors), in the lifespan's task group; None when the
    # server runs without one (a state built by hand).
    background: Background | None = None
    # In a tools/call whose client declared the Tasks extension in that request: the permission to answer with a
    # task (see atlas_mcp.server.tasks).
    task_offer: TaskOffer | None = None

    @property
    def secrets(self) -> list[str]:
        """Every secret this request knows (the server's key, the caller's key or token), for scrubbing text that
        came from elsewhere (an LLM's answer, a usage report's labels) before it is shown."""
        held = (self.settings.api_key, self.caller.key, self.caller.payer)
        return list(dict.fromkeys(secret.get_secret_value() for secret in held if secret is not None))

    @property
    def payer_key(self) -> str | None:
        """What names the payer (only ever hashed): the API key, or a client's HTTP token."""
        return self.caller.payer_text

    def for_request(self, *, bearer: str | None, sealed_state: str | None, caller: Caller | None = None) -> AppState:
        """This state as one request sees it. An HTTP request's bearer decides who pays (see
        :meth:`Caller.over_http`), or in OAuth mode the signed-in ``caller``: its key is used for that request's
        calls only."""
        if bearer is None and caller is None and sealed_state == self.sealed_state:
            return self  # a stdio request: nothing of its own (no field is ever set on a state, so sharing is safe)
        state = dataclasses.replace(self, sealed_state=sealed_state)
        if bearer is None and caller is None:
            return state
        if caller is None:
            assert bearer is not None
            caller = Caller.over_http(self.settings, bearer)
        atlas = self.atlas if caller.key == self.settings.api_key else self.atlas.with_key(caller.key)
        return dataclasses.replace(state, caller=caller, atlas=atlas)
