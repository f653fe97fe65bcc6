"""Every LLM call Koan makes, and per-learner daily budgets set by administrators."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from koan.db import Base, UUIDPrimaryKey, utcnow


class LLMCall(UUIDPrimaryKey, Base):
    """One call to the tutor's model (or a cache hit): the source of truth for spending."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        Index("ix_llm_calls_user_day", "user_id", "day"),
        Index("ix_llm_calls_day", "day"),
    )

    # SET NULL: deleting an account must not make the global daily spend look smaller.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    purpose: Mapped[str] = mapped_column(String(16))  # chat | hint | generation
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0))
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    leak_caught: Mapped[bool] = mapped_column(Boolean, default=False)
    # ok | error | incomplete (the learner left mid-reply, or the stream broke off)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    exercise_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("exercises.id", ondelete="SET NULL"), default=None
    )
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), default=None
    )
    # The UTC day the call counts against: budgets and reports group by it on every backend.
    day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LLMBudget(Base):
    """An administrator's daily budget for one learner, replacing the configured default."""

    __tablename__ = "llm_budgets"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    daily_budget_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6))
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
