"""A learner's requests on one assignment at the same moment, each in a transaction of its own
as in production (`live`): two tabs, a double click, a skip sent as the code is graded.

On PostgreSQL another transaction holds the learner's progress row (the lock a verdict and a
skip take) until every request waits for it, in a chosen order, so the race is certain; SQLite
runs write transactions one after the other, so there the same requests run in turn.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from koan.db import transactional
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
