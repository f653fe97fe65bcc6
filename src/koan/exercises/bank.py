"""Importing and exporting exercise packs into the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive.model import initial_item_rating
from koan.exercises import repository
from koan.exercises.pack import ExerciseSpec
from koan.models import Exercise

FIELDS = (
    "title", "language", "difficulty", "skills", "statement", "starter_code", "solution", "tests",
    "hints", "time_limit_s", "memory_limit_mb",
)  # fmt: skip


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def initial_rating(difficulty: int) -> float:
    """Item difficulty on the adaptive scale before any learner has tried the exercise."""
    return float(initial_item_rating(difficulty))


async def import_specs(
    session: AsyncSession, specs: Sequence[ExerciseSpec], *, source: str
) -> ImportResult:
    """Create or update exercises by slug; re-importing the same pack changes nothing."""
    result = ImportResult()
    existing = await repository.exercises_by_slug(session, [s.slug for s in specs])
    for spec in specs:
        digest = spec.content_hash()
        exercise = existing.get(spec.slug)
        if exercise is not None and exercise.content_hash == digest:
            result.unchanged.append(spec.slug)
            continue
        if exercise is None:
            exercise = Exercise(
                slug=spec.slug,
                source=source,
                rating=initial_rating(spec.difficulty),
                rating_attempts=0,
            )
            session.add(exercise)
            result.created.append(spec.slug)
        else:
            if exercise.difficulty != spec.difficulty and exercise.rating_attempts == 0:
                exercise.rating = initial_rating(spec.difficulty)
            result.updated.append(spec.slug)
        for name in FIELDS:
            setattr(exercise, name, getattr(spec, name))
        exercise.content_hash = digest
        await session.flush()
        await repository.replace_skills(session, exercise, spec.skills)
    await session.flush()
    return result


def to_spec(exercise: Exercise) -> ExerciseSpec:
    return ExerciseSpec.model_validate(
        {"slug": exercise.slug, **{name: getattr(exercise, name) for name in FIELDS}}
    )
