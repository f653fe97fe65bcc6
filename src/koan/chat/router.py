"""Tutor chat routes: conversations, and messages answered as JSON or Server-Sent Events."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, Response, status

from koan.auth.deps import VerifiedUser
from koan.chat import service
from koan.chat.deps import ReplyTargetDep
from koan.chat.schemas import (
    ConversationDetail,
    ConversationIn,
    ConversationOut,
    ConversationPage,
    MessageIn,
    MessageOut,
    ReplyOut,
)
from koan.chat.streaming import EventStream
from koan.common.routing import PrefixedRouter
from koan.deps import ResourcesDep, SessionDep, SessionOpenerDep
from koan.pagination import MAX_CURSOR_CHARS

router = PrefixedRouter(prefix="/conversations", tags=["tutor"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=MAX_CURSOR_CHARS, description="From the previous page.")
]


@router.post("", response_model=ConversationOut, status_code=status.HTTP_201_CREATED)
async def create(
    data: ConversationIn, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ConversationOut:
    """Start a conversation with the tutor, about an exercise or about anything."""
    conversation = await service.start(session, res, user, data.exercise_id)
    return service.conversation_out(conversation)


@router.get("", response_model=ConversationPage)
async def list_conversations(
    user: VerifiedUser, session: SessionDep, limit: Limit = 20, cursor: Cursor = None
) -> ConversationPage:
    """The learner's conversations, most recently active first."""
    return await service.conversations_page(session, user, limit=limit, cursor=cursor)


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Messages per page.")] = 50,
    cursor: Cursor = None,
) -> ConversationDetail:
    """One conversation with its newest messages; `next_cursor` pages to older ones."""
    conversation = await service.owned(session, user, conversation_id)
    return await service.detail(session, conversation, limit=limit, cursor=cursor)


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: uuid.UUID, user: VerifiedUser, session: SessionDep
) -> Response:
    """Delete a conversation and its messages (the usage records stay, unattached)."""
    conversation = await service.owned(session, user, conversation_id)
    await service.delete(session, conversation)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{conversation_id}/messages",
    response_model=ReplyOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "description": "With `Accept: text/event-stream`: `token` events, then `done` "
            "(or `error`); see docs/tutor.md.",
            "content": {"text/event-stream": {}},
        },
        403: {"description": "TutorOff: the learner's class has switched the tutor off (why)"},
        409: {"description": "The tutor is still answering the previous message"},
        429: {"description": "Rate limited, or the daily budget is used up (Retry-After)"},
        503: {"description": "The tutor's model is unavailable (Retry-After)"},
    },
)
async def post_message(
    conversation_id: uuid.UUID,  # read (after the caller is checked) by `reply_target`
    data: MessageIn,
    request: Request,
    target: ReplyTargetDep,
    session: SessionDep,
    res: ResourcesDep,
    open_session: SessionOpenerDep,
) -> ReplyOut | Response:
    """Ask the tutor. The message is stored before the model is asked, so nothing is lost."""
    stream = "text/event-stream" in request.headers.get("accept", "")
    asked = await service.ask(session, res, open_session, target, data.content, stream=stream)
    if asked.events is not None:
        return EventStream(asked.events, {service.MESSAGE_ID_HEADER: str(asked.question.id)})
    return ReplyOut(
        message=MessageOut.model_validate(asked.question),
        reply=MessageOut.model_validate(asked.reply),
    )
