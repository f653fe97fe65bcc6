"""Queries for learner profiles."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import LearnerProfile


async def profile_of(session: AsyncSession, user_id: uuid.UUID) -> LearnerProfile | None:
    return await session.get(LearnerProfile, user_id)


# Built once: grading asks it of learners without ratings yet.
_EXPERIENCE = select(LearnerProfile.experience).where(
    LearnerProfile.user_id == bindparam("user_id")
)


async def experience_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The experience the learner reported at onboarding, if any."""
    return (await session.execute(_EXPERIENCE, {"user_id": user_id})).scalar_one_or_none()


def add_profile(session: AsyncSession, profile: LearnerProfile) -> None:
    session.add(profile)


def users_with_experience(experience: str | None) -> Select[uuid.UUID]:
    """The ids of learners who reported this experience, as a subquery for other queries."""
    return select(LearnerProfile.user_id).where(LearnerProfile.experience == experience)
