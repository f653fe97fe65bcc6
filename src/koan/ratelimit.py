"""Rate limits through the `limits` library: moving windows in memory or on Redis."""

from __future__ import annotations

import time
from typing import Any

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from koan.errors import RateLimited

log = structlog.get_logger(__name__)

_STORAGE_DOWN = (StorageError, RedisError, OSError, TimeoutError)


class RateLimiter:
    """Counts hits per (rule, identifiers) and refuses past the limit with 429 + Retry-After.

    On Redis, limits hold across workers; while Redis is unreachable each process counts on
    its own (per-process limits) and goes back to Redis by itself once it answers again.
    """

    def __init__(
        self, storage: Storage, *, namespace: str = "", retry_after_s: float = 2.0
    ) -> None:
        self.storage = storage
        # Prepended to every identifier, so several Koans (or tests) can share one storage.
        self.namespace = namespace
        self._shared = MovingWindowRateLimiter(storage)
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._down_since: float | None = None
        self.retry_after_s = retry_after_s

    @classmethod
    def from_url(cls, redis_url: str, *, prefix: str = "koan:") -> RateLimiter:
        """Redis-backed when a URL is given (shared by every worker), else in-process."""
        return cls(create_storage(redis_url, prefix=prefix))

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    async def _run(self, method: str, *args: Any) -> Any:
        if isinstance(self.storage, MemoryStorage):
            return await getattr(self._shared, method)(*args)
        if self._down_since is None or time.monotonic() - self._down_since >= self.retry_after_s:
            try:
                result = await getattr(self._shared, method)(*args)
            except _STORAGE_DOWN:
                if self._down_since is None:
                    log.warning("ratelimit.redis_down")
                self._down_since = time.monotonic()
            else:
                if self._down_since is not None:
                    log.info("ratelimit.redis_back")
                    self._down_since = None
                return result
        return await getattr(self._local, method)(*args)

    @staticmethod
    def _items(rule: str) -> list[RateLimitItem]:
        return parse_many(rule)

    async def hit(self, rule: str, *identifiers: str, detail: str = "Too many requests.") -> None:
        """Record one hit; raise RateLimited when any window of `rule` is full."""
        for item in self._items(rule):
            if not await self._run("hit", item, self.namespace, *identifiers):
                raise RateLimited(detail, retry_after=await self._retry_after(item, identifiers))

    async def check(self, rule: str, *identifiers: str, detail: str = "Too many requests.") -> None:
        """Raise RateLimited if `rule` is already exhausted, without recording a hit."""
        for item in self._items(rule):
            if not await self._run("test", item, self.namespace, *identifiers):
                raise RateLimited(detail, retry_after=await self._retry_after(item, identifiers))

    async def used(self, rule: str, *identifiers: str) -> int:
        """Hits counted in the first (shortest) window of `rule`."""
        item = self._items(rule)[0]
        stats = await self._run("get_window_stats", item, self.namespace, *identifiers)
        return int(item.amount - stats.remaining)

    async def clear(self, rule: str, *identifiers: str) -> None:
        for item in self._items(rule):
            await self._run("clear", item, self.namespace, *identifiers)

    async def _retry_after(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> int:
        stats = await self._run("get_window_stats", item, self.namespace, *identifiers)
        return max(1, int(stats.reset_time - time.time()) + 1)


def create_storage(redis_url: str, *, prefix: str = "koan:") -> Storage:
    if not redis_url:
        return MemoryStorage()
    scheme, rest = redis_url.split("://", 1)
    uri = ("async+rediss://" if scheme == "rediss" else "async+redis://") + rest
    return RedisStorage(uri, implementation="redispy", key_prefix=f"{prefix}limits")
