"""Redis, for several server processes on several machines (the replicated HTTP deployment).

Every operation is atomic in Redis itself: ``SET NX`` claims a repeat key and spends a token, and the ledger
changes in one Lua script (a read-decide-write that no other client can interleave). Keys carry a hash tag per
payer, so the two keys of one ledger live on one slot and the scripts also work on a cluster.

A Redis that cannot be reached fails closed within a couple of seconds: paid calls are refused with an error
that says so; free tools never come here. The URL may hold a password: only its host and port are ever shown.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from atlas_mcp.errors import StateUnavailableError
from atlas_mcp.state.base import Spending, StateStore

__all__ = ["RedisStore"]

PREFIX = "atlascloud-mcp"
CONNECT_SECONDS = 2.0  # a Redis that is down must not hold a tool call: fail closed quickly

# KEYS: the payer's times (zset entry -> time) and amounts (hash entry -> micro).
# ARGV: entry, micro, limit (-1: none), now, window, record (1: reserve, 0: read), list (1: a read lists entries).
# Returns {recorded (0/1), spent, now as a string, entries (flat time, micro, ...) on refusal or a listing read}.
_LEDGER = """
local times, amounts = KEYS[1], KEYS[2]
local entry, micro, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, window, record, list = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7] == '1'
local newest = redis.call('ZREVRANGE', times, 0, 0, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) > now then now = tonumber(newest[2]) end
local old = redis.call('ZRANGEBYSCORE', times, '-inf', now - window)
for i = 1, #old, 500 do
  local chunk = {unpack(old, i, math.min(i + 499, #old))}
  redis.call('ZREM', times, unpack(chunk))
  redis.call('HDEL', amounts, unpack(chunk))
end
local spent = 0
for _, value in ipairs(redis.call('HVALS', amounts)) do spent = spent + tonumber(value) end
if record and (limit < 0 or spent + micro <= limit) then
  redis.call('ZADD', times, now, entry)
  redis.call('HSET', amounts, entry, micro)
  local keep = math.ceil(window * 1000) * 2
  redis.call('PEXPIRE', times, keep)
  redis.call('PEXPIRE', amounts, keep)
  return {1, spent + micro, tostring(now), {}}
end
local listed = {}
if not (record or list) then return {1, spent, tostring(now), listed} end
for _, name in ipairs(redis.call('ZRANGE', times, 0, -1)) do
  table.insert(listed, redis.call('ZSCORE', times, name))
  table.insert(listed, redis.call('HGET', amounts, name) or '0')
end
return {record and 0 or 1, spent, tostring(now), listed}
"""

# KEYS: the payer's times and amounts. A settlement to 0 removes the entry: nothing billed, nothing kept (the keys
# themselves vanish with their last entry, and every ledger expires on its own a window after its last use).
_SETTLE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
if tonumber(ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 1
"""

_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore(StateStore):
    def __init__(self, url: str) -> None:
        try:
            import redis.asyncio
        except ImportError:  # an optional extra: stdio users on one machine do not need it
            raise StateUnavailableError(
                "ATLASCLOUD_STATE_URL names Redis, but the redis client is not installed: install "
                "atlascloud-mcp[redis] (or pip install redis)."
            ) from None
        parts = urlsplit(url)
        self.name = f"Redis at {parts.hostname or 'localhost'}:{parts.port or 6379}"
        self._client: Any = redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_SECONDS,
            socket_timeout=CONNECT_SECONDS,
            decode_responses=False,
        )
        self._ledger = self._client.register_script(_LEDGER)
        self._settle = self._client.register_script(_SETTLE)
        self._claim = self._client.register_script(_CLAIM)
        self._swap = self._client.register_script(_SWAP)
        self._release = self._client.register_script(_RELEASE)

    async def _call(self, operation: Any) -> Any:
        import redis.exceptions

        try:
            return await operation
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise StateUnavailableError(
                f"The spend-safety state ({self.name}) cannot be reached ({type(exc).__name__}). Paid generations "
                "are refused until it can (free tools still work): check that Redis is running and that "
                "ATLASCLOUD_STATE_URL points at it."
            ) from None
        except redis.exceptions.RedisError as exc:
            raise StateUnavailableError(
                f"The spend-safety state ({self.name}) refused an operation ({type(exc).__name__}: {exc}). Paid "
                "generations are refused until it works; free tools still work."
            ) from None

    @staticmethod
    def _ledger_keys(payer: str) -> list[str]:
        return [f"{PREFIX}:ledger:{{{payer}}}:times", f"{PREFIX}:ledger:{{{payer}}}:amounts"]

    async def secret(self) -> bytes:
        key = f"{PREFIX}:secret"
        await self._call(self._client.set(key, secrets.token_bytes(32), nx=True))
        value = await self._call(self._client.get(key))
        return bytes(value)

    async def _ledger_step(
        self,
        payer: str,
        entry: str,
        micro: int,
        limit_micro: int | None,
        now: float,
        window: float,
        *,
        record: bool,
        listing: bool = False,
    ) -> Spending:
        recorded, spent, at, flat = await self._call(
            self._ledger(
                keys=self._ledger_keys(payer),
                args=[
                    entry,
                    micro,
                    -1 if limit_micro is None else limit_micro,
                    repr(now),
                    repr(window),
                    int(record),
                    int(listing),
                ],
            )
        )
        entries = tuple((float(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2))
        return Spending(bool(recorded), int(spent), float(at), entries)

    async def reserve(
        self, payer: str, entry: str, micro: int, *, limit_micro: int | None, now: float, window: float
    ) -> Spending:
        return await self._ledger_step(payer, entry, micro, limit_micro, now, window, record=True)

    async def settle(self, payer: str, entry: str, micro: int) -> None:
        await self._call(self._settle(keys=self._ledger_keys(payer), args=[entry, micro]))

    async def spending(self, payer: str, *, now: float, window: float, entries: bool = False) -> Spending:
        return await self._ledger_step(payer, "", 0, None, now, window, record=False, listing=entries)

    @staticmethod
    def _claim_key(key: str) -> str:
        return f"{PREFIX}:claim:{key}"

    async def claim(self, key: str, value: str, *, ttl: float, now: float) -> str | None:
        held = await self._call(self._claim(keys=[self._claim_key(key)], args=[value, _ms(ttl)]))
        return None if held is None else bytes(held).decode()

    async def swap(self, key: str, old: str, new: str, *, ttl: float, now: float) -> bool:
        return bool(await self._call(self._swap(keys=[self._claim_key(key)], args=[old, new, _ms(ttl)])))

    async def release(self, key: str, value: str) -> None:
        await self._call(self._release(keys=[self._claim_key(key)], args=[value]))

    async def peek(self, key: str, *, now: float) -> str | None:
        held = await self._call(self._client.get(self._claim_key(key)))
        return None if held is None else bytes(held).decode()

    async def spend_token(self, token: str, *, ttl: float, now: float) -> bool:
        return bool(await self._call(self._client.set(f"{PREFIX}:token:{token}", b"1", nx=True, px=_ms(ttl))))

    async def check(self) -> None:
        await self._call(self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
