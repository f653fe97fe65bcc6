"""Daily budgets: the projected cost of a call held before it is made, settled after.

Budgets live in the Cache (Redis when configured) so every worker sees the same running total,
one key per UTC day; the `llm_calls` table is the source of truth, and a day's key is seeded
from it when the cache does not have it (a restart, a flushed Redis, a new day).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from koan.errors import BudgetExceeded
from koan.llm import ensure_within_budget
from koan.resources import Resources
from koan.tutor_gateway import repository

# A day's spending key outlives midnight a little, so a call settled just after it still lands.
_KEY_MARGIN_S = 3600
_MICRO = Decimal("0.000001")


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def resets_at(now: datetime) -> datetime:
    """When today's budgets start over: the next midnight, UTC."""
    return datetime.combine(utc_day(now) + timedelta(days=1), time(0), tzinfo=UTC)


def usd(value: float | Decimal) -> Decimal:
    """Round to the micro-dollar, the precision the call records keep."""
    return Decimal(str(value)).quantize(_MICRO, rounding=ROUND_HALF_UP)


def user_spend_key(day: date, user_id: uuid.UUID) -> str:
    return f"llm:spend:{day.isoformat()}:user:{user_id}"


def global_spend_key(day: date) -> str:
    return f"llm:spend:{day.isoformat()}:global"


_DEFAULT_BUDGET = "default"
# Overrides change rarely and are written through (set_budget_override), so every call can
# skip the query; the TTL only bounds how long a change made behind Koan's back goes unseen.
_BUDGET_TTL_S = 300.0


def _budget_key(user_id: uuid.UUID) -> str:
    return f"llm:budget:{user_id}"


async def daily_budget(session: AsyncSession, res: Resources, user_id: uuid.UUID) -> Decimal:
    """The learner's daily budget: an administrator's override, else the configured default."""
    return await _daily_budget(session, res, user_id, await res.cache.get(_budget_key(user_id)))


async def _daily_budget(
    session: AsyncSession, res: Resources, user_id: uuid.UUID, cached: str | None
) -> Decimal:
    """`daily_budget` from the cached value already read (None: not cached)."""
    if cached is None:
        override = await repository.budget_override(session, user_id)
        cached = _DEFAULT_BUDGET if override is None else str(override)
        await res.cache.set(_budget_key(user_id), cached, ttl_s=_BUDGET_TTL_S)
    if cached == _DEFAULT_BUDGET:
        return res.settings.llm_user_daily_budget_usd
    return Decimal(cached)


async def set_budget_override(
    session: AsyncSession,
    res: Resources,
    user_id: uuid.UUID,
    amount: Decimal | None,
    *,
    by: uuid.UUID,
) -> None:
    """Give a learner their own daily budget (None: back to the default), for every worker."""
    await repository.set_budget_override(session, user_id, amount, by=by)
    value = _DEFAULT_BUDGET if amount is None else str(amount)
    await res.cache.set(_budget_key(user_id), value, ttl_s=_BUDGET_TTL_S)


async def _seed_total(
    session: AsyncSession, res: Resources, key: str, day: date, user_id: uuid.UUID | None
) -> None:
    """Create today's missing key, starting from what the database has recorded."""
    spent = await repository.spent_on(session, day, user_id)
    # Only the first worker's seed counts; a concurrent one finds the key already there.
    await res.cache.set_if_absent(key, repr(float(spent)), ttl_s=_ttl(res, day))


def _ttl(res: Resources, day: date) -> float:
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
    return max(1.0, (end - res.clock.now()).total_seconds()) + _KEY_MARGIN_S


@dataclass
class Reservation:
    """The projected cost of one call, held against today's budgets until it is settled."""

    day: date
    keys: tuple[str, ...] = ()
    amount: float = 0.0
    settled: bool = field(default=False)


async def reserve(
    session: AsyncSession, res: Resources, user_id: uuid.UUID, projected: Decimal
) -> Reservation:
    """Hold `projected` against the learner's and the global budget; 429 BudgetExceeded if
    either would go over. Increments are atomic, so concurrent workers cannot both squeeze in."""
    now = res.clock.now()
    day = utc_day(now)
    if res.llm.offline_only:
        return Reservation(day)  # the offline tutor is free: nothing to count
    amount = float(max(projected, Decimal(0)))
    user_key, global_key = user_spend_key(day, user_id), global_spend_key(day)
    held = (user_key, global_key)
    ttl_s = _ttl(res, day)
    # Two round trips in the usual case: add to both totals while reading the override (one
    # script), and later settle both (one more). A total not kept yet today is first seeded
    # from the database, then added to.
    added, [override] = await res.cache.add_to_existing(
        [(key, amount) for key in held], ttl_s=ttl_s, read=[_budget_key(user_id)]
    )
    totals = list(added)
    counted = [key for key, total in zip(held, added, strict=True) if total is not None]
    try:
        missing = [i for i, total in enumerate(added) if total is None]
        for i in missing:
            await _seed_total(session, res, held[i], day, user_id if i == 0 else None)
        if missing:
            again = await res.cache.incr_float_many(
                [(held[i], amount) for i in missing], ttl_s=ttl_s
            )
            counted += [held[i] for i in missing]
            for i, seeded in zip(missing, again, strict=True):
                totals[i] = seeded
        user_total, global_total = (total or 0.0 for total in totals)  # each one is kept now
        user_limit = await _daily_budget(session, res, user_id, override)
        checks = (
            (user_total, user_limit, "user"),
            (global_total, res.settings.llm_global_daily_budget_usd, "global"),
        )
        for total, limit, scope in checks:
            if limit is None or amount == 0:
                # No limit, or a projection of 0 (an unpriced model): counted, never refused.
                continue
            try:
                ensure_within_budget(
                    spent_usd=usd(total - amount),
                    limit_usd=limit,
                    projected_usd=projected,
                    resets_in_seconds=(resets_at(now) - now).total_seconds(),
                )
            except BudgetExceeded as exc:
                raise _budget_error(scope, limit, now, exc.retry_after) from None
    except BaseException:
        await res.cache.incr_float_many([(key, -amount) for key in counted], ttl_s=ttl_s)
        raise
    return Reservation(day, held, amount)


def _budget_error(scope: str, limit: Decimal, now: datetime, retry_after: int) -> BudgetExceeded:
    reset = resets_at(now)
    hours = max(1, math.ceil((reset - now).total_seconds() / 3600))
    whose = "Your daily AI tutor budget" if scope == "user" else "Koan's daily AI budget"
    when = reset.isoformat().replace("+00:00", "Z")
    return BudgetExceeded(
        f"{whose} (${limit:.2f}) is used up. It resets at {when} (in about {hours} h). "
        "Hints from the exercise's ladder still work.",
        retry_after=retry_after,
    )


async def settle(res: Resources, reservation: Reservation, actual: Decimal) -> None:
    """Replace the held projection by the real cost (once; later calls do nothing)."""
    if reservation.settled:
        return
    reservation.settled = True
    delta = float(actual) - reservation.amount
    if delta and reservation.keys:
        await res.cache.incr_float_many(
            [(key, delta) for key in reservation.keys], ttl_s=_ttl(res, reservation.day)
        )


async def release(res: Resources, reservation: Reservation) -> None:
    """Give the whole reservation back (the call failed before costing anything)."""
    await settle(res, reservation, Decimal(0))
