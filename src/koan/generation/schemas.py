"""Bodies of the exercise generation route."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from koan.common.schemas import Input, Line
from koan.exercises.pack import TAG_PATTERN


class GenerateIn(Input):
    language: Literal["python", "javascript"]
    skill: str = Field(pattern=TAG_PATTERN, description="A skill tag, e.g. loops or recursion.")
    difficulty: int = Field(ge=1, le=5)
    theme: Line | None = Field(
        default=None, max_length=100, description="Optional flavour: 'space travel', 'cooking'."
    )
