"""The cache's batch operations, on the backend's own cache (memory, or Redis in CI)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from koan.cache import FallbackCache, RedisCache
from koan.redis_client import REDIS_CONNECTIONS
from koan.resources import Resources
from tests.conftest import REDIS_URL


async def test_get_many_reads_present_and_missing_keys_in_order(resources: Resources) -> None:
    cache = resources.cache
    await cache.set("a", "1")
    await cache.set("c", "3", ttl_s=60)

    assert await cache.get_many(["a", "b", "c"]) == ["1", None, "3"]
    assert await cache.get_many([]) == []


async def test_incr_float_many_adds_to_each_key_and_returns_the_totals(
    resources: Resources,
) -> None:
    cache = resources.cache
    await cache.set("spent", "0.25")

    totals = await cache.incr_float_many([("spent", 0.5), ("new", 0.125)], ttl_s=60)
    assert totals == [0.75, 0.125]
    assert await cache.incr_float_many([("spent", -0.75), ("new", 1.0)]) == [0.0, 1.125]
    assert [float(v) for v in await cache.get_many(["spent", "new"]) if v] == [0.0, 1.125]


async def test_add_to_existing_adds_only_to_present_keys_and_reads_others(
    resources: Resources,
) -> None:
    cache = resources.cache
    await cache.set("spent", "0.25")
    await cache.set("limit", "2.00", ttl_s=60)

    totals, values = await cache.add_to_existing(
        [("spent", 0.5), ("absent", 1.0)], ttl_s=60, read=["limit", "nothing"]
    )
    assert (totals, values) == ([0.75, None], ["2.00", None])
    assert await cache.get_many(["spent", "absent"]) == ["0.75", None]  # a missing key stays so
    assert await cache.add_to_existing([], read=["spent"]) == ([], ["0.75"])
    assert await cache.add_to_existing([("spent", -0.75)]) == ([0.0], [])


async def test_add_to_existing_deletes_keys_after_reading(resources: Resources) -> None:
    cache = resources.cache
    await cache.set("spent", "0.25")
    await cache.set("lock", "1", ttl_s=60)

    totals, values = await cache.add_to_existing(
        [("spent", 0.5)], ttl_s=60, read=["lock"], delete=["lock", "never-there"]
    )
    assert (totals, values) == ([0.75], ["1"])  # read before it is deleted
    assert await cache.get_many(["spent", "lock"]) == ["0.75", None]
    assert await cache.add_to_existing([], delete=["spent"]) == ([], [])
    assert await cache.get("spent") is None


async def test_seed_and_add_seeds_only_missing_keys_adds_to_all_and_adds_one_more(
    resources: Resources,
) -> None:
    cache = resources.cache
    await cache.set("spent", "0.25")

    totals = await cache.seed_and_add(
        [("spent", "10.0", 0.5), ("fresh", "1.5", 0.25)], ttl_s=60, also=("limit", "2.00", 60)
    )
    assert totals == [0.75, 1.75]  # a key already there keeps its value: only "fresh" is seeded
    assert await cache.get_many(["spent", "fresh", "limit"]) == ["0.75", "1.75", "2.00"]
    assert await cache.seed_and_add([("fresh", "0", -1.75)]) == [0.0]
    # The one more is added only where absent: a value already there (a budget another worker
    # published) is not written over.
    assert await cache.seed_and_add([], also=("limit", "default", 60)) == []
    assert await cache.get("limit") == "2.00"
    await cache.delete("limit")
    assert await cache.seed_and_add([], also=("limit", "default", 60)) == []
    assert await cache.get("limit") == "default"


@pytest.mark.skipif(not REDIS_URL, reason="KOAN_TEST_REDIS_URL is not set (CI sets it)")
async def test_a_burst_beyond_the_connection_pool_waits_for_redis_instead_of_falling_back() -> None:
    cache = FallbackCache(RedisCache.from_url(REDIS_URL, f"burst-{uuid.uuid4().hex}:"))
    try:
        await cache.set("seen", "yes", ttl_s=60)
        burst = [cache.get_many(["seen", "unseen"]) for _ in range(3 * REDIS_CONNECTIONS)]
        assert await asyncio.gather(*burst) == [["yes", None]] * len(burst)
        assert not cache.degraded  # still shared by every worker: limits and budgets hold
    finally:
        await cache.close()
