"""Key-value cache shared by the workers: Redis in production, in-process by default."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import redis.asyncio as redis_asyncio


class Cache(Protocol):
    """What Koan needs from a cache; keys are namespaced by the backend's prefix."""

    prefix: str

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, *, ttl_s: float | None = None) -> None: ...
    async def set_if_absent(self, key: str, value: str, *, ttl_s: float) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def incr_float(self, key: str, amount: float, *, ttl_s: float | None = None) -> float: ...
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

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """The cache on Redis, so every worker sees the same state."""

    def __init__(self, client: redis_asyncio.Redis, prefix: str = "koan:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "koan:") -> RedisCache:
        client = redis_asyncio.Redis.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )
        return cls(client, prefix)

    async def get(self, key: str) -> str | None:
        value = await self.client.get(self.prefix + key)
        return None if value is None else str(value)

    async def set(self, key: str, value: str, *, ttl_s: float | None = None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self.client.set(self.prefix + key, value, px=px)

    async def set_if_absent(self, key: str, value: str, *, ttl_s: float) -> bool:
        done = await self.client.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000)), nx=True)
        return bool(done)

    async def delete(self, key: str) -> None:
        await self.client.delete(self.prefix + key)

    async def incr_float(self, key: str, amount: float, *, ttl_s: float | None = None) -> float:
        full = self.prefix + key
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(full, amount)
            if ttl_s is not None:
                pipe.expire(full, max(1, int(ttl_s)), nx=True)
            result = await pipe.execute()
        return float(result[0])

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()


def create_cache(redis_url: str, prefix: str) -> Cache:
    if redis_url:
        return RedisCache.from_url(redis_url, prefix)
    return MemoryCache(prefix)
