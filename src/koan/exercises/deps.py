"""Route dependencies of the exercises domain."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive.service import Refill
from koan.deps import ResourcesDep, SessionOpener, SessionOpenerDep
from koan.exercises.service import ClassWork, DailyHooks, HintTailor, RefillHook
from koan.resources import Resources

# The app wires in what exercises asks of the domains above it (app.py): generation's
# scheduler (generation writes into the bank), the exercises classes have set, and the
# tutor's hint rewriter (chat).
RefillScheduler = Callable[[Resources, SessionOpener, BackgroundTasks], RefillHook]


async def _no_refill(user_id: uuid.UUID, refill: Refill) -> None:
    return None


async def _no_class_work(
    session: AsyncSession, user_id: uuid.UUID, now: datetime
) -> set[uuid.UUID]:
    return set()


async def daily_hooks(
    request: Request, res: ResourcesDep, open_session: SessionOpenerDep, tasks: BackgroundTasks
) -> DailyHooks:
    """What the daily pick asks of the domains above exercises, as the app wired them."""
    scheduler: RefillScheduler | None = getattr(request.app.state, "refill_scheduler", None)
    class_work: ClassWork | None = getattr(request.app.state, "class_work", None)
    return DailyHooks(
        refill=_no_refill if scheduler is None else scheduler(res, open_session, tasks),
        class_work=class_work or _no_class_work,
    )


DailyHooksDep = Annotated[DailyHooks, Depends(daily_hooks)]


async def hint_tailor(request: Request) -> HintTailor | None:
    """The tutor's hint rewriter the app wired in, if any (app.py)."""
    tailor: HintTailor | None = getattr(request.app.state, "hint_tailor", None)
    return tailor


HintTailorDep = Annotated[HintTailor | None, Depends(hint_tailor)]
