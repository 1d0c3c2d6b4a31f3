"""Spend safety: a budget that holds, a price the user has seen, and no second purchase of the same thing.

:class:`SpendGuard` is the one place that touches the state store for money. It knows:

- **who pays**: a payer is an HMAC of the API key under the store's secret, so the key itself is never stored;
- **the budget** (``ATLASCLOUD_BUDGET_USD`` per rolling 24 h): each paid call reserves its quote in the ledger
  before it is sent, atomically, and the reservation is corrected once Atlas says what it charged (0 for a
  prediction that failed, since Atlas does not bill those);
- **repeats** (``ATLASCLOUD_REPEAT_WINDOW_S``): an identical request (same payer, model and parameters once the
  schema's defaults are filled in, a random seed counting as no seed) claims one key in the repeat index; every
  other call with that key gets the first call's prediction instead of a second POST;
- **confirmation tokens**, for clients that cannot ask the user mid-call: an HMAC over the exact request and its
  price, valid 10 minutes, spent once. Only the exact form this server writes is accepted, and what is spent is
  the token's nonce, so no other spelling of one token (leading zeros, other scripts' digits) is a second "yes".
  A 2026-era answer to the price question is spent the same way, by the sealed state it came back with.

A store that cannot be used raises :class:`StateUnavailableError`: paid calls fail closed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio
from pydantic import Field

from atlas_mcp.atlas import Prediction
from atlas_mcp.config import Settings
from atlas_mcp.core.catalog import InputSchema
from atlas_mcp.core.shown import Shown
from atlas_mcp.errors import AtlasMCPError, SpendRefusedError
from atlas_mcp.state import MICRO, Spending, StateStore

__all__ = [
    "CONFIRM_SECONDS",
    "ConfirmationNeeded",
    "Purchase",
    "Repeat",
    "SpendGuard",
    "SpendReport",
    "TokenRefused",
    "known_price",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DAY = 24 * 3600.0  # the budget's rolling window
CONFIRM_SECONDS = 600  # how long a confirmation token is good for
_CLAIM_GRACE = 30.0  # a "sending" claim outlives the submit's own bound by this much, then frees itself
_WAIT_STEP = 0.05  # how often a call waiting on an identical one looks again
# A spent "yes" is remembered longer than any can be used: a token lasts CONFIRM_SECONDS, and a 2026-era sealed
# answer the SDK's default request-state TTL (600 s).
_SPENT_SECONDS = CONFIRM_SECONDS + 60
# Exactly what issue_token writes: ASCII digits without a leading zero, the 12-character nonce, the 24-character
# MAC (both unpadded base64url). Character classes, not \d: in Python that is every script's digits.
_TOKEN = re.compile(r"([1-9][0-9]{0,15})\.([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{24})")
_MALFORMED = "the confirm value is not a token this server issued (pass it back exactly as it was given)"


class SpendReport(Shown):
    """The payer's spending in the last 24 hours, as this server's ledger has it."""

    spent_usd: float = Field(
        description="What generations through this server cost in the last 24 h (their quotes, until Atlas "
        "reports the price it charged)."
    )
    budget_usd: float | None = Field(
        default=None, description="The 24 h budget (ATLASCLOUD_BUDGET_USD), if one is set."
    )
    left_usd: float | None = Field(default=None, description="What is left of the budget now.")

    def text(self) -> str:
        spent = f"Spent in the last 24 h: {dollars(self.spent_usd)}"
        if self.budget_usd is None or self.left_usd is None:
            return f"{spent} (no budget set)."
        return f"{spent} of a {dollars(self.budget_usd)} budget; {dollars(self.left_usd)} left."


@dataclass(frozen=True)
class Repeat:
    """What the repeat index holds for one request: it is being sent, it was sent, or sending it went unclear."""

    state: Literal["sending", "sent", "unclear"]
    holder: str  # the call that claimed it
    at: float  # when it was claimed or sent (wall clock)
    prediction_id: str | None = None

    def encode(self) -> str:
        return json.dumps([self.state, self.holder, self.at, self.prediction_id], separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> Repeat | None:
        try:
            state, holder, at, prediction_id = json.loads(raw)
        except (ValueError, TypeError):
            return None
        if state not in ("sending", "sent", "unclear") or not isinstance(at, int | float):
            return None
        return cls(state, str(holder), float(at), str(prediction_id) if prediction_id is not None else None)


@dataclass
class Purchase:
    """A paid call's hold on the state: its ledger entry and its repeat claim (either may be absent)."""

    payer: str
    holder: str = ""  # this call, in the repeat index
    entry: str | None = None
    claim_key: str | None = None
    claim_value: str | None = None
    repeat_of: Repeat | None = None  # set instead of the others when an identical call already paid
    repeat_held: str | None = None  # the index's value for it, exactly as stored


class ConfirmationNeeded(SpendRefusedError):
    """The user has not agreed to this price (yet); the caller asks again, with a fresh token."""


class TokenRefused(ConfirmationNeeded):
    """A confirmation token that cannot be used."""


def known_price(price_usd: float | None) -> float | None:
    """A price that can be held to a budget, or None. Nothing Atlas makes is free or pays the user back: a zero or
    negative quote or price is a wrong answer, and taking it would free budget that was never there."""
    return price_usd if price_usd is not None and price_usd > 0 else None


def dollars(amount: float) -> str:
    return f"${amount:.4g}" if amount < 1000 else f"${amount:,.2f}"


def to_micro(amount: float) -> int:
    return round(amount * MICRO)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


class SpendGuard:
    """Budget, repeats and confirmation tokens for one server, over one :class:`StateStore`."""

    def __init__(self, settings: Settings, store: StateStore) -> None:
        self.settings = settings
        self.store = store
        self._secret: bytes | None = None
        self.claim_seconds = settings.http_timeout + _CLAIM_GRACE

    async def _key(self) -> bytes:
        if self._secret is None:
            self._secret = await self.store.secret()
        return self._secret

    def _mac(self, secret: bytes, purpose: str, *parts: Any) -> bytes:
        return hmac.new(secret, _canonical([purpose, *parts]), hashlib.sha256).digest()

    async def payer(self, api_key: str | None) -> str:
        """The payer's id: a salted hash of the API key (the key itself is never stored)."""
        return self._mac(await self._key(), "payer", api_key or "").hex()[:32]

    # --- confirmation ------------------------------------------------------------------------------------

    def needs_confirmation(self, price_usd: float | None) -> bool:
        threshold = self.settings.confirm_above_usd
        if threshold is None:
            return False
        price_usd = known_price(price_usd)
        return price_usd is None or threshold == 0 or price_usd > threshold

    async def issue_token(
        self, payer: str, request: dict[str, Any], price_usd: float | None, *, now: float | None = None
    ) -> str:
        """A token that confirms exactly this request at exactly this price, for :data:`CONFIRM_SECONDS` from
        ``now`` (default: the wall clock)."""
        expires = int(time.time() if now is None else now) + CONFIRM_SECONDS
        nonce = secrets.token_urlsafe(9)
        mac = self._token_mac(await self._key(), payer, request, known_price(price_usd), expires, nonce)
        return f"{expires}.{nonce}.{mac}"

    def _token_mac(
        self, secret: bytes, payer: str, request: dict[str, Any], price: float | None, expires: int, nonce: str
    ) -> str:
        price_micro = to_micro(price) if price is not None else None
        digest = self._mac(secret, "confirm", payer, request, price_micro, expires, nonce)[:18]
        return base64.urlsafe_b64encode(digest).decode()

    async def check_token(self, token: str, payer: str, request: dict[str, Any], price_usd: float | None) -> str:
        """The token's one-use key (its nonce), if ``token`` confirms this request at this price and has not
        expired; else :class:`TokenRefused`. (Whether it was used already is settled atomically when it is spent,
        in :meth:`buy`.) Any value that is not exactly a token this server wrote gets the same refusal."""
        parsed = _TOKEN.fullmatch(token) if token.isascii() else None
        if parsed is None or f"{int(parsed[1])}.{parsed[2]}.{parsed[3]}" != token:
            raise TokenRefused(_MALFORMED)
        expires, nonce, mac = int(parsed[1]), parsed[2], parsed[3]
        expected = self._token_mac(await self._key(), payer, request, known_price(price_usd), expires, nonce)
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            raise TokenRefused(
                "the confirm token was issued for a different request or price (the arguments, or Atlas's quote, "
                "changed since)"
            )
        if expires < time.time():
            raise TokenRefused(f"the confirm token expired (tokens last {CONFIRM_SECONDS // 60} minutes)")
        return f"confirm:{nonce}"

    # --- the budget --------------------------------------------------------------------------------------

    async def report(self, payer: str) -> SpendReport:
        spending = await self.store.spending(payer, now=time.time(), window=DAY)
        return self._report(spending)

    async def report_after_paying(self, payer: str) -> SpendReport | None:
        """:meth:`report` for a result Atlas has already answered: a store that fails now costs the result its
        spending line, never the result itself (logged)."""
        try:
            return await self.report(payer)
        except AtlasMCPError:
            logger.warning("could not read the spending for a paid result; answering without it", exc_info=True)
            return None

    def _report(self, spending: Spending) -> SpendReport:
        spent = spending.spent_micro / MICRO
        budget = self.settings.budget_usd
        left = max(0.0, budget - spent) if budget is not None else None
        return SpendReport(
            spent_usd=round(spent, 6), budget_usd=budget, left_usd=round(left, 6) if left is not None else None
        )

    async def budget_problem(self, payer: str, price_usd: float | None) -> str | None:
        """Why this price does not fit the budget now (a read: :meth:`buy` reserves atomically), or None."""
        price_usd = known_price(price_usd)
        account = await self._account()
        for ledger, budget in ((payer, self.settings.budget_usd), (account, self.settings.budget_account_usd)):
            if ledger is None or budget is None:
                continue
            if price_usd is None:
                return self._unpriced()
            needed = to_micro(price_usd)
            spending = await self.store.spending(ledger, now=time.time(), window=DAY)
            if spending.spent_micro + needed > to_micro(budget):
                listed = await self.store.spending(ledger, now=time.time(), window=DAY, entries=True)
                return self._refusal(listed, needed, whole_account=ledger == account)
        return None

    async def _account(self) -> str | None:
        """The ledger of everything paid with the server's own key, all callers together, when an account-wide
        cap is set (ATLASCLOUD_BUDGET_ACCOUNT_USD). Per-request-key HTTP has no server key: each caller's key is
        its own account, held by ATLASCLOUD_BUDGET_USD."""
        if self.settings.budget_account_usd is None or self.settings.api_key is None:
            return None
        return self._mac(await self._key(), "account", self.settings.api_key.get_secret_value()).hex()[:32]

    def _unpriced(self) -> str:
        return (
            "Not sent, nothing was spent: Atlas gives no price for this request, so it cannot be held to your "
            "budget (ATLASCLOUD_BUDGET_USD, ATLASCLOUD_BUDGET_ACCOUNT_USD). Choose a model with a listed price, or "
            "unset the budget to run it."
        )

    def _refusal(
        self,
        spending: Spending,
        needed: int,
        what: str = "this generation is quoted at",
        *,
        whole_account: bool = False,
    ) -> str | None:
        budget = self.settings.budget_account_usd if whole_account else self.settings.budget_usd
        assert budget is not None
        variable = "ATLASCLOUD_BUDGET_ACCOUNT_USD" if whole_account else "ATLASCLOUD_BUDGET_USD"
        whose = "the account-wide" if whole_account else "your"
        limit = to_micro(budget)
        if spending.spent_micro + needed <= limit:
            return None
        spent = spending.spent_micro / MICRO
        head = (
            f"Not sent, nothing was spent: {what} {dollars(needed / MICRO)}, and "
            f"{dollars(max(0.0, budget - spent))} is left of {whose} {dollars(budget)} budget for any 24 hours "
            f"({variable}; {dollars(spent)} spent{' by every caller together' if whole_account else ''})."
        )
        frees = spending.frees_at(needed, limit, DAY)
        if frees is None:
            return f"{head} It costs more than the whole budget: raise {variable} to run it."
        when = time.strftime("%H:%M UTC", time.gmtime(frees))
        return (
            f"{head} Enough frees up at {when} (in {_duration(frees - time.time())}), when earlier spending leaves "
            "the 24 h window. Tell the user; do not retry before then."
        )

    # --- repeats -----------------------------------------------------------------------------------------

    def repeat_key(self, payer: str, model: str, params: dict[str, Any], schema: InputSchema | None) -> str:
        """The same for two requests that would make the same thing: defaults filled in, a random seed dropped."""
        filled = dict(params)
        if schema is not None:
            for name, rules in schema.properties.items():
                if "default" in rules and name not in filled:
                    filled[name] = rules["default"]
        if filled.get("seed") in (None, -1):
            filled.pop("seed", None)
        return hashlib.sha256(_canonical(["repeat", payer, model, filled])).hexdigest()

    async def earlier(self, key: str) -> Repeat | None:
        """An identical request already sent (or being sent) inside the window, if any: a read."""
        if self.settings.repeat_window_s <= 0:
            return None
        held = await self.store.peek(key, now=time.time())
        return Repeat.decode(held) if held is not None else None

    # --- buying ------------------------------------------------------------------------------------------

    async def buy(
        self,
        payer: str,
        *,
        repeat_key: str | None,
        price_usd: float | None,
        once: str | None,
        confirmed: bool,
        submit: Callable[[], Awaitable[Prediction]],
        waiting: Callable[[float], Awaitable[None]],
    ) -> tuple[Purchase, Prediction | None]:
        """Claim the request, spend the user's "yes", reserve the price, then submit once.

        Returns the purchase and the new prediction, or a purchase with ``repeat_of`` and None when an identical
        call already sent it. ``repeat_key`` None skips the repeat guard (``repeat=true``). ``once`` is the
        one-use key of the "yes" this call pays on (a token's, from :meth:`check_token`, or a sealed answer's);
        a second call with the same one is refused. Raises
        :class:`SpendRefusedError` (nothing was sent) or whatever the submit raised, after releasing what it
        should: a refused or plainly rejected submit frees its claim and its budget; a submit whose fate is
        unclear keeps both, and marks the claim so that an identical call is not sent blindly.
        """
        purchase = Purchase(payer, holder=secrets.token_hex(8))
        if repeat_key is not None and self.settings.repeat_window_s > 0:
            earlier = await self._claim(purchase, repeat_key, waiting)
            if earlier is not None:
                held, repeat = earlier
                return Purchase(payer, claim_key=repeat_key, repeat_of=repeat, repeat_held=held), None
        try:
            if not confirmed:
                raise ConfirmationNeeded("the identical earlier generation this call was going to reuse is gone")
            if once is not None and not await self.store.spend_token(once, ttl=_SPENT_SECONDS, now=time.time()):
                raise TokenRefused(
                    "this confirmation was used already (each confirm token, or each answer to the question, pays "
                    "for one generation)"
                )
            entry = await self.hold(payer, price_usd, what="this generation is quoted at")
            purchase.entry = entry
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release(purchase, quietly=True)
            raise
        try:
            prediction = await submit()
        except BaseException as exc:
            # Atlas may have it (and bill it) after a timeout, a reset, a gateway's 5xx, an unreadable 2xx or a
            # cancel mid-POST: keep the reservation and make an identical call stop and look. Anything else is a
            # refusal (nothing billed): give the budget and the request back.
            unsent = isinstance(exc, AtlasMCPError) and not exc.maybe_billed
            with anyio.CancelScope(shield=True):
                await self._after_failed_submit(purchase, entry, unsent=unsent)
            raise
        try:
            await self._mark(purchase, "sent", prediction.id)
        except AtlasMCPError:
            # Atlas has it and bills it: the caller gets its id whatever the store does. The claim stays
            # "sending" and turns "unclear" by itself, so an identical call stops and looks instead of paying.
            logger.warning("could not record prediction %s in the spend-safety state", prediction.id, exc_info=True)
        return purchase, prediction

    async def _after_failed_submit(self, purchase: Purchase, entry: str, *, unsent: bool) -> None:
        """Tidy up after a submit failed; a store that fails here is logged, never put in front of Atlas's error."""
        try:
            if unsent:
                await self._settle_entry(purchase.payer, entry, 0)
                await self._release(purchase)
            else:
                await self._mark(purchase, "unclear", None)
        except AtlasMCPError:
            logger.warning("could not record the failed submit in the spend-safety state", exc_info=True)

    async def _claim(
        self, purchase: Purchase, key: str, waiting: Callable[[float], Awaitable[None]]
    ) -> tuple[str, Repeat] | None:
        """Claim ``key`` for this call, or return the earlier identical call (as stored, and read). A call that
        finds the request being sent right now waits for that submit (bounded) instead of sending its own."""
        started = time.monotonic()
        while True:
            mine = Repeat("sending", purchase.holder, time.time()).encode()
            # Held for the repeat window, not just the submit's bound: a holder that dies between claiming and
            # recording the outcome (a killed replica) must leave "may have been sent", never a free request.
            ttl = max(self.claim_seconds, self.settings.repeat_window_s)
            held = await self.store.claim(key, mine, ttl=ttl, now=time.time())
            if held is None:
                purchase.claim_key, purchase.claim_value = key, mine
                return None
            earlier = Repeat.decode(held)
            if earlier is not None and earlier.state == "sending" and time.time() - earlier.at > self.claim_seconds:
                earlier = dataclasses.replace(earlier, state="unclear")  # no live holder sends for this long
            if earlier is None or earlier.state == "sending":
                waited = time.monotonic() - started
                if waited > self.claim_seconds:
                    raise SpendRefusedError(
                        "Not sent: an identical generation has been in the middle of being sent for "
                        f"{waited:.0f} s. Call list_predictions to see whether it reached Atlas before trying again."
                    )
                await waiting(waited)
                await anyio.sleep(_WAIT_STEP)
                continue
            if earlier.state == "unclear":
                raise SpendRefusedError(
                    f"Not sent: an identical generation {_duration(time.time() - earlier.at)} ago may have reached "
                    "Atlas (its submit failed without a clear answer), and sending it again could pay twice. Call "
                    "list_predictions to find it; to pay for a new one anyway, call again with repeat=true."
                )
            return held, earlier

    async def _mark(self, purchase: Purchase, state: Literal["sent", "unclear"], prediction_id: str | None) -> None:
        if purchase.claim_key is None or purchase.claim_value is None:
            return
        await self._swap(purchase, Repeat(state, purchase.holder, time.time(), prediction_id).encode())

    async def _swap(self, purchase: Purchase, new: str) -> None:
        assert purchase.claim_key is not None
        assert purchase.claim_value is not None
        window = self.settings.repeat_window_s
        if await self.store.swap(purchase.claim_key, purchase.claim_value, new, ttl=window, now=time.time()):
            purchase.claim_value = new

    async def _release(self, purchase: Purchase, *, quietly: bool = False) -> None:
        """Free the claim, so an identical call may be sent. ``quietly``: while another error is on its way out,
        a store that fails here only leaves a claim that frees itself when its time is up."""
        if purchase.claim_key is None or purchase.claim_value is None:
            return
        try:
            await self.store.release(purchase.claim_key, purchase.claim_value)
        except AtlasMCPError:
            if not quietly:
                raise
            logger.warning("could not free a repeat claim; it frees itself within %.0f s", self.claim_seconds)
        purchase.claim_key = purchase.claim_value = None

    async def forget_failed(self, purchase: Purchase) -> None:
        """The earlier identical prediction failed (unbilled): the next identical call may be sent afresh."""
        if purchase.claim_key is not None and purchase.repeat_held is not None:
            try:
                await self.store.release(purchase.claim_key, purchase.repeat_held)
            except AtlasMCPError:
                logger.warning("could not free a failed prediction's repeat claim; it frees itself in time")

    async def hold(self, payer: str, price_usd: float | None, *, what: str) -> str:
        """Reserve a paid call's price in the ledger before it is sent (a generation at its quote, a chat answer at
        its worst case); returns the ledger entry (for :meth:`release_hold` when it is not a prediction). ``what``
        names that price in a refusal ("this chat may cost up to"). Raises :class:`SpendRefusedError` when the
        budget cannot hold it: nothing was sent."""
        price_usd = known_price(price_usd)
        if self.settings.budget_usd is not None and price_usd is None:
            raise SpendRefusedError(self._unpriced())
        account = await self._account()
        if account is not None and price_usd is None:
            raise SpendRefusedError(self._unpriced())
        entry = secrets.token_hex(8)
        needed = to_micro(price_usd) if price_usd is not None else 0
        limit = to_micro(self.settings.budget_usd) if self.settings.budget_usd is not None else None
        spending = await self.store.reserve(payer, entry, needed, limit_micro=limit, now=time.time(), window=DAY)
        if not spending.allowed:
            raise SpendRefusedError(self._refusal(spending, needed, what) or "Not sent: the budget is used up.")
        if account is not None:
            # Each ledger's step is atomic, so the account's cap holds however many callers race; a refusal here
            # gives the caller's own reservation back.
            cap = to_micro(self.settings.budget_account_usd or 0)
            whole = await self.store.reserve(account, entry, needed, limit_micro=cap, now=time.time(), window=DAY)
            if not whole.allowed:
                with anyio.CancelScope(shield=True):
                    await self.store.settle(payer, entry, 0)
                refusal = self._refusal(whole, needed, what, whole_account=True)
                raise SpendRefusedError(refusal or "Not sent: the account-wide budget is used up.")
        return entry

    async def _settle_entry(self, payer: str, entry: str, micro: int) -> None:
        """Correct one reservation in every ledger that holds it (the caller's, and the account's)."""
        await self.store.settle(payer, entry, micro)
        account = await self._account()
        if account is not None and account != payer:
            await self.store.settle(account, entry, micro)

    async def on_hold(self, payer: str, entry: str, paid: Callable[[], Awaitable[T]]) -> T:
        """Make the paid call ``paid`` against a :meth:`hold`: if Atlas refused it (nothing billed) the hold is
        given back; if it may have been billed (:attr:`AtlasMCPError.maybe_billed`), the hold stays."""
        try:
            return await paid()
        except BaseException as exc:
            if isinstance(exc, AtlasMCPError) and not exc.maybe_billed:
                with anyio.CancelScope(shield=True):
                    await self.release_hold(payer, entry, 0)
            raise

    async def release_hold(self, payer: str, entry: str, price_usd: float) -> None:
        """Correct a :meth:`hold` to what the call really cost (0 for one Atlas refused). Atlas has answered by
        now: a store that fails here is logged (the hold stays, over-counting), never put in front of the answer."""
        try:
            await self._settle_entry(payer, entry, to_micro(price_usd))
        except AtlasMCPError:
            logger.warning("could not settle a paid call's hold in the spend-safety state", exc_info=True)

    async def settle(self, purchase: Purchase, prediction: Prediction) -> None:
        """Once the prediction has an outcome: a failure costs nothing and frees the request for a retry; a
        success costs what Atlas says it did, and counts as "just finished" for the repeat window from now."""
        if purchase.entry is None:
            return
        try:
            if prediction.phase == "failed":
                await self._settle_entry(purchase.payer, purchase.entry, 0)
                await self._release(purchase)
            elif prediction.phase == "succeeded":
                if (charged := known_price(prediction.price)) is not None:  # else the quote stays held
                    await self._settle_entry(purchase.payer, purchase.entry, to_micro(charged))
                if purchase.claim_value is not None:
                    await self._swap(purchase, purchase.claim_value)
        except AtlasMCPError:
            # The result is paid for and in hand: it goes to the caller. The reservation stays at its quote (the
            # budget errs on the safe side) and the repeat claim frees itself when its time is up.
            logger.warning("could not settle prediction %s in the spend-safety state", prediction.id, exc_info=True)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
