"""Exercises, learners' assignments of them, and submissions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from koan.db import Base, UUIDPrimaryKey, utcnow

OPEN_STATUSES = ("assigned", "in_progress")


class Exercise(UUIDPrimaryKey, Base):
    __tablename__ = "exercises"
    __table_args__ = (Index("ix_exercises_language_difficulty", "language", "difficulty", "slug"),)

    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    difficulty: Mapped[int] = mapped_column(Integer)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    statement: Mapped[str] = mapped_column(Text)
    starter_code: Mapped[str] = mapped_column(Text)
    solution: Mapped[str] = mapped_column(Text)
    tests: Mapped[str] = mapped_column(Text)
    hints: Mapped[list[str]] = mapped_column(JSON, default=list)
    time_limit_s: Mapped[float | None] = mapped_column(Float, default=None)
    memory_limit_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    source: Mapped[str] = mapped_column(String(16), default="imported")
    # A generated exercise is seen only by the learner who asked for it until an admin
    # approves it; authored ones (built-in, imported) are everyone's.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None, index=True
    )
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    content_hash: Mapped[str] = mapped_column(String(64))
    # Item difficulty on the adaptive engine's scale, learnt from every learner's outcomes.
    rating: Mapped[float] = mapped_column(Float, default=0.0)
    rating_uncertainty: Mapped[float] = mapped_column(Float, default=0.7)
    rating_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def authored(self) -> bool:
        """Written by people (built-in or imported), not by the model."""
        return self.source != "generated"

    skill_rows: Mapped[list[ExerciseSkill]] = relationship(
        cascade="all, delete-orphan", lazy="raise", passive_deletes=True
    )


class ExerciseSkill(Base):
    """One row per (exercise, skill), so the catalogue filters by skill with an index."""

    __tablename__ = "exercise_skills"

    exercise_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("exercises.id", ondelete="CASCADE"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Assignment(UUIDPrimaryKey, Base):
    """An exercise given to a learner: the daily one, or one picked from the catalogue."""

    __tablename__ = "assignments"
    __table_args__ = (
        # One open daily assignment per learner, held by the database itself.
        Index(
            "uq_assignments_open_daily",
            "user_id",
            unique=True,
            sqlite_where=text("kind = 'daily' AND status IN ('assigned', 'in_progress')"),
            postgresql_where=text("kind = 'daily' AND status IN ('assigned', 'in_progress')"),
        ),
        Index("ix_assignments_user_status", "user_id", "status"),
        Index("ix_assignments_user_exercise", "user_id", "exercise_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    exercise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="daily")
    status: Mapped[str] = mapped_column(String(16), default="assigned")
    reason: Mapped[str] = mapped_column(String(300), default="")
    hints_used: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    skipped_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)

    exercise: Mapped[Exercise] = relationship(lazy="raise")


class AssignmentHint(Base):
    """A hint the tutor's model tailored to the learner's code, kept with the assignment and
    rung it was given for: the page shows it in place of the authored rung, as the learner was
    shown it (and charged for it). A rung given as authored has no row."""

    __tablename__ = "assignment_hints"

    assignment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True
    )
    rung: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based, as hints_used counts
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Submission(UUIDPrimaryKey, Base):
    """Code a learner sent, stored before it is graded and kept whatever happens."""

    __tablename__ = "submissions"
    __table_args__ = (
        # status included (PostgreSQL): a class dashboard reads learners' work from the index alone.
        Index(
            "ix_submissions_user_exercise_created",
            "user_id",
            "exercise_id",
            "created_at",
            postgresql_include=["status"],
        ),
        Index("ix_submissions_assignment", "assignment_id"),
        Index("ix_submissions_status_created", "status", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    exercise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"))
    assignment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    passed: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    tests: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    stdout: Mapped[str] = mapped_column(Text, default="")
    stderr: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    tier: Mapped[str] = mapped_column(String(16), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    graded_at: Mapped[datetime | None] = mapped_column(default=None)
