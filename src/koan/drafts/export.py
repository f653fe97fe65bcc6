"""The learner's drafts, for their data export (the app hands this to progress)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from koan.drafts import repository
from koan.models import Draft

# Drafts per query (each up to 64 KB of code).
BATCH = 100


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _record(draft: Draft) -> dict[str, Any]:
    return {
        "exercise_id": str(draft.exercise_id),
        "code": draft.code,
        "updated_at": _iso(draft.updated_at),
    }


async def draft_records(
    session: AsyncSession, user_id: uuid.UUID
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every draft of the learner, in batches of JSON-ready records."""
    after: uuid.UUID | None = None
    while True:
        page = await repository.drafts_after(session, user_id, after=after, limit=BATCH)
        if not page:
            return
        yield [_record(d) for d in page]
        after = page[-1].exercise_id
