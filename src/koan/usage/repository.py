"""Queries behind the usage reports: spending per purpose, per day and per learner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Integer, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import LLMBudget, LLMCall, User


async def calls_by_purpose(session: AsyncSession, user_id: uuid.UUID, day: date) -> dict[str, int]:
    rows = await session.execute(
        select(LLMCall.purpose, func.count())
        .where(LLMCall.user_id == user_id, LLMCall.day == day)
        .group_by(LLMCall.purpose)
    )
    return {purpose: int(count) for purpose, count in rows.all()}


async def daily_totals(
    session: AsyncSession, user_id: uuid.UUID, since: date
) -> list[tuple[date, Decimal, int]]:
    """(day, cost, calls) for each day with calls since `since`, newest first."""
    rows = await session.execute(
        select(LLMCall.day, func.sum(LLMCall.cost_usd), func.count())
        .where(LLMCall.user_id == user_id, LLMCall.day >= since)
        .group_by(LLMCall.day)
        .order_by(LLMCall.day.desc())
    )
    return [(day, Decimal(str(cost)), int(count)) for day, cost, count in rows.all()]


@dataclass(frozen=True)
class DayTotal:
    day: date
    calls: int
    learners: int
    tokens: int
    cost_usd: Decimal


async def everyones_days(session: AsyncSession, *, since: date, until: date) -> list[DayTotal]:
    """Everyone's calls per day from `since` to `until`, newest first: one row a day, however
    many learners called."""
    rows = await session.execute(
        select(
            LLMCall.day,
            func.count(),
            func.count(func.distinct(LLMCall.user_id)),
            func.coalesce(func.sum(LLMCall.input_tokens + LLMCall.output_tokens), 0),
            func.coalesce(func.sum(LLMCall.cost_usd), 0),
        )
        .where(LLMCall.day >= since, LLMCall.day <= until)
        .group_by(LLMCall.day)
        .order_by(LLMCall.day.desc())
    )
    return [
        DayTotal(day, int(calls), int(learners), int(tokens), Decimal(str(cost)))
        for day, calls, learners, tokens, cost in rows.all()
    ]


@dataclass(frozen=True)
class ReportRow:
    day: date
    user_id: uuid.UUID | None
    email: str | None
    calls: int
    cache_hits: int
    leaks_caught: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


# Calls of deleted accounts have no user; they group under this id so paging stays stable.
_NO_USER = uuid.UUID(int=0)


async def report(
    session: AsyncSession,
    *,
    since: date,
    until: date,
    user_id: uuid.UUID | None = None,
    after: tuple[date, uuid.UUID] | None = None,
    limit: int | None = None,
) -> Sequence[ReportRow]:
    """Per learner per day totals, newest day first (then by user id), keyset-paged."""
    who = func.coalesce(LLMCall.user_id, _NO_USER)
    inner = (
        select(
            LLMCall.day.label("day"),
            who.label("who"),
            func.count().label("calls"),
            func.sum(cast(LLMCall.cache_hit, Integer)).label("cache_hits"),
            func.sum(cast(LLMCall.leak_caught, Integer)).label("leaks"),
            func.sum(LLMCall.input_tokens).label("input_tokens"),
            func.sum(LLMCall.output_tokens).label("output_tokens"),
            func.sum(LLMCall.cost_usd).label("cost"),
        )
        .where(LLMCall.day >= since, LLMCall.day <= until)
        .group_by(LLMCall.day, who)
    )
    if user_id is not None:
        inner = inner.where(LLMCall.user_id == user_id)
    sub = inner.subquery()
    query = (
        select(sub, User.email)
        .outerjoin(User, User.id == sub.c.who)
        .order_by(sub.c.day.desc(), sub.c.who)
    )
    if after is not None:
        query = query.where(
            or_(sub.c.day < after[0], and_(sub.c.day == after[0], sub.c.who > after[1]))
        )
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.execute(query)).all()
    return [
        ReportRow(
            day=row.day,
            user_id=None if row.who == _NO_USER else row.who,
            email=row.email,
            calls=int(row.calls),
            cache_hits=int(row.cache_hits or 0),
            leaks_caught=int(row.leaks or 0),
            input_tokens=int(row.input_tokens or 0),
            output_tokens=int(row.output_tokens or 0),
            cost_usd=Decimal(str(row.cost or 0)),
        )
        for row in rows
    ]


async def budget_overrides(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Decimal]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(LLMBudget.user_id, LLMBudget.daily_budget_usd).where(LLMBudget.user_id.in_(user_ids))
    )
    return {uid: Decimal(amount) for uid, amount in rows.all()}


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (
        await session.execute(select(User).where(User.email == email.strip().lower()))
    ).scalar_one_or_none()
