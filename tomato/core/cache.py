"""Cache, locks, rate limiter and nonce store: one small interface, a Redis and an in-process implementation.

Only things that may be lost live here (docs/architecture.md): the database stays the source of truth.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from tomato.core.resp import runner_for


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_s: float


@dataclass(frozen=True)
class Admission:
    """What one `Cache.admit` call decided, in the order a signed request is checked: the nonce was fresh (else
    nothing else was looked at), the rate decision (None: not reached), and for an `Idempotency-Key` slot whether it
    was claimed now or the value already standing there."""

    nonce_fresh: bool
    rate: RateDecision | None = None
    claimed: bool = False
    stored: str | None = None


class LockNotAcquired(RuntimeError):
    pass


class Cache(Protocol):
    """Key/value operations with expiry, used for nonces, idempotency, locks and rate limits."""

    name: str

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, ttl_s: float) -> None: ...
    async def set_nx(self, key: str, value: str, ttl_s: float) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def delete_if_equals(self, key: str, value: str) -> bool: ...
    async def rate_limit(self, key: str, rate_per_s: float, burst: int) -> RateDecision: ...
    async def admit(self, nonce: str, nonce_ttl_s: float, rate: str, rate_per_s: float, burst: int,
                    slot: str | None = None, slot_value: str = "", slot_ttl_s: float = 0) -> Admission: ...  # fmt: skip
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


@asynccontextmanager
async def hold_lock(cache: Cache, key: str, ttl_s: float) -> AsyncIterator[str]:
    """A best-effort mutual-exclusion guard (never the only correctness guard: use SQL compare-and-set)."""
    token = uuid.uuid4().hex
    if not await cache.set_nx(f"lock:{key}", token, ttl_s):
        raise LockNotAcquired(key)
    try:
        yield token
    finally:
        await cache.delete_if_equals(f"lock:{key}", token)


class MemoryCache:
    """The embedded backend: a dict with monotonic expiry, good for one process."""

    name = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._tat: dict[str, float] = {}
        self._ops = 0

    def _alive(self, key: str) -> str | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item[0]

    def _sweep(self) -> None:
        self._ops += 1
        if self._ops % 10_000 == 0:
            now = time.monotonic()
            for key in [k for k, (_, exp) in self._data.items() if exp <= now]:
                del self._data[key]

    async def get(self, key: str) -> str | None:
        return self._alive(key)

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        self._sweep()
        self._data[key] = (value, time.monotonic() + ttl_s)

    async def set_nx(self, key: str, value: str, ttl_s: float) -> bool:
        if self._alive(key) is not None:
            return False
        await self.set(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def delete_if_equals(self, key: str, value: str) -> bool:
        if self._alive(key) == value:
            del self._data[key]
            return True
        return False

    async def rate_limit(self, key: str, rate_per_s: float, burst: int) -> RateDecision:
        now = time.monotonic()
        decision, new_tat = _gcra(self._tat.get(key, now), now, rate_per_s, burst)
        if decision.allowed:
            self._tat[key] = new_tat
        return decision

    async def admit(
        self, nonce: str, nonce_ttl_s: float, rate: str, rate_per_s: float, burst: int,
        slot: str | None = None, slot_value: str = "", slot_ttl_s: float = 0,
    ) -> Admission:  # fmt: skip
        """Nonce, then rate limit, then the slot's claim, as the separate calls would do them (no await between)."""
        if not await self.set_nx(nonce, "1", nonce_ttl_s):
            return Admission(False)
        decision = await self.rate_limit(rate, rate_per_s, burst)
        if not decision.allowed or slot is None:
            return Admission(True, decision)
        if await self.set_nx(slot, slot_value, slot_ttl_s):
            return Admission(True, decision, claimed=True)
        return Admission(True, decision, stored=self._alive(slot))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


def _gcra(tat: float, now: float, rate_per_s: float, burst: int) -> tuple[RateDecision, float]:
    """Generic cell rate algorithm: allow while the theoretical arrival time is within the burst tolerance."""
    interval = 1.0 / rate_per_s
    tolerance = interval * burst
    tat = max(tat, now)
    new_tat = tat + interval
    allow_at = new_tat - tolerance
    if allow_at > now:
        return RateDecision(False, allow_at - now), tat
    return RateDecision(True, 0.0), new_tat


_GCRA_LUA = """
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', key) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, tostring(allow_at - now)}
end
redis.call('SET', key, tostring(new_tat), 'PX', math.ceil(tolerance * 1000) + 1000)
return {1, '0'}
"""

# A signed request's guards in one round trip, in the order the separate calls make them: the nonce (SET NX; a
# reused one stops here), the app's GCRA (as _GCRA_LUA), then an Idempotency-Key slot's claim (SET NX, else its
# value). Returns {nonce_fresh, allowed, retry_after, claimed, stored}.
_ADMIT_LUA = """
if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return {0, 0, '0', 0, false} end
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[2]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if allow_at > now then return {1, 0, tostring(allow_at - now), 0, false} end
redis.call('SET', KEYS[2], tostring(new_tat), 'PX', math.ceil(tolerance * 1000) + 1000)
if #KEYS < 3 then return {1, 1, '0', 0, false} end
if redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5], 'NX') then return {1, 1, '0', 1, false} end
return {1, 1, '0', 0, redis.call('GET', KEYS[3])}
"""

_DEL_IF_EQ_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisCache:
    """Redis backend; every key carries the configured prefix so tests and tenants never collide."""

    name = "redis"

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._gcra = redis.register_script(_GCRA_LUA)
        self._del_eq = redis.register_script(_DEL_IF_EQ_LUA)
        self._admit = redis.register_script(_ADMIT_LUA)
        # the hot path's script calls skip redis-py's client machinery (core.resp); None: redis-py makes them
        self.scripts = runner_for(redis)
        self._admit_sha = self.scripts.register(_ADMIT_LUA) if self.scripts is not None else ""

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisCache:
        return cls(Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2), prefix)

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> str | None:
        value = await self.redis.get(self._k(key))
        return None if value is None else str(value)

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        await self.redis.set(self._k(key), value, px=max(1, math.ceil(ttl_s * 1000)))

    async def set_nx(self, key: str, value: str, ttl_s: float) -> bool:
        return bool(await self.redis.set(self._k(key), value, px=max(1, math.ceil(ttl_s * 1000)), nx=True))

    async def delete(self, key: str) -> None:
        await self.redis.delete(self._k(key))

    async def delete_if_equals(self, key: str, value: str) -> bool:
        return bool(await self._del_eq(keys=[self._k(key)], args=[value]))

    async def rate_limit(self, key: str, rate_per_s: float, burst: int) -> RateDecision:
        interval = 1.0 / rate_per_s
        allowed, retry = await self._gcra(keys=[self._k(f"rl:{key}")], args=[interval, interval * burst])
        return RateDecision(bool(int(allowed)), float(retry))

    async def admit(
        self, nonce: str, nonce_ttl_s: float, rate: str, rate_per_s: float, burst: int,
        slot: str | None = None, slot_value: str = "", slot_ttl_s: float = 0,
    ) -> Admission:  # fmt: skip
        """One EVALSHA for what `set_nx` (nonce), `rate_limit` and `set_nx`/`get` (slot) would do in turn."""
        interval = 1.0 / rate_per_s
        keys = [self._k(nonce), self._k(f"rl:{rate}")] + ([self._k(slot)] if slot is not None else [])
        args: list[str | int | float] = [_ms(nonce_ttl_s), interval, interval * burst, slot_value, _ms(slot_ttl_s)]
        if self.scripts is not None:
            reply = await self.scripts.run(self._admit_sha, keys, args)
        else:
            reply = await self._admit(keys=keys, args=args)
        fresh, allowed, retry, claimed, stored = reply
        if not int(fresh):
            return Admission(False)
        decision = RateDecision(bool(int(allowed)), float(retry))
        return Admission(True, decision, bool(int(claimed)), None if stored is None else str(stored))

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout=2))
        except Exception:
            return False

    async def close(self) -> None:
        if self.scripts is not None:
            await self.scripts.close()
        await self.redis.aclose()


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class NonceStore:
    """Accepts a request nonce once per app within the TTL (Redis `SET NX EX`, or in-process)."""

    def __init__(self, cache: Cache, ttl_s: float) -> None:
        self.cache = cache
        self.ttl_s = ttl_s

    @staticmethod
    def key(app_id: str, nonce: str) -> str:
        return f"nonce:{app_id}:{nonce}"

    async def use(self, app_id: str, nonce: str) -> bool:
        return await self.cache.set_nx(self.key(app_id, nonce), "1", self.ttl_s)
