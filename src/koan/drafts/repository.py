"""Queries for drafts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from koan.models import Draft


async def draft_of(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID
) -> Draft | None:
    query = select(Draft).where(Draft.user_id == user_id, Draft.exercise_id == exercise_id)
    return (await session.execute(query)).scalar_one_or_none()


async def save_draft(
    session: AsyncSession,
    user_id: uuid.UUID,
    exercise_id: uuid.UUID,
    code: str,
    *,
    at: datetime,
    written_at: datetime | None = None,
    device: str | None = None,
    based_before: datetime | None = None,
) -> Draft | None:
    """Insert or replace in one statement: two tabs saving at once cannot collide. `at` is the
    server's time; a save timed by a device's clock (`written_at`, `device`) does not replace
    one that the same device wrote later, whatever order they arrive in. Saves of different
    clocks (another device, the server's own) follow their arrival: one device's clock says
    nothing about another's.

    With `based_before`, only a stored draft saved before that time, or holding the same code,
    is replaced; None when another was saved since. The condition is part of the statement, so
    it holds of the row as it is written: on PostgreSQL a save waiting for another's row
    decides on what that one committed, never on what it read before."""
    values = {
        "user_id": user_id, "exercise_id": exercise_id, "code": code, "updated_at": at,
        "written_at": written_at, "device": device,
    }  # fmt: skip
    keys = [Draft.user_id, Draft.exercise_id]
    changes = {"code": code, "updated_at": at, "written_at": written_at, "device": device}
    newer = None
    if device is not None and written_at is not None:
        # A stored device always has its time (the service sets both or neither).
        newer = or_(Draft.device.is_(None), Draft.device != device, Draft.written_at <= written_at)
    if based_before is not None:
        unchanged = or_(Draft.code == code, Draft.updated_at < based_before)
        newer = unchanged if newer is None else and_(newer, unchanged)
    upsert: ReturningInsert[Draft]
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(Draft).values(**values)
        upsert = pg.on_conflict_do_update(index_elements=keys, set_=changes, where=newer).returning(
            Draft
        )
    else:
        lite = sqlite.insert(Draft).values(**values)
        upsert = lite.on_conflict_do_update(
            index_elements=keys, set_=changes, where=newer
        ).returning(Draft)
    result = await session.execute(upsert, execution_options={"populate_existing": True})
    return result.scalar_one_or_none()


async def delete_draft(session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID) -> bool:
    statement = delete(Draft).where(Draft.user_id == user_id, Draft.exercise_id == exercise_id)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def drafts_after(
    session: AsyncSession, user_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[Draft]:
    """A learner's drafts in the order of their exercise's id, after the exercise `after`
    (their data export)."""
    query = select(Draft).where(Draft.user_id == user_id).order_by(Draft.exercise_id).limit(limit)
    if after is not None:
        query = query.where(Draft.exercise_id > after)
    return list((await session.execute(query)).scalars())
