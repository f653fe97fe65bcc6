"""Bodies of the usage and budget routes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from pydantic import Field

from koan.common.schemas import Input, Money, Schema


class DaySpend(Schema):
    day: date
    spent_usd: Money
    calls: int


class UsageOut(Schema):
    day: date = Field(description="Today (UTC): budgets are per UTC day.")
    spent_usd: Money
    budget_usd: Money
    remaining_usd: Money
    resets_at: datetime
    calls_by_purpose: dict[str, int] = Field(description="Today's calls: chat, hint, generation.")
    last_30_days: list[DaySpend] = Field(description="Days with calls, newest first.")


class UsageRow(Schema):
    day: date
    user_id: uuid.UUID | None = Field(description="None for calls of deleted accounts.")
    email: str | None
    calls: int
    cache_hits: int
    leaks_caught: int
    input_tokens: int
    output_tokens: int
    cost_usd: Money
    budget_usd: Money | None


class UsagePage(Schema):
    items: list[UsageRow]
    next_cursor: str | None
    total_cost_usd: Money = Field(description="Sum over the whole period, every page.")


class BudgetIn(Input):
    daily_budget_usd: Decimal | None = Field(
        ge=0, le=1000, max_digits=12, decimal_places=6,
        description="The learner's own daily budget; null returns to the configured default.",
    )  # fmt: skip


class BudgetOut(Schema):
    user_id: uuid.UUID
    daily_budget_usd: Money
    is_default: bool
    spent_today_usd: Money
