"""The rules of practice: catalogue, today's exercise, hints, skips and submissions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import BackgroundTasks
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import service as adaptive
from koan.chat.hints import tailored_hint
from koan.deps import SessionOpener
from koan.errors import Conflict, NotFound, PayloadTooLarge
from koan.exercises import repository
from koan.exercises.schemas import (
    MAX_CODE_BYTES,
    AssignmentOut,
    DailyOut,
    ExerciseDetail,
    ExercisePage,
    ExerciseSummary,
    HintOut,
    SubmissionPage,
    SubmissionSummary,
)
from koan.generation import service as generation
from koan.models import Assignment, Exercise, Submission, User
from koan.models.exercise import OPEN_STATUSES
from koan.onboarding import repository as profiles
from koan.pagination import decode_cursor, next_cursor
from koan.progress import service as progress
from koan.resources import Resources

SKIP_KEEP = timedelta(hours=48)
DAILY_TTL = timedelta(days=7)


def detail(exercise: Exercise) -> ExerciseDetail:
    return ExerciseDetail(
        id=exercise.id,
        slug=exercise.slug,
        title=exercise.title,
        language=exercise.language,
        difficulty=exercise.difficulty,
        skills=list(exercise.skills),
        statement=exercise.statement,
        starter_code=exercise.starter_code,
        hints_total=len(exercise.hints),
        time_limit_s=exercise.time_limit_s,
        memory_limit_mb=exercise.memory_limit_mb,
    )


def assignment_out(assignment: Assignment) -> AssignmentOut:
    return AssignmentOut(
        id=assignment.id,
        kind=assignment.kind,
        status=assignment.status,
        reason=assignment.reason,
        hints_used=assignment.hints_used,
        attempts=assignment.attempts,
        assigned_at=assignment.assigned_at,
        completed_at=assignment.completed_at,
        skipped_at=assignment.skipped_at,
        available_until=(
            assignment.skipped_at + SKIP_KEEP
            if assignment.status == "skipped" and assignment.skipped_at
            else None
        ),
        exercise=ExerciseSummary.model_validate(assignment.exercise),
    )


def _time_cursor(cursor: str | None) -> datetime | None:
    return decode_cursor(cursor, datetime)[0] if cursor else None


async def catalogue(
    session: AsyncSession,
    *,
    language: str | None,
    skill: str | None,
    difficulty: int | None,
    limit: int,
    cursor: str | None,
) -> ExercisePage:
    after = decode_cursor(cursor, int, str) if cursor else None
    rows = await repository.catalogue(
        session, language=language, skill=skill, difficulty=difficulty, after=after, limit=limit + 1
    )
    items = [ExerciseSummary.model_validate(e) for e in rows[:limit]]
    return ExercisePage(
        items=items, next_cursor=next_cursor(rows, limit, lambda e: (e.difficulty, e.slug))
    )


async def get_exercise(session: AsyncSession, exercise_id: uuid.UUID) -> Exercise:
    exercise = await repository.exercise_by_id(session, exercise_id)
    if exercise is None:
        raise NotFound("There is no exercise with this id.")
    return exercise


async def daily(
    session: AsyncSession,
    res: Resources,
    user: User,
    open_session: SessionOpener,
    tasks: BackgroundTasks,
) -> DailyOut:
    """The learner's open daily assignment, or a newly chosen one. A poor fit (nothing new at
    the learner's level) adds a task to `tasks`: writing the exercise the bank lacked."""
    now = res.clock.now()
    profile = await profiles.profile_for(session, user)
    if not profile.onboarding_completed:
        raise Conflict(
            "Finish the onboarding interview first, so Koan knows what to give you.",
            code="OnboardingRequired",
        )
    assignment = await repository.open_daily(session, user.id)
    if assignment is not None and assignment.assigned_at < now - DAILY_TTL:
        assignment.status = "expired"
        assignment.closed_at = now
        await session.flush()
        assignment = None
    if assignment is None:
        assignment = await _assign_daily(session, res, user, now, open_session, tasks)
    return DailyOut(
        assignment_id=assignment.id,
        status=assignment.status,
        hints_used=assignment.hints_used,
        reason=assignment.reason,
        exercise=detail(assignment.exercise),
    )


async def _assign_daily(
    session: AsyncSession,
    res: Resources,
    user: User,
    now: datetime,
    open_session: SessionOpener,
    tasks: BackgroundTasks,
) -> Assignment:
    profile = await profiles.profile_for(session, user)
    pick = await adaptive.choose_daily(
        session, user, profile, now=now, target=res.settings.adaptive_target_success
    )
    if pick is None:
        raise NotFound(
            "There are no exercises for your language yet; ask an administrator to import some.",
            code="NoExercises",
        )
    refill = adaptive.refill_for(pick, target=res.settings.adaptive_target_success)
    if refill is not None:
        await generation.schedule_refill(res, tasks, open_session, user.id, refill)
    assignment = Assignment(
        user_id=user.id,
        exercise_id=pick.exercise.id,
        kind="daily",
        status="assigned",
        reason=pick.reason[:300],
        assigned_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(assignment)
    except IntegrityError:
        # Another request assigned one first; the database kept exactly one open.
        existing = await repository.open_daily(session, user.id)
        if existing is None:
            raise
        return existing
    assignment.exercise = pick.exercise
    return assignment


async def _work_assignment(
    session: AsyncSession, res: Resources, user: User, exercise: Exercise
) -> Assignment:
    """The assignment a submission or hint belongs to; a practice one is opened if none."""
    latest = await repository.latest_assignment(session, user.id, exercise.id)
    now = res.clock.now()
    if latest is not None:
        if latest.status == "skipped":
            if latest.skipped_at and latest.skipped_at < now - SKIP_KEEP:
                latest.status = "expired"
                latest.closed_at = now
                await session.flush()
            else:
                raise Conflict(
                    "You skipped this exercise. Resume it with POST "
                    f"/api/v1/exercises/{exercise.id}/start to keep working on it.",
                    code="AssignmentSkipped",
                )
        if latest.status == "expired":
            raise Conflict(
                "This assignment has expired. Start the exercise again with POST "
                f"/api/v1/exercises/{exercise.id}/start.",
                code="AssignmentExpired",
            )
        return latest
    return await _new_practice(session, user, exercise, now)


async def _new_practice(
    session: AsyncSession, user: User, exercise: Exercise, now: datetime
) -> Assignment:
    assignment = Assignment(
        user_id=user.id,
        exercise_id=exercise.id,
        kind="practice",
        status="assigned",
        reason="picked from the catalogue",
        assigned_at=now,
    )
    session.add(assignment)
    await session.flush()
    assignment.exercise = exercise
    return assignment


async def start(
    session: AsyncSession, res: Resources, user: User, exercise: Exercise
) -> Assignment:
    """Open (or resume) practice on an exercise outside the daily pick."""
    now = res.clock.now()
    latest = await repository.latest_assignment(session, user.id, exercise.id)
    if latest is not None and latest.status in OPEN_STATUSES:
        return latest
    if (
        latest is not None
        and latest.status == "skipped"
        and latest.skipped_at
        and latest.skipped_at >= now - SKIP_KEEP
    ):
        # A resumed daily becomes practice, so a new daily can still be assigned.
        latest.kind = "practice"
        latest.status = "in_progress" if latest.attempts else "assigned"
        latest.skipped_at = None
        await session.flush()
        return latest
    return await _new_practice(session, user, exercise, now)


async def next_hint(
    session: AsyncSession, res: Resources, user: User, exercise: Exercise
) -> HintOut:
    assignment = await _work_assignment(session, res, user, exercise)
    total = len(exercise.hints)
    if assignment.hints_used >= total:
        raise Conflict(
            "You have seen every hint for this exercise. Ask the tutor, or look again at the "
            "failing test's message.",
            code="NoMoreHints",
        )
    hint = exercise.hints[assignment.hints_used]
    # LLM hint hook: with a model configured, this rung is rewritten for the learner's latest
    # code (cached, leak-guarded); the authored rung stays the fallback.
    hint = await tailored_hint(
        session, res, user, exercise, rung=assignment.hints_used, authored=hint
    )
    assignment.hints_used += 1
    await session.flush()
    return HintOut(hint=hint, index=assignment.hints_used, remaining=total - assignment.hints_used)


async def skip(session: AsyncSession, res: Resources, user: User, exercise: Exercise) -> Assignment:
    latest = await repository.latest_assignment(session, user.id, exercise.id)
    if latest is None or latest.status not in OPEN_STATUSES:
        raise Conflict(
            "There is no open assignment of this exercise to skip.", code="NothingToSkip"
        )
    now = res.clock.now()
    latest.status = "skipped"
    latest.skipped_at = now
    latest.closed_at = now
    await session.flush()
    await progress.lock_learner(session, user)
    await adaptive.record_outcome(
        session,
        user=user,
        profile=await profiles.profile_for(session, user),
        exercise=exercise,
        assignment=latest,
        passed=False,
        skipped=True,
        now=now,
    )
    await progress.on_assignment_skipped(session, res, user=user)
    return latest


@dataclass
class Recorded:
    submission: Submission
    assignment: Assignment
    exercise: Exercise


async def record_submission(
    session: AsyncSession, res: Resources, user: User, exercise: Exercise, code: str
) -> Recorded:
    """Store the submission (status pending) before anything can go wrong while grading."""
    if len(code.encode("utf-8")) > MAX_CODE_BYTES:
        raise PayloadTooLarge(f"Code is limited to {MAX_CODE_BYTES // 1024} KB.")
    assignment = await _work_assignment(session, res, user, exercise)
    submission = Submission(
        user_id=user.id,
        exercise_id=exercise.id,
        assignment_id=assignment.id,
        code=code,
        status="pending",
        created_at=res.clock.now(),
    )
    session.add(submission)
    await session.flush()
    return Recorded(submission, assignment, exercise)


async def assignments_page(
    session: AsyncSession,
    res: Resources,
    user: User,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AssignmentOut], str | None]:
    now = res.clock.now()
    await repository.expire_skipped(session, user.id, before=now - SKIP_KEEP)
    before = _time_cursor(cursor)
    rows = await repository.assignments(
        session, user.id, status=status, skipped_since=now - SKIP_KEEP, before=before,
        limit=limit + 1,
    )  # fmt: skip
    items = [assignment_out(a) for a in rows[:limit]]
    return items, next_cursor(rows, limit, lambda a: (a.assigned_at,))


async def submissions_page(
    session: AsyncSession, user: User, exercise: Exercise, *, limit: int, cursor: str | None
) -> SubmissionPage:
    rows = await repository.submissions(
        session, user.id, exercise.id, before=_time_cursor(cursor), limit=limit + 1
    )
    items = [SubmissionSummary.model_validate(s) for s in rows[:limit]]
    return SubmissionPage(
        items=items, next_cursor=next_cursor(rows, limit, lambda s: (s.created_at,))
    )


async def assignment_of(session: AsyncSession, user: User, assignment_id: uuid.UUID) -> Assignment:
    found = await session.get(Assignment, assignment_id)
    if found is None or found.user_id != user.id:
        raise NotFound("There is no assignment with this id.")
    return await repository.lock_assignment(session, assignment_id)
