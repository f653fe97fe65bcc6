"""Tutor conversations and their messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from koan.db import Base, UUIDPrimaryKey, utcnow


class Conversation(UUIDPrimaryKey, Base):
    """A learner's conversation with the tutor, optionally about one exercise."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # An exercise removed from the bank leaves the conversation in place, unattached.
    exercise_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("exercises.id", ondelete="SET NULL"), default=None
    )
    title: Mapped[str] = mapped_column(String(200), default="")
    # Messages are numbered 1, 2, ... within the conversation (stable order, cheap paging).
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationMessage(UUIDPrimaryKey, Base):
    """One turn: the learner's message, or the tutor's reply with its accounting."""

    __tablename__ = "chat_messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    # True when the learner left (or the provider broke off) before the reply was finished.
    incomplete: Mapped[bool] = mapped_column(Boolean, default=False)
    provider: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str | None] = mapped_column(String(128), default=None)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), default=Decimal(0))
    leak_caught: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShownCode(Base):
    """Code the tutor showed a learner about one exercise (a reply's or a tailored hint's), kept
    for the leak guard's sum: a solution handed out in parts adds up even after the learner
    deletes the conversation that showed a part. Only the code and the sentences holding it,
    never the conversation's words."""

    __tablename__ = "shown_code"
    __table_args__ = (Index("ix_shown_code_user_exercise", "user_id", "exercise_id", "id"),)

    # Numbered in the order shown: the guard stacks earlier edits in that order.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    exercise_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"))
    # The conversation it was shown in, while it exists (its own history is read whole); None
    # for a hint.
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), default=None
    )
    code: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
