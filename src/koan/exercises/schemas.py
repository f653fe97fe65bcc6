"""Bodies of the exercise, assignment and submission routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from koan.common.schemas import Input, Schema

MAX_CODE_BYTES = 64 * 1024


class ExerciseSummary(Schema):
    id: uuid.UUID
    slug: str
    title: str
    language: str
    difficulty: int
    skills: list[str]


class ExerciseDetail(ExerciseSummary):
    """What a learner may see: never the reference solution or the test source."""

    statement: str
    starter_code: str
    hints_total: int
    time_limit_s: float | None
    memory_limit_mb: int | None
    authored: bool = Field(
        default=True,
        description="Written by people (built-in or imported); false for one the model wrote.",
    )


CatalogueSort = Literal["difficulty", "title", "skill"]
WorkMark = Literal["solved", "skipped", "in_progress"]


class CatalogueItem(ExerciseSummary):
    progress: WorkMark | None = Field(
        default=None,
        description="Your work on it: solved (passed at least once), skipped (your latest "
        "assignment of it was skipped), in_progress, or null when you have not tried it.",
    )


class ExercisePage(Schema):
    items: list[CatalogueItem]
    next_cursor: str | None


class AssignmentOut(Schema):
    id: uuid.UUID
    kind: str
    status: str
    reason: str
    hints_used: int
    attempts: int
    assigned_at: datetime
    completed_at: datetime | None
    skipped_at: datetime | None
    available_until: datetime | None = Field(
        description="For a skipped assignment: until when it can be resumed."
    )
    exercise: ExerciseSummary


class AssignmentPage(Schema):
    items: list[AssignmentOut]
    next_cursor: str | None


class DailyOut(Schema):
    assignment_id: uuid.UUID
    status: str
    hints_used: int
    reason: str
    assigned_at: datetime = Field(
        description='When it was chosen: `reason` is worded as of then ("you did it earlier '
        'today").'
    )
    extra: bool = Field(
        description="True when the learner already finished today's daily exercise (on their "
        "own clock) and this one is an extra they asked for; the next day it is that day's."
    )
    exercise: ExerciseDetail


class SubmissionIn(Input):
    code: str

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty: write some code first")
        if "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("must be valid Unicode text") from exc
        return value


class TestResult(Schema):
    name: str
    status: str
    message: str


class SubmissionOut(Schema):
    id: uuid.UUID
    assignment_id: uuid.UUID
    status: str
    passed: int
    total: int
    tests: list[TestResult]
    stdout: str
    stderr: str
    duration_ms: int
    created_at: datetime
    achievements_unlocked: list[str] = Field(default_factory=list)


class SubmissionSummary(Schema):
    id: uuid.UUID
    status: str
    passed: int
    total: int
    duration_ms: int
    created_at: datetime
    code: str


class SubmissionPage(Schema):
    items: list[SubmissionSummary]
    next_cursor: str | None


class HintOut(Schema):
    hint: str
    index: int = Field(description="Which rung this is, from 1.")
    remaining: int


class TakenHintOut(Schema):
    index: int = Field(description="Which rung this is, from 1.")
    text: str = Field(description="The hint as the learner was shown it.")
    tailored: bool = Field(
        description="Written by the tutor's model for the learner's code (not the authored rung)."
    )


class TakenHintsOut(Schema):
    """The hints taken on the learner's current assignment of an exercise (an exercise has at
    most five, so the list is whole, not paged)."""

    items: list[TakenHintOut]
    remaining: int = Field(description="Rungs not taken yet.")
