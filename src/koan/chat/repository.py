"""Queries for conversations and their messages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Conversation, ConversationMessage, LearnerProfile


async def conversation_of(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    """The conversation if it belongs to this learner (else None, as if it did not exist)."""
    return (
        await session.execute(
            select(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == user_id
            )
        )
    ).scalar_one_or_none()


async def conversation_and_profile(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> tuple[Conversation, LearnerProfile | None] | None:
    """The learner's conversation and their profile in one round trip (for a reply)."""
    row = (
        await session.execute(
            select(Conversation, LearnerProfile)
            .outerjoin(LearnerProfile, LearnerProfile.user_id == Conversation.user_id)
            .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def conversations(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Conversation]:
    """The learner's conversations, most recently active first."""
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(limit)
    )
    if before is not None:
        stamp, last_id = before
        query = query.where(
            or_(
                Conversation.updated_at < stamp,
                and_(Conversation.updated_at == stamp, Conversation.id < last_id),
            )
        )
    return (await session.execute(query)).scalars().all()


async def messages_before(
    session: AsyncSession, conversation_id: uuid.UUID, *, before_seq: int | None, limit: int
) -> Sequence[ConversationMessage]:
    """Up to `limit` messages older than `before_seq` (newest first)."""
    query = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.seq.desc())
        .limit(limit)
    )
    if before_seq is not None:
        query = query.where(ConversationMessage.seq < before_seq)
    return (await session.execute(query)).scalars().all()


async def history(
    session: AsyncSession, conversation_id: uuid.UUID, *, limit: int
) -> list[tuple[str, str]]:
    """The newest `limit` messages as (role, content), oldest first: what a prompt needs."""
    rows = await session.execute(
        select(ConversationMessage.role, ConversationMessage.content)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.seq.desc())
        .limit(limit)
    )
    return [(role, content) for role, content in reversed(rows.all())]


async def add_message(
    session: AsyncSession, conversation: Conversation, message: ConversationMessage
) -> ConversationMessage:
    """Append a message: numbered after the last one; the conversation becomes most recent.

    Callers hold the learner's reply lock, so one writer numbers a conversation's messages at
    a time; the unique (conversation_id, seq) constraint backs that up."""
    conversation.message_count += 1
    conversation.updated_at = message.created_at
    message.seq = conversation.message_count
    message.conversation_id = conversation.id
    session.add(message)
    await session.flush()
    return message


async def delete_conversation(session: AsyncSession, conversation: Conversation) -> None:
    await session.execute(delete(Conversation).where(Conversation.id == conversation.id))


# Built once: every streamed reply runs it.
_NEXT_SEQ = (
    update(Conversation)
    .where(Conversation.id == bindparam("conversation_id"))
    .values(message_count=Conversation.message_count + 1, updated_at=bindparam("now"))
    .returning(Conversation.message_count)
    .execution_options(synchronize_session=False)
)


async def append_message(
    session: AsyncSession, conversation_id: uuid.UUID, message: ConversationMessage
) -> ConversationMessage | None:
    """`add_message` for a conversation that is not loaded (a stream storing its reply): the
    count is bumped and read back in one statement. None if the conversation is gone.

    The message is inserted by the session's next flush (the stream's commit, together with
    the call's record)."""
    params = {"conversation_id": conversation_id, "now": message.created_at}
    seq = (await session.execute(_NEXT_SEQ, params)).scalar_one_or_none()
    if seq is None:
        return None
    message.seq = seq
    message.conversation_id = conversation_id
    session.add(message)
    return message
