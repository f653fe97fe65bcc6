"""Queries for learner profiles."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import LearnerProfile


async def profile_of(session: AsyncSession, user_id: uuid.UUID) -> LearnerProfile | None:
    return await session.get(LearnerProfile, user_id)


async def experience_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The experience the learner reported at onboarding, if any: from the profile the
    request already holds (an authenticated request reads it with the caller)."""
    profile = await session.get(LearnerProfile, user_id)
    return None if profile is None else profile.experience


def add_profile(session: AsyncSession, profile: LearnerProfile) -> None:
    session.add(profile)


def users_with_experience(experience: str | None) -> Select[uuid.UUID]:
    """The ids of learners who reported this experience, as a subquery for other queries."""
    return select(LearnerProfile.user_id).where(LearnerProfile.experience == experience)
