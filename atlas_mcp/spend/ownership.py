"""Whose work is whose, when one Atlas key pays for a team (HTTP with ``ATLASCLOUD_HTTP_TOKENS``).

Atlas sees one account, so its history, its predictions and its usage reports are everyone's. This server
records which team token submitted each prediction (by the token's salted hash, as the budget names payers,
never the token) and shows each token its own: ``list_predictions`` lists only them, ``check_prediction`` reads
only them, and ``get_usage``/``get_costs`` answer for the whole account only with
``ATLASCLOUD_HTTP_SHARE_ACCOUNT_USAGE=1``. With per-request keys each caller's key is its own account, and over
stdio there is one user: nothing is filtered there.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from atlas_mcp.errors import AtlasMCPError, ConfigError, NotFoundError

if TYPE_CHECKING:
    from atlas_mcp.atlas import HistoryPage
    from atlas_mcp.config import Settings
    from atlas_mcp.spend.policy import SpendGuard

__all__ = [
    "OWNED_SECONDS",
    "Requester",
    "only_owned",
    "record_owner",
    "require_owner",
    "require_shared_usage",
    "team_member",
]

logger = logging.getLogger(__name__)


class Requester(Protocol):
    """What this module needs to know of a request (the server's per-request state has it): the settings, whether
    it came over HTTP, what names its payer, and the spend-safety state that remembers owners."""

    @property
    def settings(self) -> Settings: ...
    @property
    def remote(self) -> bool: ...
    @property
    def payer_key(self) -> str | None: ...
    @property
    def spend(self) -> SpendGuard: ...


OWNED_SECONDS = 30 * 24 * 3600.0  # how long a prediction is remembered as a token's (Atlas's history is shorter)


def team_member(state: Requester) -> str | None:
    """The caller's team token, in shared-key HTTP mode; None where every prediction the key sees is the caller's."""
    if not state.settings.http_tokens or not state.remote:
        return None
    return state.payer_key


def _key(prediction_id: str) -> str:
    return f"owner:{prediction_id}"


async def record_owner(state: Requester, prediction_id: str) -> None:
    """Remember that the caller's token submitted ``prediction_id``. Atlas has accepted it by now: a store that
    fails here is logged, and the prediction is still answered (its id above all)."""
    token = team_member(state)
    if token is None:
        return
    try:
        owner = await state.spend.payer(token)
        await state.spend.store.claim(_key(prediction_id), owner, ttl=OWNED_SECONDS, now=time.time())
    except AtlasMCPError:
        logger.warning("could not record which team token made prediction %s", prediction_id, exc_info=True)


async def _owns(state: Requester, token: str, prediction_id: str) -> bool:
    held = await state.spend.store.peek(_key(prediction_id), now=time.time())
    return held is not None and held == await state.spend.payer(token)


async def require_owner(state: Requester, prediction_id: str) -> None:
    """Refuse a prediction another team token made, exactly as one that does not exist (whether it does is
    nobody else's business)."""
    token = team_member(state)
    if token is not None and not await _owns(state, token, prediction_id):
        raise NotFoundError(
            f"No prediction {prediction_id} was made with your team token. Check the id (list_predictions lists "
            "yours); predictions made with other tokens of this server are not shown to you.",
            status=404,
        )


async def only_owned(state: Requester, page: HistoryPage) -> tuple[HistoryPage, bool]:
    """The page with only the caller's own predictions, and whether any were left out."""
    token = team_member(state)
    if token is None:
        return page, False
    kept = tuple([item for item in page.items if await _owns(state, token, item.id)])
    return page.model_copy(update={"items": kept}), len(kept) < len(page.items)


def require_shared_usage(state: Requester) -> None:
    """Usage and costs are the whole account's: a team token reads them only when the operator said so."""
    if team_member(state) is not None and not state.settings.http_share_account_usage:
        raise ConfigError(
            "Not shown: usage and costs are the whole Atlas account's, shared by every team token of this server, "
            "and this server shows them to team tokens only when its operator sets "
            "ATLASCLOUD_HTTP_SHARE_ACCOUNT_USAGE=1. Ask the operator, or use list_predictions for your own work."
        )
