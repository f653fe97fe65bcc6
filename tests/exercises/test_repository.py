"""Queries of the exercises domain that keep what they read for the rest of the request."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import lifecycle, repository
from koan.models import Submission
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, create_exercise, create_user


async def test_the_latest_submission_read_with_the_exercise_gives_way_to_a_new_one(
    session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    now = resources.clock.now()
    assignment = await lifecycle.open_daily(session, user, exercise, reason="test", now=now)

    found = await repository.visible_exercise_and_latest(
        session, exercise.id, user.id, submission=True
    )
    assert found is not None
    assert found[0] is exercise
    assert found[1] is not None
    assert found[1].id == assignment.id
    assert await repository.latest_submission(session, user.id, exercise.id) is None

    submission = Submission(
        id=uuid.uuid4(), user_id=user.id, exercise_id=exercise.id, assignment_id=assignment.id,
        code=ADD_SOLUTION, status="pending", passed=0, total=0, tests=[], stdout="", stderr="",
        duration_ms=0, tier="", created_at=now, graded_at=None,
    )  # fmt: skip
    await repository.add_submission(session, submission)
    latest = await repository.latest_submission(session, user.id, exercise.id)
    assert latest is not None
    assert latest.id == submission.id
