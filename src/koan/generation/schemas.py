"""Bodies of the exercise generation route."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt, StringConstraints

from koan.common.schemas import Input, clean_line
from koan.exercises.pack import TAG_PATTERN

# Trimmed before its length is checked; empty is the same as none.
Theme = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(clean_line)
]


class GenerateIn(Input):
    language: Literal["python", "javascript"]
    skill: str = Field(pattern=TAG_PATTERN, description="A skill tag, e.g. loops or recursion.")
    difficulty: StrictInt = Field(ge=1, le=5)
    theme: Theme | None = Field(
        default=None, description="Optional flavour: 'space travel', 'cooking'."
    )
