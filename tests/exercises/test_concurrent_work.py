"""A learner's requests on one assignment at the same moment, each in a transaction of its own
as in production (`live`): two tabs, a double click, a skip sent as the code is graded.

On PostgreSQL another transaction holds the learner's progress row (the lock a verdict and a
skip take) until every request waits for it, in a chosen order, so the race is certain; SQLite
runs write transactions one after the other, so there the same requests run in turn.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import httpx
from sqlalchemy import select, text

from koan.db import transactional
from koan.models import Assignment
from koan.models.progress import LearnerProgress
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user
from tests.fixtures.live import LiveApp, live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


async def _lock_waiters(res: Resources) -> int:
    async with res.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


async def _until_waiting(res: Resources, count: int) -> None:
    for _ in range(3000):  # bounded: until `count` requests wait (grading comes first)
        if await _lock_waiters(res) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} requests never waited for the held row")


async def _in_turn(
    res: Resources, user_id: uuid.UUID, *calls: Awaitable[httpx.Response]
) -> list[httpx.Response]:
    """Send `calls` in this order; on PostgreSQL each reaches the learner's lock (held
    meanwhile) before the next is sent, then all go on."""
    if res.engine.dialect.name != "postgresql":
        return [await call for call in calls]
    async with res.engine.connect() as holder:
        hold = await holder.begin()
        row = select(LearnerProgress).where(LearnerProgress.user_id == user_id)
        await holder.execute(row.with_for_update())
        sent = []
        for waiting, call in enumerate(calls, start=1):
            sent.append(asyncio.ensure_future(call))
            await _until_waiting(res, waiting)
        await hold.rollback()
        return list(await asyncio.gather(*sent))


async def test_a_skip_sent_as_a_pass_is_recorded_leaves_the_assignment_completed(
    live: LiveApp,
) -> None:
    """The pass is recorded first; the skip, sent meanwhile, then finds nothing open to skip
    instead of turning the completed assignment into a skipped one."""
    res = live.res
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res, onboarded=True)
        live.users.append(user.id)
        exercise = await create_exercise(session)
        live.exercises.append(exercise.id)
        headers = await bearer(session, res, user)
    url = f"/api/v1/exercises/{exercise.id}"
    started = await live.client.post(f"{url}/start", headers=headers)
    assert started.status_code == 200, started.text

    passed, skipped = await _in_turn(
        res,
        user.id,
        live.client.post(f"{url}/submissions", headers=headers, json={"code": ADD_SOLUTION}),
        live.client.post(f"{url}/skip", headers=headers),
    )

    assert passed.status_code == 201, passed.text
    assert passed.json()["status"] == "passed"
    assert skipped.status_code == 409, skipped.text
    assert skipped.json()["error"] == "NothingToSkip"
    async with res.session_factory() as session:
        status = await session.scalar(
            select(Assignment.status).where(Assignment.id == uuid.UUID(started.json()["id"]))
        )
    assert status == "completed"
