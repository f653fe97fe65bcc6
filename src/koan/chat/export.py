"""The learner's tutor conversations and the code the tutor showed them, for their data export
(the app hands these to progress)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import repository
from koan.clock import utc_iso
from koan.models import Conversation, ConversationMessage, ShownCode
from koan.pagination import keyset_pages

# Conversations per query: a page of them with all their messages stays small in memory.
BATCH = 50
# Pieces of shown code per query.
SHOWN_BATCH = 200


def _record(conversation: Conversation, messages: list[ConversationMessage]) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "exercise_id": str(conversation.exercise_id) if conversation.exercise_id else None,
        "created_at": utc_iso(conversation.created_at),
        "updated_at": utc_iso(conversation.updated_at),
        "messages": [
            {
                "seq": m.seq,
                "role": m.role,  # user (the learner) or assistant (the tutor), as in the API
                "content": m.content,
                "incomplete": m.incomplete,
                "created_at": utc_iso(m.created_at),
            }
            for m in messages
        ],
    }


async def conversation_records(
    session: AsyncSession, user_id: uuid.UUID
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every conversation of the learner with its messages, oldest first, in batches of
    JSON-ready records."""
    pages = keyset_pages(
        lambda after: repository.conversations_after(session, user_id, after=after, limit=BATCH),
        lambda conversation: (conversation.created_at, conversation.id),
    )
    async for page in pages:
        by_conversation: dict[uuid.UUID, list[ConversationMessage]] = {c.id: [] for c in page}
        for message in await repository.messages_of(session, list(by_conversation)):
            by_conversation[message.conversation_id].append(message)
        yield [_record(c, by_conversation[c.id]) for c in page]


def _shown_record(shown: ShownCode) -> dict[str, Any]:
    return {
        "id": shown.id,
        "exercise_id": str(shown.exercise_id),
        # None for a tailored hint, or once the conversation that showed it was deleted.
        "conversation_id": str(shown.conversation_id) if shown.conversation_id else None,
        "code": shown.code,
        "shown_at": utc_iso(shown.created_at),
    }


async def shown_code_records(
    session: AsyncSession, user_id: uuid.UUID
) -> AsyncIterator[list[dict[str, Any]]]:
    """The code the tutor showed the learner (the leak guard's ledger), in the order shown,
    in batches of JSON-ready records."""
    pages = keyset_pages(
        lambda after: repository.shown_after(session, user_id, after=after, limit=SHOWN_BATCH),
        lambda shown: shown.id,
    )
    async for page in pages:
        yield [_shown_record(s) for s in page]
