"""Rules for a user's own account."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from koan.errors import ValidationFailed
from koan.models import User
from koan.onboarding import repository as profiles
from koan.users.schemas import Preferences, UserOut, UserUpdate


async def describe(session: AsyncSession, user: User) -> UserOut:
    profile = await profiles.profile_for(session, user)
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        email_verified=user.email_verified,
        timezone=user.timezone,
        preferences=Preferences.model_validate(user.preferences or {}),
        onboarding_completed=profile.onboarding_completed,
        created_at=user.created_at,
    )


async def update(session: AsyncSession, user: User, data: UserUpdate) -> UserOut:
    changes = data.model_dump(exclude_unset=True)
    if "name" in changes:
        if not data.name:
            raise ValidationFailed("'name' must not be blank.")
        user.name = data.name
    if "timezone" in changes:
        if data.timezone is None:
            raise ValidationFailed("'timezone' cannot be cleared.")
        user.timezone = data.timezone
    if "preferences" in changes:
        prefs = data.preferences or Preferences()
        user.preferences = prefs.model_dump()
    await session.flush()
    return await describe(session, user)
