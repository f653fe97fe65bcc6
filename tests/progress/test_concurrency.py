"""Concurrent submissions of one learner, each in its own committed transaction (as in
production), never double-count or double-award."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable

import pytest
from sqlalchemy import func, select

from koan.config import Settings
from koan.db import transactional
from koan.exercises import lifecycle
from koan.exercises.submit import submit
from koan.models import Assignment, Exercise, LearnerSkillRating, User
from koan.models.progress import PracticeEntry, UserAchievement
from koan.progress import service as progress
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user
from tests.fixtures.live import LiveApp
from tests.progress.conftest import EPOCH, count

LEARNERS_AT_ONCE = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One learner sends all the submissions at once here: let them all be graded."""
    return settings.model_copy(update={"submissions_in_flight": LEARNERS_AT_ONCE})


async def setup(
    live: LiveApp, exercise_count: int
) -> tuple[uuid.UUID, list[uuid.UUID], dict[str, str]]:
    res = live.res
    res.clock.advance(EPOCH - res.clock.now())
    async with res.session_factory() as session, transactional(session):
        user = await create_user(session, res, onboarded=True)
        live.users.append(user.id)
        made = [await create_exercise(session) for _ in range(exercise_count)]
        live.exercises += [e.id for e in made]
        headers = await bearer(session, res, user)
    return user.id, [e.id for e in made], headers


async def submit_and_count(res: Resources, user_id: uuid.UUID, exercise_id: uuid.UUID) -> list[str]:
    """What the submissions route does, plus the progress hook, on a session of its own."""
    async with res.session_factory() as session, transactional(session):
        user = await session.get_one(User, user_id)
        exercise = await session.get_one(Exercise, exercise_id)
        graded = await submit(session, res, user, exercise, ADD_SOLUTION)
        submission = graded.submission
        assert submission.status == "passed", submission.tests
        return await count(session, res, user, submission, graded.assignment, exercise)


async def together(*calls: Awaitable[list[str]]) -> list[list[str]]:
    """Run concurrently; wait for every call to finish before failing, so the cleanup never
    races a transaction still running."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


async def check(res: Resources, user_id: uuid.UUID, unlocked: list[str]) -> progress.Snapshot:
    async with res.session_factory() as session, transactional(session):
        user = await session.get_one(User, user_id)
        kept = await progress.stored(session, user)
        assert kept == await progress.recompute(session, res, user)
        codes = (
            await session.scalars(
                select(UserAchievement.achievement_code).where(UserAchievement.user_id == user_id)
            )
        ).all()
    # Each achievement is in the database once and was reported by exactly one submission.
    assert Counter(codes) == Counter(unlocked)
    assert max(Counter(codes).values()) == 1
    return kept


async def test_concurrent_passes_on_different_exercises(live: LiveApp) -> None:
    user_id, exercise_ids, _ = await setup(live, LEARNERS_AT_ONCE)
    results = await together(
        *(submit_and_count(live.res, user_id, exercise_id) for exercise_id in exercise_ids)
    )
    unlocked = [code for codes in results for code in codes]
    assert Counter(unlocked)["first-exercise"] == 1
    kept = await check(live.res, user_id, unlocked)
    assert (kept.exercises_completed, kept.attempts, kept.first_try_passes) == (5, 5, 5)
    assert (kept.current_streak, kept.longest_streak) == (1, 1)


async def test_concurrent_passes_on_one_assignment(live: LiveApp) -> None:
    user_id, (exercise_id,), _ = await setup(live, 1)
    async with live.res.session_factory() as session, transactional(session):
        user = await session.get_one(User, user_id)
        await lifecycle.start(session, live.res, user, await session.get_one(Exercise, exercise_id))
    results = await together(
        *(submit_and_count(live.res, user_id, exercise_id) for _ in range(LEARNERS_AT_ONCE))
    )
    unlocked = [code for codes in results for code in codes]
    kept = await check(live.res, user_id, unlocked)
    # Five graded attempts, one completion: the first verdict completed it.
    assert (kept.exercises_completed, kept.attempts, kept.first_try_passes) == (1, 5, 1)
    async with live.res.session_factory() as session:
        completions = await session.scalar(
            select(func.count())
            .select_from(PracticeEntry)
            .where(PracticeEntry.user_id == user_id, PracticeEntry.completed)
        )
    assert completions == 1


async def test_concurrent_submissions_over_http(live: LiveApp) -> None:
    user_id, exercise_ids, headers = await setup(live, LEARNERS_AT_ONCE)
    responses = await asyncio.gather(
        *(
            live.client.post(
                f"/api/v1/exercises/{exercise_id}/submissions",
                headers=headers,
                json={"code": ADD_SOLUTION},
            )
            for exercise_id in exercise_ids
        )
    )
    assert [r.status_code for r in responses] == [201] * LEARNERS_AT_ONCE
    unlocked = [code for r in responses for code in r.json()["achievements_unlocked"]]
    kept = await check(live.res, user_id, unlocked)
    assert (kept.exercises_completed, kept.attempts) == (5, 5)


async def test_concurrent_first_passes_of_one_exercise_count_once(
    live: LiveApp,
) -> None:
    # No assignment yet: each submission may open one of its own, and both pass at once.
    user_id, (exercise_id,), _ = await setup(live, 1)
    results = await together(
        *(submit_and_count(live.res, user_id, exercise_id) for _ in range(LEARNERS_AT_ONCE))
    )
    await check(live.res, user_id, [code for codes in results for code in codes])
    async with live.res.session_factory() as session:
        exercise = await session.get_one(Exercise, exercise_id)
        skill_attempts = (
            await session.scalars(
                select(LearnerSkillRating.attempts).where(LearnerSkillRating.user_id == user_id)
            )
        ).all()
        assignments = (
            await session.scalars(select(Assignment).where(Assignment.user_id == user_id))
        ).all()
    # One first solve: one step for the exercise's difficulty and each of the learner's skills.
    assert exercise.rating_attempts == 1
    # In one assignment (a double click on a new exercise opens it once), attempted five times.
    assert [a.attempts for a in assignments] == [LEARNERS_AT_ONCE]
    assert skill_attempts
    assert set(skill_attempts) == {1}
