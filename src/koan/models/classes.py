"""Classes: a teacher's course, its members, invitations and class assignments."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from koan.db import Base, UUIDPrimaryKey, utcnow

CLASS_ROLES = ("instructor", "ta", "learner")
STAFF_ROLES = ("instructor", "ta")


class ClassRoom(UUIDPrimaryKey, Base):
    """A course run by its instructors; `tutor_*` settings apply to its exercises' conversations.

    Learners' work (submissions, conversations) never refers to a class: a class can be
    deleted without touching anything a learner did.
    """

    __tablename__ = "classes"

    name: Mapped[str] = mapped_column(String(120))
    join_code: Mapped[str] = mapped_column(String(16), unique=True)
    # The time zone in which the class's dates and times are set (opening, due, exam windows).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    # None: the server's KOAN_TUTOR_STRICTNESS.
    tutor_strictness: Mapped[str | None] = mapped_column(String(16), default=None)
    tutor_instructions: Mapped[str] = mapped_column(Text, default="")
    tutor_avoid: Mapped[list[str]] = mapped_column(JSON, default=list)
    tutor_off: Mapped[bool] = mapped_column(Boolean, default=False)
    # An exam window: the tutor is off from .. until (both set), whatever `tutor_off` says.
    tutor_off_from: Mapped[datetime | None] = mapped_column(default=None)
    tutor_off_until: Mapped[datetime | None] = mapped_column(default=None)
    tutor_off_reason: Mapped[str] = mapped_column(String(300), default="")
    learner_daily_budget_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 6), default=None)
    class_daily_cap_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 6), default=None)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ClassMembership(Base):
    """One account's role in one class (an account may be a learner here, an instructor there)."""

    __tablename__ = "class_memberships"
    __table_args__ = (
        # The roster and the dashboards read a class's members by role.
        Index("ix_class_memberships_class_role", "class_id", "role"),
        # "My classes", and the tutor's per-conversation policy lookup.
        Index("ix_class_memberships_user", "user_id"),
    )

    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClassInvite(UUIDPrimaryKey, Base):
    """An invitation mailed to an address; the link carries a token whose hash is kept."""

    __tablename__ = "class_invites"
    __table_args__ = (UniqueConstraint("class_id", "email"),)

    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | accepted
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    # The mail goes out after the request: queued | sent | failed (every attempt failed).
    mail_status: Mapped[str] = mapped_column(String(16), default="queued")
    mailed_at: Mapped[datetime | None] = mapped_column(default=None)  # when it was last tried


class ClassExerciseReview(Base):
    """A class instructor's decision on an exercise the model wrote for one of the class's
    learners: approved, it is shared with the class's members (and the class may set it);
    rejected, it stays its requester's alone. Only an administrator shares one with everyone."""

    __tablename__ = "class_exercise_reviews"

    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True
    )
    exercise_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))  # approved | rejected
    decided_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClassAssignment(UUIDPrimaryKey, Base):
    """Work set for the whole class: chosen exercises, or `count` exercises of `skill` at
    `level` that the adaptive engine picks for each learner."""

    __tablename__ = "class_assignments"
    __table_args__ = (Index("ix_class_assignments_class_due", "class_id", "due_at"),)

    class_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # exercises | adaptive
    skill: Mapped[str | None] = mapped_column(String(40), default=None)
    level: Mapped[int | None] = mapped_column(Integer, default=None)
    count: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    opens_at: Mapped[datetime]
    due_at: Mapped[datetime]
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClassAssignmentItem(UUIDPrimaryKey, Base):
    """One exercise of a class assignment: for everyone (user_id NULL), or picked for one
    learner by the adaptive engine."""

    __tablename__ = "class_assignment_items"
    __table_args__ = (
        Index("ix_class_assignment_items_assignment_user", "class_assignment_id", "user_id"),
        # The tutor's policy and the daily picker ask "is this exercise set by a class?".
        Index("ix_class_assignment_items_exercise", "exercise_id"),
        # A learner's adaptive picks are made once, whatever requests race to make them.
        Index(
            "uq_class_assignment_items_pick",
            "class_assignment_id",
            "user_id",
            "position",
            unique=True,
            postgresql_where=text("user_id IS NOT NULL"),
            sqlite_where=text("user_id IS NOT NULL"),
        ),  # fmt: skip
    )

    class_assignment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("class_assignments.id", ondelete="CASCADE")
    )
    # Denormalised from the assignment so a class's exercises are one index range away.
    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("classes.id", ondelete="CASCADE"), index=True
    )
    exercise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    position: Mapped[int] = mapped_column(Integer, default=0)


__all__ = [
    "CLASS_ROLES",
    "STAFF_ROLES",
    "ClassAssignment",
    "ClassAssignmentItem",
    "ClassInvite",
    "ClassMembership",
    "ClassRoom",
]
