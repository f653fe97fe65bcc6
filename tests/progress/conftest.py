"""Progress fixtures: a learner who solves exercises through the real grading path, and an app
on real committed sessions for the tests that need requests to run concurrently."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import lifecycle
from koan.exercises import service as exercises
from koan.exercises.submit import submit
from koan.models import Assignment, Exercise, Submission, User
from koan.models.progress import Achievement, UserAchievement
from koan.progress import repository as progress_repository
from koan.progress import service as progress
from koan.progress.achievements import Summary
from koan.resources import Resources
from tests.fixtures.factories import create_exercise, create_user
from tests.fixtures.live import live, live_resources

__all__ = ["live", "live_resources"]  # fixtures from tests/fixtures/live.py

WRONG = "def add(a, b):\n    return a - b\n"
JS_SOLUTION = "function add(a, b) {\n  return a + b;\n}\nmodule.exports = { add };\n"
JS_TESTS = """const assert = require('node:assert');
const { add } = require('./solution.js');

test('adds', () => {
  assert.strictEqual(add(1, 2), 3, '1 + 2 should be 3');
});
"""


async def create_js_exercise(session: AsyncSession, **overrides: Any) -> Exercise:
    return await create_exercise(
        session,
        slug=f"js-add-{uuid.uuid4().hex[:10]}",
        language="javascript",
        starter_code="function add(a, b) {}\nmodule.exports = { add };\n",
        solution=JS_SOLUTION,
        tests=JS_TESTS,
        **overrides,
    )


async def count(
    session: AsyncSession,
    res: Resources,
    user: User,
    submission: Submission,
    assignment: Assignment,
    exercise: Exercise,
) -> list[str]:
    """Run the progress hook again on a graded submission; return what the submission unlocked.

    The submit path has counted it already, so this second call must change nothing and
    return [] (a submission that was never counted must return exactly what it recorded).
    """
    counted_by_grading = await progress_repository.entry(session, submission.id) is not None
    returned = await progress.on_submission_graded(
        session,
        res,
        user=user,
        submission=submission,
        assignment=assignment,
        exercise=exercise,
    )
    query = (
        select(UserAchievement.achievement_code)
        .join(Achievement, Achievement.code == UserAchievement.achievement_code)
        .where(UserAchievement.submission_id == submission.id)
        .order_by(Achievement.position)
    )
    earned = list((await session.scalars(query)).all())
    assert returned == ([] if counted_by_grading else earned)
    return earned


@dataclass
class Attempt:
    submission: Submission
    assignment: Assignment
    unlocked: list[str]


@dataclass
class Learner:
    """A learner whose submissions go through the production path: record, grade, hook."""

    session: AsyncSession
    res: Resources
    user: User
    unlocked: list[str] = field(default_factory=list)

    def travel(self, when: datetime) -> None:
        """Move the clock forward to `when` (it never goes back)."""
        delta = when - self.res.clock.now()
        assert delta.total_seconds() > 0, f"{when} is in the past"
        self.res.clock.advance(delta)

    async def submit(self, exercise: Exercise, code: str | None = None) -> Attempt:
        """Submit `code` (the reference solution by default) and count it."""
        graded = await submit(
            self.session, self.res, self.user, exercise, exercise.solution if code is None else code
        )
        submission, assignment = graded.submission, graded.assignment
        unlocked = await count(self.session, self.res, self.user, submission, assignment, exercise)
        assert graded.achievements_unlocked == unlocked
        self.unlocked += unlocked
        return Attempt(submission, assignment, unlocked)

    async def solve(self, exercise: Exercise | None = None, *, hints: int = 0) -> Attempt:
        """Complete `exercise` (a new one by default), after taking `hints` hints."""
        exercise = exercise or await create_exercise(self.session)
        await lifecycle.start(self.session, self.res, self.user, exercise)
        for _ in range(hints):
            await exercises.next_hint(self.session, self.res, self.user, exercise)
        attempt = await self.submit(exercise)
        assert attempt.submission.status == "passed", attempt.submission.tests
        return attempt

    async def check_consistent(self) -> progress.Snapshot:
        """The maintained numbers equal a recompute from the rows."""
        kept = await progress.stored(self.session, self.user)
        assert kept == await progress.recompute(self.session, self.res, self.user)
        # The achievement summary kept one completion at a time is the whole log's.
        row = await progress_repository.progress_of(self.session, self.user.id)
        if row is not None and row.achievement_summary is not None:
            done = await progress_repository.completions(self.session, self.user.id)
            assert Summary.from_json(row.achievement_summary) == Summary.of(done)
        return kept


# Where every learner test starts: a Monday noon in Paris, so nothing depends on when the suite
# runs (a run at 2 a.m. would otherwise earn "night owl").
EPOCH = datetime(2027, 1, 4, 11, 0, tzinfo=UTC)


@pytest.fixture
async def learner(session: AsyncSession, resources: Resources) -> Learner:
    user = await create_user(session, resources, onboarded=True)  # Europe/Paris, beginner
    learner = Learner(session, resources, user)
    learner.travel(EPOCH)
    return learner
