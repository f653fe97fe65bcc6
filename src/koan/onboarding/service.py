"""The onboarding interview's rules: save partial answers, complete, fill the profile."""

from __future__ import annotations

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


def status_of(profile: LearnerProfile) -> OnboardingStatus:
    answers = dict(profile.answers or {})
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
    profile = await repository.profile_for(session, user)
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
    return status_of(profile)


async def complete(session: AsyncSession, res: Resources, user: User) -> OnboardingStatus:
    profile = await repository.profile_for(session, user)
    if profile.onboarding_completed:
        return status_of(profile)
    current = status_of(profile)
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
    return status_of(profile)


async def update_profile(session: AsyncSession, user: User, data: ProfileUpdate) -> LearnerProfile:
    profile = await repository.profile_for(session, user)
    if not profile.onboarding_completed:
        raise Conflict("Complete onboarding first (POST /api/v1/onboarding/complete).")
    for name, value in data.model_dump(exclude_unset=True).items():
        if value is None and name != "learning_style":
            raise ValidationFailed(f"'{name}' cannot be cleared.", code="ValidationError")
        setattr(profile, name, value)
    await session.flush()
    return profile
