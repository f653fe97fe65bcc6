"""Rate limits through the `limits` library: moving windows in memory or on Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import structlog
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from koan.errors import RateLimited
from koan.redis_client import redis_pool

log = structlog.get_logger(__name__)

_STORAGE_DOWN = (StorageError, RedisError, OSError, TimeoutError)

# Every window of a rule in one round trip, on the lists the `limits` library keeps for a moving
# window (newest entry first, at most `limit` long), so its other operations read them as their
# own. A hit of `cost` (ARGV[2]) entries is recorded only when every window has room for all of
# them, then in each; the answer is 0, or the whole seconds (at least 1) until every full window
# has that room again (a cost above a window's limit never fits: its whole window).
_HIT_EVERY_WINDOW = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i + 1])
  local expiry = tonumber(ARGV[2 * i + 2])
  if cost > limit then
    wait = math.max(wait, expiry)
  else
    local oldest = redis.call('lindex', key, limit - cost)
    if oldest and tonumber(oldest) >= now - expiry then
      wait = math.max(wait, math.floor(tonumber(oldest) + expiry - now) + 1)
    end
  end
end
if wait > 0 then
  return wait
end
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i + 1])
  local expiry = tonumber(ARGV[2 * i + 2])
  for _ = 1, cost do
    redis.call('lpush', key, ARGV[1])
  end
  redis.call('ltrim', key, 0, limit - 1)
  redis.call('expire', key, expiry)
end
return 0
"""


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
        self._hit_on_redis: AsyncScript | None = None
        self._client: Redis | None = None
        if isinstance(storage, RedisStorage) and isinstance(storage.bridge, RedispyBridge):
            self._client = cast(Redis, storage.bridge.get_connection())
            self._hit_on_redis = self._client.register_script(_HIT_EVERY_WINDOW)
        # The in-process windows are tested, then hit, by one caller at a time.
        self._local_turn = asyncio.Lock()
        self._down_since: float | None = None
        self.retry_after_s = retry_after_s

    @classmethod
    def from_url(cls, redis_url: str, *, prefix: str = "koan:") -> RateLimiter:
        """Redis-backed when a URL is given (shared by every worker), else in-process."""
        return cls(create_storage(redis_url, prefix=prefix))

    async def close(self) -> None:
        """Close the connections to Redis (their pool is this limiter's own)."""
        if self._client is not None:
            await self._client.aclose(close_connection_pool=True)

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    async def _run(self, method: str, *args: Any) -> Any:
        """A method of the moving-window strategy on the shared storage, or on this process's
        own while Redis is down."""
        return await self._either(
            lambda: getattr(self._shared, method)(*args),
            lambda: getattr(self._local, method)(*args),
        )

    async def _either(
        self, shared: Callable[[], Awaitable[Any]], local: Callable[[], Awaitable[Any]]
    ) -> Any:
        if isinstance(self.storage, MemoryStorage):
            return await shared()
        if self._down_since is None or time.monotonic() - self._down_since >= self.retry_after_s:
            try:
                result = await shared()
            except _STORAGE_DOWN:
                if self._down_since is None:
                    log.warning("ratelimit.redis_down")
                self._down_since = time.monotonic()
            else:
                if self._down_since is not None:
                    log.info("ratelimit.redis_back")
                    self._down_since = None
                return result
        return await local()

    @staticmethod
    def _items(rule: str) -> list[RateLimitItem]:
        return parse_many(rule)

    async def hit(
        self, rule: str, *identifiers: str, detail: str = "Too many requests.", cost: int = 1
    ) -> None:
        """Record `cost` hits (one by default) in every window of `rule`; raise RateLimited,
        recording nothing, when any of them lacks room (Retry-After: until all of them have)."""
        items = self._items(rule)
        script = self._hit_on_redis
        if script is None:
            wait = await self._hit_locally(self._shared, items, identifiers, cost)
        else:
            keys = [self._redis_key(item, identifiers) for item in items]
            args: list[float] = [time.time(), cost]
            for item in items:
                args += [item.amount, item.get_expiry()]
            wait = await self._either(
                lambda: script(keys, args),
                lambda: self._hit_locally(self._local, items, identifiers, cost),
            )
        if wait:
            raise RateLimited(detail, retry_after=int(wait))

    def _redis_key(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> str:
        assert isinstance(self.storage, RedisStorage)
        return self.storage.bridge.prefixed_key(item.key_for(self.namespace, *identifiers))

    async def _hit_locally(
        self,
        limiter: MovingWindowRateLimiter,
        items: list[RateLimitItem],
        identifiers: tuple[str, ...],
        cost: int = 1,
    ) -> int:
        """What the script does, on storage in this process."""
        async with self._local_turn:
            full = [
                item
                for item in items
                if not await limiter.test(item, self.namespace, *identifiers, cost=cost)
            ]
            if full:
                return max([await self._retry_after(limiter, item, identifiers) for item in full])
            for item in items:
                await limiter.hit(item, self.namespace, *identifiers, cost=cost)
            return 0

    async def check(self, rule: str, *identifiers: str, detail: str = "Too many requests.") -> None:
        """Raise RateLimited if `rule` is already exhausted, without recording a hit."""
        for item in self._items(rule):
            if not await self._run("test", item, self.namespace, *identifiers):
                waited = await self._run("get_window_stats", item, self.namespace, *identifiers)
                raise RateLimited(detail, retry_after=_seconds_until(waited.reset_time))

    async def used(self, rule: str, *identifiers: str) -> int:
        """Hits counted in the first (shortest) window of `rule`."""
        item = self._items(rule)[0]
        stats = await self._run("get_window_stats", item, self.namespace, *identifiers)
        return int(item.amount - stats.remaining)

    async def clear(self, rule: str, *identifiers: str) -> None:
        for item in self._items(rule):
            await self._run("clear", item, self.namespace, *identifiers)

    async def _retry_after(
        self,
        limiter: MovingWindowRateLimiter,
        item: RateLimitItem,
        identifiers: tuple[str, ...],
    ) -> int:
        stats = await limiter.get_window_stats(item, self.namespace, *identifiers)
        return _seconds_until(stats.reset_time)


def _seconds_until(reset_time: float) -> int:
    """Whole seconds, at least 1, until a window has room again."""
    return max(1, int(reset_time - time.time()) + 1)


def create_storage(redis_url: str, *, prefix: str = "koan:") -> Storage:
    if not redis_url:
        return MemoryStorage()
    scheme, rest = redis_url.split("://", 1)
    uri = ("async+rediss://" if scheme == "rediss" else "async+redis://") + rest
    # Passed on to redis-py's client (the library's options are typed for plain values only).
    client_options: dict[str, Any] = {"connection_pool": redis_pool(redis_url)}
    return RedisStorage(
        uri, implementation="redispy", key_prefix=f"{prefix}limits", **client_options
    )
