"""The learner's drafts, for their data export (the app hands this to progress)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from koan.clock import utc_iso
from koan.drafts import repository
from koan.models import Draft
from koan.pagination import keyset_pages

# Drafts per query (each up to 64 KB of code).
BATCH = 100


def _record(draft: Draft) -> dict[str, Any]:
    return {
        "exercise_id": str(draft.exercise_id),
        "code": draft.code,
        "updated_at": utc_iso(draft.updated_at),
    }


async def draft_records(
    session: AsyncSession, user_id: uuid.UUID
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every draft of the learner, in batches of JSON-ready records."""
    pages = keyset_pages(
        lambda after: repository.drafts_after(session, user_id, after=after, limit=BATCH),
        lambda draft: draft.exercise_id,
    )
    async for page in pages:
        yield [_record(d) for d in page]
