"""Read-only queries behind the admin page (no domain serves these lists yet)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise, Submission, User


@dataclass(frozen=True)
class ExerciseStats:
    exercise: Exercise
    submissions: int
    passed: int


async def user_count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(User))).scalar_one())


async def recent_users(session: AsyncSession, *, limit: int) -> Sequence[User]:
    query = select(User).order_by(User.created_at.desc(), User.id).limit(limit)
    return (await session.execute(query)).scalars().all()


async def exercise_stats(session: AsyncSession) -> list[ExerciseStats]:
    counts = (
        select(
            Submission.exercise_id,
            func.count().label("submissions"),
            func.sum(case((Submission.status == "passed", 1), else_=0)).label("passed"),
        )
        .group_by(Submission.exercise_id)
        .subquery()
    )
    query = (
        select(Exercise, counts.c.submissions, counts.c.passed)
        .outerjoin(counts, counts.c.exercise_id == Exercise.id)
        .order_by(Exercise.language, Exercise.difficulty, Exercise.slug)
    )
    rows = (await session.execute(query)).all()
    return [ExerciseStats(row[0], int(row[1] or 0), int(row[2] or 0)) for row in rows]


async def exercise(session: AsyncSession, exercise_id: uuid.UUID) -> Exercise | None:
    return await session.get(Exercise, exercise_id)
