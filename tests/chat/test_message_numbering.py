"""Messages are numbered by the database, not by a count read earlier in the request; a
reply starts from the history read with the conversation."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth import service as auth_service
from koan.chat import repository, service
from koan.db import utcnow
from koan.errors import Conflict
from koan.models import Conversation, ConversationMessage, User
from koan.resources import Resources
from koan.security import AccessClaims, decode_access_token


async def new_conversation(session: AsyncSession, learner: User) -> Conversation:
    now = utcnow()
    conversation = Conversation(
        user_id=learner.id, title="", message_count=0, created_at=now, updated_at=now
    )
    session.add(conversation)
    await session.flush()
    return conversation


async def claims_of(session: AsyncSession, res: Resources, learner: User) -> AccessClaims:
    """The claims of a fresh access token of `learner`, as a request presents them."""
    issued = await auth_service.open_session(session, res, learner, user_agent="tests")
    return decode_access_token(issued.access_token, key=res.settings.signing_key, now=utcnow())


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


async def test_the_reply_starts_from_the_newest_messages_oldest_first(
    session: AsyncSession, resources: Resources, learner: User
) -> None:
    conversation = await new_conversation(session, learner)
    for n in range(5):
        role = "user" if n % 2 == 0 else "assistant"
        message = ConversationMessage(role=role, content=f"message {n + 1}", created_at=utcnow())
        assert await repository.append_message(session, conversation.id, message) is not None
    claims = await claims_of(session, resources, learner)

    found = await repository.caller_and_conversation(
        session, claims.session_id, learner.id, conversation.id, history_limit=3
    )
    assert found is not None
    assert found.conversation is not None
    assert found.history == [
        ("user", "message 3"), ("assistant", "message 4"), ("user", "message 5")
    ]  # fmt: skip

    empty = await new_conversation(session, learner)
    found = await repository.caller_and_conversation(
        session, claims.session_id, learner.id, empty.id, history_limit=3
    )
    assert found is not None
    assert found.history == []
    someone_elses = uuid.uuid4()
    found = await repository.caller_and_conversation(
        session, claims.session_id, learner.id, someone_elses, history_limit=3
    )
    assert found is not None
    assert (found.conversation, found.history) == (None, [])


async def test_a_question_is_refused_when_a_reply_was_stored_after_its_history_was_read(
    session: AsyncSession, resources: Resources, learner: User
) -> None:
    conversation = await new_conversation(session, learner)
    claims = await claims_of(session, resources, learner)
    found = await repository.caller_and_conversation(
        session, claims.session_id, learner.id, conversation.id, history_limit=3
    )
    assert found is not None
    assert found.conversation is not None
    assert found.history == []
    # The previous reply is stored (and its lock let go) after the history was read, but
    # before this request took the reply lock: the prompt would lack it.
    reply = ConversationMessage(role="assistant", content="A late reply.", created_at=utcnow())
    assert await repository.append_message(session, conversation.id, reply) is not None

    with pytest.raises(Conflict) as refused:
        await service.store_question(session, resources, found.conversation, "Next question")
    assert refused.value.code == "ReplyInProgress"
