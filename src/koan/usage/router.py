"""Usage routes: a learner's own spending, and everyone's for administrators."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import Query

from koan.auth.deps import AdminUser, CurrentUser
from koan.common.routing import KoanRouter
from koan.deps import ResourcesDep, SessionDep
from koan.pagination import MAX_CURSOR_CHARS
from koan.usage import reports
from koan.usage.schemas import BudgetIn, BudgetOut, UsageOut, UsagePage

router = KoanRouter(tags=["usage"])


@router.get("/users/me/usage", response_model=UsageOut)
async def my_usage(user: CurrentUser, session: SessionDep, res: ResourcesDep) -> UsageOut:
    """Today's AI tutor spending against the daily budget, and the last 30 days."""
    return await reports.my_usage(session, res, user)


@router.get("/admin/usage", response_model=UsagePage)
async def all_usage(
    admin: AdminUser,
    session: SessionDep,
    res: ResourcesDep,
    since: date | None = None,
    until: date | None = None,
    user_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> UsagePage:
    """Everyone's spending per learner per UTC day (default: the last 30 days)."""
    return await reports.usage_page(
        session, res, since=since, until=until, user_id=user_id, limit=limit, cursor=cursor
    )


@router.get("/admin/usage/users/{user_id}/budget", response_model=BudgetOut)
async def get_budget(
    user_id: uuid.UUID, admin: AdminUser, session: SessionDep, res: ResourcesDep
) -> BudgetOut:
    """A learner's daily budget and today's spending."""
    return await reports.budget_of(session, res, user_id)


@router.put("/admin/usage/users/{user_id}/budget", response_model=BudgetOut)
async def set_budget(
    user_id: uuid.UUID, data: BudgetIn, admin: AdminUser, session: SessionDep, res: ResourcesDep
) -> BudgetOut:
    """Set a learner's own daily budget; null goes back to KOAN_LLM_USER_DAILY_BUDGET_USD."""
    return await reports.set_budget(session, res, admin, user_id, data.daily_budget_usd)
