"""Queries for the adaptive engine: learners' skill ratings and exercises' difficulty ratings
(columns of the exercise row that only the adaptive engine writes)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Float, Table, bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from koan.adaptive.model import GENERAL, SETTLED_ATTEMPTS, SkillRating
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
    all look at them in one request, and only `save_skill_ratings` writes them."""
    key = ("skill_ratings", user_id)
    kept = memo(session)
    if key not in kept:
        found = await session.execute(_SKILL_RATINGS, {"user_id": user_id})
        kept[key] = list(found.scalars().all())
    rows: list[LearnerSkillRating] = kept[key]
    return rows


_RATINGS = cast(Table, LearnerSkillRating.__table__)
# What a save writes of a rating row (besides its key).
RATING_VALUES = ("rating", "uncertainty", "attempts", "last_practised", "recent", "updated_at")


_RATING_VALUES = select(
    LearnerSkillRating.skill,
    LearnerSkillRating.rating,
    LearnerSkillRating.uncertainty,
    LearnerSkillRating.attempts,
    LearnerSkillRating.last_practised,
    LearnerSkillRating.recent,
).where(LearnerSkillRating.user_id == bindparam("user_id"))


async def rating_rows(session: AsyncSession, user_id: uuid.UUID) -> Sequence[Any]:
    """The learner's ratings for a page that only shows them: the rows this session has
    loaded already when it has (they may hold changes not yet written), else the columns of
    `skill_ratings` as plain rows (same names), no rows kept in the session."""
    rows: list[LearnerSkillRating] | None = memo(session).get(("skill_ratings", user_id))
    if rows is not None:
        return rows
    return (await session.execute(_RATING_VALUES, {"user_id": user_id})).all()


def _save_statement(insert: Callable[..., postgresql.Insert | sqlite.Insert]) -> Any:
    statement = insert(_RATINGS)
    return statement.on_conflict_do_update(
        index_elements=[_RATINGS.c.user_id, _RATINGS.c.skill],
        set_={name: statement.excluded[name] for name in RATING_VALUES},
    )


# Built once per database.
_SAVE_RATINGS = {
    "postgresql": _save_statement(postgresql.insert),
    "sqlite": _save_statement(sqlite.insert),
}


async def save_skill_ratings(
    session: AsyncSession, user_id: uuid.UUID, values: dict[str, dict[str, Any]]
) -> None:
    """Write rating rows (skill -> the `RATING_VALUES` of its row), new or not, in one Core
    statement. The rows the session holds take the values as loaded, and new rows join them,
    so `skill_ratings` keeps answering without reading them again."""
    if not values:
        return
    params = [{"user_id": user_id, "skill": skill, **row} for skill, row in values.items()]
    await session.execute(_SAVE_RATINGS[session.get_bind().dialect.name], params)
    kept = memo(session).get(("skill_ratings", user_id))
    held = {row.skill: row for row in kept or ()}
    for skill, row_values in values.items():
        row = held.get(skill)
        if row is None:
            row = LearnerSkillRating(user_id=user_id, skill=skill, **row_values)
            make_transient_to_detached(row)
            session.add(row)
            if kept is not None:
                kept.append(row)
            continue
        for name, value in row_values.items():
            set_committed_value(row, name, value)


def _settled(users: Any) -> Any:
    return (
        select(
            _RATINGS.c.rating,
            _RATINGS.c.uncertainty,
            _RATINGS.c.attempts,
            _RATINGS.c.last_practised,
            _RATINGS.c.recent,
        )
        .where(
            _RATINGS.c.skill == GENERAL,
            _RATINGS.c.attempts >= SETTLED_ATTEMPTS,
            _RATINGS.c.user_id.in_(users),
        )
        .order_by(_RATINGS.c.updated_at.desc())
        .limit(bindparam("limit"))
    )


# Built once: a newcomer's first daily pick and first pass read them. No experience given is
# `IS NULL`, which a bound parameter cannot say.
_SETTLED = _settled(profiles.users_with_experience(bindparam("experience")))  # type: ignore[arg-type]
_SETTLED_WITHOUT_EXPERIENCE = _settled(profiles.users_with_experience(None))


async def settled_general_ratings(
    session: AsyncSession, experience: str | None, *, limit: int = 200
) -> list[SkillRating]:
    """General ratings of learners with the same self-reported experience and enough history."""
    if experience is None:
        found = await session.execute(_SETTLED_WITHOUT_EXPERIENCE, {"limit": limit})
    else:
        found = await session.execute(_SETTLED, {"experience": experience, "limit": limit})
    return [
        SkillRating(rating, uncertainty, attempts, last_practised, tuple(recent or ()))
        for rating, uncertainty, attempts, last_practised, recent in found
    ]


_EXERCISES = cast(Table, Exercise.__table__)
_SHRUNK = _EXERCISES.c.rating_uncertainty * bindparam("factor", type_=Float())
_FLOOR = bindparam("floor", type_=Float())
# The table, not the mapped class: a plain Core statement, built once.
_STEP_ITEM_RATING = (
    update(_EXERCISES)
    .where(_EXERCISES.c.id == bindparam("exercise"))
    .values(
        rating=_EXERCISES.c.rating + bindparam("change", type_=Float()),
        rating_uncertainty=case((_FLOOR > _SHRUNK, _FLOOR), else_=_SHRUNK),
        rating_attempts=_EXERCISES.c.rating_attempts + 1,
    )
)


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
    params = {
        "exercise": exercise_id,
        "change": rating_change,
        "factor": uncertainty_factor,
        "floor": uncertainty_floor,
    }
    await session.execute(_STEP_ITEM_RATING, params)
