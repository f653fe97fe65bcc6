"""Key-value cache shared by the workers: Redis in production, in-process by default."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import redis.asyncio as redis_asyncio
import structlog
from redis.exceptions import RedisError

from koan.redis_client import redis_pool

log = structlog.get_logger(__name__)


# Where a database session keeps the cache of the Koan that opened it (the request's session
# dependency sets it), so work done when that session commits can tell the other workers.
SESSION_CACHE = "koan.cache"


class Cache(Protocol):
    """What Koan needs from a cache; keys are namespaced by the backend's prefix."""

    prefix: str

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, *, ttl_s: float | None = None) -> None: ...
    async def set_if_absent(self, key: str, value: str, *, ttl_s: float) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def incr_float(self, key: str, amount: float, *, ttl_s: float | None = None) -> float: ...
    async def get_many(self, keys: Sequence[str]) -> list[str | None]: ...
    async def incr_float_many(
        self, amounts: Sequence[tuple[str, float]], *, ttl_s: float | None = None
    ) -> list[float]: ...
    async def add_to_existing(
        self,
        amounts: Sequence[tuple[str, float]],
        *,
        ttl_s: float | None = None,
        read: Sequence[str] = (),
        delete: Sequence[str] = (),
    ) -> tuple[list[float | None], list[str | None]]: ...
    async def seed_and_add(
        self,
        seeded: Sequence[tuple[str, str, float]],
        *,
        ttl_s: float | None = None,
        also: tuple[str, str, float] | None = None,
    ) -> list[float]: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryCache:
    """A process-local cache with expiry, for one-machine installs and tests."""

    def __init__(self, prefix: str = "koan:") -> None:
        self.prefix = prefix
        self._data: dict[str, tuple[str, float | None]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> str | None:
        item = self._data.get(self.prefix + key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[self.prefix + key]
            return None
        return value

    def _expiry(self, ttl_s: float | None) -> float | None:
        return None if ttl_s is None else time.monotonic() + ttl_s

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        self._data[self.prefix + key] = (value, self._expiry(ttl_s))

    async def set_if_absent(self, key: str, value: str, *, ttl_s: float) -> bool:
        async with self._lock:
            if self._live(key) is not None:
                return False
            self._data[self.prefix + key] = (value, self._expiry(ttl_s))
            return True

    async def delete(self, key: str) -> None:
        self._data.pop(self.prefix + key, None)

    async def incr_float(self, key: str, amount: float, *, ttl_s: float | None = None) -> float:
        async with self._lock:
            current = float(self._live(key) or 0.0) + amount
            existing = self._data.get(self.prefix + key)
            expires = existing[1] if existing and existing[1] is not None else self._expiry(ttl_s)
            self._data[self.prefix + key] = (repr(current), expires)
            return current

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        return [self._live(key) for key in keys]

    async def incr_float_many(
        self, amounts: Sequence[tuple[str, float]], *, ttl_s: float | None = None
    ) -> list[float]:
        return [await self.incr_float(key, amount, ttl_s=ttl_s) for key, amount in amounts]

    async def add_to_existing(
        self,
        amounts: Sequence[tuple[str, float]],
        *,
        ttl_s: float | None = None,
        read: Sequence[str] = (),
        delete: Sequence[str] = (),
    ) -> tuple[list[float | None], list[str | None]]:
        totals: list[float | None] = []
        for key, amount in amounts:
            present = self._live(key) is not None
            totals.append(await self.incr_float(key, amount, ttl_s=ttl_s) if present else None)
        values = await self.get_many(read)
        for key in delete:
            await self.delete(key)
        return totals, values

    async def seed_and_add(
        self,
        seeded: Sequence[tuple[str, str, float]],
        *,
        ttl_s: float | None = None,
        also: tuple[str, str, float] | None = None,
    ) -> list[float]:
        totals = []
        for key, seed, amount in seeded:
            if self._live(key) is None:
                self._data[self.prefix + key] = (seed, self._expiry(ttl_s))
            totals.append(await self.incr_float(key, amount, ttl_s=ttl_s))
        if also is not None:
            key, value, also_ttl_s = also
            await self.set_if_absent(key, value, ttl_s=also_ttl_s)
        return totals

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


# KEYS: the keys; ARGV: one amount per key, then the TTL in seconds ("" for none), set only
# where the key has none yet (as `EXPIRE ... NX`).
_INCR_FLOAT_MANY = """
local ttl = ARGV[#KEYS + 1]
local totals = {}
for i, key in ipairs(KEYS) do
    totals[i] = redis.call('INCRBYFLOAT', key, ARGV[i])
    if ttl ~= '' then
        redis.call('EXPIRE', key, ttl, 'NX')
    end
end
return totals
"""


# KEYS: the keys to add to, the keys to read, then the keys to delete; ARGV: how many keys to
# add to, how many to read, the TTL as above, then one amount per key to add to.
_ADD_TO_EXISTING = """
local n = tonumber(ARGV[1])
local reads = n + tonumber(ARGV[2])
local ttl = ARGV[3]
local totals = {}
for i = 1, n do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        totals[i] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[i + 3])
        if ttl ~= '' then
            redis.call('EXPIRE', KEYS[i], ttl, 'NX')
        end
    else
        totals[i] = false
    end
end
local values = {}
for i = n + 1, reads do
    values[i - n] = redis.call('GET', KEYS[i])
end
for i = reads + 1, #KEYS do
    redis.call('DEL', KEYS[i])
end
return {totals, values}
"""


# KEYS: the keys to seed and add to, then (if ARGV[2] is not "") one key to set if absent;
# ARGV: how many keys to add to, the value to set and its TTL ("" when nothing is set), the TTL
# of the keys added to as above, then a seed and an amount per key.
_SEED_AND_ADD = """
local n = tonumber(ARGV[1])
local ttl = ARGV[4]
local totals = {}
for i = 1, n do
    if ttl ~= '' then
        redis.call('SET', KEYS[i], ARGV[3 + 2 * i], 'NX', 'EX', ttl)
    else
        redis.call('SET', KEYS[i], ARGV[3 + 2 * i], 'NX')
    end
    totals[i] = redis.call('INCRBYFLOAT', KEYS[i], ARGV[4 + 2 * i])
end
if ARGV[2] ~= '' then
    redis.call('SET', KEYS[n + 1], ARGV[2], 'NX', 'EX', ARGV[3])
end
return totals
"""


class RedisCache:
    """The cache on Redis, so every worker sees the same state."""

    def __init__(self, client: redis_asyncio.Redis, prefix: str = "koan:") -> None:
        self.client = client
        self.prefix = prefix
        self._incr_many = client.register_script(_INCR_FLOAT_MANY)
        self._add_to_existing = client.register_script(_ADD_TO_EXISTING)
        self._seed_and_add = client.register_script(_SEED_AND_ADD)

    @classmethod
    def from_url(cls, url: str, prefix: str = "koan:") -> RedisCache:
        return cls(redis_asyncio.Redis.from_pool(redis_pool(url, decode_responses=True)), prefix)

    async def get(self, key: str) -> str | None:
        value = await self.client.get(self.prefix + key)
        return None if value is None else str(value)

    async def set(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self.client.set(self.prefix + key, value, px=px)

    async def set_if_absent(self, key: str, value: str, *, ttl_s: float) -> bool:
        done = await self.client.set(
            self.prefix + key, value, px=max(1, int(ttl_s * 1000)), nx=True
        )
        return bool(done)

    async def delete(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    async def incr_float(self, key: str, amount: float, *, ttl_s: float | None = None) -> float:
        [total] = await self.incr_float_many([(key, amount)], ttl_s=ttl_s)
        return total

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """One round trip (MGET) for several keys."""
        values = await self.client.mget([self.prefix + key for key in keys])
        return [None if value is None else str(value) for value in values]

    async def incr_float_many(
        self, amounts: Sequence[tuple[str, float]], *, ttl_s: float | None = None
    ) -> list[float]:
        """`incr_float` on several keys in one round trip, atomically (one script: cheaper for
        the client than a MULTI of two commands per key)."""
        keys = [self.prefix + key for key, _ in amounts]
        args = [repr(float(amount)) for _, amount in amounts]
        args.append("" if ttl_s is None else str(max(1, int(ttl_s))))
        result = await self._incr_many(keys=keys, args=args)
        return [float(value) for value in result]

    async def add_to_existing(
        self,
        amounts: Sequence[tuple[str, float]],
        *,
        ttl_s: float | None = None,
        read: Sequence[str] = (),
        delete: Sequence[str] = (),
    ) -> tuple[list[float | None], list[str | None]]:
        """Add to each key that exists (None for a missing one, which stays missing), read the
        keys `read`, then delete the keys `delete`: one round trip, atomically."""
        keys = [self.prefix + key for key, _ in amounts]
        keys += [self.prefix + key for key in read]
        keys += [self.prefix + key for key in delete]
        args = [
            str(len(amounts)),
            str(len(read)),
            "" if ttl_s is None else str(max(1, int(ttl_s))),
        ]
        args += [repr(float(amount)) for _, amount in amounts]
        totals, values = await self._add_to_existing(keys=keys, args=args)
        return (
            [None if total is None else float(total) for total in totals],
            [None if value is None else str(value) for value in values],
        )

    async def seed_and_add(
        self,
        seeded: Sequence[tuple[str, str, float]],
        *,
        ttl_s: float | None = None,
        also: tuple[str, str, float] | None = None,
    ) -> list[float]:
        """Seed each key that does not exist (`set_if_absent`: a key another worker seeded
        first keeps its value), add to each (`incr_float_many`), and add `also` (key, value,
        TTL) unless that key exists: one round trip, atomically. Returns the totals."""
        keys = [self.prefix + key for key, _, _ in seeded]
        args = [str(len(seeded)), "", "", "" if ttl_s is None else str(max(1, int(ttl_s)))]
        if also is not None:
            key, value, also_ttl_s = also
            keys.append(self.prefix + key)
            args[1:3] = [value, str(max(1, int(also_ttl_s)))]
        for _, seed, amount in seeded:
            args += [seed, repr(float(amount))]
        result = await self._seed_and_add(keys=keys, args=args)
        return [float(value) for value in result]

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()


_REDIS_DOWN = (RedisError, OSError, asyncio.TimeoutError)


class FallbackCache:
    """Redis, falling back to a per-process cache while Redis is unreachable.

    Counters kept only in this process while Redis is down (budgets) are re-seeded from the
    database by their owners when a key is missing, so nothing is lost, only shared less.
    Redis is tried again after `retry_after_s`, so service returns without a restart.
    """

    def __init__(
        self,
        primary: RedisCache,
        *,
        retry_after_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.prefix = primary.prefix
        self.fallback = MemoryCache(primary.prefix)
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._down_since: float | None = None

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    def _use_primary(self) -> bool:
        return self._down_since is None or self._clock() - self._down_since >= self.retry_after_s

    def _failed(self, exc: BaseException) -> None:
        if self._down_since is None:
            log.warning("cache.redis_down", error=type(exc).__name__)
        self._down_since = self._clock()

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.info("cache.redis_back")
            self._down_since = None
            # What was counted locally meanwhile is stale beside Redis; owners re-seed.
            self.fallback._data.clear()

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._use_primary():
            try:
                result = await getattr(self.primary, name)(*args, **kwargs)
            except _REDIS_DOWN as exc:
                self._failed(exc)
            else:
                self._recovered()
                return result
        return await getattr(self.fallback, name)(*args, **kwargs)

    async def get(self, key: str) -> str | None:
        return cast("str | None", await self._call("get", key))

    async def set(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        await self._call("set", key, value, ttl_s=ttl_s)

    async def set_if_absent(self, key: str, value: str, *, ttl_s: float) -> bool:
        return bool(await self._call("set_if_absent", key, value, ttl_s=ttl_s))

    async def delete(self, key: str) -> None:
        await self._call("delete", key)

    async def incr_float(self, key: str, amount: float, *, ttl_s: float | None = None) -> float:
        return float(await self._call("incr_float", key, amount, ttl_s=ttl_s))

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        return cast("list[str | None]", await self._call("get_many", keys))

    async def incr_float_many(
        self, amounts: Sequence[tuple[str, float]], *, ttl_s: float | None = None
    ) -> list[float]:
        return cast("list[float]", await self._call("incr_float_many", amounts, ttl_s=ttl_s))

    async def add_to_existing(
        self,
        amounts: Sequence[tuple[str, float]],
        *,
        ttl_s: float | None = None,
        read: Sequence[str] = (),
        delete: Sequence[str] = (),
    ) -> tuple[list[float | None], list[str | None]]:
        return cast(
            "tuple[list[float | None], list[str | None]]",
            await self._call("add_to_existing", amounts, ttl_s=ttl_s, read=read, delete=delete),
        )

    async def seed_and_add(
        self,
        seeded: Sequence[tuple[str, str, float]],
        *,
        ttl_s: float | None = None,
        also: tuple[str, str, float] | None = None,
    ) -> list[float]:
        return cast("list[float]", await self._call("seed_and_add", seeded, ttl_s=ttl_s, also=also))

    async def ping(self) -> bool:
        """True only when Redis itself answers (readiness reports the fallback as degraded)."""
        try:
            ok = await self.primary.ping()
        except _REDIS_DOWN as exc:
            self._failed(exc)
            return False
        self._recovered()
        return ok

    async def close(self) -> None:
        await self.primary.close()
        await self.fallback.close()


def create_cache(redis_url: str, prefix: str) -> Cache:
    if redis_url:
        return FallbackCache(RedisCache.from_url(redis_url, prefix))
    return MemoryCache(prefix)
