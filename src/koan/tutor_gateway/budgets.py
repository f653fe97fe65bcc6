"""Daily budgets: the projected cost of a call held before it is made, settled after.

Budgets live in the Cache (Redis when configured) so every worker sees the same running total,
one key per day; the `llm_calls` table is the source of truth, and a day's key is seeded
from it when the cache does not have it (a restart, a flushed Redis, a new day). The learner's
and Koan's budgets run on UTC days; a `Limit` may run on the days of a time zone of its own
(a class's, so that its budgets start over at the class's midnight).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import after_commit
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


def local_day(now: datetime, timezone: str) -> date:
    """The date at `now` in `timezone`."""
    return now.astimezone(ZoneInfo(timezone)).date()


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants `day` in `timezone` starts and ends at (a DST day is 23 or 25 h)."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


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
# A value read from the database is only ever added to the cache, never written over what is
# there: a worker that read the row just before a change committed would otherwise put the
# old budget back over the one the change published.
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
        await res.cache.set_if_absent(_budget_key(user_id), cached, ttl_s=_BUDGET_TTL_S)
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
    """Give a learner their own daily budget (None: back to the default), for every worker.

    The cached copy is dropped now and written over once the change has committed (written
    before, it would stand if the commit failed). Readers only add a copy where there is none,
    so one that read the row before the change cannot put the old budget back."""
    key = _budget_key(user_id)
    await res.cache.delete(key)
    await repository.set_budget_override(session, user_id, amount, by=by)
    value = _DEFAULT_BUDGET if amount is None else str(amount)

    async def publish(_: AsyncSession) -> None:
        await res.cache.set(key, value, ttl_s=_BUDGET_TTL_S)

    after_commit(session, publish)


def _ttl(res: Resources, until: datetime) -> float:
    """How long a day's key is kept: until its day ends, and a margin."""
    return max(1.0, (until - res.clock.now()).total_seconds()) + _KEY_MARGIN_S


@dataclass(frozen=True)
class Limit:
    """A daily limit beside the learner's own and Koan's that some calls also count against
    (a class's budgets for the conversations about its exercises). Its day's total is kept
    under `scope` like theirs, and seeded by `seed(session, day)`: what the database has
    recorded of the calls it counts on that day. Its days are those of `timezone` (they
    start over at midnight there). `whose` names it to the learner when it refuses."""

    scope: str
    limit_usd: Decimal
    whose: str
    seed: Callable[[AsyncSession, date], Awaitable[Decimal]]
    timezone: str = "UTC"

    def day(self, now: datetime) -> date:
        return local_day(now, self.timezone)

    def resets_at(self, now: datetime) -> datetime:
        """The next midnight in the limit's time zone, in UTC."""
        return day_bounds(self.day(now), self.timezone)[1]


def limit_key(day: date, limit: Limit) -> str:
    return f"llm:spend:{day.isoformat()}:{limit.scope}"


@dataclass(frozen=True)
class _Total:
    """One running total a reservation adds to, and where to start it from: `seed`, or for
    the learner's and Koan's totals `spending` (a UTC day, and the learner or None for
    everyone), which the database reads with the others a reservation lacks in one query."""

    key: str
    seed: Callable[[], Awaitable[Decimal]]
    ends: datetime  # when its day ends (the key is kept a little longer)
    spending: repository.Spending | None = None


@dataclass
class Reservation:
    """The projected cost of one call, held against today's budgets until it is settled.
    `day` is the UTC day the call is recorded under; `until`, when the last of its keys'
    days ends."""

    day: date
    keys: tuple[str, ...] = ()
    amount: float = 0.0
    settled: bool = field(default=False)
    until: datetime | None = None


async def reserve(
    session: AsyncSession,
    res: Resources,
    user_id: uuid.UUID,
    projected: Decimal,
    *,
    limits: Sequence[Limit] = (),
) -> Reservation:
    """Hold `projected` against the learner's and the global budget, and any further
    `limits`; 429 BudgetExceeded if one of them would go over. Increments are atomic, so
    concurrent workers cannot both squeeze in."""
    now = res.clock.now()
    day = utc_day(now)
    if res.llm.offline_only:
        return Reservation(day)  # the offline tutor is free: nothing to count
    amount = float(max(projected, Decimal(0)))
    utc_end = resets_at(now)
    totals = [
        _Total(
            user_spend_key(day, user_id),
            partial(repository.spent_on, session, day, user_id),
            utc_end,
            (day, user_id),
        ),
        _Total(
            global_spend_key(day),
            partial(repository.spent_on, session, day, None),
            utc_end,
            (day, None),
        ),
        *(
            _Total(
                limit_key(limit.day(now), limit),
                partial(limit.seed, session, limit.day(now)),
                limit.resets_at(now),
            )
            for limit in limits
        ),
    ]
    until = max(total.ends for total in totals)
    # Two round trips in the usual case: add to every total while reading the learner's
    # override (one script), and later settle them all (one more).
    spent, budget = await _add(session, res, user_id, until, totals, amount)
    try:
        user_limit = (
            res.settings.llm_user_daily_budget_usd if budget == _DEFAULT_BUDGET else Decimal(budget)
        )
        checks = [
            (spent[0], user_limit, "Your daily AI tutor budget", utc_end),
            (spent[1], res.settings.llm_global_daily_budget_usd, "Koan's daily AI budget", utc_end),
            *((total, limit.limit_usd, limit.whose, limit.resets_at(now)) for total, limit in zip(
                spent[2:], limits, strict=True
            )),
        ]  # fmt: skip
        for total, limit_usd, whose, reset in checks:
            if limit_usd is None or amount == 0:
                # No limit, or a projection of 0 (an unpriced model): counted, never refused.
                continue
            try:
                ensure_within_budget(
                    spent_usd=usd(total - amount),
                    limit_usd=limit_usd,
                    projected_usd=projected,
                    resets_in_seconds=(reset - now).total_seconds(),
                )
            except BudgetExceeded as exc:
                raise _budget_error(whose, limit_usd, now, reset, exc.retry_after) from None
    except BaseException:
        await res.cache.add_to_existing(
            [(total.key, -amount) for total in totals], ttl_s=_ttl(res, until)
        )
        raise
    return Reservation(day, tuple(total.key for total in totals), amount, until=until)


async def _add(
    session: AsyncSession,
    res: Resources,
    user_id: uuid.UUID,
    until: datetime,
    totals: Sequence[_Total],
    amount: float,
) -> tuple[list[float], str]:
    """Add `amount` to every total, all or none, and read the learner's budget as the cache
    keeps it (`_DEFAULT_BUDGET` or an override). A total the cache does not keep yet today is
    first seeded from the database, and a budget it does not keep is read from there: the
    learner's and Koan's spending and the override in one query, then seeded, added to and
    kept in one script. Returns the totals after, and the budget."""
    ttl_s = _ttl(res, until)
    budget_key = _budget_key(user_id)
    added, [budget] = await res.cache.add_to_existing(
        [(total.key, amount) for total in totals], ttl_s=ttl_s, read=[budget_key]
    )
    after = list(added)
    missing = [i for i, value in enumerate(added) if value is None]
    if not missing and budget is not None:
        return [value or 0.0 for value in after], budget
    counted = [total.key for total, value in zip(totals, added, strict=True) if value is not None]
    try:
        asked = [i for i in missing if totals[i].spending is not None]
        spendings, override = await repository.spending_and_override(
            session,
            [spending for i in asked if (spending := totals[i].spending) is not None],
            user_id if budget is None else None,
        )
        seeds = dict(zip(asked, spendings, strict=True))
        for i in missing:
            if i not in seeds:
                seeds[i] = await totals[i].seed()
        also = None
        if budget is None:
            budget = _DEFAULT_BUDGET if override is None else str(override)
            also = (budget_key, budget, _BUDGET_TTL_S)
        # Only the first worker's seed counts; a concurrent one finds the key already there.
        again = await res.cache.seed_and_add(
            [(totals[i].key, repr(float(seeds[i])), amount) for i in missing],
            ttl_s=ttl_s,
            also=also,
        )
        counted += [totals[i].key for i in missing]
        for i, seeded in zip(missing, again, strict=True):
            after[i] = seeded
    except BaseException:
        await res.cache.add_to_existing([(key, -amount) for key in counted], ttl_s=ttl_s)
        raise
    return [value or 0.0 for value in after], budget


def _budget_error(
    whose: str, limit: Decimal, now: datetime, reset: datetime, retry_after: int
) -> BudgetExceeded:
    hours = max(1, math.ceil((reset - now).total_seconds() / 3600))
    when = reset.isoformat().replace("+00:00", "Z")
    return BudgetExceeded(
        f"{whose} (${limit:.2f}) is used up. It resets at {when} (in about {hours} h). "
        "Hints from the exercise's ladder still work.",
        retry_after=retry_after,
    )


async def settle(
    res: Resources, reservation: Reservation, actual: Decimal, *, delete: Sequence[str] = ()
) -> None:
    """Replace the held projection by the real cost (once; later calls do nothing), and delete
    the cache keys `delete` (what the call held besides its budget: a reply's lock) in the
    same round trip; they are deleted even when there is nothing to settle.

    Only totals the cache still keeps are corrected: one lost meanwhile (a flushed or
    restarted cache, an evicted key) is seeded again from the call records when next needed,
    whereas a correction written alone would stand as the day's whole total."""
    delta = 0.0 if reservation.settled else float(actual) - reservation.amount
    reservation.settled = True
    if delta and reservation.keys:
        until = reservation.until or resets_at(res.clock.now())
        await res.cache.add_to_existing(
            [(key, delta) for key in reservation.keys], ttl_s=_ttl(res, until), delete=delete
        )
        return
    for key in delete:
        await res.cache.delete(key)


async def release(res: Resources, reservation: Reservation) -> None:
    """Give the whole reservation back (the call failed before costing anything)."""
    await settle(res, reservation, Decimal(0))
