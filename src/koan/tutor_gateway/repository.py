"""Queries the gateway runs: the record of each call, a day's spending, learners' budgets."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from koan.models import Conversation, LLMBudget, LLMCall

_CALLS = cast("Table", LLMCall.__table__)
_CALL_COLUMNS = [column.key for column in _CALLS.columns]


def _call_values(prefix: str) -> dict[str, Any]:
    """The INSERT's values, bound as `<prefix><column>`. A call is paid for whether or not its
    conversation is still there: one deleted while the model wrote (in another tab) leaves the
    call on record unattached, as deleting it afterwards does, instead of failing its key."""
    values: dict[str, Any] = {
        name: bindparam(f"{prefix}{name}", type_=_CALLS.c[name].type) for name in _CALL_COLUMNS
    }
    values["conversation_id"] = (
        select(Conversation.id)
        .where(Conversation.id == values["conversation_id"])
        .scalar_subquery()
    )
    return values


# The table, not the mapped class: a plain Core INSERT, built once, no ORM flush around it.
_ADD_CALL = insert(_CALLS).values(_call_values(""))


# The same INSERT as a CTE, for a statement that stores a call together with what it
# produced (a tutor's reply, on PostgreSQL) in one round trip; its values are named apart.
ADD_CALL_CTE = insert(_CALLS).values(_call_values("call_")).cte("recorded_call")


async def add_call(session: AsyncSession, call: LLMCall) -> LLMCall:
    """Store `call` (every column set, its id included) in one statement; it then joins the
    session as a row just loaded, so a later change to it (a leak caught) is written."""
    if call.id is None:
        call.id = uuid.uuid4()
    await session.execute(_ADD_CALL, {name: getattr(call, name) for name in _CALL_COLUMNS})
    return stored_call(session, call)


def call_params(call: LLMCall) -> dict[str, Any]:
    """The values of `call` for `ADD_CALL_CTE` (an id given if it has none)."""
    if call.id is None:
        call.id = uuid.uuid4()
    return {f"call_{name}": getattr(call, name) for name in _CALL_COLUMNS}


def stored_call(session: AsyncSession, call: LLMCall) -> LLMCall:
    """`call`, once a statement has stored it, joins the session as a row just loaded (as
    `add_call` leaves it)."""
    make_transient_to_detached(call)
    session.add(call)
    return call


async def spent_on(session: AsyncSession, day: date, user_id: uuid.UUID | None = None) -> Decimal:
    """What the calls of `day` cost: one learner's, or everyone's when no user is given."""
    query = select(func.coalesce(func.sum(LLMCall.cost_usd), 0)).where(LLMCall.day == day)
    if user_id is not None:
        query = query.where(LLMCall.user_id == user_id)
    return Decimal(str((await session.execute(query)).scalar_one()))


# A learner's (or, for None, everyone's) spending on a UTC day.
Spending = tuple[date, uuid.UUID | None]


@functools.cache
def _spending_statement(learners: tuple[bool, ...], override: bool) -> Any:
    """The query of `spending_and_override` for one shape of question (for each spending,
    whether it is one learner's; whether the override is asked): built once per shape, with
    bound parameters, as the other statements every call runs."""
    columns = []
    for i, one_learner in enumerate(learners):
        query = select(func.coalesce(func.sum(LLMCall.cost_usd), 0)).where(
            LLMCall.day == bindparam(f"day_{i}")
        )
        if one_learner:
            query = query.where(LLMCall.user_id == bindparam(f"user_{i}"))
        columns.append(query.scalar_subquery())
    if override:
        columns.append(
            select(LLMBudget.daily_budget_usd)
            .where(LLMBudget.user_id == bindparam("budget_of"))
            .scalar_subquery()
        )
    return select(*columns)


async def spending_and_override(
    session: AsyncSession, spendings: Sequence[Spending], budget_of: uuid.UUID | None
) -> tuple[list[Decimal], Decimal | None]:
    """What each of `spendings` cost (as `spent_on`), and `budget_of`'s budget override (as
    `budget_override`; None when not asked): one query, none when nothing is asked."""
    if not spendings and budget_of is None:
        return [], None
    shape = tuple(user_id is not None for _, user_id in spendings)
    params: dict[str, Any] = {"budget_of": budget_of} if budget_of is not None else {}
    for i, (day, user_id) in enumerate(spendings):
        params[f"day_{i}"] = day
        if user_id is not None:
            params[f"user_{i}"] = user_id
    statement = _spending_statement(shape, budget_of is not None)
    row = (await session.execute(statement, params)).one()
    spent = [Decimal(str(value)) for value in row[: len(spendings)]]
    override = row[len(spendings)] if budget_of is not None else None
    return spent, None if override is None else Decimal(override)


async def spent_on_exercises(
    session: AsyncSession,
    period: tuple[datetime, datetime],
    learners: Sequence[uuid.UUID],
    exercises: Sequence[uuid.UUID],
) -> dict[uuid.UUID, Decimal]:
    """Learner -> what the tutor's replies in their conversations about `exercises` cost
    from `period[0]` to before `period[1]` (a day somewhere: the UTC days it spans, and the
    one before, narrow the read to ix_llm_calls_user_day; learners who spent nothing are left
    out). A call is counted under the UTC day it was held on, which for one that ran over
    midnight is the day before the one it was recorded on."""
    if not learners or not exercises:
        return {}
    start, end = period
    first = start.astimezone(UTC).date() - timedelta(days=1)
    last = end.astimezone(UTC).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    query = (
        select(LLMCall.user_id, func.sum(LLMCall.cost_usd))
        .where(
            LLMCall.user_id.in_(list(learners)),
            LLMCall.day.in_(days),
            LLMCall.created_at >= start,
            LLMCall.created_at < end,
            # The tutor's replies and the hints it tailored: both are the tutor's work.
            LLMCall.purpose.in_(("chat", "hint")),
            LLMCall.exercise_id.in_(list(exercises)),
        )
        .group_by(LLMCall.user_id)
    )
    return {row[0]: Decimal(str(row[1])) for row in await session.execute(query) if row[0]}


async def budget_override(session: AsyncSession, user_id: uuid.UUID) -> Decimal | None:
    row = await session.get(LLMBudget, user_id)
    return None if row is None else Decimal(row.daily_budget_usd)


async def set_budget_override(
    session: AsyncSession, user_id: uuid.UUID, amount: Decimal | None, *, by: uuid.UUID
) -> None:
    row = await session.get(LLMBudget, user_id)
    if amount is None:
        if row is not None:
            await session.delete(row)
    elif row is None:
        session.add(LLMBudget(user_id=user_id, daily_budget_usd=amount, updated_by=by))
    else:
        row.daily_budget_usd = amount
        row.updated_by = by
    await session.flush()
