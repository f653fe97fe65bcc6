"""Spending checks for LLM budgets (pure; the lead's storage keeps the running totals)."""

from __future__ import annotations

import math
from decimal import Decimal

from koan.errors import BudgetExceeded
from koan.llm.pricing import DEFAULT_PRICES, PriceTable, estimate_message_tokens
from koan.llm.types import CompletionRequest, Usage


def projected_cost_usd(
    req: CompletionRequest, model: str, prices: PriceTable | None = None
) -> Decimal:
    """Worst-case cost of a request: estimated prompt plus the full max_tokens reply."""
    usage = Usage(estimate_message_tokens(req.messages), req.max_tokens, estimated=True)
    return (prices or DEFAULT_PRICES).cost_usd(model, usage)


def ensure_within_budget(
    *,
    spent_usd: Decimal,
    limit_usd: Decimal | None,
    projected_usd: Decimal = Decimal(0),
    resets_in_seconds: float,
    scope: str = "daily",
) -> None:
    """Raise BudgetExceeded (429, Retry-After) when this call would go over the limit."""
    if limit_usd is None:
        return
    if spent_usd + projected_usd <= limit_usd:
        return
    wait = max(1, math.ceil(resets_in_seconds))
    raise BudgetExceeded(
        f"The {scope} AI tutor budget (${limit_usd:.2f}) is used up; it resets in "
        f"{_human_duration(wait)}. The offline tutor and hints still work.",
        retry_after=wait,
    )


def _human_duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{round(seconds / 3600)} h"
