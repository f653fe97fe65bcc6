"""Two real Koan servers on one PostgreSQL and one Redis behave as one service.

Sessions live in the database and rate-limit windows in Redis, so it must not matter which
worker a learner's request lands on: a login on one is honoured by the other, a logout on one
ends the session on both, and failed logins spread over both are counted once.

(LLM budgets shared by two app instances are covered by tests/usage and tests/chat.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koan.db import create_engine, transactional
from koan.exercises.bank import import_specs
from koan.exercises.repository import exercises_by_slug
from koan.models import Exercise
from tests.conftest import DATABASE_URL, REDIS_URL
from tests.fixtures.factories import exercise_spec
from tests.scale.servers import (
    PASSWORD,
    KoanServer,
    add_user,
    create_database,
    drop_database,
    log_in,
    server_env,
    stop_all,
)

pytestmark = [
    pytest.mark.skipif(
        not (DATABASE_URL and REDIS_URL),
        reason="needs PostgreSQL and Redis (set KOAN_TEST_DATABASE_URL and KOAN_TEST_REDIS_URL)",
    ),
    # One xdist worker starts the two servers once for the module (make test: --dist loadgroup).
    pytest.mark.xdist_group("two-workers"),
]

KOAN_CLI = [sys.executable, "-m", "koan.cli"]


@dataclass
class Cluster:
    a: KoanServer
    b: KoanServer
    engine: AsyncEngine
    # What both servers were started with (database, Redis, key prefix, limits).
    env: dict[str, str] = field(default_factory=dict)

    async def new_learner(self) -> str:
        return (await add_user(self.engine)).email


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory, worker_id_safe: str
) -> AsyncIterator[Cluster]:
    tmp_path = tmp_path_factory.mktemp("two-workers")
    name = f"koan_scale_{worker_id_safe}_{uuid.uuid4().hex[:6]}"
    prefix = f"koan-scale:{uuid.uuid4().hex[:8]}:"
    database_url = await create_database(DATABASE_URL, name)
    engine = create_engine(database_url)
    servers: list[KoanServer] = []
    env = {
        "KOAN_DATABASE_URL": database_url,
        "KOAN_REDIS_URL": REDIS_URL,
        "KOAN_CACHE_PREFIX": prefix,
        "KOAN_LOGIN_LIMIT_PER_ACCOUNT": "3/minute",
        "KOAN_SUBMISSION_LIMIT": "2/minute",
        # Every test logs in from this one address.
        "KOAN_LOGIN_LIMIT_PER_ADDRESS": "1000/minute",
    }
    try:
        for label in ("a", "b"):
            workdir = tmp_path / label
            workdir.mkdir()
            servers.append(KoanServer(server_env(workdir, **env), workdir, name=label).start())
        for server in servers:
            await server.wait_live()
        yield Cluster(servers[0], servers[1], engine, env)
    finally:
        stop_all(servers)
        await engine.dispose()
        await _forget_redis_keys(prefix)
        await drop_database(DATABASE_URL, name)


async def _forget_redis_keys(prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_a_session_opened_on_one_worker_is_honoured_and_ended_on_both(
    cluster: Cluster,
) -> None:
    email = await cluster.new_learner()
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=30) as b,
    ):
        login = await _login(a, email)
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}

        for worker in (a, b):
            me = await worker.get("/api/v1/users/me", headers=bearer)
            assert me.status_code == 200, me.text
            assert me.json()["email"] == email
        # The refresh token minted by A is spent on B; presented again to A within the grace
        # (a second tab), it gets the pair B made: the grace is shared, not per process.
        # (A replay after the grace ends the session: tests/auth/test_refresh_grace.py.)
        refresh = login.json()["refresh_token"]
        rotated = await b.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert rotated.status_code == 200, rotated.text
        second_tab = await a.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert second_tab.status_code == 200, second_tab.text
        assert second_tab.json() == rotated.json()

        # A fresh login, ended on B: the token stops working on A at once.
        second = await _login(b, email)
        assert second.status_code == 200, second.text
        bearer = {"Authorization": f"Bearer {second.json()['access_token']}"}
        assert (await a.get("/api/v1/users/me", headers=bearer)).status_code == 200
        assert (await b.post("/api/v1/auth/logout", headers=bearer)).status_code == 200
        for worker in (a, b):
            gone = await worker.get("/api/v1/users/me", headers=bearer)
            assert gone.status_code == 401
            assert gone.json()["error"] == "InvalidToken"


async def test_failed_logins_spread_over_two_workers_are_counted_once(cluster: Cluster) -> None:
    email = await cluster.new_learner()
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=30) as b,
    ):
        # KOAN_LOGIN_LIMIT_PER_ACCOUNT=3/minute: two failures on A and one on B fill the window.
        statuses = [
            (await _login(worker, email, "not the password!")).status_code for worker in (a, b, a)
        ]
        assert statuses == [401, 401, 401]
        # Even the right password is refused now, on either worker: B saw only one failure
        # itself, so a per-process count would have let this through.
        for worker in (b, a):
            refused = await _login(worker, email)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"] == "RateLimited"
            assert int(refused.headers["Retry-After"]) >= 1


async def _shared_exercise(engine: AsyncEngine) -> tuple[str, str]:
    """A committed exercise both servers grade: (its id, its reference solution)."""
    spec = exercise_spec()
    async with AsyncSession(engine) as session, transactional(session):
        await import_specs(session, [spec], source="imported")
    async with AsyncSession(engine) as session:
        found = await exercises_by_slug(session, [spec.slug])
    return str(found[spec.slug].id), spec.solution


async def _item(engine: AsyncEngine, exercise_id: str) -> tuple[float, int]:
    async with AsyncSession(engine) as session:
        row = (
            await session.execute(
                select(Exercise.rating, Exercise.rating_attempts).where(
                    Exercise.id == uuid.UUID(exercise_id)
                )
            )
        ).one()
    return float(row[0]), int(row[1])


async def test_a_class_passing_one_exercise_on_both_workers_moves_its_rating_once_each(
    cluster: Cluster,
) -> None:
    exercise_id, solution = await _shared_exercise(cluster.engine)
    before, _ = await _item(cluster.engine, exercise_id)
    servers = [cluster.a, cluster.b] * 3
    emails = [await cluster.new_learner() for _ in servers]

    async def pass_on(server: KoanServer, email: str) -> int:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            headers = await log_in(client, email)
            r = await client.post(
                f"/api/v1/exercises/{exercise_id}/submissions",
                headers=headers,
                json={"code": solution},
            )
            return r.status_code

    statuses = await asyncio.gather(
        *(pass_on(server, email) for server, email in zip(servers, emails, strict=True))
    )
    assert statuses == [201] * len(servers)
    rating, attempts = await _item(cluster.engine, exercise_id)
    # Every learner's pass counts, whichever worker graded it and however they interleaved.
    assert attempts == len(servers)
    assert rating < before


async def test_a_learners_submissions_spread_over_two_workers_are_counted_once(
    cluster: Cluster,
) -> None:
    exercise_id, solution = await _shared_exercise(cluster.engine)
    email = await cluster.new_learner()
    url = f"/api/v1/exercises/{exercise_id}/submissions"
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=60) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=60) as b,
    ):
        headers = await log_in(a, email)
        assert (await a.post(url, headers=headers, json={"code": solution})).status_code == 201
        assert (await b.post(url, headers=headers, json={"code": solution})).status_code == 201
        # The limit is 2 a minute: A saw one submission, but the window in Redis holds both.
        third = await a.post(url, headers=headers, json={"code": solution})
    assert third.status_code == 429
    assert third.json()["error"] == "RateLimited"
    assert "Retry-After" in third.headers


# Each worker keeps the session and account it last read for a while, so the next request
# skips the database; a change made through either worker, or from the command line, must
# still hold on both workers from the moment it returns. Every test below first has both
# workers read the account, so a worker answering from what it kept would be caught.


async def _read_on_both(
    a: httpx.AsyncClient, b: httpx.AsyncClient, headers: dict[str, str], path: str
) -> list[httpx.Response]:
    return [await worker.get(path, headers=headers) for worker in (a, b)]


async def test_a_password_changed_on_one_worker_ends_the_other_sessions_on_both(
    cluster: Cluster,
) -> None:
    email = await cluster.new_learner()
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=30) as b,
    ):
        phone = await log_in(a, email)
        laptop = await log_in(b, email)
        for headers in (phone, laptop):
            for me in await _read_on_both(a, b, headers, "/api/v1/users/me"):
                assert me.status_code == 200, me.text
        changed = await b.post(
            "/api/v1/users/me/password",
            headers=laptop,
            json={"current_password": PASSWORD, "new_password": "a-whole-new-secret-42"},
        )
        assert changed.status_code == 200, changed.text
        for gone in await _read_on_both(a, b, phone, "/api/v1/users/me"):
            assert gone.status_code == 401
            assert gone.json()["error"] == "InvalidToken"
        # The session that changed the password goes on, on both workers.
        for me in await _read_on_both(a, b, laptop, "/api/v1/users/me"):
            assert me.status_code == 200, me.text


async def test_an_account_disabled_on_one_worker_is_refused_at_once_on_both(
    cluster: Cluster,
) -> None:
    learner = await add_user(cluster.engine)
    admin = await add_user(cluster.engine, role="admin")
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=30) as b,
    ):
        headers = await log_in(b, learner.email)
        for me in await _read_on_both(a, b, headers, "/api/v1/users/me"):
            assert me.status_code == 200, me.text
        admin_headers = await log_in(a, admin.email)
        disabled = await a.post(f"/api/v1/admin/users/{learner.id}/disable", headers=admin_headers)
        assert disabled.status_code == 200, disabled.text
        for gone in await _read_on_both(a, b, headers, "/api/v1/users/me"):
            assert gone.status_code == 401
            assert gone.json()["error"] == "InvalidToken"


async def test_a_deleted_account_is_refused_at_once_on_both(cluster: Cluster) -> None:
    email = await cluster.new_learner()
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=30) as b,
    ):
        headers = await log_in(a, email)
        for me in await _read_on_both(a, b, headers, "/api/v1/users/me"):
            assert me.status_code == 200, me.text
        deleted = await b.request(
            "DELETE", "/api/v1/users/me", headers=headers, json={"password": PASSWORD}
        )
        assert deleted.status_code == 200, deleted.text
        for gone in await _read_on_both(a, b, headers, "/api/v1/users/me"):
            assert gone.status_code == 401


async def test_an_account_changed_on_one_worker_reads_the_same_on_both(cluster: Cluster) -> None:
    email = await cluster.new_learner()
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=30) as b,
    ):
        headers = await log_in(a, email)
        for me in await _read_on_both(a, b, headers, "/api/v1/users/me"):
            assert me.json()["name"] == "Scale Learner"
        renamed = await a.patch(
            "/api/v1/users/me", headers=headers, json={"name": "Ada", "timezone": "Europe/Paris"}
        )
        assert renamed.status_code == 200, renamed.text
        for me in await _read_on_both(a, b, headers, "/api/v1/users/me"):
            assert (me.json()["name"], me.json()["timezone"]) == ("Ada", "Europe/Paris")
        profile = await b.patch(
            "/api/v1/users/me/profile", headers=headers, json={"goals": "Pass the exam."}
        )
        assert profile.status_code == 200, profile.text
        for seen in await _read_on_both(a, b, headers, "/api/v1/users/me/profile"):
            assert seen.json()["goals"] == "Pass the exam."


async def test_an_administrator_demoted_from_the_command_line_loses_admin_on_both(
    cluster: Cluster, tmp_path: Path
) -> None:
    kept = await add_user(cluster.engine, role="admin")  # Koan keeps at least one admin
    demoted = await add_user(cluster.engine, role="admin")
    async with (
        httpx.AsyncClient(base_url=cluster.a.url, timeout=30) as a,
        httpx.AsyncClient(base_url=cluster.b.url, timeout=30) as b,
    ):
        headers = await log_in(a, demoted.email)
        for page in await _read_on_both(a, b, headers, "/api/v1/admin/users"):
            assert page.status_code == 200, page.text
        done = subprocess.run(
            [*KOAN_CLI, "users", "demote", demoted.email],
            env=server_env(tmp_path, **cluster.env),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        for refused in await _read_on_both(a, b, headers, "/api/v1/admin/users"):
            assert refused.status_code == 403, refused.text
        # The other administrator is untouched.
        still = await log_in(b, kept.email)
        assert (await a.get("/api/v1/admin/users", headers=still)).status_code == 200
