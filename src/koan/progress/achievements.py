"""The achievement catalogue and the pure rules that decide what a learner has earned.

Every rule reads `Facts`, a summary of the learner's whole record, so the grading hook and a
recompute from scratch reach the same verdict from the same rows. Every value a rule reads only
grows over time (the longest streak, not the current one), except the number of mastered
skills; earned achievements are never taken back.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import date, datetime
from typing import Any, Final

from koan.progress import streaks


class Kind(enum.StrEnum):
    """What an achievement counts."""

    EXERCISES = "exercises"  # different exercises completed
    STREAK = "streak"  # longest run of consecutive active days
    FLAWLESS = "flawless"  # exercises passed on the first try without hints
    MASTERED_SKILLS = "mastered_skills"  # skills whose mastery reaches MASTERY_THRESHOLD
    COMEBACKS = "comebacks"  # completions after AWAY_DAYS or more days without one
    HINT_FREE_DAYS = "hint_free_days"  # longest run of active days without any hint
    LANGUAGES = "languages"  # programming languages with a completed exercise
    NIGHT = "night"  # completions between midnight and 5 a.m. local time
    EARLY = "early"  # completions between 5 and 7 a.m. local time
    PERSISTENCE = "persistence"  # most failed attempts before finally passing
    HARDEST = "hardest"  # highest authored difficulty completed


# What the numbers on the way to an achievement count ("1 of 5" alone does not say).
MEASURES: Final[dict[Kind, str]] = {
    Kind.EXERCISES: "different exercises completed",
    Kind.STREAK: "best run of days in a row",
    Kind.FLAWLESS: "passed on the first try without hints",
    Kind.MASTERED_SKILLS: "skills mastered",
    Kind.COMEBACKS: "comebacks",
    Kind.HINT_FREE_DAYS: "best run of days in a row without hints",
    Kind.LANGUAGES: "languages with a completed exercise",
    Kind.NIGHT: "completed between midnight and 5 a.m.",
    Kind.EARLY: "completed between 5 and 7 a.m.",
    Kind.PERSISTENCE: "most failed attempts before a pass",
    Kind.HARDEST: "hardest difficulty completed",
}


@dataclass(frozen=True)
class Achievement:
    code: str
    title: str
    description: str
    kind: Kind
    threshold: int


# Mastery (0-1, from the adaptive engine) from which a skill counts as mastered: about the
# chance of passing solid intermediate work, judged cautiously.
MASTERY_THRESHOLD: Final = 0.8
# Whole days without a completion before the next completion counts as a comeback.
AWAY_DAYS: Final = 7
NIGHT_HOURS: Final = range(0, 5)
EARLY_HOURS: Final = range(5, 7)

# Order is the display order. Codes are stable identifiers: never rename one (a migration seeds
# the `achievements` table from this list, and earned rows refer to the code).
CATALOGUE: Final[tuple[Achievement, ...]] = (
    Achievement(
        "first-exercise",
        "First steps",
        "Complete your first exercise.",
        Kind.EXERCISES,
        1,
    ),
    Achievement(
        "exercises-10",
        "Getting the hang of it",
        "Complete 10 different exercises.",
        Kind.EXERCISES,
        10,
    ),
    Achievement(
        "exercises-50",
        "Fifty",
        "Complete 50 different exercises.",
        Kind.EXERCISES,
        50,
    ),
    Achievement(
        "exercises-100",
        "Centurion",
        "Complete 100 different exercises.",
        Kind.EXERCISES,
        100,
    ),
    Achievement(
        "exercises-500",
        "Five hundred",
        "Complete 500 different exercises.",
        Kind.EXERCISES,
        500,
    ),
    Achievement(
        "streak-3",
        "Warming up",
        "Complete an exercise 3 days in a row.",
        Kind.STREAK,
        3,
    ),
    Achievement(
        "streak-7",
        "A whole week",
        "Complete an exercise 7 days in a row.",
        Kind.STREAK,
        7,
    ),
    Achievement(
        "streak-30",
        "Habit formed",
        "Complete an exercise 30 days in a row.",
        Kind.STREAK,
        30,
    ),
    Achievement(
        "streak-100",
        "Unstoppable",
        "Complete an exercise 100 days in a row.",
        Kind.STREAK,
        100,
    ),
    Achievement(
        "first-try",
        "Clean run",
        "Pass an exercise on the first try without hints.",
        Kind.FLAWLESS,
        1,
    ),
    Achievement(
        "first-try-10",
        "Sharpshooter",
        "Pass 10 exercises on the first try without hints.",
        Kind.FLAWLESS,
        10,
    ),
    Achievement(
        "skill-mastered",
        "Master of one",
        "Master a skill.",
        Kind.MASTERED_SKILLS,
        1,
    ),
    Achievement(
        "skills-mastered-5",
        "Well rounded",
        "Master 5 skills.",
        Kind.MASTERED_SKILLS,
        5,
    ),
    Achievement(
        "comeback",
        "Welcome back",
        f"Complete an exercise after {AWAY_DAYS} or more days away.",
        Kind.COMEBACKS,
        1,
    ),
    Achievement(
        "hint-free-week",
        "On my own",
        "Complete exercises 7 days in a row without taking a hint.",
        Kind.HINT_FREE_DAYS,
        7,
    ),
    Achievement(
        "polyglot",
        "Polyglot",
        "Complete exercises in both Python and JavaScript.",
        Kind.LANGUAGES,
        2,
    ),
    Achievement(
        "night-owl",
        "Night owl",
        "Complete an exercise between midnight and 5 a.m.",
        Kind.NIGHT,
        1,
    ),
    Achievement(
        "early-bird",
        "Early bird",
        "Complete an exercise between 5 and 7 a.m.",
        Kind.EARLY,
        1,
    ),
    Achievement(
        "persistence",
        "Never give up",
        "Pass an exercise after 5 or more failed attempts.",
        Kind.PERSISTENCE,
        5,
    ),
    Achievement(
        "summit",
        "Summit",
        "Complete an exercise of the highest difficulty (5).",
        Kind.HARDEST,
        5,
    ),
)

BY_CODE: Final[dict[str, Achievement]] = {a.code: a for a in CATALOGUE}


@dataclass(frozen=True)
class Completion:
    """One completed assignment, as recorded when it was graded."""

    exercise_id: str
    at: datetime
    timezone: str
    day: date
    attempt: int  # the attempt that passed; 1 means the first verdict was a pass
    hints_used: int
    language: str
    difficulty: int

    @property
    def first_try(self) -> bool:
        return self.attempt == 1

    @property
    def flawless(self) -> bool:
        return self.attempt == 1 and self.hints_used == 0

    @property
    def local_hour(self) -> int:
        return streaks.local_time(self.at, self.timezone).hour


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at."""

    exercises: int = 0
    streak: int = 0
    flawless: int = 0
    mastered_skills: int = 0
    comebacks: int = 0
    hint_free_days: int = 0
    languages: int = 0
    night: int = 0
    early: int = 0
    persistence: int = 0
    hardest: int = 0

    def value(self, kind: Kind) -> int:
        return int(getattr(self, kind.value))


def _longest_hint_free_run(completions: Sequence[Completion]) -> int:
    hinted: dict[date, bool] = {}
    for c in completions:
        hinted[c.day] = hinted.get(c.day, False) or c.hints_used > 0
    # A day on which any completion took a hint breaks the run, like a day without one.
    return streaks.from_days(day for day, used in hinted.items() if not used).longest


def _comebacks(days: Iterable[date]) -> int:
    ordered = sorted(set(days))
    return sum(
        1
        for previous, day in zip(ordered, ordered[1:], strict=False)
        if (day - previous).days - 1 >= AWAY_DAYS
    )


def facts_from(completions: Sequence[Completion], *, mastered_skills: int = 0) -> Facts:
    """Summarise a learner's completions (any order) for the rules."""
    if not completions:
        return Facts(mastered_skills=mastered_skills)
    days = [c.day for c in completions]
    hours = [c.local_hour for c in completions]
    # How each exercise was first solved: passing it again, its code at hand, is neither
    # another clean run nor (failed on purpose first) a show of persistence.
    first: dict[str, Completion] = {}
    for c in completions:
        if c.exercise_id not in first or c.at < first[c.exercise_id].at:
            first[c.exercise_id] = c
    return Facts(
        exercises=len(first),
        streak=streaks.from_days(days).longest,
        flawless=sum(1 for c in first.values() if c.flawless),
        mastered_skills=mastered_skills,
        comebacks=_comebacks(days),
        hint_free_days=_longest_hint_free_run(completions),
        languages=len({c.language for c in completions}),
        night=sum(1 for h in hours if h in NIGHT_HOURS),
        early=sum(1 for h in hours if h in EARLY_HOURS),
        persistence=max(c.attempt - 1 for c in first.values()),
        hardest=max(c.difficulty for c in completions),
    )


@dataclass(frozen=True)
class Summary:
    """What the rules read of a learner's completions beyond the totals progress keeps
    (exercises completed, the longest streak), brought up to date one completion at a time
    (`add`), so awarding never reads the whole history again. `of` builds it from a whole
    history, and `facts` gives what `facts_from` gives for that history. A completion dated
    before the last one (a learner who moved west) may fall between older runs of days, which
    only the whole history can tell: it does not `follow`, and the summary is built again."""

    flawless: int = 0
    persistence: int = 0
    hardest: int = 0
    languages: tuple[str, ...] = ()
    night: int = 0
    early: int = 0
    comebacks: int = 0
    last_day: date | None = None
    last_day_hinted: bool = False
    hint_free_run: int = 0  # the run of hint-free days ending on `last_day`
    hint_free_best: int = 0  # the longest run before it

    def follows(self, c: Completion) -> bool:
        """Whether `add` can take this completion: it is dated on or after the last one."""
        return self.last_day is None or c.day >= self.last_day

    def add(self, c: Completion, *, first: bool) -> Summary:
        """With one more completion that `follows`; `first` when it is the first of its
        exercise."""
        hour = c.local_hour
        changes: dict[str, object] = {
            "hardest": max(self.hardest, c.difficulty),
            "languages": tuple(sorted({*self.languages, c.language})),
            "night": self.night + (hour in NIGHT_HOURS),
            "early": self.early + (hour in EARLY_HOURS),
        }
        if first:
            changes["flawless"] = self.flawless + c.flawless
            changes["persistence"] = max(self.persistence, c.attempt - 1)
        hinted, last = c.hints_used > 0, self.last_day
        if last is None or c.day > last:
            away = (c.day - last).days - 1 if last is not None else 0
            follows = last is not None and away == 0
            changes.update(
                comebacks=self.comebacks + (away >= AWAY_DAYS),
                last_day=c.day,
                last_day_hinted=hinted,
                hint_free_run=0 if hinted else (self.hint_free_run + 1 if follows else 1),
                hint_free_best=(
                    self.hint_free_best
                    if follows and not hinted
                    else max(self.hint_free_best, self.hint_free_run)
                ),
            )
        elif c.day == last and hinted and not self.last_day_hinted:
            # The day the run ended on took a hint after all: the run ends the day before.
            changes.update(
                last_day_hinted=True,
                hint_free_run=0,
                hint_free_best=max(self.hint_free_best, self.hint_free_run - 1),
            )
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def of(cls, completions: Sequence[Completion]) -> Summary:
        summary, seen = cls(), set()
        for c in sorted(completions, key=lambda c: c.at):
            summary = summary.add(c, first=c.exercise_id not in seen)
            seen.add(c.exercise_id)
        return summary

    def facts(self, *, exercises: int, streak: int, mastered_skills: int = 0) -> Facts:
        return Facts(
            exercises=exercises,
            streak=streak,
            flawless=self.flawless,
            mastered_skills=mastered_skills,
            comebacks=self.comebacks,
            hint_free_days=max(self.hint_free_best, self.hint_free_run),
            languages=len(self.languages),
            night=self.night,
            early=self.early,
            persistence=self.persistence,
            hardest=self.hardest,
        )

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["languages"] = list(self.languages)
        values["last_day"] = self.last_day.isoformat() if self.last_day else None
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Summary:
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        kept["languages"] = tuple(kept.get("languages") or ())
        day = kept.get("last_day")
        kept["last_day"] = date.fromisoformat(day) if day else None
        return cls(**kept)


def earned(facts: Facts) -> list[Achievement]:
    """Every achievement these facts satisfy, in catalogue order."""
    return [a for a in CATALOGUE if facts.value(a.kind) >= a.threshold]


def progress(achievement: Achievement, facts: Facts) -> tuple[int, int]:
    """(current, target) toward an achievement; current never exceeds target."""
    return min(facts.value(achievement.kind), achievement.threshold), achievement.threshold


def count_mastered(masteries: Iterable[float]) -> int:
    return sum(1 for m in masteries if m >= MASTERY_THRESHOLD)


def describe(code: str) -> dict[str, str]:
    """An achievement's code, title and description (the code alone when it is unknown)."""
    found = BY_CODE.get(code)
    return {
        "code": code,
        "title": found.title if found else code,
        "description": found.description if found else "",
    }
