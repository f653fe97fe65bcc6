"""Choosing the next exercise: near the target success rate, with spaced review and variety."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from koan.adaptive.model import (
    ItemRating,
    SkillRating,
    ability_on,
    aged,
    expected_success,
    general_rating,
    mastery,
    new_skill_rating,
    skill_weights,
)

# Width (in success probability) of the fit penalty: 0.08 off target costs as much as a repeat.
# Narrow, because an exercise at the wrong difficulty is the costliest mistake a tutor makes;
# the simulation in bench/adaptive.py measured wider settings keeping fewer learners in band.
FIT_WIDTH = 0.08
# Worth of reviewing a skill that is weak and well overdue.
REVIEW_WEIGHT = 1.0
# Worth of opening a skill never practised: breadth, and it teaches us about the learner.
NEW_SKILL_BONUS = 0.4
# Cost of repeating an exercise done before (but not recently, which is excluded outright).
REPEAT_PENALTY = 1.0
# Random tie-breaking, so learners at one level do not all march through the same items.
JITTER = 0.3
# Review intervals double with mastery: a weak skill is due after a day, a strong one after a month.
_REVIEW_BASE_DAYS = 1.0
_REVIEW_DOUBLINGS = 5.0
_REVIEW_REASON_MIN_BONUS = 0.2

_DISPLAY_NAMES = {
    "sorting-searching": "sorting and searching",
    "higher-order-functions": "higher-order functions",
    "error-handling": "error handling",
}


@dataclass(frozen=True)
class Candidate:
    """An exercise that may be offered, with what the engine knows about it."""

    id: str
    skills: tuple[str, ...]  # first is the main skill
    item: ItemRating
    recently_done: bool = False  # excluded: the learner has just seen it
    last_done: datetime | None = None  # done before, long enough ago to be allowed again


@dataclass(frozen=True)
class Choice:
    """The chosen exercise, how likely the learner is to pass it, and why it was picked."""

    candidate: Candidate
    predicted_success: float
    reason: str
    score: float = field(default=0.0, compare=False)


def display_skill(skill: str) -> str:
    """A skill tag as a learner reads it."""
    return _DISPLAY_NAMES.get(skill, skill.replace("-", " "))


def _days_between(earlier: datetime, later: datetime) -> float:
    return max((later - earlier).total_seconds() / 86400.0, 0.0)


def _ago(earlier: datetime, now: datetime, zone: tzinfo) -> str:
    """When `earlier` was, as the learner says it: in calendar days on their own clock, so work
    done at 23:00 is "yesterday" at 01:00, and "earlier today" means today's date."""
    whole = max((now.astimezone(zone).date() - earlier.astimezone(zone).date()).days, 0)
    if whole < 1:
        return "earlier today"
    if whole == 1:
        return "yesterday"
    if whole < 14:
        return f"{whole} days ago"
    if whole < 60:
        return f"{whole // 7} weeks ago"
    return f"{whole // 30} months ago"


def review_bonus(rating: SkillRating, now: datetime) -> float:
    """How much a skill needs review: weak and overdue skills score up to ``REVIEW_WEIGHT``."""
    if rating.last_practised is None or rating.attempts == 0:
        return 0.0
    m = mastery(rating, now)
    interval = _REVIEW_BASE_DAYS * math.pow(2.0, _REVIEW_DOUBLINGS * m)
    overdue = _days_between(rating.last_practised, now) / interval
    # Nothing until due, full weight at three intervals.
    urgency = min(max((overdue - 1.0) / 2.0, 0.0), 1.0)
    return REVIEW_WEIGHT * (1.0 - m) * urgency


def predicted_success_for(
    candidate: Candidate,
    skills: Mapping[str, SkillRating],
    *,
    now: datetime | None = None,
    experience: str | None = None,
) -> float:
    """Predicted chance that the learner passes this candidate first time (as of ``now``)."""
    if now is not None:
        skills = {name: aged(r, now) for name, r in skills.items()}
    ability, variance = ability_on(skills, candidate.skills, experience)
    return expected_success(ability, variance, candidate.item)


@dataclass(frozen=True)
class _Scored:
    candidate: Candidate
    p: float
    score: float
    review: float


class _LearnerView:
    """The learner's ratings as of now, with per-skill work done once per choice, not per item."""

    def __init__(
        self, skills: Mapping[str, SkillRating], now: datetime, experience: str | None
    ) -> None:
        self.stored = skills
        self.ratings = {name: aged(r, now) for name, r in skills.items()}
        self.prior = new_skill_rating(self.ratings, experience)
        self.general_var = general_rating(self.ratings, experience).uncertainty ** 2
        self.now = now
        self._review: dict[str, float] = {}

    def rating(self, skill: str) -> SkillRating:
        return self.ratings.get(skill, self.prior)

    def review(self, skill: str) -> float:
        if skill not in self._review:
            stored = self.stored.get(skill)
            # review_bonus ages the stored rating itself; aging it twice would overstate decay.
            self._review[skill] = 0.0 if stored is None else review_bonus(stored, self.now)
        return self._review[skill]


def _score(candidate: Candidate, view: _LearnerView, target: float, jitter: float) -> _Scored:
    weights = skill_weights(candidate.skills)
    ability = 0.0
    offset_var = 0.0
    for name, w in weights.items():
        rating = view.rating(name)
        ability += w * rating.rating
        offset_var += w * w * max(rating.uncertainty**2 - view.general_var, 0.0)
    p = expected_success(ability, view.general_var + offset_var, candidate.item)
    fit = -(((p - target) / FIT_WIDTH) ** 2)
    review = sum(w * view.review(name) for name, w in weights.items())
    novelty = NEW_SKILL_BONUS if view.rating(candidate.skills[0]).attempts == 0 else 0.0
    repeat = -REPEAT_PENALTY if candidate.last_done is not None else 0.0
    # Review and novelty choose among exercises near the target; they fade with distance from
    # it, so they never buy an exercise at the wrong difficulty.
    closeness = math.exp(fit)
    return _Scored(candidate, p, fit + closeness * (review + novelty) + repeat + jitter, review)


def _reason(chosen: _Scored, skills: Mapping[str, SkillRating], now: datetime, zone: tzinfo) -> str:
    candidate = chosen.candidate
    main = candidate.skills[0]
    name = display_skill(main)
    rating = skills.get(main)
    if candidate.last_done is not None:
        when = _ago(candidate.last_done, now, zone)
        return f"another go at a {name} exercise you did {when}"
    if rating is None or rating.attempts == 0:
        return f"new skill: {name}"
    if (
        rating.last_practised is not None
        and chosen.review >= _REVIEW_REASON_MIN_BONUS
        and _days_between(rating.last_practised, now) >= 2.0
    ):
        when = _ago(rating.last_practised, now, zone)
        return f"practising {name}, which you last did {when}"
    recent = rating.recent[-2:]
    if len(recent) == 2 and min(recent) >= 0.999:
        return f"a step up in {name}: you passed the last ones first try"
    if recent and recent[-1] < 0.5:
        return f"more {name} at a gentler pace: the last one was a struggle"
    percent = int(round(chosen.p * 20) * 5)  # nearest 5%: more precision would be false comfort
    return f"{name} at your level: you should pass this about {percent}% of the time"


def choose_exercise(
    candidates: Sequence[Candidate],
    skills: Mapping[str, SkillRating],
    *,
    now: datetime,
    target: float = 0.75,
    rng: random.Random,
    experience: str | None = None,
    zone: tzinfo = UTC,
) -> Choice:
    """Pick the exercise that best keeps the learner at the edge of what they can do.

    ``skills`` are the learner's ratings (missing skills get a prior from the others and
    ``experience``). Recently done candidates are excluded unless nothing else is left.
    ``zone`` is the learner's time zone: the reason counts days on their calendar.
    Deterministic for a given ``rng`` state.
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    eligible = [c for c in candidates if not c.recently_done] or list(candidates)
    view = _LearnerView(skills, now, experience)
    best: _Scored | None = None
    for candidate in eligible:
        # One draw per candidate in input order keeps the choice reproducible per seed.
        scored = _score(candidate, view, target, rng.uniform(0.0, JITTER))
        if best is None or scored.score > best.score:
            best = scored
    assert best is not None
    return Choice(
        candidate=best.candidate,
        predicted_success=best.p,
        reason=_reason(best, skills, now, zone),
        score=best.score,
    )
