"""Rate limits through the `limits` library: moving windows in memory or on Redis."""

from __future__ import annotations

import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from koan.errors import RateLimited


class RateLimiter:
    """Counts hits per (rule, identifiers) and refuses past the limit with 429 + Retry-After."""

    def __init__(self, storage: Storage, *, namespace: str = "") -> None:
        self.storage = storage
        # Prepended to every identifier, so several Koans (or tests) can share one storage.
        self.namespace = namespace
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_url(cls, redis_url: str, *, prefix: str = "koan:") -> RateLimiter:
        """Redis-backed when a URL is given (shared by every worker), else in-process."""
        return cls(create_storage(redis_url, prefix=prefix))

    @staticmethod
    def _items(rule: str) -> list[RateLimitItem]:
        return parse_many(rule)

    async def hit(self, rule: str, *identifiers: str, detail: str = "Too many requests.") -> None:
        """Record one hit; raise RateLimited when any window of `rule` is full."""
        for item in self._items(rule):
            if not await self._limiter.hit(item, self.namespace, *identifiers):
                raise RateLimited(detail, retry_after=await self._retry_after(item, identifiers))

    async def check(self, rule: str, *identifiers: str, detail: str = "Too many requests.") -> None:
        """Raise RateLimited if `rule` is already exhausted, without recording a hit."""
        for item in self._items(rule):
            if not await self._limiter.test(item, self.namespace, *identifiers):
                raise RateLimited(detail, retry_after=await self._retry_after(item, identifiers))

    async def used(self, rule: str, *identifiers: str) -> int:
        """Hits counted in the first (shortest) window of `rule`."""
        item = self._items(rule)[0]
        stats = await self._limiter.get_window_stats(item, self.namespace, *identifiers)
        return item.amount - stats.remaining

    async def clear(self, rule: str, *identifiers: str) -> None:
        for item in self._items(rule):
            await self._limiter.clear(item, self.namespace, *identifiers)

    async def _retry_after(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> int:
        stats = await self._limiter.get_window_stats(item, self.namespace, *identifiers)
        return max(1, int(stats.reset_time - time.time()) + 1)


def create_storage(redis_url: str, *, prefix: str = "koan:") -> Storage:
    if not redis_url:
        return MemoryStorage()
    scheme, rest = redis_url.split("://", 1)
    uri = ("async+rediss://" if scheme == "rediss" else "async+redis://") + rest
    return RedisStorage(uri, implementation="redispy", key_prefix=f"{prefix}limits")
