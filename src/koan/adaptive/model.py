"""The difficulty model: learner skill ratings and exercise ratings on one logistic scale.

Every learner × skill has a rating with an uncertainty, every exercise has a difficulty rating,
and the chance that a learner passes an exercise first time is ``logistic(rating - difficulty)``
(a one-parameter IRT / Rasch model). A learner's skills share a general ability (stored under the
key ``GENERAL``), so evidence from loops also says something about recursion. After each attempt
both sides move by a step that is large while they are uncertain and shrinks as evidence
accumulates: an extended Kalman filter on the logistic model, which is Elo with an
uncertainty-scaled K (as in Pelánek's adaptive practice) and behaves like Glicko.

All functions are pure; the caller stores the dataclasses. Datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, get_args

Experience = Literal["beginner", "intermediate", "advanced"]
EXPERIENCES: tuple[Experience, ...] = get_args(Experience)

MIN_LEVEL = 1
MAX_LEVEL = 5
# One authored level is one logit: a learner who passes level-3 items 3 times in 4 passes
# level-4 items about half the time, which is how authors tend to space their levels.
LEVEL_SPACING = 1.0
MIDDLE_LEVEL = 3
TARGET_SUCCESS = 0.75

# Authored levels are a decent guide but not gospel; the data correct them.
INITIAL_ITEM_UNCERTAINTY = 0.7
# Exercises never change, but a floor keeps them correctable if the bank's population shifts.
ITEM_UNCERTAINTY_FLOOR = 0.1
# Added after every attempt because learners learn: without it the rating freezes once the
# uncertainty is small and stops following a learner who improves. 0.015 lets a rating follow
# a learner gaining about a tenth of a logit per exercise.
PRACTICE_VARIANCE = 0.015
# Added per idle day because skills fade and we know less about a skill not practised lately.
IDLE_VARIANCE_PER_DAY = 0.002
MAX_UNCERTAINTY = 1.2
# How far one learner's skills spread around their general ability (prior for a new skill).
SKILL_SPREAD = 0.6
# On a multi-skill exercise the main skill carries this share of the evidence.
MAIN_SKILL_WEIGHT = 0.6
# Key of the learner's general ability among their skill ratings; "*" is never a skill tag.
GENERAL = "*"
_MIN_VARIANCE = 0.01
# A learner's general rating counts for calibrating cold starts after this many exercises.
SETTLED_ATTEMPTS = 10
# How many settled learners the built-in cold start is worth.
CALIBRATION_PSEUDO_LEARNERS = 20
# How many recent outcomes per skill we keep, to explain choices ("you passed the last ones").
RECENT_OUTCOMES = 3

_PASS_FLOOR = 0.2
_ATTEMPT_PENALTY = 0.07
_MAX_ATTEMPT_PENALTY = 0.35
_HINT_PENALTY = 0.15
_MAX_HINT_PENALTY = 0.6


@dataclass(frozen=True)
class SkillRating:
    """What we believe about one learner's ability in one skill."""

    rating: float
    uncertainty: float
    attempts: int = 0
    last_practised: datetime | None = None
    # Newest last; graded outcomes in [0, 1]. Only used to explain choices.
    recent: tuple[float, ...] = ()


@dataclass(frozen=True)
class ItemRating:
    """What we believe about one exercise's difficulty."""

    rating: float
    uncertainty: float = INITIAL_ITEM_UNCERTAINTY
    attempts: int = 0


def logit(p: float) -> float:
    """Inverse of the logistic function."""
    return math.log(p / (1.0 - p))


def _logistic(x: float) -> float:
    # Clamped so extreme ratings cannot overflow math.exp.
    x = max(-40.0, min(40.0, x))
    return 1.0 / (1.0 + math.exp(-x))


def _level_to_rating(level: float) -> float:
    return (level - MIDDLE_LEVEL) * LEVEL_SPACING


def initial_item_rating(authored_difficulty: int) -> float:
    """Difficulty rating of an exercise nobody has tried yet, from its authored level 1-5."""
    if not MIN_LEVEL <= authored_difficulty <= MAX_LEVEL:
        raise ValueError(f"authored difficulty must be 1-5, got {authored_difficulty}")
    return _level_to_rating(authored_difficulty)


def new_item(authored_difficulty: int) -> ItemRating:
    """Rating for a fresh exercise of the given authored level."""
    return ItemRating(rating=initial_item_rating(authored_difficulty))


def _ability_for_level(level: float) -> float:
    # The ability that passes items of this level with the target probability.
    return _level_to_rating(level) + logit(TARGET_SUCCESS)


# Beginners start on level-1 work, intermediates between 2 and 3, advanced learners on 4.
# Self-reports are rough, so every start is uncertain; beginners less so, because
# "I have never programmed" is a more reliable statement than "I am advanced".
_COLD_START: dict[str, tuple[float, float]] = {
    "beginner": (1.0, 0.8),
    "intermediate": (2.5, 1.0),
    "advanced": (4.0, 1.0),
}


def cold_start_rating(experience: str | None) -> SkillRating:
    """Starting rating for a skill, from self-reported experience (None counts as beginner)."""
    try:
        level, uncertainty = _COLD_START[experience or "beginner"]
    except KeyError:
        raise ValueError(f"unknown experience {experience!r}; expected {EXPERIENCES}") from None
    return SkillRating(rating=_ability_for_level(level), uncertainty=uncertainty)


def starting_ratings(
    experience: str | None, settled: Sequence[SkillRating] = ()
) -> dict[str, SkillRating]:
    """Ratings to store for a new learner: a general ability from their self-reported experience.

    ``settled`` are the ``GENERAL`` ratings of earlier learners who reported the same experience;
    those with enough attempts calibrate the start (empirical Bayes), so self-reports that run
    optimistic or modest in this population stop costing every newcomer their first exercises.
    """
    prior = cold_start_rating(experience)
    mean = prior.rating
    general_var = max(prior.uncertainty**2 - SKILL_SPREAD**2, _MIN_VARIANCE)
    known = [r for r in settled if r.attempts >= SETTLED_ATTEMPTS]
    if len(known) >= 2:
        n = len(known)
        observed = sum(r.rating for r in known) / n
        spread = sum((r.rating - observed) ** 2 for r in known) / (n - 1)
        # What remains of the spread once each learner's own uncertainty is taken out is the
        # real spread of abilities among people who give this answer.
        noise = sum(r.uncertainty**2 for r in known) / n
        population_var = max(spread - noise, _MIN_VARIANCE)
        # Shrink toward the built-in prior until there are many settled learners.
        weight = n / (n + CALIBRATION_PSEUDO_LEARNERS)
        mean = (1.0 - weight) * mean + weight * observed
        general_var = (1.0 - weight) * general_var + weight * population_var
    return {GENERAL: SkillRating(rating=mean, uncertainty=math.sqrt(general_var))}


def general_rating(known: Mapping[str, SkillRating], experience: str | None) -> SkillRating:
    """The learner's general ability: the ``GENERAL`` entry, else pooled from start and skills."""
    stored = known.get(GENERAL)
    if stored is not None:
        return stored
    prior = cold_start_rating(experience)
    # The cold-start uncertainty covers both the general level and the spread between skills;
    # practised skills are noisy measurements of the general level (pooled by precision).
    precision = 1.0 / max(prior.uncertainty**2 - SKILL_SPREAD**2, _MIN_VARIANCE)
    weighted = prior.rating * precision
    for skill in known.values():
        if skill.attempts == 0:
            continue  # an untouched prior carries no evidence
        w = 1.0 / (skill.uncertainty**2 + SKILL_SPREAD**2)
        precision += w
        weighted += w * skill.rating
    return SkillRating(rating=weighted / precision, uncertainty=math.sqrt(1.0 / precision))


def new_skill_rating(known: Mapping[str, SkillRating], experience: str | None) -> SkillRating:
    """Prior for a skill not yet practised: the learner's general ability, less certain."""
    general = general_rating(known, experience)
    return SkillRating(
        rating=general.rating,
        uncertainty=min(math.sqrt(general.uncertainty**2 + SKILL_SPREAD**2), MAX_UNCERTAINTY),
    )


def outcome_score(passed: bool, attempts_before_pass: int, hints_used: int, skipped: bool) -> float:
    """Graded outcome in [0, 1]: 1 for a first-try pass without hints, 0 for a skip or no pass."""
    if skipped or not passed:
        return 0.0
    attempt_penalty = min(_ATTEMPT_PENALTY * max(attempts_before_pass, 0), _MAX_ATTEMPT_PENALTY)
    hint_penalty = min(_HINT_PENALTY * max(hints_used, 0), _MAX_HINT_PENALTY)
    # Any pass beats giving up, however much help it took.
    return max(_PASS_FLOOR, 1.0 - attempt_penalty - hint_penalty)


def predict_success(learner_rating: float, item_rating: float) -> float:
    """Probability that a learner of this rating passes an item of this rating first time."""
    return _logistic(learner_rating - item_rating)


def expected_success(learner_rating: float, learner_variance: float, item: ItemRating) -> float:
    """Predicted success averaged over what we do not know about the learner and the item.

    Uncertainty pulls the prediction toward 1/2 (the probit approximation of a logistic-normal
    mean), so the tutor picks gentler items for learners it does not know yet.
    """
    variance = max(learner_variance, 0.0) + item.uncertainty**2
    return _logistic((learner_rating - item.rating) / math.sqrt(1.0 + math.pi * variance / 8.0))


def aged(rating: SkillRating, now: datetime) -> SkillRating:
    """The rating as of ``now``: uncertainty grows with the days since it was last practised."""
    if rating.last_practised is None:
        return rating
    days = max((now - rating.last_practised).total_seconds() / 86400.0, 0.0)
    variance = rating.uncertainty**2 + IDLE_VARIANCE_PER_DAY * days
    cap = max(rating.uncertainty, MAX_UNCERTAINTY)
    return replace(rating, uncertainty=min(math.sqrt(variance), cap))


def _unique(skills: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(skills))


def skill_weights(skills: Sequence[str]) -> dict[str, float]:
    """How much each of an exercise's skills counts; the first is the main skill."""
    names = _unique(skills)
    if not names:
        raise ValueError("an exercise needs at least one skill")
    if len(names) == 1:
        return {names[0]: 1.0}
    rest = (1.0 - MAIN_SKILL_WEIGHT) / (len(names) - 1)
    return {name: (MAIN_SKILL_WEIGHT if i == 0 else rest) for i, name in enumerate(names)}


def ratings_for(
    ratings: Mapping[str, SkillRating], skills: Sequence[str], experience: str | None = None
) -> dict[str, SkillRating]:
    """The learner's ratings for these skills, with a prior for any not yet seen."""
    out: dict[str, SkillRating] = {}
    for name in _unique(skills):
        found = ratings.get(name)
        out[name] = found if found is not None else new_skill_rating(ratings, experience)
    return out


def combined_rating(ratings: Mapping[str, SkillRating], skills: Sequence[str]) -> float:
    """The learner's effective rating on an exercise: a weighted mean over its skills."""
    weights = skill_weights(skills)
    return sum(w * ratings[name].rating for name, w in weights.items())


def ability_on(
    ratings: Mapping[str, SkillRating], skills: Sequence[str], experience: str | None = None
) -> tuple[float, float]:
    """Mean and variance of the learner's effective ability on an exercise with these skills."""
    current = ratings_for(ratings, skills, experience)
    weights = skill_weights(skills)
    mean = sum(w * current[name].rating for name, w in weights.items())
    general_var = general_rating(ratings, experience).uncertainty ** 2
    # Skill ratings share the general ability, so its variance counts once, not per skill.
    offset_var = sum(
        w * w * max(current[name].uncertainty ** 2 - general_var, 0.0)
        for name, w in weights.items()
    )
    return mean, general_var + offset_var


def _check_score(score: float) -> None:
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must be in [0, 1], got {score}")


def _updated_item(item: ItemRating, surprise: float, info: float, denominator: float) -> ItemRating:
    var = item.uncertainty**2
    return ItemRating(
        rating=item.rating - var * surprise / denominator,
        uncertainty=max(math.sqrt(var * (1.0 - var * info / denominator)), ITEM_UNCERTAINTY_FLOOR),
        attempts=item.attempts + 1,
    )


def update_skills(
    ratings: Mapping[str, SkillRating],
    skills: Sequence[str],
    item: ItemRating,
    score: float,
    now: datetime,
    *,
    experience: str | None = None,
) -> tuple[dict[str, SkillRating], ItemRating]:
    """Update a learner from one graded outcome on an exercise, and the exercise itself.

    The learner is modelled as a general ability (stored under ``GENERAL``) plus an offset per
    skill. Every outcome moves the general ability, which carries over to every skill, and the
    exercise's own skills (main skill most) move further. Returns the new ratings of every skill
    in ``ratings``, the exercise's skills and ``GENERAL``: store them all.
    """
    _check_score(score)
    weights = skill_weights(skills)
    general = aged(general_rating(ratings, experience), now)
    general_var = general.uncertainty**2

    # Offsets from the general ability. A practised skill's own idle time widens its offset;
    # skills not in this exercise keep their stored (un-aged) uncertainty so idle time is
    # never counted twice.
    offsets: dict[str, tuple[float, float]] = {}
    for name, stored in ratings.items():
        if name == GENERAL:
            continue
        rating = aged(stored, now) if name in weights else stored
        offsets[name] = (
            rating.rating - general.rating,
            max(rating.uncertainty**2 - general_var, _MIN_VARIANCE),
        )
    for name in weights:
        offsets.setdefault(name, (0.0, SKILL_SPREAD**2))

    ability = general.rating + sum(w * offsets[n][0] for n, w in weights.items())
    p = predict_success(ability, item.rating)
    info = p * (1.0 - p)  # Fisher information of one Bernoulli observation
    # Extended Kalman filter on logistic(g + sum w_i*d_i - b) with independent Gaussian beliefs:
    # the innovation variance mixes every uncertainty involved, so a well-known item moves an
    # uncertain learner a lot and an uncertain item barely moves a well-known learner.
    offset_var = sum(w * w * offsets[n][1] for n, w in weights.items())
    denominator = 1.0 + info * (general_var + offset_var + item.uncertainty**2)
    surprise = score - p

    new_general_var = general_var * (1.0 - general_var * info / denominator) + PRACTICE_VARIANCE
    new_general = SkillRating(
        rating=general.rating + general_var * surprise / denominator,
        uncertainty=min(math.sqrt(new_general_var), MAX_UNCERTAINTY),
        attempts=general.attempts + 1,
        last_practised=now,
        recent=(*general.recent, score)[-RECENT_OUTCOMES:],
    )
    updated: dict[str, SkillRating] = {GENERAL: new_general}
    for name, (offset, var) in offsets.items():
        w = weights.get(name, 0.0)
        new_var = var * (1.0 - w * w * var * info / denominator) + w * PRACTICE_VARIANCE
        value = new_general.rating + offset + var * w * surprise / denominator
        uncertainty = min(math.sqrt(new_general_var + new_var), MAX_UNCERTAINTY)
        before = ratings.get(name)
        if w == 0.0 and before is not None:
            updated[name] = replace(before, rating=value, uncertainty=uncertainty)
            continue
        updated[name] = SkillRating(
            rating=value,
            uncertainty=uncertainty,
            attempts=(before.attempts if before else 0) + 1,
            last_practised=now,
            recent=(*(before.recent if before else ()), score)[-RECENT_OUTCOMES:],
        )
    return updated, _updated_item(item, surprise, info, denominator)


def update(
    learner: SkillRating, item: ItemRating, score: float, now: datetime
) -> tuple[SkillRating, ItemRating]:
    """Update one learner skill, on its own, and one exercise from a graded outcome in [0, 1]."""
    _check_score(score)
    learner = aged(learner, now)
    var = learner.uncertainty**2
    p = predict_success(learner.rating, item.rating)
    info = p * (1.0 - p)
    # The same filter as update_skills with a single rating and no general ability.
    denominator = 1.0 + info * (var + item.uncertainty**2)
    surprise = score - p
    new_var = var * (1.0 - var * info / denominator) + PRACTICE_VARIANCE
    new_learner = SkillRating(
        rating=learner.rating + var * surprise / denominator,
        uncertainty=min(math.sqrt(new_var), MAX_UNCERTAINTY),
        attempts=learner.attempts + 1,
        last_practised=now,
        recent=(*learner.recent, score)[-RECENT_OUTCOMES:],
    )
    return new_learner, _updated_item(item, surprise, info, denominator)


# Mastery is judged against an item between levels 3 and 4: "can do solid intermediate work".
_MASTERY_REFERENCE_LEVEL = 3.5


def mastery(rating: SkillRating, now: datetime | None = None) -> float:
    """Mastery in [0, 1]: the chance to pass a level 3-4 exercise, judged cautiously.

    Uses the rating one uncertainty below the estimate, so mastery only shows once the
    evidence supports it, and fades while a skill goes unpractised (pass ``now`` for that).
    """
    if now is not None:
        rating = aged(rating, now)
    cautious = rating.rating - rating.uncertainty
    return predict_success(cautious, _level_to_rating(_MASTERY_REFERENCE_LEVEL))


def level(ratings: Mapping[str, SkillRating] | Iterable[SkillRating]) -> int:
    """Overall level 1-5: the authored level the learner passes about 3 times in 4."""
    if isinstance(ratings, Mapping) and GENERAL in ratings:
        mean = ratings[GENERAL].rating
    else:
        values = list(ratings.values()) if isinstance(ratings, Mapping) else list(ratings)
        practised = [r for r in values if r.attempts > 0] or values
        if not practised:
            return MIN_LEVEL
        # Precision-weighted, so a well-measured skill counts more than a guess.
        weights = [1.0 / max(r.uncertainty, 1e-6) ** 2 for r in practised]
        mean = sum(w * r.rating for w, r in zip(weights, practised, strict=True)) / sum(weights)
    raw = MIDDLE_LEVEL + (mean - logit(TARGET_SUCCESS)) / LEVEL_SPACING
    # Half levels round up (round() would send 2.5 to 2 and 3.5 to 4).
    return max(MIN_LEVEL, min(MAX_LEVEL, math.floor(raw + 0.5)))
