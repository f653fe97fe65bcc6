"""Queries for the adaptive engine: learners' skill ratings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive.model import GENERAL, SETTLED_ATTEMPTS
from koan.models.progress import LearnerSkillRating
from koan.onboarding import repository as profiles


async def skill_ratings(session: AsyncSession, user_id: uuid.UUID) -> Sequence[LearnerSkillRating]:
    query = select(LearnerSkillRating).where(LearnerSkillRating.user_id == user_id)
    return (await session.execute(query)).scalars().all()


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
