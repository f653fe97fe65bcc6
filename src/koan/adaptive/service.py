"""The adaptive engine's thin service: ratings between the database and the pure model."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import repository
from koan.adaptive.model import (
    ITEM_UNCERTAINTY_FLOOR,
    ItemRating,
    SkillRating,
    outcome_score,
    starting_ratings,
    update_skills,
)
from koan.adaptive.selection import Candidate, choose_exercise
from koan.clock import zone
from koan.db import after_commit, utcnow
from koan.models import Assignment, Exercise, LearnerProfile, User
from koan.models.progress import LearnerSkillRating

# An exercise given this recently (or ever completed) is not offered again while others remain.
RECENT = timedelta(days=30)
# On a cold start, interests narrow the choice only if they leave this many exercises.
MIN_INTEREST_POOL = 5
# A pick whose predicted success is further than this from the target asks for a new exercise.
REFILL_TOLERANCE = 0.2


class Offered(Protocol):
    """What choosing needs to know of an exercise: its row, or a bank entry read without the
    content (tests, solution, hints) the choice never looks at."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def title(self) -> str: ...
    @property
    def statement(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def difficulty(self) -> int: ...
    @property
    def skills(self) -> list[str]: ...
    @property
    def rating(self) -> float: ...
    @property
    def rating_uncertainty(self) -> float: ...
    @property
    def rating_attempts(self) -> int: ...


@dataclass(frozen=True)
class Pick:
    exercise: Offered
    reason: str
    predicted_success: float = 0.75
    repeat: bool = False  # every exercise left had been given recently or completed


@dataclass(frozen=True)
class Refill:
    """An exercise the bank lacks for this learner: what to ask the model to write."""

    language: str
    skill: str
    difficulty: int


def refill_for(pick: Pick, *, target: float, tolerance: float = REFILL_TOLERANCE) -> Refill | None:
    """What to generate when today's pick is a poor fit: a repeat (nothing new was left), or a
    predicted success more than `tolerance` from the target (the bank has nothing at the
    learner's level). Same skill; one difficulty step towards the target. None: a good fit."""
    exercise = pick.exercise
    skill = exercise.skills[0] if exercise.skills else ""
    if not skill:
        return None
    step = 0
    if pick.predicted_success > target + tolerance:
        step = 1  # too easy
    elif pick.predicted_success < target - tolerance:
        step = -1  # too hard
    elif not pick.repeat:
        return None
    difficulty = min(5, max(1, exercise.difficulty + step))
    return Refill(language=exercise.language, skill=skill, difficulty=difficulty)


def item_of(exercise: Offered) -> ItemRating:
    return ItemRating(
        rating=exercise.rating,
        uncertainty=exercise.rating_uncertainty,
        attempts=exercise.rating_attempts,
    )


def as_rating(row: LearnerSkillRating) -> SkillRating:
    """A stored skill rating (its row, or a plain row of the same columns) as the model reads it."""
    return SkillRating(
        rating=row.rating,
        uncertainty=row.uncertainty,
        attempts=row.attempts,
        last_practised=row.last_practised,
        recent=tuple(row.recent or ()),
    )


async def shown_ratings(session: AsyncSession, user_id: uuid.UUID) -> dict[str, SkillRating]:
    """The learner's ratings by skill (alphabetical), none for a newcomer, for a reader that
    does not write them: the rows the session holds when it has loaded them (with any change
    not yet written), else plain values."""
    rows = sorted(await repository.rating_rows(session, user_id), key=lambda r: r.skill)
    return {row.skill: as_rating(row) for row in rows}


async def learner_ratings(
    session: AsyncSession, user: User, profile: LearnerProfile
) -> dict[str, SkillRating]:
    """The learner's ratings; a newcomer starts from onboarding's experience answer."""
    return await _or_starting(session, await repository.skill_ratings(session, user.id), profile)


async def _or_starting(
    session: AsyncSession, rows: Sequence[LearnerSkillRating], profile: LearnerProfile
) -> dict[str, SkillRating]:
    """The ratings of `rows`, or a newcomer's (no rows) starting ones."""
    if rows:
        return {row.skill: as_rating(row) for row in rows}
    settled = await repository.settled_general_ratings(session, profile.experience)
    return starting_ratings(profile.experience, settled)


async def save_ratings(
    session: AsyncSession, user_id: uuid.UUID, ratings: Mapping[str, SkillRating]
) -> None:
    """Store the ratings that are new or differ from the stored ones, in one statement."""
    stored = {row.skill: as_rating(row) for row in await repository.skill_ratings(session, user_id)}
    now = utcnow()
    await repository.save_skill_ratings(
        session,
        user_id,
        {
            skill: {
                "rating": rating.rating,
                "uncertainty": rating.uncertainty,
                "attempts": rating.attempts,
                "last_practised": rating.last_practised,
                "recent": list(rating.recent),
                "updated_at": now,
            }
            for skill, rating in ratings.items()
            if stored.get(skill) != rating
        },
    )


async def record_outcome(
    session: AsyncSession,
    *,
    user: User,
    profile: LearnerProfile,
    exercise: Exercise,
    assignment: Assignment,
    passed: bool,
    skipped: bool,
    now: datetime,
) -> dict[str, SkillRating]:
    """Update the learner's skills and the exercise's difficulty from one finished assignment."""
    ratings = await learner_ratings(session, user, profile)
    score = outcome_score(
        passed,
        attempts_before_pass=max(0, assignment.attempts - 1),
        hints_used=assignment.hints_used,
        skipped=skipped,
    )
    updated, item = update_skills(
        ratings, exercise.skills, item_of(exercise), score, now, experience=profile.experience
    )
    await save_ratings(session, user.id, updated)
    # A class works on the same exercise at once: its row is written after the grading's
    # transaction has committed, as one step added to whatever it holds by then, so no learner
    # waits on another's lock and no concurrent step is lost.
    after_commit(
        session,
        partial(
            repository.step_item_rating,
            exercise_id=exercise.id,
            rating_change=item.rating - exercise.rating,
            uncertainty_factor=item.uncertainty / exercise.rating_uncertainty,
            uncertainty_floor=ITEM_UNCERTAINTY_FLOOR,
        ),
    )
    return updated


def _matches(exercise: Offered, interests: list[str]) -> bool:
    text = " ".join([exercise.title, exercise.statement[:500], *exercise.skills]).lower()
    return any(tag in text for tag in interests)


async def choose_daily(
    session: AsyncSession,
    user: User,
    profile: LearnerProfile,
    bank: Sequence[Offered],
    history: Mapping[uuid.UUID, tuple[datetime, bool]],
    *,
    given: int | None = None,
    now: datetime,
    target: float,
) -> Pick | None:
    """Today's exercise from `bank`: predicted success nearest `target`, weak and stale skills
    mixed back in. `history` is, per exercise given before, when last and whether completed;
    `given`, how many exercises were given before (`len(history)` when `history` holds them
    all, not only those of `bank`).

    This is the one function the daily route calls to choose.
    """
    if not bank:
        return None
    # Only read here (the pick writes no rating): plain values unless the session holds them.
    stored = await repository.rating_rows(session, user.id)
    ratings = await _or_starting(session, stored, profile)
    interests = [i.lower() for i in profile.interests or []]
    if not stored and interests:
        # Cold start: onboarding interests first, as long as they leave a real choice.
        liked = [e for e in bank if _matches(e, interests)]
        if len(liked) >= MIN_INTEREST_POOL:
            bank = liked
    candidates = []
    for exercise in bank:
        last, completed = history.get(exercise.id, (None, False))
        candidates.append(
            Candidate(
                id=str(exercise.id),
                skills=tuple(exercise.skills),
                item=item_of(exercise),
                recently_done=completed or (last is not None and last >= now - RECENT),
                last_done=last,
            )
        )
    given = len(history) if given is None else given
    rng = random.Random(f"{user.id}:{now.date().isoformat()}:{given}")
    choice = choose_exercise(
        candidates, ratings, now=now, target=target, rng=rng, experience=profile.experience,
        zone=zone(user.timezone),
    )  # fmt: skip
    chosen = next(e for e in bank if str(e.id) == choice.candidate.id)
    return Pick(
        chosen,
        choice.reason,
        predicted_success=choice.predicted_success,
        repeat=choice.candidate.recently_done,
    )
