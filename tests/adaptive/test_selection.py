"""Choosing the next exercise: target, spaced review, exclusion, jitter and reasons."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from koan.adaptive import (
    GENERAL,
    Candidate,
    Choice,
    ItemRating,
    SkillRating,
    choose_exercise,
    display_skill,
    predicted_success_for,
    starting_ratings,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ladder(skill: str, lo: float = -3.0, hi: float = 3.0, steps: int = 25) -> list[Candidate]:
    """Well-known exercises of one skill spanning a range of difficulties."""
    return [
        Candidate(
            id=f"{skill}-{i}",
            skills=(skill,),
            item=ItemRating(rating=lo + (hi - lo) * i / (steps - 1), uncertainty=0.1, attempts=500),
        )
        for i in range(steps)
    ]


def known(
    rating: float, *, attempts: int = 20, days_ago: float = 1.0, recent: tuple[float, ...] = ()
) -> SkillRating:
    """A skill the engine has measured well."""
    return SkillRating(
        rating=rating,
        uncertainty=0.3,
        attempts=attempts,
        last_practised=NOW - timedelta(days=days_ago),
        recent=recent,
    )


def learner(**skills: SkillRating) -> dict[str, SkillRating]:
    ratings: dict[str, SkillRating] = {GENERAL: known(0.5, attempts=40)}
    ratings.update(skills)
    return ratings


def choose(
    candidates: list[Candidate],
    skills: dict[str, SkillRating],
    seed: int = 1,
    target: float = 0.75,
) -> Choice:
    return choose_exercise(candidates, skills, now=NOW, target=target, rng=random.Random(seed))


# ---- hitting the target -------------------------------------------------------------------


@pytest.mark.parametrize("ability", [-1.5, 0.0, 1.0, 2.5])
def test_choice_lands_near_the_target(ability: float) -> None:
    skills = learner(loops=known(ability))
    for seed in range(10):
        choice = choose(ladder("loops"), skills, seed)
        assert choice.predicted_success == pytest.approx(0.75, abs=0.06)


def test_a_stronger_learner_gets_a_harder_exercise() -> None:
    weak = choose(ladder("loops"), learner(loops=known(-1.0)))
    strong = choose(ladder("loops"), learner(loops=known(2.0)))
    assert strong.candidate.item.rating > weak.candidate.item.rating + 2.0


def test_a_different_target_moves_the_choice() -> None:
    skills = learner(loops=known(0.5))
    gentle = choose(ladder("loops"), skills, target=0.9)
    stretching = choose(ladder("loops"), skills, target=0.55)
    assert gentle.predicted_success > 0.8
    assert stretching.predicted_success < 0.65
    assert gentle.candidate.item.rating < stretching.candidate.item.rating


def test_reported_prediction_matches_the_public_predictor() -> None:
    skills = learner(loops=known(0.7))
    choice = choose(ladder("loops"), skills)
    expected = predicted_success_for(choice.candidate, skills, now=NOW)
    assert choice.predicted_success == pytest.approx(expected)


def test_an_unknown_learner_gets_a_gentler_exercise_than_a_known_one() -> None:
    sure = learner(loops=known(1.0))
    unsure = {GENERAL: SkillRating(rating=1.0, uncertainty=1.0)}
    assert (
        choose(ladder("loops"), unsure).candidate.item.rating
        < choose(ladder("loops"), sure).candidate.item.rating
    )


# ---- spaced repetition --------------------------------------------------------------------


def test_spaced_repetition_brings_back_an_old_weak_skill() -> None:
    skills = learner(
        loops=known(0.6, days_ago=1),  # practised yesterday, fine
        recursion=known(-0.2, days_ago=20),  # weak, and three weeks ago
    )
    candidates = ladder("loops") + ladder("recursion")
    picks = [choose(candidates, skills, seed).candidate.skills[0] for seed in range(20)]
    assert picks.count("recursion") >= 18


def test_a_strong_recently_practised_skill_is_not_forced_back() -> None:
    skills = learner(
        loops=known(0.5, days_ago=1),
        strings=known(0.5, days_ago=1),
    )
    candidates = ladder("loops") + ladder("strings")
    picks = {choose(candidates, skills, seed).candidate.skills[0] for seed in range(30)}
    assert picks == {"loops", "strings"}  # no favourite: both come up


def test_review_does_not_buy_an_exercise_at_the_wrong_difficulty() -> None:
    skills = learner(loops=known(0.5, days_ago=1), recursion=known(-0.5, days_ago=40))
    # Only far-too-hard recursion exists; a good loops exercise wins.
    too_hard = [Candidate("recursion-hard", ("recursion",), ItemRating(3.5, 0.1, 500))]
    choice = choose(ladder("loops") + too_hard, skills)
    assert choice.candidate.skills == ("loops",)


# ---- exclusion and repeats ----------------------------------------------------------------


def test_recently_done_exercises_are_never_offered() -> None:
    skills = learner(loops=known(0.5))
    candidates = ladder("loops")
    best = choose(candidates, skills).candidate
    marked = [
        Candidate(c.id, c.skills, c.item, recently_done=True, last_done=NOW - timedelta(days=1))
        if c.id == best.id
        else c
        for c in candidates
    ]
    for seed in range(20):
        assert choose(marked, skills, seed).candidate.id != best.id


def test_when_everything_was_done_recently_something_is_still_offered() -> None:
    candidates = [
        Candidate(c.id, c.skills, c.item, recently_done=True, last_done=NOW - timedelta(days=2))
        for c in ladder("loops")
    ]
    choice = choose(candidates, learner(loops=known(0.5)))
    assert choice.candidate in candidates
    assert "2 days ago" in choice.reason


def test_unseen_exercises_are_preferred_to_repeats() -> None:
    skills = learner(loops=known(0.5))
    candidates = [
        Candidate(c.id, c.skills, c.item, last_done=NOW - timedelta(days=60)) if i % 2 == 0 else c
        for i, c in enumerate(ladder("loops", steps=41))
    ]
    for seed in range(20):
        assert choose(candidates, skills, seed).candidate.last_done is None


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidates"):
        choose([], learner())


@pytest.mark.parametrize("target", [0.0, 1.0, 1.2])
def test_an_impossible_target_is_an_error(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        choose(ladder("loops"), learner(), target=target)


# ---- jitter -------------------------------------------------------------------------------


def test_jitter_varies_the_choice_across_seeds() -> None:
    skills = learner(loops=known(0.5))
    fine_ladder = ladder("loops", steps=121)
    chosen = {choose(fine_ladder, skills, seed).candidate.id for seed in range(30)}
    assert len(chosen) >= 3


def test_the_same_seed_gives_the_same_choice() -> None:
    skills = learner(loops=known(0.5), lists=known(0.0, days_ago=9))
    candidates = ladder("loops", steps=61) + ladder("lists", steps=61)
    for seed in range(10):
        assert choose(candidates, skills, seed) == choose(candidates, skills, seed)


# ---- several skills and new skills --------------------------------------------------------


def test_an_unseen_skill_is_predicted_from_the_learners_general_ability() -> None:
    item = ItemRating(rating=0.0, uncertainty=0.1)
    candidate = Candidate("gen-1", ("generators",), item)
    strong = {GENERAL: SkillRating(rating=2.0, uncertainty=0.3, attempts=30)}
    weak = {GENERAL: SkillRating(rating=-1.0, uncertainty=0.3, attempts=30)}
    assert predicted_success_for(candidate, strong) > 0.75 > predicted_success_for(candidate, weak)


def test_a_brand_new_learner_can_be_served() -> None:
    for experience in ("beginner", "intermediate", "advanced", None):
        choice = choose_exercise(
            ladder("variables"),
            starting_ratings(experience),
            now=NOW,
            rng=random.Random(3),
            experience=experience,
        )
        assert 0.6 <= choice.predicted_success <= 0.9
    empty = choose_exercise(ladder("loops"), {}, now=NOW, rng=random.Random(3))
    assert 0.6 <= empty.predicted_success <= 0.9


# ---- reasons ------------------------------------------------------------------------------


def test_reason_for_a_new_skill() -> None:
    choice = choose(ladder("generators"), learner(loops=known(0.5)))
    assert choice.reason == "new skill: generators"


def test_reason_for_a_review() -> None:
    skills = learner(recursion=known(-0.3, days_ago=9))
    choice = choose(ladder("recursion"), skills)
    assert choice.reason == "practising recursion, which you last did 9 days ago"


def test_reason_for_a_step_up() -> None:
    skills = learner(dictionaries=known(1.2, recent=(0.6, 1.0, 1.0)))
    choice = choose(ladder("dictionaries"), skills)
    assert choice.reason == "a step up in dictionaries: you passed the last ones first try"


def test_reason_after_a_struggle() -> None:
    skills = learner(strings=known(0.0, recent=(1.0, 0.0)))
    assert "struggle" in choose(ladder("strings"), skills).reason


def test_reason_for_steady_practice_names_the_skill_and_the_odds() -> None:
    skills = learner(loops=known(0.5, recent=(1.0, 0.0, 1.0)))
    reason = choose(ladder("loops"), skills).reason
    assert reason.startswith("loops at your level")
    assert "75%" in reason or "70%" in reason or "80%" in reason


@pytest.mark.parametrize(
    ("zone", "done", "now", "said"),
    [
        # Kiritimati is UTC+14: 23:00 and 01:00 there, two hours apart, are two dates.
        ("Pacific/Kiritimati", "2025-03-01T09:00", "2025-03-01T11:00", "yesterday"),
        ("Pacific/Kiritimati", "2025-03-01T09:00", "2025-03-02T11:00", "2 days ago"),
        # 00:30 then 23:30 the same date there: 23 hours apart, still today.
        ("Pacific/Kiritimati", "2025-02-28T10:30", "2025-03-01T09:30", "earlier today"),
        # New York (UTC-5): 20:00 then 06:00 the next morning.
        ("America/New_York", "2025-03-01T01:00", "2025-03-01T11:00", "yesterday"),
        ("UTC", "2025-03-01T00:30", "2025-03-01T23:30", "earlier today"),
    ],
)
def test_when_a_repeat_was_last_done_is_said_in_the_learners_calendar_days(
    zone: str, done: str, now: str, said: str
) -> None:
    done_at = datetime.fromisoformat(done).replace(tzinfo=UTC)
    now_at = datetime.fromisoformat(now).replace(tzinfo=UTC)
    candidates = [
        Candidate(c.id, c.skills, c.item, recently_done=True, last_done=done_at)
        for c in ladder("loops")
    ]
    choice = choose_exercise(
        candidates,
        learner(loops=known(0.5)),
        now=now_at,
        rng=random.Random(1),
        zone=ZoneInfo(zone),
    )
    assert choice.reason == f"another go at a loops exercise you did {said}"


def test_reasons_are_readable_sentences() -> None:
    skills = learner(
        loops=known(0.5),
        recursion=known(-0.3, days_ago=12),
        **{"higher-order-functions": known(0.2, recent=(1.0, 1.0))},
    )
    candidates = ladder("loops") + ladder("recursion") + ladder("higher-order-functions")
    candidates += ladder("sorting-searching")
    for seed in range(15):
        reason = choose(candidates, skills, seed).reason
        assert reason
        assert reason[0].islower()  # fits after "Why this one: "
        assert "-" not in reason.replace("higher-order", "")  # tags shown as words
        assert "_" not in reason
        assert "*" not in reason


def test_skill_tags_are_shown_as_words() -> None:
    assert display_skill("sorting-searching") == "sorting and searching"
    assert display_skill("error-handling") == "error handling"
    assert display_skill("higher-order-functions") == "higher-order functions"
    assert display_skill("some-free-tag") == "some free tag"
