"""Redis stopping mid-run: requests keep being served, and service returns by itself.

A private redis-server process is started (and killed) on a free loopback port, so the
shared Redis the rest of the suite uses is never disturbed. Runs wherever Redis is part of
the test run (always in CI).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.cache import FallbackCache, RedisCache
from koan.ratelimit import RateLimiter, create_storage
from koan.resources import Resources
from tests.conftest import REDIS_URL
from tests.fixtures.factories import PASSWORD, create_user

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs Redis (set KOAN_TEST_REDIS_URL)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed for this test"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


async def test_requests_survive_redis_going_away_and_coming_back(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    private_redis: RedisProcess,
) -> None:
    cache = FallbackCache(RedisCache.from_url(private_redis.url, "outage:"), retry_after_s=0)
    resources.cache = cache
    resources.limiter = RateLimiter(create_storage(private_redis.url), retry_after_s=0)
    resources.settings.login_limit_per_account_client = "3/minute"
    user = await create_user(session, resources)

    async def login(password: str = PASSWORD) -> int:
        r = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": password}
        )
        return r.status_code

    assert (await client.get("/health/ready")).json()["checks"]["cache"] == "ok"
    assert await login() == 200

    private_redis.stop()
    assert await login() == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    # Limits still hold, counted by this process alone.
    assert [await login("wrong password!") for _ in range(3)] == [401, 401, 401]
    assert await login() == 429
    assert resources.limiter.degraded
    assert cache.degraded
    await cache.set("k", "v")
    assert await cache.get("k") == "v"

    private_redis.start()
    assert (await client.get("/health/ready")).json()["status"] == "ok"
    await cache.set("k", "shared")
    assert await cache.get("k") == "shared"
    assert not cache.degraded
    assert await login() == 200  # a fresh shared window: Redis restarted empty
    assert not resources.limiter.degraded
    await cache.close()
