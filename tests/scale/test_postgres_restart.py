"""PostgreSQL going away mid-run: learners get 503 + Retry-After, and service returns by itself.

The database is a private PostgreSQL cluster started for this test on a free port (initdb in a
temporary directory), so stopping it disturbs no other test or developer on the machine. The
app is the production one with its own engine and pool (closed connections dropped on
checkout), not the tests' rolled-back connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from koan.app import create_app
from koan.config import Settings
from koan.resources import Resources
from tests.conftest import DATABASE_URL
from tests.scale.servers import SECRET_KEY, PrivatePostgres, add_user, log_in, migrate

pytestmark = pytest.mark.skipif(
    not DATABASE_URL, reason="needs PostgreSQL (set KOAN_TEST_DATABASE_URL)"
)


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        yield server
    finally:
        await asyncio.to_thread(server.destroy)


@pytest_asyncio.fixture
async def resources(private_postgres: PrivatePostgres, tmp_path: Path) -> AsyncIterator[Resources]:
    url = private_postgres.url("postgres")
    await migrate(url)
    settings = Settings(
        env="test",
        secret_key=SECRET_KEY,
        database_url=url,
        redis_url="",
        data_dir=tmp_path,
        password_time_cost=1,
        password_memory_kib=8,
        password_parallelism=1,
        login_slowdown_step_s=0,
        _env_file=None,
    )
    res = Resources.from_settings(settings)
    yield res
    await res.close()


@dataclass
class Learner:
    """A logged-in learner on the production app, and their own account page."""

    client: httpx.AsyncClient
    email: str
    bearer: dict[str, str]

    async def me(self) -> httpx.Response:
        return await self.client.get("/api/v1/users/me", headers=self.bearer)


@asynccontextmanager
async def learner_on(resources: Resources) -> AsyncIterator[Learner]:
    user = await add_user(resources.engine)
    app = create_app(resources=resources)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Learner(client, user.email, await log_in(client, user.email))


def _is_unavailable(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.json()["error"] == "ServiceUnavailable"
        and int(response.headers["Retry-After"]) >= 1
    )


async def test_requests_during_a_database_outage_get_503_and_the_pool_recovers(
    private_postgres: PrivatePostgres, resources: Resources
) -> None:
    async with learner_on(resources) as learner:
        client, bearer, me = learner.client, learner.bearer, learner.me
        # Several pooled connections, all of which the restart will break.
        assert [r.status_code for r in await asyncio.gather(*(me() for _ in range(5)))] == [200] * 5

        await asyncio.to_thread(private_postgres.stop)
        # The account page needs no database while the worker keeps the learner's session
        # (koan.auth.snapshots): nothing can end it while no change can be committed.
        assert (await me()).status_code == 200
        during = [
            await client.get("/api/v1/exercises/daily", headers=bearer),
            await client.patch("/api/v1/users/me", headers=bearer, json={"name": "Still Here"}),
            await client.post(
                "/api/v1/auth/login", json={"email": learner.email, "password": "wrong password!"}
            ),
        ]
        for response in during:
            assert _is_unavailable(response), (response.status_code, response.text)
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unreachable")

        await asyncio.to_thread(private_postgres.start)
        # pg_ctl -w returned: the server accepts connections. The pool drops its dead
        # connections on checkout instead of failing a learner's request with them.
        assert (await me()).status_code == 200
        after = await asyncio.gather(*(me() for _ in range(8)))
        assert [r.status_code for r in after] == [200] * 8
        assert (await client.get("/health/ready")).json()["checks"]["database"] == "ok"
        renamed = await client.patch("/api/v1/users/me", headers=bearer, json={"name": "Back"})
        assert renamed.status_code == 200
        assert renamed.json()["name"] == "Back"


async def test_a_restart_between_requests_is_invisible_to_the_next_one(
    private_postgres: PrivatePostgres, resources: Resources
) -> None:
    """No request sees the outage, so nothing has told the pool yet: its connections are
    dead when the next learner arrives, and the pool must notice that on checkout."""
    async with learner_on(resources) as learner:
        me = learner.me
        assert [r.status_code for r in await asyncio.gather(*(me() for _ in range(3)))] == [200] * 3
        await asyncio.to_thread(private_postgres.stop)
        await asyncio.to_thread(private_postgres.start)
        first = await me()
        assert first.status_code == 200, first.text
        assert [r.status_code for r in await asyncio.gather(*(me() for _ in range(5)))] == [200] * 5
