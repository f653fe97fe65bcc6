"""A learner's requests on one assignment at the same moment, each in a transaction of its own
as in production (`live`): two tabs, a double click, a skip sent as the code is graded.

On PostgreSQL another transaction holds the learner's progress row (the lock a verdict and a
skip take) until every request waits for it, in a chosen order, so the race is certain; SQLite
runs write transactions one after the other, so there the same requests run in turn.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from koan.db import transactional
from koan.exercises import lifecycle
from koan.models import Assignment
from koan.models.progress import LearnerProgress
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user
from tests.fixtures.live import LiveApp, in_turn, live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py


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

    passed, skipped = await in_turn(
        res,
        select(LearnerProgress).where(LearnerProgress.user_id == user.id),
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


async def test_a_daily_expiring_as_its_pass_is_recorded_stays_completed(live: LiveApp) -> None:
    """A week-old daily is passed as the learner asks for today's exercise in another tab: the
    pass is recorded first, and the daily route then finds the daily completed, not open to
    expire, and gives the next one beside it."""
    res = live.res
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res, onboarded=True)
        live.users.append(user.id)
        exercise = await create_exercise(session)
        live.exercises.append(exercise.id)
        daily = await lifecycle.open_daily(
            session, user, exercise, reason="test", now=res.clock.now()
        )
    res.clock.advance(lifecycle.DAILY_TTL + timedelta(minutes=1))
    async with res.session_factory() as session, transactional(session):
        headers = await bearer(session, res, user)

    passed, today = await in_turn(
        res,
        select(Assignment).where(Assignment.id == daily.id),
        live.client.post(
            f"/api/v1/exercises/{exercise.id}/submissions",
            headers=headers,
            json={"code": ADD_SOLUTION},
        ),
        live.client.get("/api/v1/exercises/daily", headers=headers),
        # The submission is stored (it refers to the assignment) before it is graded.
        key_share=True,
    )

    assert passed.status_code == 201, passed.text
    assert passed.json()["status"] == "passed"
    assert today.status_code == 200, today.text
    assert today.json()["assignment_id"] != str(daily.id)
    async with res.session_factory() as session:
        status = await session.scalar(select(Assignment.status).where(Assignment.id == daily.id))
    assert status == "completed"
