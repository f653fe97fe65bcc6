"""Route dependencies of the exercises domain."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request

from koan.adaptive.service import Refill
from koan.deps import ResourcesDep, SessionOpener, SessionOpenerDep
from koan.exercises.service import HintTailor, RefillHook
from koan.resources import Resources

# The app wires in what exercises asks of the domains above it (app.py): generation's
# scheduler (generation writes into the bank) and the tutor's hint rewriter (chat).
RefillScheduler = Callable[[Resources, SessionOpener, BackgroundTasks], RefillHook]


async def _nothing(user_id: uuid.UUID, refill: Refill) -> None:
    return None


async def refill_hook(
    request: Request, res: ResourcesDep, open_session: SessionOpenerDep, tasks: BackgroundTasks
) -> RefillHook:
    """What the daily pick calls on a poor fit: the app's refill scheduler, or nothing."""
    scheduler: RefillScheduler | None = getattr(request.app.state, "refill_scheduler", None)
    return _nothing if scheduler is None else scheduler(res, open_session, tasks)


RefillHookDep = Annotated[RefillHook, Depends(refill_hook)]


async def hint_tailor(request: Request) -> HintTailor | None:
    """The tutor's hint rewriter the app wired in, if any (app.py)."""
    tailor: HintTailor | None = getattr(request.app.state, "hint_tailor", None)
    return tailor


HintTailorDep = Annotated[HintTailor | None, Depends(hint_tailor)]
