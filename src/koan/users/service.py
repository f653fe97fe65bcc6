"""Rules for a user's own account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from koan.errors import ValidationFailed
from koan.models import LearnerProfile, User
from koan.onboarding import service as profiles
from koan.users.schemas import Preferences, UserOut, UserUpdate


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    password_hash: str,
    role: str = "learner",
    email_verified_at: datetime | None = None,
    timezone: str | None = None,
) -> User:
    """A new account with its empty learner profile: the one way accounts are made."""
    user = User(
        email=email,
        name=name,
        password_hash=password_hash,
        role=role,
        email_verified_at=email_verified_at,
        preferences={},
    )
    if timezone is not None:
        user.timezone = timezone
    session.add(user)
    await session.flush()
    await profiles.create_profile(session, user.id)
    return user


async def describe(session: AsyncSession, user: User) -> UserOut:
    return account_of(user, await profiles.profile_of(session, user))


def account_of(user: User, profile: LearnerProfile | None) -> UserOut:
    """The account as its owner sees it (`profile` None: the account has no profile row)."""
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        email_verified=user.email_verified,
        timezone=user.timezone,
        preferences=Preferences.model_validate(user.preferences or {}),
        onboarding_completed=profile is not None and profile.onboarding_completed,
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
        await profiles.follow_timezone(session, user)
    if "preferences" in changes:
        prefs = data.preferences or Preferences()
        user.preferences = prefs.model_dump()
    await session.flush()
    return await describe(session, user)
