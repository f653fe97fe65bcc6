"""A worker whose database connections are all in use answers 503 with Retry-After, not 500."""

from __future__ import annotations

from dataclasses import replace

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from koan.app import create_app
from koan.config import Settings
from koan.db import create_engine, create_session_factory
from koan.resources import Resources
from tests.conftest import Backend
from tests.fixtures.factories import bearer, create_user


async def test_a_request_that_finds_no_free_connection_is_told_to_come_back(
    session: AsyncSession, resources: Resources, backend: Backend
) -> None:
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    # A worker whose one connection is busy (a long grading's verdict, a slow query) and which
    # may open no other.
    engine = create_engine(backend.database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    busy = replace(resources, engine=engine, session_factory=create_session_factory(engine))
    app = create_app(resources=busy)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with (
            engine.connect() as held,
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        ):
            assert not held.closed  # checked out: the pool has nothing left to give
            response = await client.get("/api/v1/users/me", headers=headers)
    finally:
        await engine.dispose()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "ServiceUnavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_the_pool_is_sized_from_the_settings() -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql+asyncpg://koan@127.0.0.1:1/koan",
        database_pool_size=7,
        database_max_overflow=3,
        database_pool_timeout_s=2.5,
    )
    res = Resources.from_settings(settings)
    pool = res.engine.pool
    assert (pool.size(), pool._max_overflow, pool._timeout) == (7, 3, 2.5)  # type: ignore[attr-defined]
