"""Connections to Redis, shared by the cache and the rate limiter."""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as redis_asyncio

# Connections one process keeps to Redis. A command that finds them all busy waits for one
# (up to the socket timeout) instead of failing: under a class's burst, a worker serving a
# hundred requests at once must not take its own full pool for Redis being down (and fall
# back to per-process limits, budgets and caches).
REDIS_CONNECTIONS: Final = 100
REDIS_TIMEOUT_S: Final = 2.0


def redis_pool(url: str, **options: Any) -> redis_asyncio.BlockingConnectionPool:
    """A pool of at most REDIS_CONNECTIONS connections to the Redis at `url`, on which a
    command waits for a free connection."""
    return redis_asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        **options,
    )
