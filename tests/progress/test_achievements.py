"""The achievement rules, on plain facts, and the catalogue the migration seeded."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.progress import achievements, repository
from koan.progress.achievements import (
    BY_CODE,
    CATALOGUE,
    MEASURES,
    Completion,
    Facts,
    Kind,
    Summary,
    earned,
    facts_from,
    progress,
)

START = datetime(2027, 2, 1, 18, 0, tzinfo=UTC)  # 19:00 in Paris


def done(
    day_offset: int = 0,
    *,
    exercise: str | None = None,
    attempt: int = 1,
    hints: int = 0,
    language: str = "python",
    difficulty: int = 1,
    hour_utc: int = 18,
    timezone: str = "Europe/Paris",
) -> Completion:
    at = START.replace(hour=hour_utc) + timedelta(days=day_offset)
    return Completion(
        exercise_id=exercise or f"ex-{day_offset}-{hour_utc}-{attempt}-{language}",
        at=at,
        timezone=timezone,
        day=at.astimezone(achievements.streaks.zone(timezone)).date(),
        attempt=attempt,
        hints_used=hints,
        language=language,
        difficulty=difficulty,
    )


def codes(facts: Facts) -> set[str]:
    return {a.code for a in earned(facts)}


def test_catalogue_has_what_the_issue_asks_for() -> None:
    assert len({a.code for a in CATALOGUE}) == len(CATALOGUE) >= 18
    by_kind = {(a.kind, a.threshold) for a in CATALOGUE}
    for threshold in (1, 10, 50, 100, 500):
        assert (Kind.EXERCISES, threshold) in by_kind
    for threshold in (3, 7, 30, 100):
        assert (Kind.STREAK, threshold) in by_kind
    for needed in ("first-try", "skill-mastered", "skills-mastered-5", "comeback", "polyglot"):
        assert needed in BY_CODE
    assert all(len(a.code) <= 40 and len(a.title) <= 100 for a in CATALOGUE)
    assert set(MEASURES) == set(Kind)  # every achievement can say what it counts


def test_nothing_earned_without_completions() -> None:
    assert codes(facts_from([])) == set()
    assert codes(facts_from([], mastered_skills=1)) == {"skill-mastered"}


def test_first_exercise_and_first_try_without_hints() -> None:
    assert codes(facts_from([done()])) == {"first-exercise", "first-try"}
    # A hint or a failed attempt first: still the first exercise, not a clean run.
    assert codes(facts_from([done(hints=1)])) == {"first-exercise"}
    assert codes(facts_from([done(attempt=2)])) == {"first-exercise"}


def test_exercise_milestones_count_different_exercises() -> None:
    same = [done(d, exercise="the-same-one") for d in range(12)]
    assert facts_from(same).exercises == 1
    ten = [done(0, exercise=f"ex-{i}") for i in range(10)]
    assert "exercises-10" in codes(facts_from(ten))
    assert "exercises-10" not in codes(facts_from(ten[:9]))


def test_clean_runs_count_different_exercises() -> None:
    # One exercise passed again and again, its code at hand, is one clean run, not ten.
    same = [done(d, exercise="the-same-one") for d in range(10)]
    assert facts_from(same).flawless == 1
    assert "first-try-10" not in codes(facts_from(same))
    ten = [done(0, exercise=f"ex-{i}") for i in range(10)]
    assert "first-try-10" in codes(facts_from(ten))


def test_an_exercise_counts_as_first_solved_for_clean_runs_and_persistence() -> None:
    # Solved after two misses and a hint, then again at once with the code at hand: neither a
    # clean run nor, failed on purpose before passing again, a show of persistence.
    first = done(0, exercise="ex", attempt=3, hints=1)
    assert facts_from([first, done(1, exercise="ex")]).flawless == 0
    again = [first, done(2, exercise="ex", attempt=9)]
    assert facts_from(list(reversed(again))).persistence == 2
    assert "persistence" not in codes(facts_from(again))
    assert "persistence" in codes(facts_from([done(0, exercise="hard", attempt=6)]))


def test_streak_achievements_use_the_longest_run() -> None:
    week = [done(d) for d in range(7)]
    later = [done(d) for d in (20, 21)]  # the current run is only 2 now
    facts = facts_from(week + later)
    assert facts.streak == 7
    assert {"streak-3", "streak-7"} <= codes(facts)
    assert "streak-30" not in codes(facts)
    assert progress(BY_CODE["streak-30"], facts) == (7, 30)
    assert progress(BY_CODE["streak-3"], facts) == (3, 3)  # capped at the target


def test_comeback_needs_seven_whole_days_away() -> None:
    six_days_away = [done(0), done(7)]  # days 1..6 empty
    seven_days_away = [done(0), done(8)]  # days 1..7 empty
    assert "comeback" not in codes(facts_from(six_days_away))
    assert "comeback" in codes(facts_from(seven_days_away))
    assert "comeback" not in codes(facts_from([done(30)]))  # a first exercise is no comeback


def test_hint_free_week_breaks_on_a_day_with_a_hint() -> None:
    clean = [done(d) for d in range(7)]
    assert "hint-free-week" in codes(facts_from(clean))
    # Day 3 also had a completion with a hint: that day no longer counts.
    spoiled = [*clean, done(3, hints=2, exercise="helped")]
    assert facts_from(spoiled).hint_free_days == 3
    assert "hint-free-week" not in codes(facts_from(spoiled))


def test_polyglot_night_owl_early_bird_persistence_summit() -> None:
    facts = facts_from(
        [
            done(0, language="python"),
            done(1, language="javascript"),
            done(2, hour_utc=1),  # 02:00 in Paris
            done(3, hour_utc=5),  # 06:00 in Paris
            done(4, attempt=6),  # five failed attempts first
            done(5, difficulty=5),
        ]
    )
    assert {"polyglot", "night-owl", "early-bird", "persistence", "summit"} <= codes(facts)
    near_miss = facts_from([done(0, attempt=5, difficulty=4, hour_utc=6)])  # 07:00 in Paris
    assert {"persistence", "summit", "early-bird", "night-owl"}.isdisjoint(codes(near_miss))


def test_local_hour_uses_the_zone_of_the_completion() -> None:
    # 04:00 UTC is 05:00 in Paris (early bird) and 23:00 in New York (neither).
    paris = done(0, hour_utc=4)
    new_york = done(0, hour_utc=4, timezone="America/New_York")
    assert paris.local_hour == 5
    assert new_york.local_hour == 23
    assert "early-bird" in codes(facts_from([paris]))
    assert {"early-bird", "night-owl"}.isdisjoint(codes(facts_from([new_york])))


@pytest.mark.parametrize(
    ("mastered", "expected"),
    [(0, set()), (1, {"skill-mastered"}), (5, {"skill-mastered", "skills-mastered-5"})],
)
def test_mastered_skills(mastered: int, expected: set[str]) -> None:
    facts = facts_from([], mastered_skills=mastered)
    assert {c for c in codes(facts) if BY_CODE[c].kind is Kind.MASTERED_SKILLS} == expected
    assert achievements.count_mastered([0.79, 0.8, 0.95, 0.1]) == 2


def test_every_rule_is_monotone_in_the_record() -> None:
    # Adding completions never takes an achievement away (except mastery, read elsewhere).
    record = [done(d, attempt=1 + d % 7, hints=d % 3, hour_utc=(d * 5) % 24) for d in range(40)]
    seen: set[str] = set()
    for n in range(1, len(record) + 1):
        now = codes(facts_from(record[:n]))
        assert seen <= now
        seen = now


async def test_the_migration_seeded_the_catalogue(session: AsyncSession) -> None:
    rows = await repository.catalogue(session)
    assert [(r.code, r.title, r.description, r.kind, r.threshold) for r in rows] == [
        (a.code, a.title, a.description, a.kind.value, a.threshold) for a in CATALOGUE
    ]


@pytest.mark.parametrize("seed", range(40))
def test_a_summary_kept_one_completion_at_a_time_gives_the_facts_of_the_whole_history(
    seed: int,
) -> None:
    rng = random.Random(seed)
    history: list[Completion] = []
    day = 0
    for _ in range(rng.randint(1, 60)):
        day += rng.choice([0, 0, 1, 1, 1, 2, 3, 8, 12])  # the same day, the next, gaps, away
        history.append(
            done(
                day,
                exercise=f"ex-{rng.randint(0, 15)}",
                attempt=rng.choice([1, 1, 2, 6, 7]),
                hints=rng.choice([0, 0, 0, 1, 2]),
                language=rng.choice(["python", "python", "javascript"]),
                difficulty=rng.randint(1, 5),
                hour_utc=rng.randint(0, 23),
            )
        )
    history.sort(key=lambda c: c.at)
    summary, seen = Summary(), set()
    for c in history:
        summary = summary.add(c, first=c.exercise_id not in seen)
        seen.add(c.exercise_id)
        # Stored and read back between completions, as the progress row keeps it.
        summary = Summary.from_json(json.loads(json.dumps(summary.to_json())))
    totals = {
        "exercises": len(seen),
        "streak": achievements.streaks.from_days(c.day for c in history).longest,
        "mastered_skills": 2,
    }
    assert summary.facts(**totals) == facts_from(history, mastered_skills=2)
    assert Summary.of(list(reversed(history))) == summary
