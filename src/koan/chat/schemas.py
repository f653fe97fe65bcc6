"""Bodies of the tutor chat routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from koan.common.schemas import Input, Money, Schema, clean_text, visible

MAX_MESSAGE_CHARS = 8000


def _message_text(value: str) -> str:
    value = clean_text(value)
    # Spaces, or invisible characters alone, ask nothing.
    if not visible(value):
        raise ValueError("is empty: write a question for the tutor")
    return value


MessageText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_MESSAGE_CHARS),
    AfterValidator(_message_text),
]


class ConversationIn(Input):
    exercise_id: uuid.UUID | None = Field(
        default=None, description="Tie the conversation to an exercise (the tutor sees it)."
    )


class MessageIn(Input):
    content: MessageText


class MessageOut(Schema):
    id: uuid.UUID
    seq: int = Field(description="Position in the conversation, from 1.")
    role: str = Field(description="user or assistant")
    content: str
    incomplete: bool = Field(
        description="The reply was cut short (the learner left, or the provider broke off)."
    )
    model: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: Money
    created_at: datetime


class ConversationOut(Schema):
    id: uuid.UUID
    exercise_id: uuid.UUID | None
    title: str
    message_count: int
    created_at: datetime
    updated_at: datetime


class ConversationPage(Schema):
    items: list[ConversationOut]
    next_cursor: str | None


class ConversationDetail(ConversationOut):
    messages: list[MessageOut] = Field(
        description="The newest messages, oldest first; next_cursor pages to older ones."
    )
    next_cursor: str | None


class ReplyOut(Schema):
    message: MessageOut = Field(description="The learner's message, as stored.")
    reply: MessageOut = Field(description="The tutor's answer.")
