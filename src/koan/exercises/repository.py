"""Queries for exercises, assignments and submissions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, delete, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value

from koan.exercises.schemas import CatalogueSort
from koan.models import Assignment, Exercise, ExerciseSkill, Submission
from koan.models.exercise import OPEN_STATUSES


def visible_to(user_id: uuid.UUID | None, *, everything: bool = False) -> ColumnElement[bool]:
    """Exercises this learner may see: authored or approved ones, and what was written for
    them (`None`: the shared ones only). `everything` (an admin reviewing) sees them all."""
    if everything:
        return true()
    return or_(
        Exercise.source != "generated",
        Exercise.approved_at.is_not(None),
        Exercise.owner_id == user_id,
    )


async def exercise_by_id(session: AsyncSession, exercise_id: uuid.UUID) -> Exercise | None:
    return await session.get(Exercise, exercise_id)


async def visible_exercise(
    session: AsyncSession,
    exercise_id: uuid.UUID,
    user_id: uuid.UUID | None,
    *,
    everything: bool = False,
) -> Exercise | None:
    """The exercise, if `user_id` may see it (see `visible_to`)."""
    query = select(Exercise).where(
        Exercise.id == exercise_id, visible_to(user_id, everything=everything)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def exercises_by_slug(session: AsyncSession, slugs: Sequence[str]) -> dict[str, Exercise]:
    if not slugs:
        return {}
    rows = await session.execute(
        select(Exercise).where(Exercise.slug.in_(slugs)).options(selectinload(Exercise.skill_rows))
    )
    return {e.slug: e for e in rows.scalars()}


async def all_exercises(session: AsyncSession) -> Sequence[Exercise]:
    query = select(Exercise).order_by(Exercise.language, Exercise.difficulty, Exercise.slug)
    return (await session.execute(query)).scalars().all()


async def bank_page(
    session: AsyncSession,
    *,
    text: str | None,
    after: tuple[str, int, str] | None,
    limit: int,
) -> Sequence[Exercise]:
    """Every exercise (an administrator's view: private ones too) whose title or slug contains
    `text`, by language, difficulty and slug, after the page that ended at `after`."""
    query = select(Exercise).order_by(Exercise.language, Exercise.difficulty, Exercise.slug)
    if text:
        query = query.where(
            or_(_title_like(text), Exercise.slug.contains(text.lower(), autoescape=True))
        )
    if after is not None:
        language, level, slug = after
        query = query.where(
            or_(
                Exercise.language > language,
                and_(Exercise.language == language, Exercise.difficulty > level),
                and_(
                    Exercise.language == language,
                    Exercise.difficulty == level,
                    Exercise.slug > slug,
                ),
            )
        )
    return (await session.execute(query.limit(limit))).scalars().all()


async def bank_count(session: AsyncSession, *, text: str | None) -> int:
    query = select(func.count()).select_from(Exercise)
    if text:
        query = query.where(
            or_(_title_like(text), Exercise.slug.contains(text.lower(), autoescape=True))
        )
    return int((await session.execute(query)).scalar_one())


async def submission_counts(
    session: AsyncSession, exercise_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """(submissions, passed) of each of these exercises (left out: none yet)."""
    if not exercise_ids:
        return {}
    query = (
        select(
            Submission.exercise_id,
            func.count(),
            func.sum(case((Submission.status == "passed", 1), else_=0)),
        )
        .where(Submission.exercise_id.in_(exercise_ids))
        .group_by(Submission.exercise_id)
    )
    rows = (await session.execute(query)).all()
    return {exercise_id: (int(total), int(passed or 0)) for exercise_id, total, passed in rows}


# A cursor's sort key: what the page's last exercise had, in the order's columns
# ((difficulty, slug), (title, slug) or (skill, difficulty, slug)).
CatalogueKey = tuple[Any, ...]


def _main_skill() -> ColumnElement[str]:
    """An exercise's first skill ('' when it has none): what sorting by skill sorts on."""
    first = (
        select(ExerciseSkill.skill)
        .where(ExerciseSkill.exercise_id == Exercise.id, ExerciseSkill.position == 0)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(first, "")


def _title_like(text: str) -> ColumnElement[bool]:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return Exercise.title.ilike(f"%{escaped}%", escape="\\")


def _ordered(
    query: Select[Exercise], sort: CatalogueSort, after: CatalogueKey | None
) -> Select[Exercise]:
    """`query` in the catalogue's `sort` order, continued after the key `after` (keyset)."""
    if sort == "title":
        title = func.lower(Exercise.title)
        query = query.order_by(title, Exercise.slug)
        if after:
            last_title, slug = after
            query = query.where(
                or_(
                    title > func.lower(last_title),
                    and_(title == func.lower(last_title), Exercise.slug > slug),
                )
            )
        return query
    if sort == "skill":
        skill = _main_skill()
        query = query.order_by(skill, Exercise.difficulty, Exercise.slug)
        if after:
            last_skill, level, slug = after
            query = query.where(
                or_(
                    skill > last_skill,
                    and_(skill == last_skill, Exercise.difficulty > level),
                    and_(skill == last_skill, Exercise.difficulty == level, Exercise.slug > slug),
                )
            )
        return query
    query = query.order_by(Exercise.difficulty, Exercise.slug)
    if after:
        level, slug = after
        query = query.where(
            or_(
                Exercise.difficulty > level,
                and_(Exercise.difficulty == level, Exercise.slug > slug),
            )
        )
    return query


def catalogue_query(
    *,
    language: str | None,
    skill: str | None,
    difficulty: int | None,
    title: str | None = None,
    sort: CatalogueSort = "difficulty",
    after: CatalogueKey | None,
    limit: int,
    viewer: uuid.UUID | None = None,
    everything: bool = False,
) -> Select[Exercise]:
    query = select(Exercise).where(visible_to(viewer, everything=everything)).limit(limit)
    if language:
        query = query.where(Exercise.language == language)
    if difficulty:
        query = query.where(Exercise.difficulty == difficulty)
    if skill:
        query = query.where(
            Exercise.id.in_(select(ExerciseSkill.exercise_id).where(ExerciseSkill.skill == skill))
        )
    if title:
        query = query.where(_title_like(title))
    return _ordered(query, sort, after)


async def catalogue(
    session: AsyncSession,
    *,
    language: str | None,
    skill: str | None,
    difficulty: int | None,
    title: str | None = None,
    sort: CatalogueSort = "difficulty",
    after: CatalogueKey | None,
    limit: int,
    viewer: uuid.UUID | None,
    everything: bool = False,
) -> Sequence[Exercise]:
    query = catalogue_query(
        language=language, skill=skill, difficulty=difficulty, title=title, sort=sort,
        after=after, limit=limit, viewer=viewer, everything=everything,
    )  # fmt: skip
    return (await session.execute(query)).scalars().all()


async def work_on(
    session: AsyncSession, user_id: uuid.UUID, exercise_ids: Sequence[uuid.UUID]
) -> Sequence[tuple[uuid.UUID, str, datetime | None]]:
    """The learner's assignments of these exercises, oldest first: (exercise, status, skipped
    at)."""
    if not exercise_ids:
        return []
    query = (
        select(Assignment.exercise_id, Assignment.status, Assignment.skipped_at)
        .where(Assignment.user_id == user_id, Assignment.exercise_id.in_(exercise_ids))
        .order_by(Assignment.assigned_at, Assignment.id)
    )
    return [(row[0], row[1], row[2]) for row in (await session.execute(query)).all()]


async def candidates(
    session: AsyncSession, *, language: str, viewer: uuid.UUID | None
) -> Sequence[Exercise]:
    """Every exercise in a language the learner may see: what the daily pick chooses from."""
    query = (
        select(Exercise)
        .where(Exercise.language == language, visible_to(viewer))
        .order_by(Exercise.slug)
    )
    return (await session.execute(query)).scalars().all()


async def open_daily(session: AsyncSession, user_id: uuid.UUID) -> Assignment | None:
    query = (
        select(Assignment)
        .where(
            Assignment.user_id == user_id,
            Assignment.kind == "daily",
            Assignment.status.in_(OPEN_STATUSES),
        )
        .options(selectinload(Assignment.exercise))
    )
    return (await session.execute(query)).scalar_one_or_none()


async def last_completed_daily(session: AsyncSession, user_id: uuid.UUID) -> Assignment | None:
    """The learner's most recently completed daily assignment."""
    query = (
        select(Assignment)
        .where(
            Assignment.user_id == user_id,
            Assignment.kind == "daily",
            Assignment.status == "completed",
        )
        .order_by(Assignment.completed_at.desc())
        .limit(1)
        .options(selectinload(Assignment.exercise))
    )
    return (await session.execute(query)).scalar_one_or_none()


async def _with_exercise(session: AsyncSession, assignment: Assignment) -> Assignment:
    """Attach the assignment's exercise, from the session's identity map when the caller has
    already read it (a submission or hint reads the exercise first): the exercise row, with its
    statement, tests and solution, is not read twice in one request."""
    exercise = await session.get(Exercise, assignment.exercise_id)
    set_committed_value(assignment, "exercise", exercise)
    return assignment


async def latest_assignment(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID
) -> Assignment | None:
    query = (
        select(Assignment)
        .where(Assignment.user_id == user_id, Assignment.exercise_id == exercise_id)
        .order_by(Assignment.assigned_at.desc())
        .limit(1)
    )
    found = (await session.execute(query)).scalar_one_or_none()
    return None if found is None else await _with_exercise(session, found)


async def assignment_by_id(session: AsyncSession, assignment_id: uuid.UUID) -> Assignment | None:
    query = (
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .options(selectinload(Assignment.exercise))
    )
    return (await session.execute(query)).scalar_one_or_none()


async def lock_assignment(session: AsyncSession, assignment_id: uuid.UUID) -> Assignment:
    """Re-read an assignment FOR UPDATE (PostgreSQL), so concurrent submissions queue up."""
    query = (
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return await _with_exercise(session, (await session.execute(query)).scalar_one())


async def refresh_rating(session: AsyncSession, exercise: Exercise) -> None:
    """Read the exercise's difficulty rating again: other learners' outcomes move it while a
    submission is being graded."""
    await session.refresh(exercise, ["rating", "rating_uncertainty", "rating_attempts"])


async def assignments(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    status: str | None,
    skipped_since: datetime,
    before: datetime | None,
    limit: int,
) -> Sequence[Assignment]:
    query = (
        select(Assignment)
        .where(Assignment.user_id == user_id)
        .order_by(Assignment.assigned_at.desc(), Assignment.id.desc())
        .limit(limit)
        .options(selectinload(Assignment.exercise))
    )
    if status:
        query = query.where(Assignment.status == status)
    if status == "skipped":
        query = query.where(Assignment.skipped_at >= skipped_since)
    if before:
        query = query.where(Assignment.assigned_at < before)
    return (await session.execute(query)).scalars().all()


async def expire_skipped(session: AsyncSession, user_id: uuid.UUID, *, before: datetime) -> None:
    """Skipped assignments are kept 48 hours; older ones become expired."""
    await session.execute(
        update(Assignment)
        .where(
            Assignment.user_id == user_id,
            Assignment.status == "skipped",
            Assignment.skipped_at < before,
        )
        .values(status="expired", closed_at=func.coalesce(Assignment.closed_at, before))
    )


async def submissions(
    session: AsyncSession,
    user_id: uuid.UUID,
    exercise_id: uuid.UUID,
    *,
    before: datetime | None,
    limit: int,
) -> Sequence[Submission]:
    query = (
        select(Submission)
        .where(Submission.user_id == user_id, Submission.exercise_id == exercise_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(limit)
    )
    if before:
        query = query.where(Submission.created_at < before)
    return (await session.execute(query)).scalars().all()


async def latest_submission(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID
) -> Submission | None:
    rows = await submissions(session, user_id, exercise_id, before=None, limit=1)
    return rows[0] if rows else None


async def replace_skills(session: AsyncSession, exercise: Exercise, skills: list[str]) -> None:
    await session.execute(delete(ExerciseSkill).where(ExerciseSkill.exercise_id == exercise.id))
    for position, skill in enumerate(skills):
        session.add(ExerciseSkill(exercise_id=exercise.id, skill=skill, position=position))


async def forget_old_submissions(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID, *, keep: int
) -> None:
    """Beyond the newest `keep` submissions of a learner on an exercise, drop the code, output
    and test messages; the verdict, counts and times stay (progress and the practice log
    count them)."""
    newest = (
        select(Submission.id)
        .where(Submission.user_id == user_id, Submission.exercise_id == exercise_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(keep)
    )
    await session.execute(
        update(Submission)
        .where(
            Submission.user_id == user_id,
            Submission.exercise_id == exercise_id,
            Submission.status != "pending",
            Submission.code != "",
            Submission.id.not_in(newest),
        )
        .values(code="", stdout="", stderr="", tests=[])
        .execution_options(synchronize_session=False)
    )


async def mark_stale_submissions(session: AsyncSession, *, before: datetime) -> int:
    """Submissions still pending from before a crash are recorded as errors, never lost."""
    result = await session.execute(
        update(Submission)
        .where(Submission.status == "pending", Submission.created_at < before)
        .values(status="error", stderr="Grading was interrupted; please submit again.")
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def exercise_history(
    session: AsyncSession, user_id: uuid.UUID
) -> dict[uuid.UUID, tuple[datetime, bool]]:
    """For each exercise the learner was given: when last, and whether they ever completed it."""
    query = (
        select(
            Assignment.exercise_id,
            func.max(Assignment.assigned_at),
            func.max(Assignment.completed_at),
        )
        .where(Assignment.user_id == user_id)
        .group_by(Assignment.exercise_id)
    )
    rows = (await session.execute(query)).all()
    return {row[0]: (row[1], row[2] is not None) for row in rows}


async def skill_names(session: AsyncSession) -> list[str]:
    """Every skill some exercise practises, in order (the catalogue's skill filter)."""
    query = select(ExerciseSkill.skill).distinct().order_by(ExerciseSkill.skill)
    return list((await session.execute(query)).scalars())
