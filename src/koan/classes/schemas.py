"""Bodies of the /classes routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from koan.common.schemas import Input, Moment, Money, Schema, Text, TimeZoneName, clean_line

Strictness = Literal["socratic", "hints", "open"]
Role = Literal["instructor", "ta", "learner"]
ItemStatus = Literal["passed", "late", "attempted", "not_started"]
AssignmentLanguage = Literal["python", "javascript"]


# One line of text trimmed before its length is checked: a name of spaces alone is empty, and
# one of invisible characters alone is refused as empty too (`clean_line`).
ClassName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    AfterValidator(clean_line),
]
AssignmentTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(clean_line),
]
# One word or topic the tutor avoids (blank ones are dropped).
AvoidWord = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(clean_line)
]
# Why the tutor is off, shown to learners (empty: no reason given).
OffReason = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=300), AfterValidator(clean_line)
]

# What a learner agrees to show before joining, in the words the join page uses.
TEACHER_SEES = (
    "your submissions to the class's exercises: code and test results",
    "your progress on the class's exercises: attempts, hints used, completion, streak",
    "your tutor conversations about the class's exercises (conversations not about one of "
    "its exercises stay private)",
)


class TutorSettings(Input):
    """The class's tutor controls; fields left out stay as they are."""

    strictness: Strictness | None = None
    instructions: Text | None = Field(default=None, max_length=4000)
    avoid: list[AvoidWord] | None = Field(default=None, max_length=100)
    off: StrictBool | None = None
    # An exam window in the class's time zone (naive) or with an explicit offset.
    off_from: Moment | None = None
    off_until: Moment | None = None
    off_reason: OffReason | None = None
    learner_daily_budget_usd: Decimal | None = Field(
        default=None, ge=0, le=1000, max_digits=12, decimal_places=6
    )
    class_daily_cap_usd: Decimal | None = Field(
        default=None, ge=0, le=100000, max_digits=12, decimal_places=6
    )


class ClassCreate(Input):
    name: ClassName
    timezone: TimeZoneName = "UTC"
    starts_at: Moment | None = None
    ends_at: Moment | None = None


class ClassUpdate(Input):
    name: ClassName | None = None
    timezone: TimeZoneName | None = None
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    tutor: TutorSettings | None = None


class TutorOut(Schema):
    strictness: Strictness | None
    instructions: str
    avoid: list[str]
    off: bool
    off_from: datetime | None
    off_until: datetime | None
    off_reason: str
    learner_daily_budget_usd: Money | None
    class_daily_cap_usd: Money | None


class ClassOut(Schema):
    id: uuid.UUID
    name: str
    role: Role
    timezone: str
    starts_at: datetime | None
    ends_at: datetime | None
    # Staff only: learners neither see the code nor the tutor's settings.
    join_code: str | None = None
    join_link: str | None = None
    tutor: TutorOut | None = None
    members: int | None = None


class ClassList(Schema):
    items: list[ClassOut]


class JoinInput(Input):
    code: str = Field(min_length=4, max_length=16)


class InviteAccept(Input):
    token: str = Field(min_length=8, max_length=200)


class ClassPreview(Schema):
    """What joining means, shown before the learner joins."""

    id: uuid.UUID
    name: str
    instructors: list[str]
    teacher_sees: list[str]
    already_member: bool


class MemberOut(Schema):
    user_id: uuid.UUID
    name: str
    email: str
    role: Role
    joined_at: datetime


class MemberList(Schema):
    items: list[MemberOut]


class InviteInput(Input):
    # A pasted list: addresses separated by commas, semicolons, spaces or new lines.
    emails: str = Field(min_length=3, max_length=100_000)


class InviteOut(Schema):
    email: str
    status: str  # pending | accepted
    created_at: datetime
    # The mail is sent after the request: queued, sent, or failed (every attempt failed;
    # inviting the address again sends a new one).
    mail_status: str
    mailed_at: datetime | None


ReviewStatus = Literal["pending", "approved", "rejected"]


class GeneratedExerciseOut(Schema):
    """An exercise the model wrote for a learner of the class, and the instructor's decision:
    pending, approved (shared with the class) or rejected (its requester's alone)."""

    id: uuid.UUID
    slug: str
    title: str
    language: str
    difficulty: int
    written_for: str | None  # the learner's email
    status: ReviewStatus
    decided_at: datetime | None = None


class GeneratedExerciseList(Schema):
    items: list[GeneratedExerciseOut]


class InviteResult(Schema):
    invited: list[str]
    already_members: list[str]
    already_invited: list[str]
    invalid: list[str]


class InviteList(Schema):
    items: list[InviteOut]


class RoleChange(Input):
    # An instructor may make another member an instructor too (who can then let them leave);
    # an instructor's own role is not changed here.
    role: Literal["ta", "learner", "instructor"]


class ClassAssignmentCreate(Input):
    title: AssignmentTitle
    exercise_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=100)
    skill: str | None = Field(default=None, max_length=40, pattern=r"^[a-z0-9-]+$")
    level: StrictInt | None = Field(default=None, ge=1, le=5)
    count: StrictInt | None = Field(default=None, ge=1, le=20)
    language: AssignmentLanguage | None = None
    # In the class's time zone when naive.
    opens_at: Moment
    due_at: Moment

    @model_validator(mode="after")
    def _one_kind(self) -> ClassAssignmentCreate:
        adaptive = self.skill is not None or self.count is not None or self.level is not None
        if (self.exercise_ids is None) == (not adaptive):
            raise ValueError(
                "give either exercise_ids, or skill, level and count (picked per learner)"
            )
        if adaptive and (self.skill is None or self.count is None or self.level is None):
            raise ValueError("an adaptive assignment needs skill, level and count")
        return self


class ExerciseChoice(Schema):
    """An exercise a class assignment may set (every learner can see it)."""

    id: uuid.UUID
    slug: str
    title: str
    language: str
    difficulty: int
    skills: list[str]


class ItemOut(Schema):
    exercise_id: uuid.UUID
    slug: str
    title: str
    status: ItemStatus
    attempts: int
    passed_at: datetime | None


class ClassAssignmentOut(Schema):
    id: uuid.UUID
    class_id: uuid.UUID
    class_name: str
    title: str
    kind: Literal["exercises", "adaptive"]
    skill: str | None
    level: int | None
    count: int
    opens_at: datetime
    due_at: datetime
    # The due time in the viewer's own time zone, e.g. "2026-12-07 23:59 (Europe/Paris)".
    due_local: str
    is_open: bool
    status: ItemStatus | None = None
    items: list[ItemOut] = Field(default_factory=list)


class ClassAssignmentList(Schema):
    items: list[ClassAssignmentOut]


# -- dashboards ---------------------------------------------------------------------------


class RosterRow(Schema):
    user_id: uuid.UUID
    name: str
    email: str
    completed: int
    attempts: int
    hints_used: int
    tutor_messages: int
    assignments_done: int
    assignments_total: int
    last_active: datetime | None
    streak: int


class Roster(Schema):
    items: list[RosterRow]
    sort: str
    order: Literal["asc", "desc"]


class GradebookColumn(Schema):
    id: uuid.UUID
    title: str
    due_at: datetime


class GradebookRow(Schema):
    user_id: uuid.UUID
    name: str
    email: str
    statuses: dict[str, ItemStatus]


class Gradebook(Schema):
    assignments: list[GradebookColumn]
    rows: list[GradebookRow]


class NeedsHelpEntry(Schema):
    user_id: uuid.UUID
    name: str
    reason: Literal["failing", "ladder_used_up", "inactive"]
    why: str
    exercise_id: uuid.UUID | None
    exercise_title: str | None
    since: datetime | None


class NeedsHelp(Schema):
    items: list[NeedsHelpEntry]


class ExerciseStats(Schema):
    exercise_id: uuid.UUID
    slug: str
    title: str
    learners_attempted: int
    learners_passed: int
    pass_rate: float | None
    median_attempts_to_pass: float | None
    median_minutes_to_pass: float | None
    common_failure: str | None
    common_failure_message: str | None
    common_failure_count: int
    hints_used: int


class ExerciseStatsList(Schema):
    items: list[ExerciseStats]


class LearnerSubmission(Schema):
    id: uuid.UUID
    exercise_id: uuid.UUID
    exercise_title: str
    code: str
    status: str
    passed: int
    total: int
    tests: list[dict[str, object]]
    created_at: datetime
    late: bool


class LearnerSubmissions(Schema):
    items: list[LearnerSubmission]
    next_cursor: str | None


class ConversationSummary(Schema):
    id: uuid.UUID
    exercise_id: uuid.UUID
    exercise_title: str
    title: str
    message_count: int
    updated_at: datetime


class ConversationList(Schema):
    items: list[ConversationSummary]


class MessageOut(Schema):
    seq: int
    role: str
    content: str
    created_at: datetime


class ConversationDetail(Schema):
    id: uuid.UUID
    exercise_id: uuid.UUID
    title: str
    messages: list[MessageOut]


class ClassUsage(Schema):
    day: str
    spent_usd: Money
    class_daily_cap_usd: Money | None
    learner_daily_budget_usd: Money | None
    by_learner: dict[str, Money]
