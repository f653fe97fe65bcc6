"""Progress routes: totals and streaks, daily history, achievements, and a data export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated

from fastapi import Query
from fastapi.responses import StreamingResponse

from koan.auth.deps import VerifiedUser
from koan.common.download import attachment
from koan.common.routing import KoanRouter
from koan.deps import ResourcesDep, SessionDep, SessionOpenerDep
from koan.progress import export as exporting
from koan.progress import service
from koan.progress.deps import ConversationExportDep, DraftExportDep, ShownCodeExportDep
from koan.progress.schemas import AchievementsOut, HistoryOut, ProgressOut

router = KoanRouter(prefix="/progress", tags=["progress"])


@router.get("", response_model=ProgressOut)
async def progress(user: VerifiedUser, session: SessionDep, res: ResourcesDep) -> ProgressOut:
    """Totals, streaks, level, skill mastery and activity over the last 90 days."""
    return await service.overview(session, res, user)


@router.get("/history", response_model=HistoryOut, responses={422: {"description": "Bad range"}})
async def history(
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    start: Annotated[
        date | None, Query(alias="from", description="First day (YYYY-MM-DD).")
    ] = None,
    end: Annotated[
        date | None, Query(alias="to", description="Last day, at most 366 days on.")
    ] = None,
) -> HistoryOut:
    """Exercises completed and submissions graded per day, in the learner's time zone."""
    return await service.history(session, res, user, start=start, end=end)


@router.get("/achievements", response_model=AchievementsOut)
async def achievements(
    user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> AchievementsOut:
    """Achievements earned (with dates) and the rest with progress toward them."""
    return await service.achievement_list(session, res, user)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def export(
    user: VerifiedUser,
    open_session: SessionOpenerDep,
    res: ResourcesDep,
    conversations: ConversationExportDep,
    shown_code: ShownCodeExportDep,
    drafts: DraftExportDep,
    fmt: Annotated[
        exporting.ExportFormat,
        Query(
            alias="format",
            description="json: everything, the code the tutor showed you too; csv: "
            "assignments and submissions, a row per submission; conversations-csv: tutor "
            "conversations, a row per message.",
        ),
    ] = "json",
) -> StreamingResponse:
    """Download your data: assignments and submissions (with your code), your drafts, your
    tutor conversations and the code the tutor showed you, as JSON; or the practice or the
    conversations as CSV."""
    filename = exporting.filename(res, user, fmt)

    async def body() -> AsyncIterator[str]:
        # The body streams after the handler has returned (and its session has closed).
        async with open_session() as session:
            async for chunk in exporting.stream(
                session, res, user, fmt, conversations, shown_code, drafts
            ):
                yield chunk

    return StreamingResponse(
        body(),
        media_type=exporting.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": attachment(filename)},
    )
