"""Queries for progress: the practice log, per-learner totals, ratings, levels and achievements."""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Integer,
    Table,
    Uuid,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.dml import ReturningInsert

from koan.db import UTCDateTime, locked_rows, refresh_loaded, utcnow
from koan.models import Assignment, AssignmentHint, Exercise, Submission
from koan.models.progress import (
    Achievement,
    LearnerProgress,
    LevelEvent,
    PracticeEntry,
    UserAchievement,
)
from koan.progress.achievements import Completion

# The statements every grading and progress page runs are built once, with bound parameters:
# building one and computing its cache key costs about as much CPU as running it.
_PROGRESS = typing.cast(Table, LearnerProgress.__table__)
_TOTALS = (
    "exercises_completed",
    "attempts",
    "first_try_passes",
    "current_streak",
    "longest_streak",
    "last_active_day",
    "level",
    "achievement_summary",
)


@dataclass
class Totals:
    """A learner's progress row as plain values: the grading hook changes them, then saves."""

    user_id: uuid.UUID
    exercises_completed: int
    attempts: int
    first_try_passes: int
    current_streak: int
    longest_streak: int
    last_active_day: date | None
    level: int
    # `achievements.Summary.to_json()`; None until the first award pass builds it. Replaced,
    # never changed in place, so a save sees that it changed.
    achievement_summary: dict[str, Any] | None
    # The values the database holds, so a save writes only what changed.
    stored: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TOTALS}


_LOCK_PROGRESS = (
    select(*(_PROGRESS.c[name] for name in _TOTALS))
    .where(_PROGRESS.c.user_id == bindparam("user_id"))
    .with_for_update()
)


def _held(session: AsyncSession, totals: Totals) -> Totals:
    totals.stored = totals.values()
    locked_rows(session)[("learner_progress", totals.user_id)] = totals
    return totals


async def lock_progress(session: AsyncSession, user_id: uuid.UUID) -> Totals | None:
    """The learner's totals, locked FOR UPDATE (PostgreSQL) so their updates queue up; read
    once per transaction (the row cannot change under the lock)."""
    held = locked_rows(session).get(("learner_progress", user_id))
    if held is not None:
        kept: Totals = held
        return kept
    row = (await session.execute(_LOCK_PROGRESS, {"user_id": user_id})).one_or_none()
    return None if row is None else _held(session, Totals(user_id, *row))


def _create_statement(
    insert: Callable[..., postgresql.Insert | sqlite.Insert],
) -> ReturningInsert[uuid.UUID]:
    return (
        insert(_PROGRESS)
        .on_conflict_do_nothing(index_elements=[_PROGRESS.c.user_id])
        .returning(_PROGRESS.c.user_id)
    )


_CREATE_PROGRESS = {
    "postgresql": _create_statement(postgresql.insert),
    "sqlite": _create_statement(sqlite.insert),
}


async def create_progress(
    session: AsyncSession, user_id: uuid.UUID, *, level: int
) -> Totals | None:
    """Insert the learner's first totals (all zero, at `level`), locked until this transaction
    ends (no other can lock a row it has not committed); None if another transaction created
    them first. One statement, no SAVEPOINT: a conflict is not an error."""
    totals = Totals(user_id, 0, 0, 0, 0, 0, None, level, None)
    params = {"user_id": user_id, **totals.values(), "updated_at": utcnow()}
    statement = _CREATE_PROGRESS[session.get_bind().dialect.name]
    if (await session.execute(statement, params)).one_or_none() is None:
        return None
    return _held(session, totals)


_SAVE_PROGRESS = update(_PROGRESS).where(_PROGRESS.c.user_id == bindparam("learner"))


async def save_progress(session: AsyncSession, totals: Totals) -> None:
    """Write the totals that changed since they were read, in one statement."""
    changed = {k: v for k, v in totals.values().items() if totals.stored.get(k) != v}
    if not changed:
        return
    changed["updated_at"] = utcnow()
    await session.execute(_SAVE_PROGRESS, {"learner": totals.user_id, **changed})
    totals.stored = totals.values()
    refresh_loaded(session, LearnerProgress, totals.user_id, changed)


_ADD_LEVEL_EVENT = typing.cast(Table, LevelEvent.__table__).insert()


async def add_level_event(
    session: AsyncSession, user_id: uuid.UUID, *, from_level: int, to_level: int, at: datetime
) -> None:
    params = {
        "id": uuid.uuid4(),
        "user_id": user_id,
        "from_level": from_level,
        "to_level": to_level,
        "at": at,
    }
    await session.execute(_ADD_LEVEL_EVENT, params)


_AWARDS = typing.cast(Table, UserAchievement.__table__)


def _award_statement(insert: Callable[..., postgresql.Insert | sqlite.Insert]) -> Any:
    """Insert awards, skipping the ones the learner holds. Sent with a list of rows, it goes
    out as one `INSERT ... VALUES (...), (...)` built from this statement's compiled form
    (SQLAlchemy's "insertmanyvalues"); a statement written with several `VALUES` rows would be
    compiled anew on every call, as SQLAlchemy caches no multi-row `values()`."""
    return (
        insert(_AWARDS)
        .on_conflict_do_nothing(index_elements=[_AWARDS.c.user_id, _AWARDS.c.achievement_code])
        .returning(_AWARDS.c.achievement_code)
    )


# Built once per database.
_AWARD = {
    "postgresql": _award_statement(postgresql.insert),
    "sqlite": _award_statement(sqlite.insert),
}


async def award(
    session: AsyncSession,
    user_id: uuid.UUID,
    codes: Sequence[str],
    *,
    submission_id: uuid.UUID,
    at: datetime,
) -> set[str]:
    """Award these achievements in one statement, each unless the learner holds it already
    (unique per learner in the database); the codes that were awarded now."""
    if not codes:
        return set()
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "achievement_code": code,
            "earned_at": at,
            "submission_id": submission_id,
        }
        for code in codes
    ]
    result = await session.execute(_AWARD[session.get_bind().dialect.name], rows)
    return set(result.scalars())


async def progress_of(session: AsyncSession, user_id: uuid.UUID) -> LearnerProgress | None:
    return await session.get(LearnerProgress, user_id)


async def progress_of_many(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, LearnerProgress]:
    """Several learners' totals, by primary key."""
    if not user_ids:
        return {}
    query = select(LearnerProgress).where(LearnerProgress.user_id.in_(list(user_ids)))
    return {row.user_id: row for row in (await session.execute(query)).scalars()}


async def entry(session: AsyncSession, submission_id: uuid.UUID) -> PracticeEntry | None:
    return await session.get(PracticeEntry, submission_id)


# An exercise given up (skipped, then maybe expired) before it was solved keeps its attempts
# and hints: taken up again in a new assignment, its first solve counts them too.
GIVEN_UP = ("skipped", "expired")


def _given_up(column: Any, user_id: Any, exercise_id: Any, before: Any) -> Any:
    """What the learner's assignments of the exercise given up before `before` add up to."""
    return (
        select(func.coalesce(func.sum(column), 0))
        .where(
            Assignment.user_id == user_id,
            Assignment.exercise_id == exercise_id,
            Assignment.status.in_(GIVEN_UP),
            Assignment.closed_at < before,
        )
        .scalar_subquery()
    )


@dataclass(frozen=True)
class Logged:
    """A verdict just written to the practice log."""

    completed: bool  # it completed its assignment (and is logged as the completion)
    exercise_completed_before: bool  # the learner had completed the same exercise before
    # The attempts and hints of the learner's assignments of the exercise given up before it
    # (what a first solve counts with its own).
    given_up_attempts: int = 0
    given_up_hints: int = 0


def _log_statement(
    insert: Callable[..., postgresql.Insert | sqlite.Insert],
) -> ReturningInsert[bool, bool, int, int]:
    log = PracticeEntry.__table__
    columns = log.c
    given = [
        "submission_id", "user_id", "assignment_id", "exercise_id", "at", "timezone", "day",
        "passed", "attempt", "hints_used",
    ]  # fmt: skip
    other = log.alias("earlier").c
    assignment_done = (
        select(other.submission_id)
        .where(other.assignment_id == bindparam("assignment_id"), other.completed)
        .exists()
    )
    exercise_done = (
        select(other.submission_id)
        .where(
            other.user_id == bindparam("user_id"),
            other.exercise_id == bindparam("exercise_id"),
            other.completed,
            other.submission_id != bindparam("submission_id"),
        )
        .exists()
    )
    given_up_of: tuple[Any, Any, Any] = (
        bindparam("user_id"),
        bindparam("exercise_id"),
        bindparam("at", type_=columns.at.type),
    )
    source = select(
        *(bindparam(name, type_=columns[name].type) for name in given),
        # A verdict that completes its assignment is logged as the completion, unless the log
        # already holds one (the database also refuses a second).
        and_(bindparam("completes", type_=Boolean()), ~assignment_done),
    ).where(true())  # SQLite reads `INSERT ... SELECT ... ON CONFLICT` only with a WHERE
    return (
        # The table, not the mapped class: a plain Core statement, no ORM bulk insert around it.
        insert(log)
        .from_select([*given, "completed"], source)
        .on_conflict_do_nothing(index_elements=[columns.submission_id])
        .returning(
            columns.completed,
            exercise_done,
            _given_up(Assignment.attempts, *given_up_of),
            _given_up(Assignment.hints_used, *given_up_of),
        )
    )


# Built once per database (every graded submission writes one).
_LOG = {
    "postgresql": _log_statement(postgresql.insert),
    "sqlite": _log_statement(sqlite.insert),
}


async def log_verdict(
    session: AsyncSession,
    *,
    submission_id: uuid.UUID,
    user_id: uuid.UUID,
    assignment_id: uuid.UUID,
    exercise_id: uuid.UUID,
    at: datetime,
    timezone: str,
    day: date,
    passed: bool,
    completes: bool,
    attempt: int,
    hints_used: int,
) -> Logged | None:
    """Write a verdict to the practice log in one round trip: the entry, whether it is the
    assignment's completion (`completes`, unless one is logged already), whether the learner
    had completed the exercise before, and what their assignments of it given up before `at`
    took. None: this submission was logged before."""
    params = {
        "submission_id": submission_id,
        "user_id": user_id,
        "assignment_id": assignment_id,
        "exercise_id": exercise_id,
        "at": at,
        "timezone": timezone,
        "day": day,
        "passed": passed,
        "completes": completes,
        "attempt": attempt,
        "hints_used": hints_used,
    }
    statement = _LOG[session.get_bind().dialect.name]
    row = (await session.execute(statement, params)).one_or_none()
    return None if row is None else Logged(bool(row[0]), bool(row[1]), int(row[2]), int(row[3]))


async def active_days(session: AsyncSession, user_id: uuid.UUID) -> Sequence[date]:
    """Every local day on which the learner completed an exercise."""
    query = (
        select(PracticeEntry.day)
        .where(PracticeEntry.user_id == user_id, PracticeEntry.completed)
        .distinct()
    )
    return (await session.execute(query)).scalars().all()


def _completions_query() -> Any:
    entry = PracticeEntry.__table__.c
    earlier = PracticeEntry.__table__.alias("earlier").c
    # The learner's first solve of an exercise (no completion of it before) counts what the
    # assignments given up before it took; a later solve is judged on its own assignment.
    first_solve = ~(
        select(earlier.submission_id)
        .where(
            earlier.user_id == entry.user_id,
            earlier.exercise_id == entry.exercise_id,
            earlier.completed,
            earlier.at < entry.at,
        )
        .exists()
    )

    def with_given_up(own: Any, column: Any) -> Any:
        added = _given_up(column, entry.user_id, entry.exercise_id, entry.at)
        return own + case((first_solve, added), else_=0)

    return (
        select(
            entry.exercise_id,
            entry.at,
            entry.timezone,
            entry.day,
            with_given_up(entry.attempt, Assignment.attempts),
            with_given_up(entry.hints_used, Assignment.hints_used),
            Exercise.language,
            Exercise.difficulty,
        )
        .join(Exercise, Exercise.id == entry.exercise_id)
        .where(entry.user_id == bindparam("user_id"), entry.completed)
    )


_COMPLETIONS = _completions_query()


async def completions(session: AsyncSession, user_id: uuid.UUID) -> list[Completion]:
    """The learner's completions with what the achievement rules need of their exercises; a
    first solve's attempt and hints include those of the assignments given up before it."""
    rows = (await session.execute(_COMPLETIONS, {"user_id": user_id})).all()
    return [
        Completion(
            str(exercise_id), at, timezone, day, int(attempt), int(hints), language, difficulty
        )
        for exercise_id, at, timezone, day, attempt, hints, language, difficulty in rows
    ]


@dataclass(frozen=True)
class DayCounts:
    day: date
    attempts: int
    completed: int


_DAILY_COUNTS = (
    select(PracticeEntry.day, func.count(), func.count().filter(PracticeEntry.completed))
    .where(
        PracticeEntry.user_id == bindparam("user_id"),
        PracticeEntry.day >= bindparam("start"),
        PracticeEntry.day <= bindparam("end"),
    )
    .group_by(PracticeEntry.day)
)


async def daily_counts(
    session: AsyncSession, user_id: uuid.UUID, *, start: date, end: date
) -> list[DayCounts]:
    """Verdicts and completions per local day, for days with any, from start to end inclusive."""
    params = {"user_id": user_id, "start": start, "end": end}
    rows = (await session.execute(_DAILY_COUNTS, params)).all()
    return [DayCounts(day, int(attempts), int(done)) for day, attempts, done in rows]


async def first_try_passes(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Completions whose passing verdict was the assignment's first."""
    query = select(func.count()).where(
        PracticeEntry.user_id == user_id, PracticeEntry.completed, PracticeEntry.attempt == 1
    )
    return int((await session.execute(query)).scalar_one())


@dataclass(frozen=True)
class AssignmentTotals:
    """What the assignment rows themselves say, independently of the practice log."""

    exercises_completed: int
    completions: int
    attempts: int
    hints_used: int


async def assignment_totals(session: AsyncSession, user_id: uuid.UUID) -> AssignmentTotals:
    is_completed = Assignment.status == "completed"
    query = select(
        func.count(func.distinct(Assignment.exercise_id)).filter(is_completed),
        func.count().filter(is_completed),
        func.coalesce(func.sum(Assignment.attempts), 0),
        func.coalesce(func.sum(Assignment.hints_used), 0),
    ).where(Assignment.user_id == user_id)
    distinct, done, attempts, hints = (await session.execute(query)).one()
    return AssignmentTotals(int(distinct), int(done), int(attempts), int(hints))


@dataclass(frozen=True)
class PageTotals:
    """A learner's running totals, as plain values."""

    exercises_completed: int
    attempts: int
    first_try_passes: int
    current_streak: int
    longest_streak: int
    last_active_day: date | None


@dataclass(frozen=True)
class LevelStep:
    from_level: int
    to_level: int
    at: datetime


@dataclass(frozen=True)
class Overview:
    """What the progress page reads of a learner, besides the ratings: their totals (None
    before their first verdict), the hints they used, their newest level changes (newest
    first) and their verdicts and completions per day of a period."""

    totals: PageTotals | None
    hints_used: int
    level_events: list[LevelStep]
    days: list[DayCounts]


_OVERVIEW_COLUMNS: tuple[tuple[str, Any], ...] = (
    *((f"n{i}", Integer) for i in range(1, 6)),
    ("day", Date),
    ("at", UTCDateTime),
    ("ref", Uuid),
)


def _overview_statement() -> Any:
    """The four reads of the progress page in one round trip: a UNION ALL of rows tagged by
    kind, each kind filling the columns it needs (typed NULLs in the others)."""

    def row(kind: int, *values: Any) -> Any:
        given = dict(values)
        columns = [literal(kind, Integer).label("kind")]
        for name, type_ in _OVERVIEW_COLUMNS:
            columns.append((given[name] if name in given else sql_cast(null(), type_)).label(name))
        return columns

    user_id: Any = bindparam("user_id")
    totals = select(
        *row(
            0,
            ("n1", LearnerProgress.exercises_completed),
            ("n2", LearnerProgress.attempts),
            ("n3", LearnerProgress.first_try_passes),
            ("n4", LearnerProgress.current_streak),
            ("n5", LearnerProgress.longest_streak),
            ("day", LearnerProgress.last_active_day),
        )
    ).where(LearnerProgress.user_id == user_id)
    hints = select(*row(1, ("n1", func.coalesce(func.sum(Assignment.hints_used), 0)))).where(
        Assignment.user_id == user_id
    )
    newest = (
        select(LevelEvent.from_level, LevelEvent.to_level, LevelEvent.at, LevelEvent.id)
        .where(LevelEvent.user_id == user_id)
        .order_by(LevelEvent.at.desc(), LevelEvent.id.desc())
        .limit(bindparam("limit"))
        .subquery()
    )
    events = select(
        *row(
            2,
            ("n1", newest.c.from_level),
            ("n2", newest.c.to_level),
            ("at", newest.c.at),
            ("ref", newest.c.id),
        )
    )
    days = (
        select(
            *row(
                3,
                ("n1", func.count()),
                ("n2", func.count().filter(PracticeEntry.completed)),
                ("day", PracticeEntry.day),
            )
        )
        .where(
            PracticeEntry.user_id == user_id,
            PracticeEntry.day >= bindparam("start"),
            PracticeEntry.day <= bindparam("end"),
        )
        .group_by(PracticeEntry.day)
    )
    tagged = union_all(totals, hints, events, days).subquery()
    return select(tagged).order_by(tagged.c.kind, tagged.c.at.desc(), tagged.c.ref.desc())


_OVERVIEW = _overview_statement()


async def overview(
    session: AsyncSession, user_id: uuid.UUID, *, start: date, end: date, events: int
) -> Overview:
    """The progress page's reads (`events`: how many level changes, newest first; `start`
    and `end`: the local days of the activity series, inclusive)."""
    params = {"user_id": user_id, "start": start, "end": end, "limit": events}
    totals: PageTotals | None = None
    hints = 0
    steps: list[LevelStep] = []
    days: list[DayCounts] = []
    for kind, n1, n2, n3, n4, n5, day, at, _ref in await session.execute(_OVERVIEW, params):
        if kind == 0:
            totals = PageTotals(n1, n2, n3, n4, n5, day)
        elif kind == 1:
            hints = int(n1)
        elif kind == 2:
            steps.append(LevelStep(n1, n2, at))
        else:
            days.append(DayCounts(day, int(n1), int(n2)))
    return Overview(totals, hints, steps, days)


async def catalogue(session: AsyncSession) -> Sequence[Achievement]:
    query = select(Achievement).order_by(Achievement.position)
    return (await session.execute(query)).scalars().all()


_EARNED = (
    select(UserAchievement)
    .where(UserAchievement.user_id == bindparam("user_id"))
    .order_by(UserAchievement.earned_at, UserAchievement.achievement_code)
)


async def earned(session: AsyncSession, user_id: uuid.UUID) -> Sequence[UserAchievement]:
    return (await session.execute(_EARNED, {"user_id": user_id})).scalars().all()


async def assignments_after(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Assignment]:
    """A page of the learner's assignments, oldest first, with their exercise."""
    query = (
        select(Assignment)
        .where(Assignment.user_id == user_id)
        .order_by(Assignment.assigned_at, Assignment.id)
        .limit(limit)
        .options(selectinload(Assignment.exercise))
    )
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                Assignment.assigned_at > at,
                and_(Assignment.assigned_at == at, Assignment.id > last_id),
            )
        )
    return (await session.execute(query)).scalars().all()


async def submissions_of(
    session: AsyncSession, assignment_ids: Sequence[uuid.UUID]
) -> Sequence[Submission]:
    if not assignment_ids:
        return []
    query = (
        select(Submission)
        .where(Submission.assignment_id.in_(assignment_ids))
        .order_by(Submission.created_at, Submission.id)
    )
    return (await session.execute(query)).scalars().all()


async def kept_hints_of(
    session: AsyncSession, assignment_ids: Sequence[uuid.UUID]
) -> Sequence[AssignmentHint]:
    """The hints the model tailored for `assignment_ids` (kept as shown), by rung."""
    if not assignment_ids:
        return []
    query = (
        select(AssignmentHint)
        .where(AssignmentHint.assignment_id.in_(assignment_ids))
        .order_by(AssignmentHint.assignment_id, AssignmentHint.rung)
    )
    return (await session.execute(query)).scalars().all()
