"""The onboarding interview's rules: save partial answers, complete, fill the profile."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from koan.errors import Conflict, ValidationFailed
from koan.models import LearnerProfile, User
from koan.onboarding import repository
from koan.onboarding.questions import QUESTIONS, REQUIRED
from koan.onboarding.schemas import AnswersInput, OnboardingStatus, ProfileUpdate
from koan.resources import Resources

PROFILE_FIELDS = (
    "language",
    "experience",
    "goals",
    "interests",
    "learning_style",
    "minutes_per_day",
)


def empty_profile(user_id: uuid.UUID) -> LearnerProfile:
    """A profile with nothing answered yet."""
    return LearnerProfile(
        user_id=user_id,
        answers={},
        onboarding_completed=False,
        completed_at=None,
        language=None,
        experience=None,
        goals="",
        interests=[],
        learning_style=None,
        minutes_per_day=None,
    )


async def create_profile(session: AsyncSession, user_id: uuid.UUID) -> LearnerProfile:
    """The new account's empty profile; made once, when the account is created."""
    profile = empty_profile(user_id)
    repository.add_profile(session, profile)
    await session.flush()
    return profile


async def profile_of(session: AsyncSession, user: User) -> LearnerProfile:
    """The learner's profile. Reading never writes: an account without a profile row (made
    before profiles came with the account) reads as an empty, unsaved profile."""
    profile = await repository.profile_of(session, user.id)
    return profile if profile is not None else empty_profile(user.id)


async def experience_of(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The experience the learner reported at onboarding, if any."""
    return await repository.experience_of(session, user_id)


async def _profile_to_change(session: AsyncSession, user: User) -> LearnerProfile:
    """The profile an answer or an edit changes, held until the transaction ends, and saved
    with it even if it had no row yet."""
    profile = await repository.profile_to_change(session, user.id)
    if profile is None:
        profile = await create_profile(session, user.id)
    return profile


def _answers(profile: LearnerProfile, user: User) -> dict[str, Any]:
    """The interview's answers; once it is complete, as the profile and the account hold them
    now (settings change them there, not in the interview's record)."""
    answers = dict(profile.answers or {})
    if profile.onboarding_completed:
        answers.update({name: getattr(profile, name) for name in PROFILE_FIELDS})
        answers["timezone"] = user.timezone
    return answers


def status_of(profile: LearnerProfile, user: User) -> OnboardingStatus:
    answers = _answers(profile, user)
    answered = [q.id for q in QUESTIONS if answers.get(q.id) not in (None, "", [])]
    missing = [q for q in REQUIRED if q not in answered]
    return OnboardingStatus(
        completed=profile.onboarding_completed,
        answers=answers,
        answered=answered,
        missing_required=missing,
        progress=round(len(answered) / len(QUESTIONS), 3),
    )


async def save_answers(session: AsyncSession, user: User, data: AnswersInput) -> OnboardingStatus:
    profile = await _profile_to_change(session, user)
    if profile.onboarding_completed:
        raise Conflict(
            "Onboarding is already complete; change your answers with "
            "PATCH /api/v1/users/me/profile."
        )
    answers: dict[str, Any] = dict(profile.answers or {})
    answers.update(data.model_dump(exclude_unset=True))
    # A new dict, so the JSON column is seen as changed.
    profile.answers = answers
    await session.flush()
    return status_of(profile, user)


async def complete(session: AsyncSession, res: Resources, user: User) -> OnboardingStatus:
    # Held, so answers saved meanwhile are either in the profile or refused as too late.
    profile = await _profile_to_change(session, user)
    if profile.onboarding_completed:
        return status_of(profile, user)
    current = status_of(profile, user)
    if current.missing_required:
        raise ValidationFailed(
            "Answer these questions first: " + ", ".join(current.missing_required) + ".",
            code="OnboardingIncomplete",
        )
    answers = profile.answers
    for name in PROFILE_FIELDS:
        if answers.get(name) is not None:
            setattr(profile, name, answers[name])
    profile.learning_style = profile.learning_style or "mixed"
    user.timezone = answers["timezone"]
    profile.onboarding_completed = True
    profile.completed_at = res.clock.now()
    await session.flush()
    return status_of(profile, user)


async def follow_timezone(session: AsyncSession, user: User) -> None:
    """The account's time zone just changed: an interview still open that answered the time
    zone question takes the new one, so completing it later does not put the old one back."""
    profile = await repository.profile_of(session, user.id)
    if profile is None or profile.onboarding_completed:
        return
    answers = dict(profile.answers or {})
    if "timezone" in answers and answers["timezone"] != user.timezone:
        answers["timezone"] = user.timezone
        profile.answers = answers  # a new dict, so the JSON column is seen as changed
        await session.flush()


async def update_profile(session: AsyncSession, user: User, data: ProfileUpdate) -> LearnerProfile:
    profile = await profile_of(session, user)
    if not profile.onboarding_completed:
        raise Conflict("Complete onboarding first (POST /api/v1/onboarding/complete).")
    for name, value in data.model_dump(exclude_unset=True).items():
        cleared = value is None or (name in REQUIRED and value in ("", []))
        if cleared and name != "learning_style":
            raise ValidationFailed(f"'{name}' cannot be cleared.", code="ValidationError")
        setattr(profile, name, value)
    await session.flush()
    return profile
