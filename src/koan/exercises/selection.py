"""Which exercise a learner gets today. One function, so the adaptive engine can replace it."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import repository
from koan.models import Exercise, LearnerProfile, User

# Difficulty levels that suit each experience level when nothing better is known.
LEVELS_FOR_EXPERIENCE = {"beginner": (1, 2), "intermediate": (2, 3), "advanced": (3, 4, 5)}
RECENT_DAYS = 30


@dataclass(frozen=True)
class Pick:
    exercise: Exercise
    reason: str


def _interest_match(exercise: Exercise, interests: Sequence[str]) -> str | None:
    text = " ".join([exercise.title, exercise.statement[:500], *exercise.skills]).lower()
    return next((tag for tag in interests if tag and tag in text), None)


def rank(
    candidates: Sequence[Exercise], profile: LearnerProfile, rng: random.Random
) -> Pick | None:
    """Prefer the learner's level, then their interests; break ties at random."""
    levels = LEVELS_FOR_EXPERIENCE.get(profile.experience or "beginner", (1, 2))
    interests = [i.lower() for i in (profile.interests or [])]
    best: tuple[float, Exercise, str] | None = None
    for exercise in candidates:
        distance = min(abs(exercise.difficulty - level) for level in levels)
        interest = _interest_match(exercise, interests)
        score = distance * 10 - (3 if interest else 0) + rng.random()
        if best is None or score < best[0]:
            if interest:
                reason = f"a level-{exercise.difficulty} exercise that touches on {interest}"
            else:
                reason = (
                    f"a level-{exercise.difficulty} {exercise.skills[0]} exercise to suit "
                    f"your {profile.experience or 'beginner'} level"
                )
            best = (score, exercise, reason)
    return None if best is None else Pick(best[1], best[2])


async def choose_daily(
    session: AsyncSession, user: User, profile: LearnerProfile, *, now: datetime
) -> Pick | None:
    """Pick today's exercise: the profile's language and level, interests and unseen first."""
    language = profile.language or "python"
    recent = await repository.recently_assigned_exercises(
        session, user.id, since=now - timedelta(days=RECENT_DAYS)
    )
    rng = random.Random(f"{user.id}:{now.date().isoformat()}")
    unseen = await repository.candidates(session, language=language, exclude=recent)
    pick = rank(unseen, profile, rng)
    if pick is not None:
        return pick
    everything = await repository.candidates(session, language=language, exclude=())
    pick = rank(everything, profile, rng)
    if pick is None:
        return None
    return Pick(pick.exercise, pick.reason + " (you have seen every exercise: a second look)")
