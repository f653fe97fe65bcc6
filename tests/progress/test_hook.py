"""What a graded submission counts for: totals, streaks in the learner's days, levels and
achievements, each awarded once, and always equal to a recompute from the rows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import GENERAL
from koan.db import locked_rows
from koan.exercises import lifecycle
from koan.exercises import service as exercises
from koan.grading import service as grading
from koan.grading.sandbox import GradeReport
from koan.models.progress import (
    LearnerProgress,
    LearnerSkillRating,
    LevelEvent,
    PracticeEntry,
    UserAchievement,
)
from koan.progress import repository as progress_repository
from koan.progress import service as progress
from koan.progress.achievements import Completion
from tests.fixtures.factories import create_exercise
from tests.progress.conftest import EPOCH, WRONG, Learner, create_js_exercise

# A Monday in winter: Paris is UTC+1, New York UTC-5.
MONDAY = date(2027, 1, 11)


def paris(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=1)


def new_york(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) + timedelta(hours=5)


async def level_changes(learner: Learner) -> list[tuple[int, int]]:
    events = await learner.session.scalars(
        select(LevelEvent).where(LevelEvent.user_id == learner.user.id).order_by(LevelEvent.at)
    )
    return [(e.from_level, e.to_level) for e in events]


async def test_first_exercise_on_the_first_try(learner: Learner) -> None:
    attempt = await learner.solve()
    assert attempt.unlocked == ["first-exercise", "first-try"]
    kept = await learner.check_consistent()
    assert (kept.exercises_completed, kept.attempts, kept.first_try_passes) == (1, 1, 1)
    assert (kept.current_streak, kept.longest_streak) == (1, 1)
    assert kept.achievements == {"first-exercise", "first-try"}


async def test_a_failed_attempt_counts_but_earns_nothing(learner: Learner) -> None:
    exercise = await create_exercise(learner.session)
    failed = await learner.submit(exercise, WRONG)
    assert failed.submission.status == "failed"
    assert failed.unlocked == []
    kept = await learner.check_consistent()
    assert (kept.attempts, kept.exercises_completed, kept.current_streak) == (1, 0, 0)

    passed = await learner.submit(exercise)
    assert passed.unlocked == ["first-exercise"]  # not first try: no clean run
    kept = await learner.check_consistent()
    assert (kept.attempts, kept.exercises_completed, kept.first_try_passes) == (2, 1, 0)


@pytest.mark.parametrize(
    ("language", "broken"),
    [
        ("python", "def add(a, b)\n    return a + b\n"),  # a syntax error
        ("python", "import no_such_module\n"),  # an import error
        ("javascript", "function add(a, b) {\n  return a +\n}\n"),
        ("javascript", "require('no-such-module');\n"),
    ],
)
async def test_a_run_that_started_no_test_is_not_an_attempt(
    learner: Learner, language: str, broken: str
) -> None:
    exercise = await (
        create_js_exercise(learner.session)
        if language == "javascript"
        else create_exercise(learner.session)
    )
    failed = await learner.submit(exercise, broken)
    assert failed.submission.status == "error"
    assert failed.assignment.attempts == 0
    assert failed.assignment.status == "in_progress"
    kept = await learner.check_consistent()
    assert kept.attempts == 0

    # The first run that reached the tests passed: a first-try pass, and a clean run.
    passed = await learner.submit(exercise)
    assert passed.unlocked == ["first-exercise", "first-try"]
    kept = await learner.check_consistent()
    assert (kept.attempts, kept.exercises_completed, kept.first_try_passes) == (1, 1, 1)
    # The broken run is still practice that day.
    days = await learner.session.scalar(
        select(func.count())
        .select_from(PracticeEntry)
        .where(PracticeEntry.user_id == learner.user.id)
    )
    assert days == 2


async def test_the_hook_counts_a_submission_once(learner: Learner, session: AsyncSession) -> None:
    attempt = await learner.solve()
    again = await progress.on_submission_graded(
        session,
        learner.res,
        user=learner.user,
        submission=attempt.submission,
        assignment=attempt.assignment,
        exercise=attempt.assignment.exercise,
    )
    assert again == []
    kept = await learner.check_consistent()
    assert (kept.attempts, kept.exercises_completed) == (1, 1)
    entries = await session.scalar(
        select(func.count())
        .select_from(PracticeEntry)
        .where(PracticeEntry.user_id == learner.user.id)
    )
    assert entries == 1


async def test_passing_again_counts_attempts_not_exercises(learner: Learner) -> None:
    exercise = await create_exercise(learner.session)
    await learner.solve(exercise)
    extra = await learner.submit(exercise)  # the same, completed, assignment
    assert extra.submission.status == "passed"
    assert extra.unlocked == []
    redo = await learner.solve(exercise)  # a new practice assignment of the same exercise
    assert redo.assignment.status == "completed"
    kept = await learner.check_consistent()
    # Three graded attempts; two completions, but one exercise.
    assert (kept.attempts, kept.exercises_completed, kept.first_try_passes) == (3, 1, 2)


async def test_streak_follows_the_learners_calendar_days(learner: Learner) -> None:
    # Late on Monday, just after midnight on Tuesday, then Wednesday evening (Paris time).
    learner.travel(paris(MONDAY, 23, 50))
    await learner.solve()
    learner.travel(paris(MONDAY + timedelta(days=1), 0, 10))
    await learner.solve()
    kept = await learner.check_consistent()
    assert (kept.current_streak, kept.last_active_day) == (2, MONDAY + timedelta(days=1))
    learner.travel(paris(MONDAY + timedelta(days=2), 21, 0))
    third = await learner.solve()
    assert "streak-3" in third.unlocked
    # Two completions on the same day do not lengthen it.
    await learner.solve()
    kept = await learner.check_consistent()
    assert (kept.current_streak, kept.longest_streak) == (3, 3)
    # Friday: Thursday was missed, a new run starts; the longest stays.
    learner.travel(paris(MONDAY + timedelta(days=4), 9, 0))
    await learner.solve()
    kept = await learner.check_consistent()
    assert (kept.current_streak, kept.longest_streak) == (1, 3)


async def test_code_handed_in_before_midnight_counts_that_day_when_graded_after(
    learner: Learner, monkeypatch: pytest.MonkeyPatch
) -> None:
    learner.travel(paris(MONDAY, 20, 0))
    await learner.solve()
    # Tuesday 23:59:58: the grader takes five seconds, and answers on Wednesday.
    learner.travel(paris(MONDAY + timedelta(days=1), 23, 59) + timedelta(seconds=58))
    run = grading.run

    async def slow_run(*args: object, **kwargs: object) -> GradeReport:
        report = await run(*args, **kwargs)  # type: ignore[arg-type]
        learner.res.clock.advance(timedelta(seconds=5))
        return report

    monkeypatch.setattr(grading, "run", slow_run)
    late = await learner.solve()
    assert late.submission.graded_at is not None
    assert late.submission.graded_at >= paris(MONDAY + timedelta(days=2), 0, 0)
    kept = await learner.check_consistent()
    assert (kept.current_streak, kept.last_active_day) == (2, MONDAY + timedelta(days=1))
    assert "night-owl" not in learner.unlocked


async def test_moving_east_keeps_each_day_as_it_was_lived(
    learner: Learner, session: AsyncSession
) -> None:
    learner.user.timezone = "America/New_York"
    await session.flush()
    learner.travel(new_york(MONDAY, 21, 0))  # already Tuesday 03:00 in Paris
    await learner.solve()
    learner.user.timezone = "Europe/Paris"
    await session.flush()
    learner.travel(paris(MONDAY + timedelta(days=1), 20, 0))
    await learner.solve()
    kept = await learner.check_consistent()
    assert (kept.current_streak, kept.longest_streak) == (2, 2)


async def test_moving_west_can_complete_on_an_earlier_local_date(
    learner: Learner, session: AsyncSession
) -> None:
    learner.travel(paris(MONDAY, 20, 0))
    await learner.solve()
    learner.travel(paris(MONDAY + timedelta(days=1), 0, 30))  # Tuesday in Paris
    await learner.solve()
    learner.user.timezone = "America/New_York"
    await session.flush()
    learner.travel(new_york(MONDAY, 20, 0))  # still Monday evening in New York
    await learner.solve()
    kept = await learner.check_consistent()
    assert (kept.current_streak, kept.longest_streak) == (2, 2)
    assert kept.last_active_day == MONDAY + timedelta(days=1)


async def test_comeback_after_a_week_away(learner: Learner) -> None:
    learner.travel(paris(MONDAY, 12))
    await learner.solve()
    learner.travel(paris(MONDAY + timedelta(days=7), 12))  # six days without
    assert "comeback" not in (await learner.solve()).unlocked
    learner.travel(paris(MONDAY + timedelta(days=15), 12))  # seven days without
    assert "comeback" in (await learner.solve()).unlocked
    await learner.check_consistent()


async def test_an_exercise_given_up_before_is_not_solved_first_try_when_taken_up_again(
    learner: Learner,
) -> None:
    """Hints seen and attempts failed on an exercise stay with it when the learner gives it up
    (skipped, then expired) and starts it again: that pass is not a clean run, and the failed
    attempts of both count toward never giving up."""
    exercise = await create_exercise(learner.session)
    await lifecycle.start(learner.session, learner.res, learner.user, exercise)
    for _ in range(3):
        await exercises.next_hint(learner.session, learner.res, learner.user, exercise)
    for _ in range(3):
        await learner.submit(exercise, WRONG)
    await lifecycle.skip(learner.session, learner.res, learner.user, exercise)
    learner.travel(EPOCH + timedelta(days=3))  # past the 48 hours: it expired
    again = await lifecycle.start(learner.session, learner.res, learner.user, exercise)
    assert again.hints_used == 0
    for _ in range(2):
        await learner.submit(exercise, WRONG)
    passed = await learner.submit(exercise)
    assert passed.assignment.id == again.id
    assert passed.assignment.status == "completed"
    # Five failed attempts on the exercise, then solved; three hints seen on the way.
    assert passed.unlocked == ["first-exercise", "persistence"]

    # Solved once more later, first try without hints: a pass again, not a first solve.
    learner.travel(EPOCH + timedelta(days=4))
    await lifecycle.start(learner.session, learner.res, learner.user, exercise)
    assert (await learner.submit(exercise)).unlocked == []
    # A new exercise passed first try without hints is a clean run.
    assert (await learner.solve()).unlocked == ["first-try"]
    await learner.check_consistent()


async def test_a_hint_seen_before_giving_an_exercise_up_spoils_its_clean_run(
    learner: Learner,
) -> None:
    exercise = await create_exercise(learner.session)
    await lifecycle.start(learner.session, learner.res, learner.user, exercise)
    await exercises.next_hint(learner.session, learner.res, learner.user, exercise)
    await lifecycle.skip(learner.session, learner.res, learner.user, exercise)
    learner.travel(EPOCH + timedelta(days=3))
    await lifecycle.start(learner.session, learner.res, learner.user, exercise)
    passed = await learner.submit(exercise)
    assert passed.assignment.attempts == 1
    assert passed.unlocked == ["first-exercise"]
    listed = await progress.achievement_list(learner.session, learner.res, learner.user)
    clean_runs = next(a for a in listed.locked if a.code == "first-try-10")
    assert clean_runs.current == 0
    await learner.check_consistent()


async def test_hints_persistence_night_and_polyglot(learner: Learner) -> None:
    learner.travel(paris(MONDAY, 2, 30))
    helped = await learner.solve(hints=1)
    assert helped.unlocked == ["first-exercise", "night-owl"]  # a hint: no clean run
    exercise = await create_exercise(learner.session)
    for _ in range(5):
        await learner.submit(exercise, WRONG)
    assert "persistence" in (await learner.submit(exercise)).unlocked
    js = await create_js_exercise(learner.session)
    polyglot = await learner.solve(js)
    assert {"polyglot", "first-try"} <= set(polyglot.unlocked)
    kept = await learner.check_consistent()
    assert kept.achievements == {
        "first-exercise",
        "night-owl",
        "persistence",
        "polyglot",
        "first-try",
    }
    # Each code was returned exactly once, by the submission that earned it.
    assert sorted(learner.unlocked) == sorted(kept.achievements)


async def test_ten_exercises(learner: Learner) -> None:
    for _ in range(9):
        await learner.solve()
    assert "exercises-10" not in learner.unlocked
    assert "exercises-10" in (await learner.solve()).unlocked
    await learner.check_consistent()


async def test_mastery_and_level_come_from_the_skill_ratings(
    learner: Learner, session: AsyncSession
) -> None:
    # What the adaptive engine would have stored after a run of strong results.
    for skill in (GENERAL, "functions", "math"):
        session.add(
            LearnerSkillRating(
                user_id=learner.user.id, skill=skill, rating=3.2, uncertainty=0.2, attempts=30
            )
        )
    await session.flush()
    attempt = await learner.solve()
    assert "skill-mastered" in attempt.unlocked
    assert "skills-mastered-5" not in attempt.unlocked
    assert await level_changes(learner) == [(1, 5)]  # a beginner starts at level 1
    kept = await learner.check_consistent()
    assert kept.level == 5

    # A skip (or anything) that lowers the ratings is followed at the next hook.
    await session.execute(
        update(LearnerSkillRating)
        .where(LearnerSkillRating.user_id == learner.user.id)
        .values(rating=0.2)
    )
    await progress.on_assignment_skipped(session, learner.res, user=learner.user)
    assert await level_changes(learner) == [(1, 5), (5, 2)]
    # Mastery faded, the achievement stays; recompute keeps it too.
    kept = await learner.check_consistent()
    assert "skill-mastered" in kept.achievements
    assert kept.level == 2


async def test_an_achievement_is_unique_per_learner_in_the_database(
    learner: Learner, session: AsyncSession
) -> None:
    await learner.solve()
    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            session.add(
                UserAchievement(
                    user_id=learner.user.id,
                    achievement_code="first-exercise",
                    earned_at=learner.res.clock.now(),
                )
            )


async def test_the_practice_log_is_read_whole_only_to_build_the_achievement_summary(
    learner: Learner, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[uuid.UUID] = []
    whole_log = progress_repository.completions

    async def counted(session: AsyncSession, user_id: uuid.UUID) -> list[Completion]:
        reads.append(user_id)
        return await whole_log(session, user_id)

    monkeypatch.setattr(progress_repository, "completions", counted)
    for day in range(4):
        learner.travel(paris(MONDAY + timedelta(days=day), 12))
        await learner.solve(hints=day % 2)
    assert len(reads) == 1  # the first completion built it; the others were added to it
    # A learner whose summary was never kept (from before it was) gets it built once.
    await session.execute(
        update(LearnerProgress)
        .where(LearnerProgress.user_id == learner.user.id)
        .values(achievement_summary=None)
        .execution_options(synchronize_session=False)
    )
    locked_rows(session).pop(("learner_progress", learner.user.id), None)  # read it again
    learner.travel(paris(MONDAY + timedelta(days=5), 12))
    await learner.solve()
    learner.travel(paris(MONDAY + timedelta(days=6), 12))
    await learner.solve()
    assert len(reads) == 2
    await learner.check_consistent()
