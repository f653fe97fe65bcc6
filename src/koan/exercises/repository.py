"""Queries for exercises, assignments and submissions."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    Subquery,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload, make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from koan.db import insert_unless_present, memo
from koan.db.scope import set_for
from koan.db.stats import median, minutes_between
from koan.exercises.schemas import CatalogueSort
from koan.models import (
    Assignment,
    AssignmentHint,
    ClassExerciseReview,
    ClassMembership,
    Exercise,
    ExerciseSkill,
    Submission,
)
from koan.models.exercise import OPEN_STATUSES
from koan.pagination import NewestFirstKey, older_than


def approved_for_classes_of(viewer: object) -> ColumnElement[bool]:
    """Generated exercises a class of the viewer's has approved (its instructor's review
    shares one with the class's members: ix_class_memberships_user, then the reviews' key)."""
    return Exercise.id.in_(
        select(ClassExerciseReview.exercise_id)
        .join(ClassMembership, ClassMembership.class_id == ClassExerciseReview.class_id)
        .where(ClassMembership.user_id == viewer, ClassExerciseReview.status == "approved")
    )


def visible_to(user_id: uuid.UUID | None, *, everything: bool = False) -> ColumnElement[bool]:
    """Exercises this learner may see: authored or approved ones, what was written for them,
    and what a class of theirs approved (`None`: the shared ones only). `everything` (an admin
    reviewing) sees them all."""
    if everything:
        return true()
    if user_id is None:
        return or_(Exercise.source != "generated", Exercise.approved_at.is_not(None))
    return or_(
        Exercise.source != "generated",
        Exercise.approved_at.is_not(None),
        Exercise.owner_id == user_id,
        approved_for_classes_of(user_id),
    )


async def exercise_by_id(session: AsyncSession, exercise_id: uuid.UUID) -> Exercise | None:
    return await session.get(Exercise, exercise_id)


# The statements a learner's every request runs are built once, with bound parameters: building
# one and computing its cache key cost about as much CPU as SQLAlchemy then spends running it.
_EXERCISE = select(Exercise).where(Exercise.id == bindparam("exercise_id"))
# `visible_to` for the learner bound as "viewer": one clause for every statement built once, so
# the exercise page, the candidates and the daily bank cannot disagree on what a learner sees.
_VISIBLE_TO_VIEWER = or_(
    Exercise.source != "generated",
    Exercise.approved_at.is_not(None),
    Exercise.owner_id == bindparam("viewer"),
    approved_for_classes_of(bindparam("viewer")),
)
_VISIBLE_EXERCISE = _EXERCISE.where(_VISIBLE_TO_VIEWER)


async def visible_exercise(
    session: AsyncSession,
    exercise_id: uuid.UUID,
    user_id: uuid.UUID | None,
    *,
    everything: bool = False,
) -> Exercise | None:
    """The exercise, if `user_id` may see it (see `visible_to`)."""
    if everything:
        found = await session.execute(_EXERCISE, {"exercise_id": exercise_id})
    elif user_id is None:  # `owner_id IS NULL`, which a bound parameter cannot say
        query = _EXERCISE.where(visible_to(None))
        found = await session.execute(query, {"exercise_id": exercise_id})
    else:
        found = await session.execute(
            _VISIBLE_EXERCISE, {"exercise_id": exercise_id, "viewer": user_id}
        )
    return found.scalar_one_or_none()


# The same exercise with, in the same row, the learner's latest assignment of it (none: NULLs),
# the one a submission or a hint works in: `latest_assignment`'s order, as a correlated subquery
# on ix_assignments_user_exercise.
_LATEST_OF_EXERCISE = (
    select(Assignment.id)
    .where(Assignment.user_id == bindparam("viewer"), Assignment.exercise_id == Exercise.id)
    .order_by(Assignment.assigned_at.desc())
    .limit(1)
    .correlate(Exercise)
    .scalar_subquery()
)
_LATEST_SUBMISSION_OF_EXERCISE = (
    select(Submission.id)
    .where(Submission.user_id == bindparam("viewer"), Submission.exercise_id == Exercise.id)
    .order_by(Submission.created_at.desc(), Submission.id.desc())
    .limit(1)
    .correlate(Exercise)
    .scalar_subquery()
)


def _exercise_and_latest(*, visible: bool, submission: bool) -> Any:
    query = select(Exercise, Assignment).outerjoin(Assignment, Assignment.id == _LATEST_OF_EXERCISE)
    if submission:
        query = query.add_columns(Submission).outerjoin(
            Submission, Submission.id == _LATEST_SUBMISSION_OF_EXERCISE
        )
    query = query.where(Exercise.id == bindparam("exercise_id"))
    return query.where(_VISIBLE_TO_VIEWER) if visible else query


# (visible to the viewer only, with the latest submission) -> the statement, built once.
_EXERCISE_AND_LATEST = {
    (visible, submission): _exercise_and_latest(visible=visible, submission=submission)
    for visible in (False, True)
    for submission in (False, True)
}


def _latest_submission_key(user_id: uuid.UUID, exercise_id: uuid.UUID) -> tuple[Any, ...]:
    return ("latest_submission", user_id, exercise_id)


async def visible_exercise_and_latest(
    session: AsyncSession,
    exercise_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    everything: bool = False,
    submission: bool = False,
) -> tuple[Exercise, Assignment | None] | None:
    """`visible_exercise` and the learner's `latest_assignment` of it, in one statement; with
    `submission`, also their `latest_submission`, which that function then answers with
    (until a submission is added) instead of reading it again."""
    query = _EXERCISE_AND_LATEST[(not everything, submission)]
    row = (await session.execute(query, {"exercise_id": exercise_id, "viewer": user_id})).first()
    if row is None:
        return None
    exercise, latest = row[0], row[1]
    if latest is not None:
        set_committed_value(latest, "exercise", exercise)
    if submission:
        memo(session)[_latest_submission_key(user_id, exercise_id)] = row[2]
    return exercise, latest


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


# Approved by an administrator (shared with everyone) or by a class's instructor.
_APPROVED = or_(
    Exercise.approved_at.is_not(None),
    Exercise.id.in_(
        select(ClassExerciseReview.exercise_id).where(ClassExerciseReview.status == "approved")
    ),
)


async def exportable_exercises(
    session: AsyncSession, *, include_generated: bool
) -> tuple[Sequence[Exercise], int]:
    """The exercises a pack export writes, and how many it leaves out: authored ones and
    generated ones an administrator or a class's instructor approved; with
    `include_generated`, those written for one learner that nobody approved as well."""
    query = select(Exercise).order_by(Exercise.language, Exercise.difficulty, Exercise.slug)
    if include_generated:
        return (await session.execute(query)).scalars().all(), 0
    shared = or_(Exercise.source != "generated", _APPROVED)
    kept = (await session.execute(query.where(shared))).scalars().all()
    left_out = await session.scalar(select(func.count()).select_from(Exercise).where(~shared))
    return kept, left_out or 0


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


_CANDIDATES = (
    select(Exercise)
    .where(Exercise.language == bindparam("language"), _VISIBLE_TO_VIEWER)
    .order_by(Exercise.slug)
)


async def candidates(
    session: AsyncSession, *, language: str, viewer: uuid.UUID | None
) -> Sequence[Exercise]:
    """Every exercise in a language the learner may see: what the daily pick chooses from."""
    if viewer is None:  # `owner_id IS NULL`, which a bound parameter cannot say
        query = (
            select(Exercise)
            .where(Exercise.language == language, visible_to(viewer))
            .order_by(Exercise.slug)
        )
        return (await session.execute(query)).scalars().all()
    found = await session.execute(_CANDIDATES, {"language": language, "viewer": viewer})
    return found.scalars().all()


@dataclass(frozen=True, slots=True)
class BankEntry:
    """An exercise as the daily pick weighs it, read without its content (starter, solution,
    tests, hints): a language's whole bank is weighed for every pick, and one is chosen."""

    id: uuid.UUID
    title: str
    statement: str
    language: str
    difficulty: int
    skills: list[str]
    rating: float
    rating_uncertainty: float
    rating_attempts: int
    # The viewer's history of it: when last given (None: never), whether ever completed.
    last_given: datetime | None
    completed: bool
    # How many exercises the viewer has been given, in any language (the same on every entry).
    given: int


# Table columns, not the mapped class's: the rows come back as plain rows, without the ORM's
# loading (a whole bank of them on every pick).
_BANK_EXERCISES = cast(Table, Exercise.__table__)
_BANK_ASSIGNMENTS = cast(Table, Assignment.__table__)
_GIVEN = (
    select(
        _BANK_ASSIGNMENTS.c.exercise_id,
        func.max(_BANK_ASSIGNMENTS.c.assigned_at).label("last_given"),
        func.max(_BANK_ASSIGNMENTS.c.completed_at).label("last_completed"),
    )
    .where(_BANK_ASSIGNMENTS.c.user_id == bindparam("viewer"))
    .group_by(_BANK_ASSIGNMENTS.c.exercise_id)
    .subquery("given")
)
_DAILY_BANK = (
    select(
        _BANK_EXERCISES.c.id,
        _BANK_EXERCISES.c.title,
        _BANK_EXERCISES.c.statement,
        _BANK_EXERCISES.c.language,
        _BANK_EXERCISES.c.difficulty,
        _BANK_EXERCISES.c.skills,
        _BANK_EXERCISES.c.rating,
        _BANK_EXERCISES.c.rating_uncertainty,
        _BANK_EXERCISES.c.rating_attempts,
        _GIVEN.c.last_given,
        _GIVEN.c.last_completed.is_not(None),
        select(func.count(_BANK_ASSIGNMENTS.c.exercise_id.distinct()))
        .where(_BANK_ASSIGNMENTS.c.user_id == bindparam("viewer"))
        .scalar_subquery(),
    )
    .outerjoin(_GIVEN, _GIVEN.c.exercise_id == _BANK_EXERCISES.c.id)
    .where(_BANK_EXERCISES.c.language == bindparam("language"), _VISIBLE_TO_VIEWER)
    .order_by(_BANK_EXERCISES.c.slug)
)


async def daily_bank(session: AsyncSession, *, language: str, viewer: uuid.UUID) -> list[BankEntry]:
    """What the daily pick chooses from (the exercises of `candidates`), as plain values, with
    the viewer's history of each: no row is kept in the session, and the content is read only
    for the exercise chosen."""
    found = await session.execute(_DAILY_BANK, {"language": language, "viewer": viewer})
    return [BankEntry(*cast("tuple[Any, ...]", row)) for row in found]


_OPEN_DAILY = (
    select(Assignment)
    .where(
        Assignment.user_id == bindparam("user_id"),
        Assignment.kind == "daily",
        Assignment.status.in_(OPEN_STATUSES),
    )
    .options(selectinload(Assignment.exercise))
)


async def open_daily(session: AsyncSession, user_id: uuid.UUID) -> Assignment | None:
    return (await session.execute(_OPEN_DAILY, {"user_id": user_id})).scalar_one_or_none()


_OPEN_WORK = (
    select(Assignment)
    .where(Assignment.user_id == bindparam("user_id"), Assignment.status.in_(OPEN_STATUSES))
    .order_by(Assignment.assigned_at.desc(), Assignment.id.desc())
    .limit(bindparam("limit"))
    .options(joinedload(Assignment.exercise))
)


async def open_work(session: AsyncSession, user_id: uuid.UUID, *, limit: int) -> list[Assignment]:
    """The learner's newest `limit` open assignments with their exercises, newest first
    (ix_assignments_user_status)."""
    found = await session.execute(_OPEN_WORK, {"user_id": user_id, "limit": limit})
    return list(found.scalars().unique())


_ASSIGNMENTS = cast("Table", Assignment.__table__)
# A Core UPDATE of the one column, built once: no ORM flush for a counter.
_COUNT_HINT_SHOWN = (
    update(_ASSIGNMENTS)
    .where(_ASSIGNMENTS.c.id == bindparam("assignment_id"))
    .values(
        hints_used=case(
            (_ASSIGNMENTS.c.hints_used < bindparam("shown"), bindparam("shown")),
            else_=_ASSIGNMENTS.c.hints_used,
        )
    )
    .returning(_ASSIGNMENTS.c.hints_used)
)


async def count_hint_shown(session: AsyncSession, assignment: Assignment, shown: int) -> int:
    """Count the assignment's first `shown` hints as seen, and return the count stored. It only
    moves forward: a request that read the count before another showed a later rung cannot
    lower it. The object in the session takes the stored count."""
    params = {"assignment_id": assignment.id, "shown": shown}
    stored = int((await session.execute(_COUNT_HINT_SHOWN, params)).scalar_one())
    set_committed_value(assignment, "hints_used", stored)
    return stored


_KEPT_HINTS = cast("Table", AssignmentHint.__table__)
# The first tailored hint kept for a rung stays: two requests that raced for the same rung
# each showed theirs, and the page goes on showing one of them.
_KEEP_HINT = insert_unless_present(_KEPT_HINTS, _KEPT_HINTS.c.assignment_id, _KEPT_HINTS.c.rung)


async def keep_hint(
    session: AsyncSession, assignment_id: uuid.UUID, rung: int, text: str, *, now: datetime
) -> None:
    """Keep the hint the model tailored for rung `rung` (0-based) of the assignment."""
    values = {"assignment_id": assignment_id, "rung": rung, "text": text, "created_at": now}
    await session.execute(_KEEP_HINT[session.get_bind().dialect.name], values)


_KEPT_HINTS_OF = (
    select(_KEPT_HINTS.c.rung, _KEPT_HINTS.c.text)
    .where(_KEPT_HINTS.c.assignment_id == bindparam("assignment_id"))
    .order_by(_KEPT_HINTS.c.rung)
)


async def kept_hints(session: AsyncSession, assignment_id: uuid.UUID) -> dict[int, str]:
    """Rung (0-based) -> the tailored hint kept for it, for the assignment's rungs the model
    tailored (its primary key)."""
    rows = await session.execute(_KEPT_HINTS_OF, {"assignment_id": assignment_id})
    return {rung: text for rung, text in rows}


_ASSIGNMENT_COLUMNS = [column.key for column in Assignment.__table__.columns]
_OPEN_DAILY_WHERE = text(
    "kind = 'daily' AND status IN (" + ", ".join(f"'{s}'" for s in OPEN_STATUSES) + ")"
)


def _insert_open_daily(insert: Callable[..., postgresql.Insert | sqlite.Insert]) -> Any:
    table = Assignment.__table__
    return (
        # The table, not the mapped class: a plain Core statement, no ORM bulk insert around it.
        insert(table)
        .values({name: bindparam(name, type_=table.c[name].type) for name in _ASSIGNMENT_COLUMNS})
        # uq_assignments_open_daily: the learner's one open daily assignment (its predicate
        # as written, for PostgreSQL to match the index by; bound values it would not).
        .on_conflict_do_nothing(index_elements=[table.c.user_id], index_where=_OPEN_DAILY_WHERE)
        .returning(table.c.id)
    )


# Built once per database.
_INSERT_OPEN_DAILY = {
    "postgresql": _insert_open_daily(postgresql.insert),
    "sqlite": _insert_open_daily(sqlite.insert),
}


async def add_open_daily(session: AsyncSession, assignment: Assignment) -> bool:
    """Insert `assignment` (a new daily one, every column set) unless the learner already has
    an open daily assignment: the database's unique index decides, in the same round trip,
    without a SAVEPOINT to roll back to. When inserted, it joins the session as a row just
    loaded, and True is returned."""
    values = {name: getattr(assignment, name) for name in _ASSIGNMENT_COLUMNS}
    statement = _INSERT_OPEN_DAILY[session.get_bind().dialect.name]
    if (await session.execute(statement, values)).first() is None:
        return False
    make_transient_to_detached(assignment)
    session.add(assignment)
    return True


_DONE_DAILY = aliased(Assignment)
_COMPLETING = aliased(Submission)
# When a completed assignment's work was done: when the code that completed it was sent (the
# verdict stamps completed_at with its graded_at), as the streak counts it, so code sent at
# 23:59 and graded after midnight finishes that day's exercise, not the next day's.
_DAILY_DONE_AT = func.coalesce(_COMPLETING.created_at, _DONE_DAILY.completed_at)
# One row whatever the learner has: their open daily assignment (or NULLs) beside when they
# last completed a daily one, so the daily route learns both in one round trip.
_OPEN_DAILY_AND_LAST_DONE = (
    select(
        Assignment,
        select(func.max(_DAILY_DONE_AT))
        .select_from(_DONE_DAILY)
        .outerjoin(
            _COMPLETING,
            and_(
                _COMPLETING.assignment_id == _DONE_DAILY.id,
                _COMPLETING.graded_at == _DONE_DAILY.completed_at,
            ),
        )
        .where(
            _DONE_DAILY.user_id == bindparam("user_id"),
            _DONE_DAILY.kind == "daily",
            _DONE_DAILY.status == "completed",
        )
        .scalar_subquery(),
    )
    .select_from(select(text("1 AS one")).subquery("one_row"))
    .outerjoin(
        Assignment,
        and_(
            Assignment.user_id == bindparam("user_id"),
            Assignment.kind == "daily",
            Assignment.status.in_(OPEN_STATUSES),
        ),
    )
    .options(selectinload(Assignment.exercise))
)


async def open_daily_and_last_done(
    session: AsyncSession, user_id: uuid.UUID, *, fresh: bool = False
) -> tuple[Assignment | None, datetime | None]:
    """The learner's open daily assignment, if any, and when they last completed a daily one.
    `fresh`: an assignment the session holds already takes the values read now."""
    query = _OPEN_DAILY_AND_LAST_DONE
    if fresh:
        query = query.execution_options(populate_existing=True)
    row = (await session.execute(query, {"user_id": user_id})).one()
    return row[0], row[1]


async def last_completed_daily(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[Assignment, datetime] | None:
    """The learner's most recently completed daily assignment, and when the code that
    completed it was sent."""
    query = (
        select(_DONE_DAILY, _DAILY_DONE_AT)
        .outerjoin(
            _COMPLETING,
            and_(
                _COMPLETING.assignment_id == _DONE_DAILY.id,
                _COMPLETING.graded_at == _DONE_DAILY.completed_at,
            ),
        )
        .where(
            _DONE_DAILY.user_id == user_id,
            _DONE_DAILY.kind == "daily",
            _DONE_DAILY.status == "completed",
        )
        .order_by(_DAILY_DONE_AT.desc())
        .limit(1)
        .options(selectinload(_DONE_DAILY.exercise))
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def _with_exercise(session: AsyncSession, assignment: Assignment) -> Assignment:
    """Attach the assignment's exercise, from the session's identity map when the caller has
    already read it (a submission or hint reads the exercise first): the exercise row, with its
    statement, tests and solution, is not read twice in one request."""
    exercise = await session.get(Exercise, assignment.exercise_id)
    set_committed_value(assignment, "exercise", exercise)
    return assignment


_LATEST_ASSIGNMENT = (
    select(Assignment)
    .where(
        Assignment.user_id == bindparam("user_id"),
        Assignment.exercise_id == bindparam("exercise_id"),
    )
    .order_by(Assignment.assigned_at.desc())
    .limit(1)
)


async def latest_assignment(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID
) -> Assignment | None:
    params = {"user_id": user_id, "exercise_id": exercise_id}
    found = (await session.execute(_LATEST_ASSIGNMENT, params)).scalar_one_or_none()
    return None if found is None else await _with_exercise(session, found)


async def settled_before(session: AsyncSession, assignment: Assignment) -> bool:
    """Whether the learner completed the assignment's exercise, or gave it up, in another
    assignment: a skip then says nothing new about them, nor about the exercise."""
    params = {
        "learner": assignment.user_id,
        "exercise": assignment.exercise_id,
        "assignment": assignment.id,
    }
    return bool((await session.execute(_ASK_SETTLED_BEFORE, params)).scalar())


async def assignment_by_id(session: AsyncSession, assignment_id: uuid.UUID) -> Assignment | None:
    query = (
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .options(selectinload(Assignment.exercise))
    )
    return (await session.execute(query)).scalar_one_or_none()


_ASSIGNMENTS = cast(Table, Assignment.__table__)
_EXERCISES = cast(Table, Exercise.__table__)
_SUBMISSIONS = cast(Table, Submission.__table__)


def _of_its_exercise(column: str) -> Any:
    return (
        select(_EXERCISES.c[column])
        .where(_EXERCISES.c.id == _ASSIGNMENTS.c.exercise_id)
        .scalar_subquery()
    )


_EARLIER_ASSIGNMENTS = _ASSIGNMENTS.alias("earlier_assignment")
# Whether the learner completed the assignment's exercise before, in another assignment.
_SOLVED_BEFORE = (
    select(_EARLIER_ASSIGNMENTS.c.id)
    .where(
        # Bound, not correlated: SQLite's RETURNING drops the table names a correlation needs.
        _EARLIER_ASSIGNMENTS.c.user_id == bindparam("learner", type_=_ASSIGNMENTS.c.user_id.type),
        _EARLIER_ASSIGNMENTS.c.exercise_id
        == bindparam("exercise", type_=_ASSIGNMENTS.c.exercise_id.type),
        _EARLIER_ASSIGNMENTS.c.status == "completed",
        _EARLIER_ASSIGNMENTS.c.id != bindparam("assignment"),
    )
    .exists()
)
# Whether the learner completed the assignment's exercise, or skipped it, in another assignment
# (one skipped keeps its skipped_at when it expires).
_ASK_SETTLED_BEFORE = select(
    select(_EARLIER_ASSIGNMENTS.c.id)
    .where(
        _EARLIER_ASSIGNMENTS.c.user_id == bindparam("learner", type_=_ASSIGNMENTS.c.user_id.type),
        _EARLIER_ASSIGNMENTS.c.exercise_id
        == bindparam("exercise", type_=_ASSIGNMENTS.c.exercise_id.type),
        or_(
            _EARLIER_ASSIGNMENTS.c.status == "completed",
            _EARLIER_ASSIGNMENTS.c.skipped_at.is_not(None),
        ),
        _EARLIER_ASSIGNMENTS.c.id != bindparam("assignment"),
    )
    .exists()
)
# What an attempt returns: the assignment's new state, and its exercise's current difficulty
# rating (other learners' outcomes move it meanwhile; read, not locked: the row is everyone's),
# and whether the learner had solved the exercise before.
_ATTEMPT_STATE = (
    _ASSIGNMENTS.c.status,
    _ASSIGNMENTS.c.attempts,
    _ASSIGNMENTS.c.hints_used,
    _ASSIGNMENTS.c.started_at,
    _ASSIGNMENTS.c.completed_at,
    _ASSIGNMENTS.c.closed_at,
    _of_its_exercise("rating"),
    _of_its_exercise("rating_uncertainty"),
    _of_its_exercise("rating_attempts"),
    _SOLVED_BEFORE,
)
_ASSIGNMENT_STATE = ("status", "attempts", "hints_used", "started_at", "completed_at", "closed_at")
_ITEM_RATING = ("rating", "rating_uncertainty", "rating_attempts")
_STARTED = case(
    (_ASSIGNMENTS.c.status == "assigned", bindparam("begun", type_=_ASSIGNMENTS.c.started_at.type)),
    else_=_ASSIGNMENTS.c.started_at,
)
# One statement each, both taking the assignment's row lock (PostgreSQL) until the transaction
# ends, so concurrent submissions of one assignment are counted one after another. The SET
# expressions read the row as it was, so no read before the write is needed.
_ATTEMPT = (
    update(_ASSIGNMENTS)
    .where(_ASSIGNMENTS.c.id == bindparam("assignment"))
    .values(
        attempts=_ASSIGNMENTS.c.attempts + bindparam("counted"),
        status=case(
            (_ASSIGNMENTS.c.status == "assigned", "in_progress"), else_=_ASSIGNMENTS.c.status
        ),
        started_at=_STARTED,
    )
    .returning(*_ATTEMPT_STATE)
)
# A pass completes the assignment, unless it is completed already (then it is an attempt).
_COMPLETING_ATTEMPT = (
    update(_ASSIGNMENTS)
    .where(_ASSIGNMENTS.c.id == bindparam("assignment"), _ASSIGNMENTS.c.status != "completed")
    .values(
        attempts=_ASSIGNMENTS.c.attempts + bindparam("counted"),
        status="completed",
        started_at=_STARTED,
        completed_at=bindparam("done_at", type_=_ASSIGNMENTS.c.completed_at.type),
        closed_at=bindparam("done_at", type_=_ASSIGNMENTS.c.closed_at.type),
    )
    .returning(*_ATTEMPT_STATE)
)


# A submission's verdict: the columns grading sets, and a statement that writes them.
VERDICT_COLUMNS = (
    "status", "passed", "total", "tests", "stdout", "stderr", "duration_ms", "tier", "graded_at",
)  # fmt: skip
_VERDICT = (
    update(_SUBMISSIONS)
    .where(_SUBMISSIONS.c.id == bindparam("submission", type_=_SUBMISSIONS.c.id.type))
    .values({n: bindparam(f"verdict_{n}", type_=_SUBMISSIONS.c[n].type) for n in VERDICT_COLUMNS})
    .cte("verdict")
)
# PostgreSQL writes the verdict in the attempt's own statement (a data-modifying WITH, which
# SQLite lacks; it runs even when the attempt's UPDATE matches no row).
_ATTEMPT_WITH_VERDICT = _ATTEMPT.add_cte(_VERDICT)
_COMPLETING_ATTEMPT_WITH_VERDICT = _COMPLETING_ATTEMPT.add_cte(_VERDICT)


@dataclass(frozen=True, slots=True)
class Counted:
    """What counting a verdict did: `completed` the assignment now; and whether the learner
    had `solved_before` its exercise, in an earlier assignment."""

    completed: bool
    solved_before: bool


async def count_attempt(
    session: AsyncSession,
    assignment: Assignment,
    exercise: Exercise,
    submission: Submission,
    verdict: dict[str, Any],
    *,
    counted: bool,
    completes_at: datetime | None,
) -> Counted:
    """Record `submission`'s verdict (its `VERDICT_COLUMNS`) and count it on the assignment,
    in one statement on PostgreSQL (two on SQLite), which locks the assignment's row
    (PostgreSQL): one more attempt if `counted`, `in_progress` once started (the submission's
    time), `completed` at `completes_at` (a pass) unless completed before. `submission` takes
    the verdict, `assignment` and `exercise` the row's new state and the exercise's current
    difficulty rating. Says whether this verdict completed it, and whether the learner had
    completed the exercise before in another assignment."""
    params: dict[str, Any] = {
        "assignment": assignment.id,
        "learner": assignment.user_id,
        "exercise": assignment.exercise_id,
        "counted": int(counted),
        "begun": submission.created_at,
    }
    with_verdict = session.get_bind().dialect.name == "postgresql"
    if with_verdict:
        params["submission"] = submission.id
        params.update({f"verdict_{name}": verdict[name] for name in VERDICT_COLUMNS})
    row = None
    if completes_at is not None:
        completing = _COMPLETING_ATTEMPT_WITH_VERDICT if with_verdict else _COMPLETING_ATTEMPT
        row = (await session.execute(completing, {**params, "done_at": completes_at})).one_or_none()
    completed = row is not None
    if row is None:
        # Not a pass, or a pass of an assignment completed before (its verdict is written).
        attempt = _ATTEMPT_WITH_VERDICT if with_verdict and completes_at is None else _ATTEMPT
        row = (await session.execute(attempt, params)).one()
    if with_verdict:
        for name in VERDICT_COLUMNS:
            set_committed_value(submission, name, verdict[name])
    else:
        await set_submission(session, submission, **verdict)
    for name, value in zip(_ASSIGNMENT_STATE, row[:6], strict=True):
        set_committed_value(assignment, name, value)
    for name, value in zip(_ITEM_RATING, row[6:9], strict=True):
        set_committed_value(exercise, name, value)
    return Counted(completed=completed, solved_before=bool(row[9]))


_EARLIER = _SUBMISSIONS.alias("earlier")
# Parameters named unlike the columns, so the count below can use two of them.
_ADD_SUBMISSION = (
    _SUBMISSIONS.insert()
    .values({c.key: bindparam(f"new_{c.key}", type_=c.type) for c in _SUBMISSIONS.columns})
    .returning(
        # The learner's submissions of the exercise, counted in the same round trip (whether
        # the one just inserted is counted differs between the databases).
        select(func.count())
        .where(
            _EARLIER.c.user_id == bindparam("new_user_id"),
            _EARLIER.c.exercise_id == bindparam("new_exercise_id"),
        )
        .scalar_subquery()
    )
)


async def add_submission(session: AsyncSession, submission: Submission) -> int:
    """Insert a new submission (every column set) with one Core statement, and keep it in the
    session as a loaded row: nothing of it is left for the unit of work to flush. Returns how
    many submissions of the exercise the learner has made, this one counted or not."""
    values = {f"new_{c.key}": getattr(submission, c.key) for c in _SUBMISSIONS.columns}
    made = (await session.execute(_ADD_SUBMISSION, values)).scalar_one()
    memo(session).pop(_latest_submission_key(submission.user_id, submission.exercise_id), None)
    make_transient_to_detached(submission)
    session.add(submission)
    return int(made)


_SET_SUBMISSION = update(_SUBMISSIONS).where(_SUBMISSIONS.c.id == bindparam("submission"))


async def set_submission(session: AsyncSession, submission: Submission, **values: Any) -> None:
    """Write these columns of a stored submission in one Core statement (and to `submission`)."""
    await session.execute(_SET_SUBMISSION, {"submission": submission.id, **values})
    for name, value in values.items():
        set_committed_value(submission, name, value)


async def assignments(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    status: str | None,
    skipped_since: datetime,
    before: NewestFirstKey | None,
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
        query = query.where(older_than(Assignment.assigned_at, Assignment.id, before))
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
    before: NewestFirstKey | None,
    limit: int,
) -> Sequence[Submission]:
    query = (
        select(Submission)
        .where(Submission.user_id == user_id, Submission.exercise_id == exercise_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(limit)
    )
    if before:
        query = query.where(older_than(Submission.created_at, Submission.id, before))
    return (await session.execute(query)).scalars().all()


_LATEST_SUBMISSION = (
    select(Submission)
    .where(
        Submission.user_id == bindparam("user_id"),
        Submission.exercise_id == bindparam("exercise_id"),
    )
    .order_by(Submission.created_at.desc(), Submission.id.desc())
    .limit(1)
)


async def latest_submission(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID
) -> Submission | None:
    """The learner's newest submission of the exercise (what the tutor is told about)."""
    key = _latest_submission_key(user_id, exercise_id)
    kept = memo(session)
    if key in kept:
        found: Submission | None = kept[key]
        return found
    params = {"user_id": user_id, "exercise_id": exercise_id}
    return (await session.execute(_LATEST_SUBMISSION, params)).scalars().first()


async def replace_skills(session: AsyncSession, exercise: Exercise, skills: list[str]) -> None:
    await session.execute(delete(ExerciseSkill).where(ExerciseSkill.exercise_id == exercise.id))
    for position, skill in enumerate(skills):
        session.add(ExerciseSkill(exercise_id=exercise.id, skill=skill, position=position))


_NEWEST_SUBMISSIONS = (
    select(_SUBMISSIONS.c.id)
    .where(
        _SUBMISSIONS.c.user_id == bindparam("learner"),
        _SUBMISSIONS.c.exercise_id == bindparam("of_exercise"),
    )
    .order_by(_SUBMISSIONS.c.created_at.desc(), _SUBMISSIONS.c.id.desc())
    .limit(bindparam("keep"))
)
# The table, not the mapped class: a plain Core statement (rows the session holds are not
# updated; the request holds none of the old submissions it empties).
_FORGET_OLD_SUBMISSIONS = (
    update(_SUBMISSIONS)
    .where(
        _SUBMISSIONS.c.user_id == bindparam("learner"),
        _SUBMISSIONS.c.exercise_id == bindparam("of_exercise"),
        _SUBMISSIONS.c.status != "pending",
        _SUBMISSIONS.c.code != "",
        _SUBMISSIONS.c.id.not_in(_NEWEST_SUBMISSIONS),
    )
    .values(code="", stdout="", stderr="", tests=[])
)


async def forget_old_submissions(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID, *, keep: int
) -> None:
    """Beyond the newest `keep` submissions of a learner on an exercise, drop the code, output
    and test messages; the verdict, counts and times stay (progress and the practice log
    count them)."""
    # Named unlike the columns: an UPDATE keeps the columns' names for its SET values.
    params = {"learner": user_id, "of_exercise": exercise_id, "keep": keep}
    await session.execute(_FORGET_OLD_SUBMISSIONS, params)


async def mark_stale_submissions(session: AsyncSession, *, before: datetime) -> int:
    """Submissions still pending from before a crash are recorded as errors, never lost."""
    result = await session.execute(
        update(Submission)
        .where(Submission.status == "pending", Submission.created_at < before)
        .values(status="error", stderr="Grading was interrupted; please submit again.")
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def skill_names(session: AsyncSession) -> list[str]:
    """Every skill some exercise practises, in order (the catalogue's skill filter)."""
    query = select(ExerciseSkill.skill).distinct().order_by(ExerciseSkill.skill)
    return list((await session.execute(query)).scalars())


# -- many learners' work at once (a class's dashboards) -----------------------------------------
#
# Each function is given the learners and exercises it covers as id lists: with the lists in the
# statement, PostgreSQL reads ix_submissions_user_exercise_created one learner's range at a
# time, and the submission's status is in that index, so the table itself is not read.

# A graded submission that did not pass.
NOT_PASSED = ("failed", "error", "timeout", "memory", "output_limit")


@dataclass(frozen=True)
class ExerciseTitle:
    slug: str
    title: str
    hints: int


async def written_for(session: AsyncSession, owners: Sequence[uuid.UUID]) -> Sequence[Exercise]:
    """Generated exercises written for these learners that no administrator has shared."""
    if not owners:
        return []
    query = (
        select(Exercise)
        .where(
            Exercise.source == "generated",
            Exercise.approved_at.is_(None),
            Exercise.owner_id.in_(list(owners)),
        )
        .order_by(Exercise.created_at, Exercise.id)
    )
    return (await session.execute(query)).scalars().all()


async def by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> Sequence[Exercise]:
    if not ids:
        return []
    query = select(Exercise).where(Exercise.id.in_(list(ids))).order_by(Exercise.slug)
    return (await session.execute(query)).scalars().all()


async def shared_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `ids` every learner may see (authored, or approved by an administrator)."""
    if not ids:
        return set()
    query = select(Exercise.id).where(Exercise.id.in_(list(ids)), visible_to(None))
    return set((await session.execute(query)).scalars())


async def titles(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ExerciseTitle]:
    """Slug, title and number of hints per exercise, without the large text columns."""
    if not ids:
        return {}
    query = select(
        Exercise.id, Exercise.slug, Exercise.title, func.json_array_length(Exercise.hints)
    ).where(Exercise.id.in_(list(ids)))
    return {
        row[0]: ExerciseTitle(row[1], row[2], int(row[3] or 0))
        for row in await session.execute(query)
    }


@dataclass(frozen=True)
class PairWork:
    """A learner's submissions to one exercise."""

    attempts: int
    first_pass_at: datetime | None


async def learner_work(
    session: AsyncSession, user_id: uuid.UUID, exercises: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PairWork]:
    """Exercise -> one learner's attempts at it and their first pass."""
    if not exercises:
        return {}
    query = (
        select(
            Submission.exercise_id,
            func.count(),
            func.min(Submission.created_at).filter(Submission.status == "passed"),
        )
        .where(Submission.user_id == user_id, Submission.exercise_id.in_(list(exercises)))
        .group_by(Submission.exercise_id)
    )
    return {row[0]: PairWork(int(row[1]), row[2]) for row in await session.execute(query)}


@dataclass(frozen=True)
class LearnerWork:
    """A learner's submissions to a set of exercises."""

    attempts: int
    completed: int
    # Their latest submission to any exercise, in the set or not.
    last_at: datetime | None


async def work_by_learner(
    session: AsyncSession,
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
    *,
    pairs: Subquery | None = None,
) -> dict[uuid.UUID, LearnerWork]:
    """Learner -> submissions to `exercises` (only to those `pairs` sets them, when given: see
    `koan.db.scope.set_for`), how many of them they passed, and when they last submitted
    anything."""
    if not learners:
        return {}
    chosen = and_(
        Submission.exercise_id.in_(list(exercises)),
        set_for(pairs, Submission.user_id, Submission.exercise_id),
    )
    passed = and_(chosen, Submission.status == "passed")
    query = (
        select(
            Submission.user_id,
            func.count().filter(chosen),
            func.count(func.distinct(case((passed, Submission.exercise_id)))),
            func.max(Submission.created_at),
        )
        .where(Submission.user_id.in_(list(learners)))
        .group_by(Submission.user_id)
    )
    return {
        row[0]: LearnerWork(int(row[1] or 0), int(row[2] or 0), row[3])
        for row in await session.execute(query)
    }


def _first_passes(learners: Sequence[uuid.UUID], exercises: Sequence[uuid.UUID]) -> Subquery:
    """(user_id, exercise_id, first_pass): each pair a learner submitted to, with their
    first passing submission's time (NULL before they pass)."""
    return (
        select(
            Submission.user_id,
            Submission.exercise_id,
            func.min(Submission.created_at)
            .filter(Submission.status == "passed")
            .label("first_pass"),
        )
        .where(Submission.user_id.in_(list(learners)), Submission.exercise_id.in_(list(exercises)))
        .group_by(Submission.user_id, Submission.exercise_id)
        .subquery("pairs")
    )


@dataclass(frozen=True)
class GroupWork:
    """A learner's work on a group of exercises with a due time (a class assignment)."""

    exercises: int
    attempted: int
    passed: int
    on_time: int


async def work_by_group(
    session: AsyncSession,
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
    groups: Subquery,
) -> dict[tuple[uuid.UUID, uuid.UUID], GroupWork]:
    """(group, learner) -> how many of the group's exercises they attempted, passed, and
    passed by its due time. `groups` has one row per exercise each learner is set: columns
    group_id, user_id, exercise_id and due_at (the caller's, e.g. a class's assignments); its
    learners and exercises are among `learners` and `exercises`."""
    if not learners or not exercises:
        return {}
    pairs = _first_passes(learners, exercises)
    set_for = and_(pairs.c.user_id == groups.c.user_id, pairs.c.exercise_id == groups.c.exercise_id)
    query = (
        select(
            groups.c.group_id,
            groups.c.user_id,
            func.count(),
            func.count(pairs.c.user_id),
            func.count(pairs.c.first_pass),
            func.count().filter(pairs.c.first_pass <= groups.c.due_at),
        )
        .select_from(groups.outerjoin(pairs, set_for))
        .group_by(groups.c.group_id, groups.c.user_id)
    )
    return {
        (row[0], row[1]): GroupWork(int(row[2]), int(row[3]), int(row[4]), int(row[5] or 0))
        for row in await session.execute(query)
    }


async def groups_done_by_learner(
    session: AsyncSession,
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
    groups: Subquery,
) -> dict[uuid.UUID, int]:
    """Learner -> how many of `groups` (as for work_by_group) they passed every exercise of,
    by the due time or after it."""
    if not learners or not exercises:
        return {}
    pairs = _first_passes(learners, exercises)
    set_for = and_(pairs.c.user_id == groups.c.user_id, pairs.c.exercise_id == groups.c.exercise_id)
    each = (
        select(
            groups.c.user_id,
            (func.count() == func.count(pairs.c.first_pass)).label("done"),
        )
        .select_from(groups.outerjoin(pairs, set_for))
        .group_by(groups.c.group_id, groups.c.user_id)
        .subquery("each")
    )
    query = select(each.c.user_id, func.count().filter(each.c.done)).group_by(each.c.user_id)
    return {row[0]: int(row[1] or 0) for row in await session.execute(query)}


@dataclass(frozen=True)
class ExerciseWork:
    """What a set of learners did on one exercise."""

    attempted: int
    passed: int
    median_attempts_to_pass: float | None
    median_minutes_to_pass: float | None


async def work_by_exercise(
    session: AsyncSession, learners: Sequence[uuid.UUID], exercises: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ExerciseWork]:
    """Exercise -> learners who attempted and passed it, and among those who passed, the
    median number of submissions up to the first pass and of minutes from the first
    submission to the first pass."""
    if not learners or not exercises:
        return {}
    passed_at = case((Submission.status == "passed", Submission.created_at))
    each = (
        select(
            Submission.user_id,
            Submission.exercise_id,
            Submission.created_at,
            func.min(passed_at)
            .over(partition_by=(Submission.user_id, Submission.exercise_id))
            .label("first_pass"),
        )
        .where(Submission.user_id.in_(list(learners)), Submission.exercise_id.in_(list(exercises)))
        .subquery("each")
    )
    pairs = (
        select(
            each.c.exercise_id,
            func.min(each.c.created_at).label("first_at"),
            func.min(each.c.first_pass).label("first_pass"),
            func.count().filter(each.c.created_at <= each.c.first_pass).label("tries"),
        )
        .group_by(each.c.user_id, each.c.exercise_id)
        .subquery("pairs")
    )
    passed = pairs.c.first_pass.is_not(None)
    query = select(
        pairs.c.exercise_id,
        func.count(),
        func.count(pairs.c.first_pass),
        median(case((passed, pairs.c.tries))),
        median(case((passed, minutes_between(pairs.c.first_at, pairs.c.first_pass)))),
    ).group_by(pairs.c.exercise_id)
    return {
        row[0]: ExerciseWork(
            int(row[1]),
            int(row[2]),
            None if row[3] is None else float(row[3]),
            None if row[4] is None else float(row[4]),
        )
        for row in await session.execute(query)
    }


@dataclass(frozen=True)
class CommonFailure:
    test: str
    message: str
    count: int


async def common_failures(
    session: AsyncSession, learners: Sequence[uuid.UUID], exercises: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CommonFailure]:
    """Exercise -> the test that failed most often in these learners' failed submissions,
    with a message it gave, read out of each submission's test results."""
    if not learners or not exercises:
        return {}
    # Failed submissions' results repeat (the same mistake fails the same way): each distinct
    # result is read as JSON once, weighted by how many submissions gave it.
    if session.get_bind().dialect.name == "postgresql":
        results = "s.tests::text"
        elements = "json_to_recordset(d.tests::json) AS t(name text, status text, message text)"
        name, status, message = "t.name", "t.status", "t.message"
    else:
        results = "s.tests"
        elements = "json_each(d.tests) AS t"
        name = "json_extract(t.value, '$.name')"
        status = "json_extract(t.value, '$.status')"
        message = "json_extract(t.value, '$.message')"
    sql = text(
        f"""
        SELECT exercise_id, name, message, n FROM (
            SELECT d.exercise_id AS exercise_id, {name} AS name, MAX({message}) AS message,
                   SUM(d.n) AS n,
                   ROW_NUMBER() OVER (PARTITION BY d.exercise_id ORDER BY SUM(d.n) DESC,
                                      {name}) AS place
            FROM (
                SELECT s.exercise_id AS exercise_id, {results} AS tests, COUNT(*) AS n
                FROM submissions AS s
                WHERE s.user_id IN :learners AND s.exercise_id IN :exercises
                  AND s.status = 'failed'
                GROUP BY s.exercise_id, {results}
            ) AS d, {elements}
            WHERE {status} <> 'passed'
            GROUP BY d.exercise_id, {name}
        ) AS ranked WHERE place = 1
        """
    ).bindparams(
        bindparam("learners", expanding=True, type_=Submission.user_id.type),
        bindparam("exercises", expanding=True, type_=Submission.exercise_id.type),
    )
    rows = await session.execute(sql, {"learners": list(learners), "exercises": list(exercises)})
    return {
        _as_uuid(row[0]): CommonFailure(str(row[1] or ""), str(row[2] or ""), int(row[3]))
        for row in rows
    }


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _hints(
    learners: Sequence[uuid.UUID], exercises: Sequence[uuid.UUID], pairs: Subquery | None = None
) -> ColumnElement[bool]:
    return and_(
        Assignment.user_id.in_(list(learners)),
        Assignment.exercise_id.in_(list(exercises)),
        set_for(pairs, Assignment.user_id, Assignment.exercise_id),
    )


async def hints_by_learner(
    session: AsyncSession,
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
    *,
    pairs: Subquery | None = None,
) -> dict[uuid.UUID, int]:
    """Learner -> hints taken on `exercises` (only those `pairs` sets them, when given;
    ix_assignments_user_exercise)."""
    if not learners or not exercises:
        return {}
    query = (
        select(Assignment.user_id, func.sum(Assignment.hints_used))
        .where(_hints(learners, exercises, pairs))
        .group_by(Assignment.user_id)
    )
    return {row[0]: int(row[1] or 0) for row in await session.execute(query)}


async def hints_by_exercise(
    session: AsyncSession, learners: Sequence[uuid.UUID], exercises: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Exercise -> hints `learners` took on it (ix_assignments_user_exercise)."""
    if not learners or not exercises:
        return {}
    query = (
        select(Assignment.exercise_id, func.sum(Assignment.hints_used))
        .where(_hints(learners, exercises))
        .group_by(Assignment.exercise_id)
    )
    return {row[0]: int(row[1] or 0) for row in await session.execute(query)}


def _never_passed(
    user_id: SQLColumnExpression[uuid.UUID], exercise_id: SQLColumnExpression[uuid.UUID]
) -> ColumnElement[bool]:
    passed = aliased(Submission)
    return ~exists().where(
        passed.user_id == user_id, passed.exercise_id == exercise_id, passed.status == "passed"
    )


@dataclass(frozen=True)
class Stuck:
    """A learner on an exercise they have not passed."""

    user_id: uuid.UUID
    exercise_id: uuid.UUID
    count: int  # failed attempts, or hints taken
    since: datetime | None  # the first of those failures, or their latest submission


async def failing_without_pass(
    session: AsyncSession,
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
    *,
    since: datetime,
    at_least: int,
    pairs: Subquery | None = None,
) -> list[Stuck]:
    """Learners with `at_least` failed submissions to one exercise since `since` (one `pairs`
    sets them, when given), and no pass of it ever."""
    if not learners or not exercises:
        return []
    query = (
        select(
            Submission.user_id,
            Submission.exercise_id,
            func.count(),
            func.min(Submission.created_at),
        )
        .where(
            Submission.user_id.in_(list(learners)),
            Submission.exercise_id.in_(list(exercises)),
            Submission.created_at >= since,
            Submission.status.in_(NOT_PASSED),
            set_for(pairs, Submission.user_id, Submission.exercise_id),
            _never_passed(Submission.user_id, Submission.exercise_id),
        )
        .group_by(Submission.user_id, Submission.exercise_id)
        .having(func.count() >= at_least)
    )
    return [Stuck(row[0], row[1], int(row[2]), row[3]) for row in await session.execute(query)]


async def ladders_used_up(
    session: AsyncSession,
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
    *,
    pairs: Subquery | None = None,
) -> list[Stuck]:
    """Learners who took every hint of an exercise (one `pairs` sets them, when given) and
    have not passed it (`count`: the hints, `since`: their latest submission to it)."""
    if not learners or not exercises:
        return []
    used = (
        select(
            Assignment.user_id,
            Assignment.exercise_id,
            func.sum(Assignment.hints_used).label("used"),
        )
        .where(_hints(learners, exercises, pairs), Assignment.hints_used > 0)
        .group_by(Assignment.user_id, Assignment.exercise_id)
        .subquery("used")
    )
    ladder = func.json_array_length(Exercise.hints)
    latest = (
        select(func.max(Submission.created_at))
        .where(Submission.user_id == used.c.user_id, Submission.exercise_id == used.c.exercise_id)
        .scalar_subquery()
    )
    query = (
        select(used.c.user_id, used.c.exercise_id, used.c.used, latest)
        .join(Exercise, Exercise.id == used.c.exercise_id)
        .where(
            ladder > 0,
            used.c.used >= ladder,
            _never_passed(used.c.user_id, used.c.exercise_id),
        )
    )
    return [Stuck(row[0], row[1], int(row[2]), row[3]) for row in await session.execute(query)]


async def submissions_to(
    session: AsyncSession,
    user_id: uuid.UUID,
    exercises: Sequence[uuid.UUID],
    *,
    before: NewestFirstKey | None,
    limit: int,
) -> Sequence[Submission]:
    """One learner's submissions to any of `exercises`, newest first."""
    if not exercises:
        return []
    query = select(Submission).where(
        Submission.user_id == user_id, Submission.exercise_id.in_(list(exercises))
    )
    if before is not None:
        query = query.where(older_than(Submission.created_at, Submission.id, before))
    query = query.order_by(Submission.created_at.desc(), Submission.id.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()
