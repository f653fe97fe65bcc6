"""Rate limits with several windows (`20/minute;300/hour`): a hit counts in all or in none."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as redis_asyncio

from koan.errors import RateLimited
from koan.ratelimit import RateLimiter, create_storage
from koan.redis_client import REDIS_CONNECTIONS
from koan.resources import Resources
from tests.conftest import REDIS_URL


async def test_a_refused_hit_is_recorded_in_no_window(resources: Resources) -> None:
    limiter = resources.limiter
    learner = str(uuid.uuid4())
    rule = "3/hour;2/minute"  # the hour first: its window has room when the minute's is full
    await limiter.hit(rule, "submissions", learner)
    await limiter.hit(rule, "submissions", learner)
    with pytest.raises(RateLimited):
        await limiter.hit(rule, "submissions", learner)
    assert await limiter.used("3/hour", "submissions", learner) == 2
    assert await limiter.used("2/minute", "submissions", learner) == 2


async def test_a_hit_may_cost_several_and_is_refused_whole(resources: Resources) -> None:
    limiter = resources.limiter
    teacher = str(uuid.uuid4())
    rule = "10/hour;6/minute"
    await limiter.hit(rule, "invites", teacher, cost=4)
    with pytest.raises(RateLimited) as refused:
        await limiter.hit(rule, "invites", teacher, cost=3)  # the minute has room for 2
    assert refused.value.retry_after >= 1
    assert await limiter.used("10/hour", "invites", teacher) == 4
    await limiter.hit(rule, "invites", teacher, cost=2)
    assert await limiter.used("6/minute", "invites", teacher) == 6
    with pytest.raises(RateLimited):
        await limiter.hit("5/hour", "invites", str(uuid.uuid4()), cost=6)  # never fits


async def test_retry_after_waits_for_every_full_window(resources: Resources) -> None:
    limiter = resources.limiter
    learner = str(uuid.uuid4())
    rule = "1/minute;1/hour"
    await limiter.hit(rule, "chat", learner)
    with pytest.raises(RateLimited) as refused:
        await limiter.hit(rule, "chat", learner)
    # Trying again once the minute is over would be refused by the hour.
    assert 3540 < refused.value.retry_after <= 3601


async def test_concurrent_hits_never_pass_the_limit(resources: Resources) -> None:
    limiter = resources.limiter
    learner = str(uuid.uuid4())

    async def one() -> bool:
        try:
            await limiter.hit("5/minute;6/hour", "hints", learner)
        except RateLimited:
            return False
        return True

    passed = await asyncio.gather(*(one() for _ in range(12)))
    assert sum(passed) == 5
    assert await limiter.used("6/hour", "hints", learner) == 5


@pytest.mark.skipif(not REDIS_URL, reason="KOAN_TEST_REDIS_URL is not set (CI sets it)")
async def test_on_redis_a_hit_is_one_round_trip() -> None:
    limiter = RateLimiter(create_storage(REDIS_URL), namespace=uuid.uuid4().hex)
    watcher = redis_asyncio.Redis.from_url(REDIS_URL)
    done = f"done-{limiter.namespace}"
    sent: list[str] = []
    try:
        async with watcher.monitor() as monitor:

            async def hit_then_mark() -> None:
                await limiter.hit("20/minute;300/hour", "submissions", "learner")
                await watcher.echo(done)

            hitting = asyncio.create_task(hit_then_mark())
            async for command in monitor.listen():
                if done in command["command"]:
                    break
                if limiter.namespace in command["command"]:
                    sent.append(command["command"].split()[0])
            await hitting
    finally:
        await watcher.aclose()
        await limiter.close()
    # Koan sent one script for both windows; the commands it ran inside Redis follow it.
    assert sent[0] == "EVALSHA", sent
    assert "EVALSHA" not in sent[1:], sent
    assert sent.count("lpush") == 2, sent


@pytest.mark.skipif(not REDIS_URL, reason="KOAN_TEST_REDIS_URL is not set (CI sets it)")
async def test_a_burst_beyond_the_connection_pool_is_still_counted_on_redis() -> None:
    limiter = RateLimiter(create_storage(REDIS_URL), namespace=uuid.uuid4().hex)
    learners = [str(n) for n in range(3 * REDIS_CONNECTIONS)]
    try:
        await asyncio.gather(*(limiter.hit("5/minute", "submissions", who) for who in learners))
        assert not limiter.degraded  # counted where every worker counts, not per process
        assert await limiter.used("5/minute", "submissions", learners[-1]) == 1
    finally:
        await limiter.close()
