"""Exercise generation: `POST /exercises/generate`, and an admin's approval that shares a
generated exercise with everyone."""

from __future__ import annotations

import uuid

from fastapi import status

from koan.auth.deps import AdminUser, VerifiedUser
from koan.common.routing import KoanRouter
from koan.deps import ResourcesDep, SessionDep
from koan.exercises.schemas import ExerciseDetail
from koan.exercises.service import detail
from koan.generation import service
from koan.generation.schemas import GenerateIn

router = KoanRouter(tags=["exercises"])


@router.post(
    "/exercises/generate",
    response_model=ExerciseDetail,
    status_code=status.HTTP_201_CREATED,
    responses={
        422: {
            "description": "GenerationFailed: no attempt passed validation (reasons given); "
            "UnknownSkill: the skill is neither in the vocabulary nor practised in the bank"
        },
        429: {"description": "Rate limited, or the daily budget is used up"},
        501: {"description": "GenerationUnavailable: only the offline tutor is configured"},
        503: {"description": "The model or the sandbox is unavailable"},
    },
)
async def generate(
    data: GenerateIn, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ExerciseDetail:
    """Have the AI write a new exercise; it is saved only once the sandbox has proven it."""
    exercise = await service.generate(session, res, user, data)
    return detail(exercise)


@router.post(
    "/exercises/{exercise_id}/approve",
    response_model=ExerciseDetail,
    responses={404: {"description": "No such exercise"}},
)
async def approve(
    exercise_id: uuid.UUID, admin: AdminUser, session: SessionDep, res: ResourcesDep
) -> ExerciseDetail:
    """Share a generated exercise with every learner (admins only; authored ones already are)."""
    return detail(await service.approve(session, res, exercise_id))
