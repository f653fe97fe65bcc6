"""Streaks: consecutive days, in the learner's own time zone, on which they completed an exercise.

Days are calendar dates where the learner was at the time (a day of 23 or 25 hours around a DST
change is still one day), so nothing here adds 24 hours to anything. Each completion keeps the
day it was lived on: moving to another time zone changes "today" but never rewrites the past.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from koan.clock import zone

ONE_DAY = timedelta(days=1)


def local_time(instant: datetime, timezone: str) -> datetime:
    """The wall-clock time the learner saw at `instant` (an aware datetime)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(zone(timezone))


def local_day(instant: datetime, timezone: str) -> date:
    """The learner's calendar date at `instant`."""
    return local_time(instant, timezone).date()


@dataclass(frozen=True)
class Streak:
    """`run`: consecutive active days ending on `last_active_day`; `longest`: the best run ever."""

    run: int = 0
    longest: int = 0
    last_active_day: date | None = None


def from_days(days: Iterable[date]) -> Streak:
    """The streak of a set of active days (order and repeats do not matter)."""
    ordered = sorted(set(days))
    if not ordered:
        return Streak()
    run = longest = 1
    for previous, day in zip(ordered, ordered[1:], strict=False):
        run = run + 1 if day - previous == ONE_DAY else 1
        longest = max(longest, run)
    return Streak(run=run, longest=longest, last_active_day=ordered[-1])


def record(streak: Streak, day: date) -> Streak | None:
    """The streak after activity on `day`, or None when it must be rebuilt with `from_days`.

    Days normally arrive in order. After a move west, a completion can fall on a date before the
    last active one (23:30 in Paris, then 18:00 the same day in New York); it may fill a gap
    between older runs, which only the full set of days can tell.
    """
    last = streak.last_active_day
    if last is None:
        return Streak(run=1, longest=max(streak.longest, 1), last_active_day=day)
    if day < last:
        return None
    if day == last:
        return streak
    run = streak.run + 1 if day - last == ONE_DAY else 1
    return Streak(run=run, longest=max(streak.longest, run), last_active_day=day)


def current(streak: Streak, today: date) -> int:
    """The streak as shown today: a day without activity yet does not end it, a missed one does."""
    last = streak.last_active_day
    # `last` can be after `today` just after a move west; that run is still alive.
    if last is None or last < today - ONE_DAY:
        return 0
    return streak.run
