"""Streaks are counted in calendar days where the learner is: midnight, DST, moving, repeats."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from koan.progress import streaks
from koan.progress.streaks import Streak, current, from_days, local_day, record

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def days_of(instants: list[datetime], timezone: str) -> set[date]:
    return {local_day(i, timezone) for i in instants}


def test_midnight_belongs_to_the_new_day() -> None:
    # Paris is UTC+1 in January.
    just_before = utc(2027, 1, 10, 22, 59, 59)
    at_midnight = utc(2027, 1, 10, 23, 0, 0)
    assert local_day(just_before, PARIS) == date(2027, 1, 10)
    assert local_day(at_midnight, PARIS) == date(2027, 1, 11)
    # One second apart, two calendar days: a streak of 2.
    streak = from_days(days_of([just_before, at_midnight], PARIS))
    assert (streak.run, streak.longest) == (2, 2)


def test_two_completions_the_same_day_count_once() -> None:
    morning = utc(2027, 1, 10, 7, 0)
    evening = utc(2027, 1, 10, 21, 0)
    streak = from_days(days_of([morning, evening], PARIS))
    assert streak == Streak(run=1, longest=1, last_active_day=date(2027, 1, 10))
    once = record(Streak(), date(2027, 1, 10))
    assert once is not None
    assert record(once, date(2027, 1, 10)) == once


def test_the_same_instant_is_a_different_day_in_another_zone() -> None:
    instant = utc(2027, 1, 11, 2, 0)  # 03:00 in Paris, 21:00 the evening before in New York
    assert local_day(instant, PARIS) == date(2027, 1, 11)
    assert local_day(instant, NEW_YORK) == date(2027, 1, 10)
    assert local_day(instant, "UTC") == date(2027, 1, 11)


def test_spring_forward_a_23_hour_day_is_still_a_day() -> None:
    # New York springs forward on 2027-03-14 (02:00 EST -> 03:00 EDT): that day has 23 hours.
    sat_late = utc(2027, 3, 14, 4, 30)  # Sat 13th 23:30 EST
    mon_early = utc(2027, 3, 15, 4, 30)  # Mon 15th 00:30 EDT: exactly 24 h later
    assert local_day(sat_late, NEW_YORK) == date(2027, 3, 13)
    assert local_day(mon_early, NEW_YORK) == date(2027, 3, 15)
    # 24 hours apart, yet Sunday the 14th was missed: the streak is broken.
    assert from_days(days_of([sat_late, mon_early], NEW_YORK)).run == 1
    # Midnight after the change is at 04:00 UTC, not 05:00.
    assert local_day(utc(2027, 3, 15, 3, 59), NEW_YORK) == date(2027, 3, 14)
    assert local_day(utc(2027, 3, 15, 4, 0), NEW_YORK) == date(2027, 3, 15)


def test_fall_back_a_25_hour_day_is_still_one_day() -> None:
    # Paris falls back on 2027-10-31 (03:00 CEST -> 02:00 CET): that day has 25 hours.
    first_minute = utc(2027, 10, 30, 22, 0)  # 00:00 CEST on the 31st
    last_minute = utc(2027, 10, 31, 22, 59)  # 23:59 CET on the 31st, 24 h 59 min later
    assert local_day(first_minute, PARIS) == local_day(last_minute, PARIS) == date(2027, 10, 31)
    assert from_days(days_of([first_minute, last_minute], PARIS)).run == 1
    # The repeated hour (02:00-02:59 happens twice) stays on the same date.
    assert local_day(utc(2027, 10, 31, 0, 30), PARIS) == local_day(utc(2027, 10, 31, 1, 30), PARIS)
    # And the next evening continues the streak.
    next_evening = utc(2027, 11, 1, 19, 0)
    assert from_days(days_of([first_minute, last_minute, next_evening], PARIS)).run == 2


def test_moving_west_can_put_a_completion_before_the_last_active_day() -> None:
    # Tue 00:30 in Paris (Mon 23:30 UTC), then the learner moves to New York, where it is still
    # Monday evening, and completes another exercise on Monday (local).
    in_paris = local_day(utc(2027, 1, 11, 23, 30), PARIS)
    in_new_york = local_day(utc(2027, 1, 12, 1, 0), NEW_YORK)
    assert (in_paris, in_new_york) == (date(2027, 1, 12), date(2027, 1, 11))
    state = from_days([in_paris])
    assert record(state, in_new_york) is None  # out of order: rebuild from every day
    rebuilt = from_days([in_paris, in_new_york])
    assert (rebuilt.run, rebuilt.last_active_day) == (2, date(2027, 1, 12))
    # "Today" in New York is Monday, before the last active day: the streak is alive.
    assert current(rebuilt, date(2027, 1, 11)) == 2


def test_moving_east_keeps_the_day_each_completion_was_lived_on() -> None:
    # Monday 21:00 in New York is already Tuesday 03:00 in Paris.
    monday_ny = utc(2027, 1, 12, 2, 0)
    tuesday_paris = utc(2027, 1, 12, 19, 0)
    lived = {local_day(monday_ny, NEW_YORK), local_day(tuesday_paris, PARIS)}
    assert from_days(lived).run == 2
    # Re-reading the past in the new zone would lose a day: why each day is kept as lived.
    assert from_days(days_of([monday_ny, tuesday_paris], PARIS)).run == 1


@pytest.mark.parametrize(
    ("last_active", "expected"),
    [
        (date(2027, 1, 10), 4),  # active today
        (date(2027, 1, 9), 4),  # yesterday: today without activity yet does not break it
        (date(2027, 1, 8), 0),  # a missed day resets it
        (date(2027, 1, 11), 4),  # "tomorrow": right after moving west
        (None, 0),
    ],
)
def test_current_streak_as_shown_today(last_active: date | None, expected: int) -> None:
    streak = Streak(run=4 if last_active else 0, longest=6, last_active_day=last_active)
    assert current(streak, date(2027, 1, 10)) == expected


def test_record_follows_from_days_for_days_in_order() -> None:
    start = date(2027, 1, 1)
    days = [start + timedelta(days=d) for d in (0, 1, 2, 5, 6, 6, 7, 8, 9, 20)]
    state = Streak()
    for day in days:
        updated = record(state, day)
        assert updated is not None
        state = updated
    assert state == from_days(days)
    assert (state.run, state.longest, state.last_active_day) == (1, 5, date(2027, 1, 21))


def test_gap_resets_the_run_but_not_the_longest() -> None:
    start = date(2027, 1, 1)
    streak = from_days([start, start + timedelta(days=1), start + timedelta(days=2)])
    after_gap = record(streak, start + timedelta(days=4))
    assert after_gap == Streak(run=1, longest=3, last_active_day=start + timedelta(days=4))


def test_unknown_zone_falls_back_to_utc_and_naive_times_are_refused() -> None:
    assert local_day(utc(2027, 1, 10, 23, 30), "Mars/Olympus_Mons") == date(2027, 1, 10)
    with pytest.raises(ValueError, match="aware"):
        streaks.local_time(datetime(2027, 1, 10, 12, 0), PARIS)
