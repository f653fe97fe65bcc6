"""The served app's start and stop."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta

from sqlalchemy import delete

from koan.app import create_app
from koan.config import Settings
from koan.db import transactional
from koan.exercises import submit as submissions
from koan.models import Assignment, Exercise, Submission, User
from tests.fixtures.factories import create_exercise, create_user


async def test_a_served_app_keeps_what_it_starts_with_out_of_the_collectors_sight(
    settings: Settings,
) -> None:
    gc.unfreeze()
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000
        assert gc.get_freeze_count() == 0  # given back when it stops
    finally:
        gc.unfreeze()


async def test_a_grading_a_restart_interrupted_is_settled_while_the_server_runs(
    settings: Settings,
) -> None:
    """Sent just before a restart, it was too recent for the start-up's sweep: the running
    server settles it later instead of leaving the learner waiting for the grader for ever."""
    app = create_app(settings.model_copy(update={"interrupted_sweep_s": 0.05}))
    async with app.router.lifespan_context(app):
        res = app.state.resources
        async with res.session_factory() as session, transactional(session):
            user = await create_user(session, res, onboarded=True)
            exercise = await create_exercise(session)
            assignment = Assignment(user_id=user.id, exercise_id=exercise.id, kind="practice")
            session.add(assignment)
            await session.flush()
            # Pending since before the restart, longer than any grading takes.
            sent = Submission(
                user_id=user.id, exercise_id=exercise.id, assignment_id=assignment.id,
                code="def add(a, b):\n    return a - b\n",
                created_at=res.clock.now() - submissions.STALE_AFTER - timedelta(minutes=1),
            )  # fmt: skip
            session.add(sent)
        try:
            for _ in range(200):
                async with res.session_factory() as session:
                    found = await session.get_one(Submission, sent.id)
                if found.status != "pending":
                    break
                await asyncio.sleep(0.05)
            assert found.status == "error"
            assert "submit again" in found.stderr
            assert found.code == sent.code  # the learner's code is kept
        finally:
            async with res.session_factory() as session, transactional(session):
                await session.execute(delete(User).where(User.id == user.id))
                await session.execute(delete(Exercise).where(Exercise.id == exercise.id))
