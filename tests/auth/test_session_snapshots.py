"""A worker keeps the caller's session and account between requests, and never past a change.

The copy is checked against generations in the shared cache on every request; any commit that
writes a user, a session or a profile gives that user's generation a new value. Two workers
that share the cache and the database are two apps here (tests/scale/test_two_workers.py runs
two real servers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth.snapshots import RowCopy, Snapshot, SnapshotStore, user_generation_key
from koan.cache import FallbackCache, MemoryCache, RedisCache
from koan.models import User
from koan.resources import Resources
from tests.conftest import Backend
from tests.fixtures.factories import PASSWORD, bearer, create_user
from tests.scale.servers import free_port
from tests.test_statement_counts import counted
from tests.usage.test_budgets import shared_cache

ME = "/api/v1/users/me"


async def test_the_second_request_of_a_session_reads_no_database(
    client: httpx.AsyncClient, learner: User, headers: dict[str, str], backend: Backend
) -> None:
    assert (await client.get(ME, headers=headers)).status_code == 200
    with counted(backend) as sent:
        me = await client.get(ME, headers=headers)
    assert me.status_code == 200
    assert (me.json()["email"], me.json()["onboarding_completed"]) == (learner.email, True)
    assert sent == []


async def test_a_logout_on_another_worker_ends_the_kept_session_at_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    make_app: Callable[[Resources], FastAPI],
) -> None:
    user = await create_user(session, resources)
    credentials = {"email": user.email, "password": PASSWORD}
    login = await client.post("/api/v1/auth/login", json=credentials)
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    other = replace(resources, cache=shared_cache(resources.cache))
    transport = httpx.ASGITransport(app=make_app(other))
    async with httpx.AsyncClient(transport=transport, base_url="http://worker-b") as worker_b:
        for worker in (client, worker_b, client, worker_b):
            assert (await worker.get(ME, headers=headers)).status_code == 200
        assert (await worker_b.post("/api/v1/auth/logout", headers=headers)).status_code == 200
        for worker in (client, worker_b):
            gone = await worker.get(ME, headers=headers)
            assert gone.status_code == 401
            assert gone.json()["error"] == "InvalidToken"


async def test_a_new_generation_from_another_worker_sends_the_next_request_to_the_database(
    client: httpx.AsyncClient,
    learner: User,
    headers: dict[str, str],
    resources: Resources,
    backend: Backend,
) -> None:
    for _ in range(2):
        assert (await client.get(ME, headers=headers)).status_code == 200
    # What another worker writes when it commits a change to this learner.
    await resources.cache.set(user_generation_key(learner.id), "changed elsewhere")
    with counted(backend) as sent:
        assert (await client.get(ME, headers=headers)).status_code == 200
    assert len(sent) == 1
    with counted(backend) as sent:
        assert (await client.get(ME, headers=headers)).status_code == 200
    assert sent == []


async def test_a_change_flushed_in_this_process_is_seen_by_the_next_request(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
) -> None:
    for _ in range(2):
        assert (await client.get(ME, headers=headers)).status_code == 200
    learner.name = "Renamed"
    await session.flush()
    assert (await client.get(ME, headers=headers)).json()["name"] == "Renamed"
    learner.disabled_at = datetime.now(UTC)
    await session.flush()
    assert (await client.get(ME, headers=headers)).status_code == 401


async def test_nothing_kept_is_used_while_the_shared_cache_is_unreachable(
    session: AsyncSession,
    resources: Resources,
    backend: Backend,
    make_app: Callable[[Resources], FastAPI],
) -> None:
    # Redis down: the per-process fallback does not hear other workers' changes.
    down = FallbackCache(RedisCache.from_url(f"redis://127.0.0.1:{free_port()}/0"))
    worker = replace(resources, cache=down)
    user = await create_user(session, worker)
    headers = await bearer(session, worker, user)
    transport = httpx.ASGITransport(app=make_app(worker))
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        for _ in range(3):
            with counted(backend) as sent:
                assert (await client.get(ME, headers=headers)).status_code == 200
            assert len(sent) == 1
    await down.close()


def _snapshot(cache: MemoryCache, user_id: uuid.UUID, stored_at: float) -> Snapshot:
    empty = RowCopy({}, {})
    return Snapshot(user_id, cache, ("every", "mine"), stored_at, empty, empty, None)


def test_a_kept_copy_is_used_only_for_its_user_its_generations_and_its_age() -> None:
    cache, other_cache = MemoryCache(), MemoryCache()
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    store = SnapshotStore(max_entries=2, max_age_s=30)
    store.put(session_id, _snapshot(cache, user_id, time.monotonic()))
    assert store.get(cache, session_id, user_id, ("every", "mine")) is not None
    assert store.get(cache, session_id, uuid.uuid4(), ("every", "mine")) is None
    assert store.get(cache, session_id, user_id, ("every", "new")) is None
    assert store.get(other_cache, session_id, user_id, ("every", "mine")) is None
    store.put(session_id, _snapshot(cache, user_id, time.monotonic() - 30))
    assert store.get(cache, session_id, user_id, ("every", "mine")) is None
    assert len(store) == 0
    # Full: the oldest goes.
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for kept in (first, second, third):
        store.put(kept, _snapshot(cache, user_id, time.monotonic()))
    assert store.get(cache, first, user_id, ("every", "mine")) is None
    assert store.get(cache, third, user_id, ("every", "mine")) is not None
    store.forget([user_id])
    assert len(store) == 0


async def test_an_account_read_from_the_kept_copy_saves_its_changes(
    client: httpx.AsyncClient, session: AsyncSession, learner: User, headers: dict[str, str]
) -> None:
    for _ in range(2):
        assert (await client.get(ME, headers=headers)).status_code == 200
    changed = await client.patch(
        ME, headers=headers, json={"name": "Grace", "preferences": {"theme": "dark"}}
    )
    assert changed.status_code == 200, changed.text
    await session.refresh(learner)
    assert (learner.name, learner.preferences["theme"]) == ("Grace", "dark")
    me = (await client.get(ME, headers=headers)).json()
    assert (me["name"], me["preferences"]["theme"]) == ("Grace", "dark")


async def test_the_account_is_shown_from_the_kept_copy_without_a_database_session(
    session: AsyncSession, resources: Resources, make_app: Callable[[Resources], FastAPI]
) -> None:
    worker = replace(resources)
    app = make_app(worker)
    factory = worker.session_factory
    opened: list[AsyncSession] = []

    def counting_factory() -> AsyncSession:
        opened.append(factory())
        return opened[-1]

    worker.session_factory = counting_factory  # type: ignore[assignment]
    user = await create_user(session, worker)
    headers = await bearer(session, worker, user)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        first = await client.get(ME, headers=headers)
        assert len(opened) == 1  # nothing kept yet: the caller is read in a session
        second = await client.get(ME, headers=headers)
        assert len(opened) == 1
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.json()["email"] == user.email
