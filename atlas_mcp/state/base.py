"""The interface in front of spend safety's state, and the in-memory backend the tests use.

Three things live here, all small and all shared by every server process that uses the same store:

- the **ledger**: what each payer spent, entry by entry, so a rolling 24 h budget can be held;
- the **repeat index**: which generation a request is already running or just finished as, so an identical call
  is answered with it instead of being paid again;
- the **spent confirmation tokens**, so each one is used once.

Every operation is one atomic step in the backend (a transaction, a Lua script, a ``SET NX``): two processes
can never both take the last of a budget or both submit the same request. Amounts are integer micro-dollars,
so sums are exact. Times are the caller's wall clock, and the ledger never lets its own clock run backwards:
its "now" is at least the newest entry it holds, so a clock set back cannot free budget.
"""

from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass, field

__all__ = ["MICRO", "MemoryStore", "Spending", "StateStore"]

MICRO = 1_000_000  # micro-dollars per dollar


@dataclass(frozen=True)
class Spending:
    """One payer's spending inside the rolling window, as one store operation saw it."""

    allowed: bool  # for a reservation: whether it was recorded (always True for a plain read)
    spent_micro: int  # inside the window; a recorded reservation included
    now: float  # the ledger's clock for this operation: never earlier than its newest entry
    entries: tuple[tuple[float, int], ...] = field(default=())  # (time, micro), oldest first; filled on refusal

    def frees_at(self, needed_micro: int, limit_micro: int, window: float) -> float | None:
        """When enough of the window's spending will have left it for ``needed_micro`` more to fit, or None
        if it never will (the request alone is more than the limit)."""
        if needed_micro > limit_micro:
            return None
        left = self.spent_micro
        if left + needed_micro <= limit_micro:
            return self.now
        for when, micro in self.entries:
            left -= micro
            if left + needed_micro <= limit_micro:
                return when + window
        return None  # the entries do not add up to the total: a store that answered inconsistently


class StateStore(abc.ABC):
    """Spend safety's state. ``name`` says where it is, for messages (never with a password in it)."""

    name: str

    @abc.abstractmethod
    async def secret(self) -> bytes:
        """32 random bytes, made once per store and the same for every process that uses it: the key of the
        confirmation tokens' HMAC and the salt of the payers' key hashes."""

    @abc.abstractmethod
    async def reserve(
        self, payer: str, entry: str, micro: int, *, limit_micro: int | None, now: float, window: float
    ) -> Spending:
        """Record ``micro`` as spent by ``payer`` now, unless that would take the window's total past
        ``limit_micro`` (None: no limit). Entries older than ``window`` seconds are forgotten."""

    @abc.abstractmethod
    async def settle(self, payer: str, entry: str, micro: int) -> None:
        """Correct a recorded entry once the real price is known; 0 (a prediction Atlas did not bill, a key it
        refused) removes the entry. Old entries of every payer are forgotten, not only of those who come back."""

    @abc.abstractmethod
    async def spending(self, payer: str, *, now: float, window: float, entries: bool = False) -> Spending:
        """What ``payer`` spent inside the window (and, with ``entries``, its entries: only a refusal needs them)."""

    @abc.abstractmethod
    async def claim(self, key: str, value: str, *, ttl: float, now: float) -> str | None:
        """Set ``key`` to ``value`` for ``ttl`` seconds unless it holds a value already; None when this call
        set it, else the value it holds."""

    @abc.abstractmethod
    async def swap(self, key: str, old: str, new: str, *, ttl: float, now: float) -> bool:
        """Replace ``old`` by ``new`` (with a fresh ``ttl``) only if ``key`` still holds ``old``."""

    @abc.abstractmethod
    async def release(self, key: str, value: str) -> None:
        """Delete ``key`` only if it still holds ``value`` (a claim is only ever released by its holder)."""

    @abc.abstractmethod
    async def peek(self, key: str, *, now: float) -> str | None:
        """The value ``key`` holds, if any."""

    @abc.abstractmethod
    async def spend_token(self, token: str, *, ttl: float, now: float) -> bool:
        """Mark a one-use token as spent for ``ttl`` seconds; False if it was spent already."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise :class:`~atlas_mcp.errors.StateUnavailableError` unless the store can be used now."""

    async def aclose(self) -> None:  # noqa: B027 - most backends have nothing to close
        """Release connections."""


class MemoryStore(StateStore):
    """Everything in this process's memory: for tests only (it forgets on restart and is not shared)."""

    name = "memory"

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)
        self._ledger: dict[str, dict[str, tuple[float, int]]] = {}
        self._values: dict[str, tuple[str, float]] = {}
        self._tokens: dict[str, float] = {}

    async def secret(self) -> bytes:
        return self._secret

    def _window(self, payer: str, now: float, window: float) -> tuple[dict[str, tuple[float, int]], float]:
        for other in [
            name for name, held in self._ledger.items() if all(when <= now - window for when, _ in held.values())
        ]:
            del self._ledger[other]  # payers who never come back leave nothing behind
        entries = self._ledger.setdefault(payer, {})
        now = max([now, *(when for when, _ in entries.values())])
        for entry, (when, _) in list(entries.items()):
            if when <= now - window:
                del entries[entry]
        return entries, now

    def _spending(self, entries: dict[str, tuple[float, int]], now: float, *, allowed: bool) -> Spending:
        listed = tuple(sorted(entries.values()))
        return Spending(allowed, sum(micro for _, micro in listed), now, listed)

    async def reserve(
        self, payer: str, entry: str, micro: int, *, limit_micro: int | None, now: float, window: float
    ) -> Spending:
        entries, now = self._window(payer, now, window)
        spent = sum(amount for _, amount in entries.values())
        if limit_micro is not None and spent + micro > limit_micro:
            return self._spending(entries, now, allowed=False)
        entries[entry] = (now, micro)
        return Spending(True, spent + micro, now)

    async def settle(self, payer: str, entry: str, micro: int) -> None:
        entries = self._ledger.get(payer, {})
        if entry in entries and micro == 0:
            del entries[entry]
        elif entry in entries:
            entries[entry] = (entries[entry][0], micro)

    async def spending(self, payer: str, *, now: float, window: float, entries: bool = False) -> Spending:
        held, now = self._window(payer, now, window)
        found = self._spending(held, now, allowed=True)
        return found if entries else Spending(True, found.spent_micro, now)

    def _live(self, key: str, now: float) -> str | None:
        held = self._values.get(key)
        if held is not None and held[1] <= now:
            del self._values[key]
            return None
        return held[0] if held else None

    async def claim(self, key: str, value: str, *, ttl: float, now: float) -> str | None:
        held = self._live(key, now)
        if held is not None:
            return held
        self._values[key] = (value, now + ttl)
        return None

    async def swap(self, key: str, old: str, new: str, *, ttl: float, now: float) -> bool:
        if self._live(key, now) != old:
            return False
        self._values[key] = (new, now + ttl)
        return True

    async def release(self, key: str, value: str) -> None:
        if key in self._values and self._values[key][0] == value:
            del self._values[key]

    async def peek(self, key: str, *, now: float) -> str | None:
        return self._live(key, now)

    async def spend_token(self, token: str, *, ttl: float, now: float) -> bool:
        if self._tokens.get(token, 0.0) > now:
            return False
        self._tokens[token] = now + ttl
        return True

    async def check(self) -> None:
        return None
