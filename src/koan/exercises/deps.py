"""Route dependencies of the exercises domain."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request

from koan.adaptive.service import Refill
from koan.deps import ResourcesDep, SessionOpener, SessionOpenerDep
from koan.resources import Resources

# Asked to write the exercise the bank lacked for a learner (after the response has gone).
# The app wires generation's scheduler in (app.py): generation sits above exercises, whose
# bank it writes into, so exercises only knows this shape.
RefillHook = Callable[[uuid.UUID, Refill], Awaitable[object]]
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
