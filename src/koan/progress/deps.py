"""Route dependencies of the progress domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from koan.progress.export import ConversationExport, DraftExport, ShownCodeExport


async def conversation_export(request: Request) -> ConversationExport | None:
    """The tutor's conversations for the data export, as the app wired them in (app.py)."""
    found: ConversationExport | None = getattr(request.app.state, "conversation_export", None)
    return found


ConversationExportDep = Annotated[ConversationExport | None, Depends(conversation_export)]


async def shown_code_export(request: Request) -> ShownCodeExport | None:
    """The code the tutor showed the learner, for the data export, as the app wired it in."""
    found: ShownCodeExport | None = getattr(request.app.state, "shown_code_export", None)
    return found


ShownCodeExportDep = Annotated[ShownCodeExport | None, Depends(shown_code_export)]


async def draft_export(request: Request) -> DraftExport | None:
    """The learner's drafts, for the data export, as the app wired them in."""
    found: DraftExport | None = getattr(request.app.state, "draft_export", None)
    return found


DraftExportDep = Annotated[DraftExport | None, Depends(draft_export)]
