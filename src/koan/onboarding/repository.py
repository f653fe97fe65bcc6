"""Queries for learner profiles."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import LearnerProfile, User


async def profile_for(session: AsyncSession, user: User) -> LearnerProfile:
    """The user's profile, created empty on first use."""
    profile = await session.get(LearnerProfile, user.id)
    if profile is None:
        profile = LearnerProfile(user_id=user.id, answers={}, interests=[], goals="")
        session.add(profile)
        await session.flush()
    return profile
