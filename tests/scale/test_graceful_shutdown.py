"""SIGTERM (systemd stop, a deploy) lets the requests in flight finish, then the worker exits.

A real `koan serve` process grades a submission whose code takes a while; SIGTERM arrives while
it is being graded (its row is already stored as pending). The learner still gets the verdict,
and the process then exits by itself, cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from koan.db import create_engine, transactional
from koan.exercises.bank import import_specs
from koan.exercises.repository import exercises_by_slug
from koan.models import Submission
from tests.fixtures.factories import exercise_spec
from tests.scale.servers import PASSWORD, KoanServer, add_user, migrate, server_env

SLOW_SOLUTION = "import time\n\ntime.sleep(1.5)\n\n\ndef add(a, b):\n    return a + b\n"


async def test_sigterm_waits_for_the_submission_being_graded_then_exits(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'koan.db'}"
    await migrate(url)
    engine = create_engine(url)
    server = KoanServer(server_env(tmp_path, KOAN_DATABASE_URL=url), tmp_path)
    try:
        user = await add_user(engine)
        spec = exercise_spec()
        async with AsyncSession(engine) as session, transactional(session):
            await import_specs(session, [spec], source="imported")
        async with AsyncSession(engine) as session:
            exercise_id = (await exercises_by_slug(session, [spec.slug]))[spec.slug].id

        server.start()
        await server.wait_live()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            submitting = asyncio.create_task(
                client.post(
                    f"/api/v1/exercises/{exercise_id}/submissions",
                    headers=bearer,
                    json={"code": SLOW_SOLUTION},
                )
            )
            await _wait_for_pending_submission(engine, submitting)
            server.signal(signal.SIGTERM)
            response = await submitting

        assert response.status_code == 201, response.text
        assert response.json()["status"] == "passed"
        assert response.json()["passed"] == response.json()["total"] == 4
        # Uvicorn re-raises the signal it caught once shutdown is complete, so the parent
        # (systemd) sees "terminated by SIGTERM", as for any process that honours it.
        assert await server.wait_exit() in (0, -signal.SIGTERM), server.log()
        assert "Traceback" not in server.log()
    finally:
        server.stop()
        await engine.dispose()


async def _wait_for_pending_submission(
    engine: AsyncEngine, request: asyncio.Task[httpx.Response]
) -> None:
    """Until the submission is stored and being graded (bounded poll)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert not request.done(), "the submission finished before SIGTERM could be sent"
        async with engine.connect() as conn:
            pending = await conn.scalar(
                select(Submission.id).where(Submission.status == "pending").limit(1)
            )
        if pending is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the submission was never stored")
