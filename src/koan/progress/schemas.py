"""Bodies of the progress and achievement routes."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from koan.common.schemas import Schema


class SkillMastery(Schema):
    skill: str
    mastery: float = Field(ge=0, le=1, description="0-1: how surely this skill is mastered.")
    rating: float = Field(description="The adaptive engine's ability estimate (logit scale).")
    uncertainty: float
    attempts: int
    last_practised: dt.datetime | None
    mastered: bool


class LevelChange(Schema):
    from_level: int
    to_level: int
    at: dt.datetime


class DayActivity(Schema):
    date: dt.date
    completed: int = Field(description="Exercises completed that day.")
    attempts: int = Field(description="Submissions graded that day.")


class ProgressOut(Schema):
    exercises_completed: int = Field(description="Different exercises completed.")
    attempts: int = Field(
        description="Graded submissions whose tests started, passed or not (code that could "
        "not load, a syntax or import error, is not an attempt)."
    )
    first_try_passes: int = Field(description="Exercises whose first attempt passed.")
    hints_used: int
    current_streak: int = Field(description="Days in a row with a completed exercise.")
    longest_streak: int
    active_today: bool = Field(description="An exercise was completed today (learner's time).")
    level: int = Field(ge=1, le=5)
    level_events: list[LevelChange] = Field(description="Level changes, newest first.")
    skills: list[SkillMastery]
    timezone: str
    today: dt.date = Field(description="Today in the learner's time zone.")
    activity: list[DayActivity] = Field(description="The last 90 days, oldest first.")


class HistoryOut(Schema):
    start: dt.date = Field(serialization_alias="from")
    end: dt.date = Field(serialization_alias="to")
    timezone: str
    days: list[DayActivity]
    completed: int
    attempts: int


class EarnedAchievement(Schema):
    code: str
    title: str
    description: str
    earned_at: dt.datetime


class LockedAchievement(Schema):
    code: str
    title: str
    description: str
    current: int
    target: int
    counts: str = Field(
        default="",
        description="What current and target count, e.g. 'hardest difficulty completed'.",
    )


class AchievementsOut(Schema):
    earned: list[EarnedAchievement] = Field(description="Oldest first.")
    locked: list[LockedAchievement] = Field(description="In catalogue order.")
