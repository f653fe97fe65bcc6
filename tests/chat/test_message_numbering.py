"""Messages are numbered by the database, not by a count read earlier in the request."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import repository
from koan.db import utcnow
from koan.models import Conversation, ConversationMessage, User


async def new_conversation(session: AsyncSession, learner: User) -> Conversation:
    now = utcnow()
    conversation = Conversation(
        user_id=learner.id, title="", message_count=0, created_at=now, updated_at=now
    )
    session.add(conversation)
    await session.flush()
    return conversation


async def test_a_message_is_numbered_after_one_stored_since_the_conversation_was_read(
    session: AsyncSession, learner: User
) -> None:
    conversation = await new_conversation(session, learner)
    # A reply stored by another request after this one read the conversation (count 0).
    reply = ConversationMessage(role="assistant", content="An earlier reply.")
    assert await repository.append_message(session, conversation.id, reply) is not None
    assert conversation.message_count == 0

    question = ConversationMessage(role="user", content="Next question", created_at=utcnow())
    conversation.title = "Next question"
    stored = await repository.add_message(session, conversation, question)
    assert stored is not None
    assert (reply.seq, stored.seq, conversation.message_count) == (1, 2, 2)
    rows = await session.execute(
        select(ConversationMessage.seq, ConversationMessage.role)
        .where(ConversationMessage.conversation_id == conversation.id)
        .order_by(ConversationMessage.seq)
    )
    assert rows.all() == [(1, "assistant"), (2, "user")]
    count, title = (
        await session.execute(
            select(Conversation.message_count, Conversation.title).where(
                Conversation.id == conversation.id
            )
        )
    ).one()
    assert (count, title) == (2, "Next question")
    # Stored messages read like flushed ones: every column set, the model's defaults applied.
    assert (stored.incomplete, stored.input_tokens, stored.leak_caught) == (False, 0, False)
    assert stored.id is not None


async def test_a_message_for_a_deleted_conversation_is_not_stored(
    session: AsyncSession, learner: User
) -> None:
    conversation = await new_conversation(session, learner)
    await repository.delete_conversation(session, conversation)
    message = ConversationMessage(role="user", content="Anyone?", created_at=utcnow())
    assert await repository.add_message(session, conversation, message) is None
