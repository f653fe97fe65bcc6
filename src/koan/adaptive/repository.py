"""Queries for the adaptive engine: learners' skill ratings and exercises' difficulty ratings
(columns of the exercise row that only the adaptive engine writes)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive.model import GENERAL, SETTLED_ATTEMPTS
from koan.db import memo
from koan.models import Exercise
from koan.models.progress import LearnerSkillRating
from koan.onboarding import repository as profiles

# Built once (every grading and the daily pick run them): building a statement and its cache
# key costs about as much CPU as SQLAlchemy then spends running it.
_SKILL_RATINGS = select(LearnerSkillRating).where(
    LearnerSkillRating.user_id == bindparam("user_id")
)


async def skill_ratings(session: AsyncSession, user_id: uuid.UUID) -> list[LearnerSkillRating]:
    """The learner's rating rows, read once per session: grading, progress and achievements
    all look at them in one request, and only `add_skill_rating` adds to them."""
    key = ("skill_ratings", user_id)
    kept = memo(session)
    if key not in kept:
        found = await session.execute(_SKILL_RATINGS, {"user_id": user_id})
        kept[key] = list(found.scalars().all())
    rows: list[LearnerSkillRating] = kept[key]
    return rows


def add_skill_rating(session: AsyncSession, row: LearnerSkillRating) -> None:
    session.add(row)
    rows = memo(session).get(("skill_ratings", row.user_id))
    if rows is not None:
        rows.append(row)


async def settled_general_ratings(
    session: AsyncSession, experience: str | None, *, limit: int = 200
) -> Sequence[LearnerSkillRating]:
    """General ratings of learners with the same self-reported experience and enough history."""
    query = (
        select(LearnerSkillRating)
        .where(
            LearnerSkillRating.skill == GENERAL,
            LearnerSkillRating.attempts >= SETTLED_ATTEMPTS,
            LearnerSkillRating.user_id.in_(profiles.users_with_experience(experience)),
        )
        .order_by(LearnerSkillRating.updated_at.desc())
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def step_item_rating(
    session: AsyncSession,
    *,
    exercise_id: uuid.UUID,
    rating_change: float,
    uncertainty_factor: float,
    uncertainty_floor: float,
) -> None:
    """Apply one outcome's step to an exercise's difficulty in one statement, relative to what
    the row holds, so steps from concurrent gradings add up instead of overwriting each other."""
    shrunk = Exercise.rating_uncertainty * uncertainty_factor
    await session.execute(
        update(Exercise)
        .where(Exercise.id == exercise_id)
        .values(
            rating=Exercise.rating + rating_change,
            rating_uncertainty=case((shrunk < uncertainty_floor, uncertainty_floor), else_=shrunk),
            rating_attempts=Exercise.rating_attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
