"""Route dependencies of the progress domain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from koan.progress.export import ConversationExport, DraftExport, ShownCodeExport


def _wired(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency giving what the app wired in as `app.state.<name>` (app.py), or None: the
    export's sections that other domains, above progress, supply."""

    async def wired(request: Request) -> Any:
        return getattr(request.app.state, name, None)

    return wired


# The tutor's conversations, the code it showed the learner, and the learner's drafts.
ConversationExportDep = Annotated[ConversationExport | None, Depends(_wired("conversation_export"))]
ShownCodeExportDep = Annotated[ShownCodeExport | None, Depends(_wired("shown_code_export"))]
DraftExportDep = Annotated[DraftExport | None, Depends(_wired("draft_export"))]
