"""Drafts: one per learner and exercise, readable and writable by that learner only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from koan.drafts import repository
from koan.drafts.schemas import MAX_DRAFT_BYTES
from koan.errors import Conflict, NotFound, PayloadTooLarge
from koan.exercises import service as exercises
from koan.models import Draft, User
from koan.resources import Resources


async def get(session: AsyncSession, user: User, exercise_id: uuid.UUID) -> Draft:
    """The learner's own draft; another learner's is as absent as one never written."""
    draft = await repository.draft_of(session, user.id, exercise_id)
    if draft is None:
        raise NotFound("No draft is saved for this exercise.")
    return draft


async def find(session: AsyncSession, user: User, exercise_id: uuid.UUID) -> Draft | None:
    return await repository.draft_of(session, user.id, exercise_id)


async def save(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise_id: uuid.UUID,
    code: str,
    written_at_ms: int | None = None,
    device: str | None = None,
    base_ms: int | None = None,
) -> Draft:
    """Keep the editor's content; a save its own device wrote before the stored one leaves it
    as it is, and one from an editor opened before the stored draft was saved is refused
    (docs/web.md, "Drafts")."""
    # Only for an exercise this learner may see (404 otherwise, as if it did not exist).
    await exercises.get_exercise(session, exercise_id, user)
    # As a submission of the same code is refused (koan.exercises.submit).
    if len(code.encode("utf-8")) > MAX_DRAFT_BYTES:
        raise PayloadTooLarge(f"Code is limited to {MAX_DRAFT_BYTES // 1024} KB.")
    now = res.clock.now()
    written_at = None
    if written_at_ms is not None:
        written_at = datetime.fromtimestamp(written_at_ms / 1000, UTC)
        # A time with no device names the client's one clock.
        device = device or ""
    else:
        device = None
    # The editor's base is whole milliseconds: a draft saved within or before that
    # millisecond is the one it grew from, any later one was saved since.
    based_before = None
    if base_ms is not None:
        based_before = datetime.fromtimestamp(base_ms / 1000, UTC) + timedelta(milliseconds=1)
    saved = await repository.save_draft(
        session, user.id, exercise_id, code, at=now, written_at=written_at, device=device,
        based_before=based_before,
    )  # fmt: skip
    if saved is not None:
        return saved
    # Nothing was written: the draft stored now is newer than this save, by its device's own
    # clock (it stays, and is the answer) or saved since the editor's base (a conflict).
    stored = await repository.draft_of(session, user.id, exercise_id)
    assert stored is not None
    if base_ms is not None and stored.code != code and _ms(stored.updated_at) > base_ms:
        raise Conflict(
            "This code was changed in another tab or on another device since this editor "
            "opened it.",
            code="DraftConflict",
        )
    return stored


def _ms(moment: datetime) -> int:
    """As the pages and the API give it to the browser (whole milliseconds)."""
    return int(moment.timestamp() * 1000)


async def discard(session: AsyncSession, user: User, exercise_id: uuid.UUID) -> None:
    """Forget the draft (the editor then starts from the last run or the starter code)."""
    await repository.delete_draft(session, user.id, exercise_id)
