"""Narrowing a learner's work to the (learner, exercise) pairs somebody set them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Subquery, exists, true


def set_for(pairs: Subquery | None, user_id: Any, exercise_id: Any) -> ColumnElement[bool]:
    """Whether the row's (`user_id`, `exercise_id`) is one of `pairs` (a subquery with columns
    user_id and exercise_id, such as a class's work set); every row is, without `pairs`."""
    if pairs is None:
        return true()
    return exists().where(pairs.c.user_id == user_id, pairs.c.exercise_id == exercise_id)
