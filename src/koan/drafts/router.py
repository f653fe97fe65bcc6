"""Draft routes: the editor's content per exercise, saved while the learner types."""

from __future__ import annotations

import uuid

from fastapi import Response, status

from koan.auth.deps import VerifiedUser
from koan.common.routing import PrefixedRouter
from koan.deps import ResourcesDep, SessionDep
from koan.drafts import service
from koan.drafts.schemas import DraftIn, DraftOut

router = PrefixedRouter(prefix="/drafts", tags=["drafts"])


@router.get("/{exercise_id}", response_model=DraftOut)
async def get_draft(exercise_id: uuid.UUID, user: VerifiedUser, session: SessionDep) -> DraftOut:
    """Your saved draft for an exercise (404 when none is saved)."""
    return DraftOut.model_validate(await service.get(session, user, exercise_id))


@router.put("/{exercise_id}", response_model=DraftOut)
async def put_draft(
    exercise_id: uuid.UUID, data: DraftIn, user: VerifiedUser, session: SessionDep,
    res: ResourcesDep,
) -> DraftOut:  # fmt: skip
    """Save the editor's content. Saves of one device are ordered by the time it wrote them
    (`written_at_ms` by its clock, `device` its id), whatever order they arrive in; saves of
    different devices, or without a time, by their arrival. With `base_ms`, a save over a draft
    saved since that time (another tab or device) is refused with 409 `DraftConflict`."""
    draft = await service.save(
        session, res, user, exercise_id, data.code, data.written_at_ms, data.device, data.base_ms
    )
    return DraftOut.model_validate(draft)


@router.delete("/{exercise_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_draft(exercise_id: uuid.UUID, user: VerifiedUser, session: SessionDep) -> Response:
    """Discard the draft (nothing happens when there is none)."""
    await service.discard(session, user, exercise_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
