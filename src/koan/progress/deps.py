"""Route dependencies of the progress domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from koan.progress.export import ConversationExport


async def conversation_export(request: Request) -> ConversationExport | None:
    """The tutor's conversations for the data export, as the app wired them in (app.py)."""
    found: ConversationExport | None = getattr(request.app.state, "conversation_export", None)
    return found


ConversationExportDep = Annotated[ConversationExport | None, Depends(conversation_export)]
