"""Progress: what each graded submission meant, per-learner totals, skill ratings, achievements."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from koan.db import Base, UUIDPrimaryKey, utcnow


class PracticeEntry(Base):
    """One graded submission as the learner lived it: their local day, the attempt it was.

    Written once, in the grading transaction. It keeps what the submission rows cannot tell
    later: the time zone the learner was in (so a move never rewrites past days), and how many
    attempts and hints the assignment had at that moment (hints can still be taken afterwards).
    """

    __tablename__ = "practice_log"
    __table_args__ = (
        Index("ix_practice_log_user_day", "user_id", "day"),
        # An assignment is completed once; the database refuses a second completion.
        Index(
            "uq_practice_log_completed_assignment",
            "assignment_id",
            unique=True,
            sqlite_where=text("completed"),
            postgresql_where=text("completed"),
        ),
    )

    submission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assignment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE")
    )
    exercise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    timezone: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    passed: Mapped[bool] = mapped_column(Boolean)
    completed: Mapped[bool] = mapped_column(Boolean)
    # Which attempt on the assignment this was (1 = the first verdict).
    attempt: Mapped[int] = mapped_column(Integer)
    hints_used: Mapped[int] = mapped_column(Integer)


class LearnerProgress(Base):
    """Per-learner totals kept up to date by the grading hook; `recompute` must agree with it.

    The row is also the per-learner lock: every progress update takes it FOR UPDATE first, so
    concurrent submissions of one learner are counted and awarded one after another.
    """

    __tablename__ = "learner_progress"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    exercises_completed: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_try_passes: Mapped[int] = mapped_column(Integer, default=0)
    # The run of consecutive active days ending on last_active_day (shown as the current
    # streak while last_active_day is today or yesterday).
    current_streak: Mapped[int] = mapped_column(Integer, default=0)
    longest_streak: Mapped[int] = mapped_column(Integer, default=0)
    last_active_day: Mapped[date | None] = mapped_column(Date, default=None)
    level: Mapped[int] = mapped_column(Integer, default=1)
    # What the achievement rules read of the completions beyond these totals
    # (`koan.progress.achievements.Summary`), kept one completion at a time; None until the
    # first award pass builds it from the practice log.
    achievement_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LearnerSkillRating(Base):
    """The adaptive engine's belief about one learner's ability in one skill."""

    __tablename__ = "skill_ratings"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(40), primary_key=True)
    rating: Mapped[float] = mapped_column(Float)
    uncertainty: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_practised: Mapped[datetime | None] = mapped_column(default=None)
    # Newest last: the latest graded outcomes in [0, 1], kept to explain choices.
    recent: Mapped[list[float]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LevelEvent(UUIDPrimaryKey, Base):
    """The learner's overall level moved from one value to another."""

    __tablename__ = "level_events"
    __table_args__ = (Index("ix_level_events_user_at", "user_id", "at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    from_level: Mapped[int] = mapped_column(Integer)
    to_level: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]


class Achievement(Base):
    """One entry of the catalogue; rows are seeded by migrations from achievements.CATALOGUE."""

    __tablename__ = "achievements"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    threshold: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)


class UserAchievement(UUIDPrimaryKey, Base):
    """An achievement a learner earned; the unique constraint awards each one exactly once."""

    __tablename__ = "user_achievements"
    __table_args__ = (UniqueConstraint("user_id", "achievement_code"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    achievement_code: Mapped[str] = mapped_column(ForeignKey("achievements.code"))
    earned_at: Mapped[datetime]
    # The submission that earned it (none for an award made outside grading).
    submission_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL"), default=None
    )


__all__ = [
    "Achievement",
    "LearnerProgress",
    "LearnerSkillRating",
    "LevelEvent",
    "PracticeEntry",
    "UserAchievement",
]
