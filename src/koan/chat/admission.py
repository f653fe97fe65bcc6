"""Whether a question may be answered now: the rate limit, one reply in flight per learner,
and the budgets held for a streamed reply (the learner's, Koan's, and their class's)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from koan.errors import Conflict, KoanError
from koan.llm import CompletionRequest
from koan.models import User
from koan.resources import Resources
from koan.tutor_gateway import budgets


def reply_lock_key(user_id: uuid.UUID) -> str:
    return f"chat:reply-lock:{user_id}"


def reply_in_progress() -> Conflict:
    return Conflict(
        "The tutor is still answering your previous message; wait for it to finish.",
        code="ReplyInProgress",
    )


async def check_rate(res: Resources, user: User) -> None:
    await res.limiter.hit(
        res.settings.llm_chat_limit,
        "chat",
        str(user.id),
        detail="You are sending messages faster than the tutor can answer; wait a moment.",
    )


async def acquire_reply_lock(res: Resources, user: User) -> str:
    """Refuse (409 ReplyInProgress) while the tutor is still answering this learner."""
    key = reply_lock_key(user.id)
    if not await res.cache.set_if_absent(key, "1", ttl_s=res.settings.llm_reply_lock_ttl_s):
        raise reply_in_progress()
    return key


async def release_reply_lock(res: Resources, key: str) -> None:
    await res.cache.delete(key)


@dataclass
class Admission:
    """A question let through: the learner's reply lock, and for a streamed reply the budget
    held for it, or the budget's refusal (the question is stored before it is answered)."""

    lock_key: str
    reservation: budgets.Reservation | None = None
    over_budget: KoanError | None = None


async def admit(
    session: AsyncSession,
    res: Resources,
    user: User,
    streamed: CompletionRequest | None,
    *,
    limits: Sequence[budgets.Limit] = (),
) -> Admission:
    """The rate limit (429), the one-reply lock (409) and, for a `streamed` request, the
    budgets (429 BudgetExceeded): the learner's, Koan's and the class's `limits`, checked at
    once, so that on Redis their round trips overlap instead of adding up. Whatever one check
    took is given back when an earlier one refuses. (A reply answered whole holds its budgets
    call by call, `limits` included: see `reply.answer`.)"""
    checks: list[Awaitable[object]] = [check_rate(res, user), acquire_reply_lock(res, user)]
    if streamed is not None:
        projected = res.llm.projected_cost(streamed)
        checks.append(budgets.reserve(session, res, user.id, projected, limits=limits))
    rate, lock, *budget = await asyncio.gather(*checks, return_exceptions=True)
    reservation = budget[0] if budget else None
    for outcome in (rate, lock):
        if isinstance(outcome, BaseException):
            with anyio.CancelScope(shield=True):
                if isinstance(lock, str):
                    await release_reply_lock(res, lock)
                if isinstance(reservation, budgets.Reservation):
                    await budgets.settle(res, reservation, Decimal(0))
            raise outcome
    assert isinstance(lock, str)
    if reservation is None or isinstance(reservation, budgets.Reservation):
        return Admission(lock, reservation)
    if isinstance(reservation, KoanError):
        return Admission(lock, over_budget=reservation)
    with anyio.CancelScope(shield=True):
        await release_reply_lock(res, lock)
    raise cast(BaseException, reservation)
