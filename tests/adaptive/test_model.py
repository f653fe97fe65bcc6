"""The difficulty model: predictions, updates, grading, cold starts, mastery and levels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from koan.adaptive import (
    GENERAL,
    SETTLED_ATTEMPTS,
    ItemRating,
    SkillRating,
    cold_start_rating,
    expected_success,
    initial_item_rating,
    level,
    mastery,
    new_item,
    new_skill_rating,
    outcome_score,
    predict_success,
    starting_ratings,
    update,
    update_skills,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def practise(
    learner: SkillRating, item: ItemRating, scores: list[float], start: datetime = NOW
) -> tuple[SkillRating, ItemRating]:
    for day, score in enumerate(scores):
        learner, item = update(learner, item, score, start + timedelta(days=day))
    return learner, item


# ---- prediction ---------------------------------------------------------------------------


def test_prediction_rises_with_learner_rating_and_falls_with_item_rating() -> None:
    ratings = [-3.0, -1.0, 0.0, 0.5, 2.0, 4.0]
    by_learner = [predict_success(r, 0.0) for r in ratings]
    by_item = [predict_success(0.0, r) for r in ratings]
    assert by_learner == sorted(by_learner)
    assert len(set(by_learner)) == len(by_learner)
    assert by_item == sorted(by_item, reverse=True)


def test_prediction_is_a_probability_even_for_extreme_ratings() -> None:
    assert predict_success(0.0, 0.0) == pytest.approx(0.5)
    assert 0.0 <= predict_success(1e6, -1e6) <= 1.0
    assert 0.0 <= predict_success(-1e6, 1e6) <= 1.0


def test_uncertainty_pulls_expected_success_toward_a_coin_flip() -> None:
    item = ItemRating(rating=0.0, uncertainty=0.1)
    sure = expected_success(1.5, 0.0, item)
    unsure = expected_success(1.5, 2.0, item)
    assert 0.5 < unsure < sure
    assert expected_success(-1.5, 2.0, item) > expected_success(-1.5, 0.0, item)


# ---- items --------------------------------------------------------------------------------


def test_harder_authored_levels_start_with_higher_difficulty() -> None:
    ratings = [initial_item_rating(d) for d in range(1, 6)]
    assert ratings == sorted(ratings)
    assert len(set(ratings)) == 5
    assert new_item(4).rating == initial_item_rating(4)


@pytest.mark.parametrize("difficulty", [0, 6, -1])
def test_authored_level_outside_one_to_five_is_rejected(difficulty: int) -> None:
    with pytest.raises(ValueError, match="1-5"):
        initial_item_rating(difficulty)


# ---- updates ------------------------------------------------------------------------------


def test_success_raises_the_learner_and_lowers_the_item() -> None:
    learner = cold_start_rating("intermediate")
    item = new_item(3)
    after, item_after = update(learner, item, 1.0, NOW)
    assert after.rating > learner.rating
    assert item_after.rating < item.rating


def test_failure_lowers_the_learner_and_raises_the_item() -> None:
    learner = cold_start_rating("intermediate")
    item = new_item(3)
    after, item_after = update(learner, item, 0.0, NOW)
    assert after.rating < learner.rating
    assert item_after.rating > item.rating


def test_an_expected_success_moves_less_than_a_surprising_one() -> None:
    learner = SkillRating(rating=1.0, uncertainty=0.8)
    easy, hard = new_item(1), new_item(5)
    passed_easy, _ = update(learner, easy, 1.0, NOW)
    passed_hard, _ = update(learner, hard, 1.0, NOW)
    assert 0 < passed_easy.rating - learner.rating < passed_hard.rating - learner.rating


def test_partial_credit_moves_less_than_a_clean_pass() -> None:
    learner = cold_start_rating("beginner")
    item = new_item(2)
    clean, _ = update(learner, item, 1.0, NOW)
    helped, _ = update(learner, item, outcome_score(True, 2, 2, skipped=False), NOW)
    assert clean.rating > helped.rating


def test_steps_shrink_as_the_learner_gains_experience() -> None:
    item = ItemRating(rating=0.0, uncertainty=0.1)
    learner = cold_start_rating("intermediate")
    first_step = update(learner, item, 0.0, NOW)[0].rating - learner.rating
    # Alternate outcomes so the rating stays near the item and only experience changes.
    seasoned, _ = practise(learner, item, [1.0, 0.0] * 15)
    later_step = update(seasoned, item, 0.0, NOW + timedelta(days=30))[0].rating - seasoned.rating
    assert seasoned.uncertainty < learner.uncertainty
    assert seasoned.attempts == 30
    assert abs(later_step) < abs(first_step) / 2


def test_an_uncertain_item_moves_more_than_a_well_known_one() -> None:
    learner = SkillRating(rating=0.0, uncertainty=0.5)
    fresh = ItemRating(rating=0.0, uncertainty=0.7)
    known = ItemRating(rating=0.0, uncertainty=0.15, attempts=400)
    moved_fresh = update(learner, fresh, 1.0, NOW)[1].rating - fresh.rating
    moved_known = update(learner, known, 1.0, NOW)[1].rating - known.rating
    assert abs(moved_fresh) > 3 * abs(moved_known)


def test_item_uncertainty_shrinks_and_attempts_count() -> None:
    learner = SkillRating(rating=0.0, uncertainty=0.4)
    _, item = practise(learner, new_item(3), [1.0, 0.0, 1.0, 1.0])
    assert item.attempts == 4
    assert item.uncertainty < new_item(3).uncertainty


def test_ratings_keep_following_a_learner_who_improves() -> None:
    item = ItemRating(rating=0.0, uncertainty=0.1)
    learner, _ = practise(cold_start_rating("beginner"), item, [0.0, 1.0] * 20)
    settled = learner.rating
    improved, _ = practise(learner, item, [1.0] * 10, NOW + timedelta(days=40))
    assert improved.rating > settled + 0.5


def test_update_records_practice_time_and_recent_outcomes() -> None:
    later = NOW + timedelta(days=2)
    learner, _ = practise(cold_start_rating("beginner"), new_item(1), [1.0, 0.0, 1.0, 0.6])
    assert learner.last_practised == NOW + timedelta(days=3)
    assert learner.recent == (0.0, 1.0, 0.6)
    again, _ = update(learner, new_item(1), 1.0, later + timedelta(days=5))
    assert again.last_practised == later + timedelta(days=5)


@pytest.mark.parametrize("score", [-0.1, 1.5])
def test_scores_outside_zero_to_one_are_rejected(score: float) -> None:
    with pytest.raises(ValueError, match="score"):
        update(cold_start_rating("beginner"), new_item(1), score, NOW)


# ---- several skills -----------------------------------------------------------------------


def test_multi_skill_update_moves_the_main_skill_most() -> None:
    ratings = starting_ratings("intermediate")
    changed, _ = update_skills(ratings, ["recursion", "lists"], new_item(3), 1.0, NOW)
    prior = new_skill_rating(ratings, "intermediate").rating
    main_gain = changed["recursion"].rating - prior
    side_gain = changed["lists"].rating - prior
    assert main_gain > side_gain > 0
    assert changed["recursion"].attempts == changed["lists"].attempts == 1
    assert changed[GENERAL].rating > ratings[GENERAL].rating


def test_evidence_on_one_skill_carries_over_to_the_others() -> None:
    ratings = starting_ratings("intermediate")
    ratings, _ = update_skills(ratings, ["loops"], new_item(2), 1.0, NOW)
    before = dict(ratings)
    changed, _ = update_skills(ratings, ["strings"], new_item(3), 1.0, NOW)
    # loops was not in this exercise, yet the learner's general ability rose, and loops with it.
    assert changed["loops"].rating > before["loops"].rating
    assert changed["loops"].attempts == before["loops"].attempts
    assert changed["loops"].last_practised == before["loops"].last_practised
    # A skill never practised also starts higher than it would have.
    assert (
        new_skill_rating(changed, "intermediate").rating
        > new_skill_rating(before, "intermediate").rating
    )


def test_a_skill_practised_on_its_own_moves_more_than_one_it_shares() -> None:
    ratings = starting_ratings("beginner")
    alone, _ = update_skills(ratings, ["loops"], new_item(1), 0.0, NOW)
    shared, _ = update_skills(ratings, ["strings", "loops"], new_item(1), 0.0, NOW)
    assert alone["loops"].rating < shared["loops"].rating


def test_repeated_skills_in_an_exercise_count_once() -> None:
    ratings = starting_ratings("beginner")
    once, _ = update_skills(ratings, ["loops"], new_item(1), 1.0, NOW)
    twice, _ = update_skills(ratings, ["loops", "loops"], new_item(1), 1.0, NOW)
    assert once["loops"] == twice["loops"]


def test_an_exercise_without_skills_is_rejected() -> None:
    with pytest.raises(ValueError, match="skill"):
        update_skills(starting_ratings("beginner"), [], new_item(1), 1.0, NOW)


# ---- grading ------------------------------------------------------------------------------


def test_outcome_grading_order() -> None:
    first_try = outcome_score(passed=True, attempts_before_pass=0, hints_used=0, skipped=False)
    after_retries = outcome_score(True, attempts_before_pass=2, hints_used=0, skipped=False)
    after_hints = outcome_score(True, attempts_before_pass=0, hints_used=2, skipped=False)
    after_everything = outcome_score(True, attempts_before_pass=9, hints_used=5, skipped=False)
    skipped = outcome_score(passed=False, attempts_before_pass=0, hints_used=0, skipped=True)
    gave_up = outcome_score(passed=False, attempts_before_pass=4, hints_used=3, skipped=False)
    assert first_try == 1.0
    assert first_try > after_retries > after_everything > skipped
    assert first_try > after_hints > after_everything
    assert skipped == gave_up == 0.0


def test_every_outcome_is_a_score_between_zero_and_one() -> None:
    for attempts in range(0, 12):
        for hints in range(0, 7):
            for passed in (True, False):
                score = outcome_score(passed, attempts, hints, skipped=False)
                assert 0.0 <= score <= 1.0
                assert (score > 0) == passed


def test_more_help_never_scores_higher() -> None:
    scores = [outcome_score(True, 0, hints, skipped=False) for hints in range(6)]
    assert scores == sorted(scores, reverse=True)
    scores = [outcome_score(True, attempts, 0, skipped=False) for attempts in range(8)]
    assert scores == sorted(scores, reverse=True)


# ---- cold start ---------------------------------------------------------------------------


def test_cold_start_rises_with_experience() -> None:
    beginner = cold_start_rating("beginner")
    intermediate = cold_start_rating("intermediate")
    advanced = cold_start_rating("advanced")
    assert beginner.rating < intermediate.rating < advanced.rating
    assert beginner.attempts == intermediate.attempts == advanced.attempts == 0
    assert all(r.uncertainty > 0.5 for r in (beginner, intermediate, advanced))


def test_a_new_beginner_is_likely_to_pass_the_easiest_exercises_and_not_the_hardest() -> None:
    beginner = cold_start_rating("beginner").rating
    assert predict_success(beginner, initial_item_rating(1)) >= 0.7
    assert predict_success(beginner, initial_item_rating(5)) < 0.2
    advanced = cold_start_rating("advanced").rating
    assert predict_success(advanced, initial_item_rating(3)) > 0.8


def test_missing_experience_counts_as_beginner_and_unknown_is_rejected() -> None:
    assert cold_start_rating(None) == cold_start_rating("beginner")
    with pytest.raises(ValueError, match="experience"):
        cold_start_rating("wizard")


def test_starting_ratings_learn_from_earlier_learners_with_the_same_answer() -> None:
    default = starting_ratings("advanced")[GENERAL]
    # Earlier "advanced" learners turned out to be much weaker than the built-in guess.
    settled = [
        SkillRating(rating=default.rating - 1.5 + 0.01 * (i - 100), uncertainty=0.3, attempts=20)
        for i in range(200)
    ]
    calibrated = starting_ratings("advanced", settled)[GENERAL]
    assert calibrated.rating < default.rating - 1.0


def test_starting_ratings_ignore_learners_who_have_not_settled() -> None:
    default = starting_ratings("intermediate")
    unsettled = [
        SkillRating(rating=-5.0, uncertainty=0.9, attempts=SETTLED_ATTEMPTS - 1) for _ in range(50)
    ]
    assert starting_ratings("intermediate", unsettled) == default


# ---- mastery and level --------------------------------------------------------------------


def test_mastery_grows_with_rating_and_with_certainty() -> None:
    weak = SkillRating(rating=-1.0, uncertainty=0.3, attempts=10)
    strong = SkillRating(rating=2.5, uncertainty=0.3, attempts=10)
    unproven = SkillRating(rating=2.5, uncertainty=1.0)
    assert 0.0 <= mastery(weak) < mastery(unproven) < mastery(strong) <= 1.0


def test_mastery_fades_while_a_skill_goes_unpractised() -> None:
    rating = SkillRating(rating=2.0, uncertainty=0.3, attempts=12, last_practised=NOW)
    assert mastery(rating, NOW + timedelta(days=90)) < mastery(rating, NOW)
    assert mastery(rating, NOW) == pytest.approx(mastery(rating))


def test_practice_that_goes_well_raises_mastery() -> None:
    learner = cold_start_rating("intermediate")
    practised, _ = practise(learner, new_item(4), [1.0] * 8)
    assert mastery(practised) > mastery(learner) + 0.2


def test_level_follows_the_cold_start_and_the_general_rating() -> None:
    assert level([cold_start_rating("beginner")]) == 1
    assert level([cold_start_rating("advanced")]) == 4
    assert level(starting_ratings("beginner")) < level(starting_ratings("advanced"))
    assert level([]) == 1


def test_level_stays_within_one_to_five() -> None:
    assert level({GENERAL: SkillRating(rating=40.0, uncertainty=0.1)}) == 5
    assert level({GENERAL: SkillRating(rating=-40.0, uncertainty=0.1)}) == 1


def test_level_weighs_well_measured_skills_more() -> None:
    measured = SkillRating(rating=3.1, uncertainty=0.2, attempts=30)  # level 5 work
    guessed = SkillRating(rating=-1.0, uncertainty=1.0, attempts=1)  # level 1 work
    assert level({"loops": measured, "classes": guessed}) >= 4
