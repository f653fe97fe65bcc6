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


async def profile_to_change(session: AsyncSession, user_id: uuid.UUID) -> LearnerProfile | None:
    """The profile, read afresh and held (FOR UPDATE, PostgreSQL) until the transaction ends:
    the interview's answers are read, merged and written back, and two requests doing that at
    once must take turns, or the second would write back answers without the first's. SQLite's
    write transactions take turns already."""
    query = (
        select(LearnerProfile)
        .where(LearnerProfile.user_id == user_id)
        .with_for_update()
        # The request may hold the profile already (read with the caller), as it was before
        # this lock was granted.
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


def add_profile(session: AsyncSession, profile: LearnerProfile) -> None:
    session.add(profile)


def users_with_experience(experience: str | None) -> Select[uuid.UUID]:
    """The ids of learners who reported this experience, as a subquery for other queries."""
    return select(LearnerProfile.user_id).where(LearnerProfile.experience == experience)
