"""Bodies of the onboarding and profile routes."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, StringConstraints, field_validator

from koan.common.schemas import (
    Input,
    Schema,
    TimeZoneName,
    blank_refusal,
    clean_text,
    encodable,
    visible,
)
from koan.onboarding.questions import MAX_INTERESTS, MAX_MINUTES, MIN_MINUTES

Language = Literal["python", "javascript"]
Experience = Literal["beginner", "intermediate", "advanced"]
LearningStyle = Literal["examples", "challenges", "explanations", "mixed"]

# The length is checked on the text itself, so a refusal counts characters (a length checked
# after the validator is any sequence's, and says "items").
Goals = Annotated[str, StringConstraints(max_length=1000), AfterValidator(clean_text)]

_TAG = re.compile(r"^[a-z0-9][a-z0-9 +#.\-]{0,39}$")


def _clean_tags(tags: list[str]) -> list[str]:
    seen: list[str] = []
    for raw in tags:
        tag = " ".join(raw.strip().lower().split())
        if not _TAG.match(tag):
            raise ValueError(
                f"'{encodable(raw[:40])}' is not a valid tag: use letters, digits, spaces, + # . - "
                "(up to 40 characters)"
            )
        if tag not in seen:
            seen.append(tag)
    return seen


class ProfileFields(Input):
    """The learner-profile answers; every one optional, so any subset can be sent."""

    language: Language | None = None
    experience: Experience | None = None
    goals: Goals | None = None
    interests: list[str] | None = Field(default=None, max_length=MAX_INTERESTS)
    learning_style: LearningStyle | None = None
    minutes_per_day: StrictInt | None = Field(default=None, ge=MIN_MINUTES, le=MAX_MINUTES)

    @field_validator("interests")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _clean_tags(value)

    @field_validator("goals")
    @classmethod
    def _goals(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        # Invisible characters alone read as no goals at all.
        if value and not visible(value):
            raise blank_refusal()
        return value


class AnswersInput(ProfileFields):
    """Any subset of the interview's answers (the interview can be paused and resumed)."""

    timezone: TimeZoneName | None = None


class QuestionOut(Schema):
    id: str
    prompt: str
    kind: str
    required: bool
    options: list[str]
    help: str
    limits: dict[str, int]


class QuestionsOut(Schema):
    questions: list[QuestionOut]


class OnboardingStatus(Schema):
    completed: bool
    answers: dict[str, object]
    answered: list[str]
    missing_required: list[str]
    progress: float = Field(description="Share of the questions answered, 0 to 1.")


class ProfileOut(Schema):
    onboarding_completed: bool
    language: str | None
    experience: str | None
    goals: str
    interests: list[str]
    learning_style: str | None
    minutes_per_day: int | None


class ProfileUpdate(ProfileFields):
    """Changes to the profile after onboarding; fields left out stay as they are, and the
    interview's required answers cannot be cleared."""

    @field_validator("goals")
    @classmethod
    def _goals_kept(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError(
                "Your goals cannot be cleared: say in a sentence what you want to be able to do"
            )
        return value
