"""What learners and administrators see of LLM usage and budgets."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from koan.common.schemas import EARLIEST_YEAR, LATEST_YEAR, within_years
from koan.errors import BadRequest, NotFound
from koan.models import User
from koan.pagination import decode_cursor, next_cursor
from koan.resources import Resources
from koan.tutor_gateway import repository as gateway
from koan.tutor_gateway.budgets import daily_budget, resets_at, set_budget_override, usd, utc_day
from koan.usage import repository
from koan.usage.schemas import BudgetOut, DaySpend, UsageOut, UsagePage, UsageRow

HISTORY_DAYS = 30


async def my_usage(session: AsyncSession, res: Resources, user: User) -> UsageOut:
    now = res.clock.now()
    today = utc_day(now)
    spent = await gateway.spent_on(session, today, user.id)
    budget = await daily_budget(session, res, user.id)
    history = await repository.daily_totals(
        session, user.id, since=today - timedelta(days=HISTORY_DAYS - 1)
    )
    by_purpose = {"chat": 0, "hint": 0, "generation": 0}
    by_purpose.update(await repository.calls_by_purpose(session, user.id, today))
    return UsageOut(
        day=today,
        spent_usd=usd(spent),
        budget_usd=usd(budget),
        remaining_usd=usd(max(Decimal(0), budget - spent)),
        resets_at=resets_at(now),
        calls_by_purpose=by_purpose,
        last_30_days=[DaySpend(day=d, spent_usd=usd(c), calls=n) for d, c, n in history],
    )


async def everyones_days(session: AsyncSession, res: Resources) -> list[repository.DayTotal]:
    """Everyone's calls, learners, tokens and cost per UTC day over the last 30 days, newest
    first (each day whole, whatever the number of learners)."""
    today = utc_day(res.clock.now())
    return await repository.everyones_days(
        session, since=today - timedelta(days=HISTORY_DAYS - 1), until=today
    )


async def usage_page(
    session: AsyncSession,
    res: Resources,
    *,
    since: date | None,
    until: date | None,
    user_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> UsagePage:
    """Everyone's spending per learner per day, newest day first."""
    for day in (since, until):
        if day is not None and not within_years(day):
            raise BadRequest(
                f"Ask for days between the years {EARLIEST_YEAR} and {LATEST_YEAR}.",
                code="BadPeriod",
            )
    today = utc_day(res.clock.now())
    until = until or today
    since = since or until - timedelta(days=HISTORY_DAYS - 1)
    if since > until:
        raise BadRequest("'since' must not be after 'until'.", code="BadPeriod")
    rows = await repository.report(
        session,
        since=since,
        until=until,
        user_id=user_id,
        after=decode_cursor(cursor, date, uuid.UUID) if cursor else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    overrides = await repository.budget_overrides(
        session, [r.user_id for r in page if r.user_id is not None]
    )
    default = res.settings.llm_user_daily_budget_usd
    total = sum(
        (r.cost_usd for r in await repository.report(
            session, since=since, until=until, user_id=user_id
        )),
        Decimal(0),
    )  # fmt: skip
    items = [
        UsageRow(
            day=r.day,
            user_id=r.user_id,
            email=r.email,
            calls=r.calls,
            cache_hits=r.cache_hits,
            leaks_caught=r.leaks_caught,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cost_usd=usd(r.cost_usd),
            budget_usd=None if r.user_id is None else usd(overrides.get(r.user_id, default)),
        )
        for r in page
    ]
    after = next_cursor(rows, limit, lambda r: (r.day, r.user_id or uuid.UUID(int=0)))
    return UsagePage(items=items, next_cursor=after, total_cost_usd=usd(total))


async def budget_of(session: AsyncSession, res: Resources, user_id: uuid.UUID) -> BudgetOut:
    if await repository.user_by_id(session, user_id) is None:
        raise NotFound("There is no user with this id.")
    override = await gateway.budget_override(session, user_id)
    spent = await gateway.spent_on(session, utc_day(res.clock.now()), user_id)
    return BudgetOut(
        user_id=user_id,
        daily_budget_usd=usd(
            override if override is not None else res.settings.llm_user_daily_budget_usd
        ),
        is_default=override is None,
        spent_today_usd=usd(spent),
    )


async def set_budget(
    session: AsyncSession, res: Resources, admin: User, user_id: uuid.UUID, amount: Decimal | None
) -> BudgetOut:
    """Give a learner their own daily budget (None: back to the default). Takes effect at the
    next call on every worker: the override is written through to the shared cache."""
    if await repository.user_by_id(session, user_id) is None:
        raise NotFound("There is no user with this id.")
    await set_budget_override(session, res, user_id, amount, by=admin.id)
    return await budget_of(session, res, user_id)
