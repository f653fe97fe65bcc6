"""When today's pick is a poor fit, what the daily picker asks the model to write."""

from __future__ import annotations

import pytest

from koan.adaptive.service import Pick, Refill, refill_for
from koan.models import Exercise


def pick(*, difficulty: int = 3, success: float = 0.75, repeat: bool = False) -> Pick:
    exercise = Exercise(
        slug="x", language="python", difficulty=difficulty, skills=["loops", "lists"]
    )
    return Pick(exercise, "reason", predicted_success=success, repeat=repeat)


def test_a_good_fit_asks_for_nothing() -> None:
    assert refill_for(pick(success=0.75), target=0.75) is None
    assert refill_for(pick(success=0.9), target=0.75) is None  # within the tolerance
    assert refill_for(pick(success=0.6), target=0.75) is None


def test_a_repeat_asks_for_a_new_one_at_the_same_level() -> None:
    assert refill_for(pick(repeat=True), target=0.75) == Refill("python", "loops", 3)


@pytest.mark.parametrize(
    ("difficulty", "success", "wanted"),
    [(3, 0.99, 4), (3, 0.3, 2), (5, 0.99, 5), (1, 0.2, 1)],
)
def test_too_easy_or_too_hard_steps_towards_the_target_within_1_to_5(
    difficulty: int, success: float, wanted: int
) -> None:
    refill = refill_for(pick(difficulty=difficulty, success=success), target=0.75)
    assert refill == Refill("python", "loops", wanted)


def test_an_exercise_without_skills_asks_for_nothing() -> None:
    exercise = Exercise(slug="x", language="python", difficulty=2, skills=[])
    assert refill_for(Pick(exercise, "", predicted_success=0.1), target=0.75) is None
