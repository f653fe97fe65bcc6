"""Tutor chat routes: conversations, and messages answered as JSON or Server-Sent Events."""

from __future__ import annotations

import contextlib
import uuid
from typing import Annotated, Protocol

import anyio
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from koan.auth.deps import VerifiedUser, access_claims, current_auth, ensure_verified
from koan.chat import service
from koan.chat.schemas import (
    ConversationDetail,
    ConversationIn,
    ConversationOut,
    ConversationPage,
    MessageIn,
    MessageOut,
    ReplyOut,
)
from koan.deps import ResourcesDep, SessionDep, SessionOpenerDep
from koan.errors import KoanError
from koan.models import ConversationMessage

router = APIRouter(prefix="/conversations", tags=["tutor"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=500, description="From the previous page.")]
# The id of the learner's stored message, on the reply and on a refusal that came after it.
MESSAGE_ID = "X-Koan-Message-Id"


class _ClosableStream(Protocol):
    def __aiter__(self) -> _ClosableStream: ...
    async def __anext__(self) -> bytes: ...
    async def aclose(self) -> None: ...


class EventStream(StreamingResponse):
    """text/event-stream whose body is always closed, even when the client went away while a
    chunk was being sent (Starlette then abandons the iterator without closing it)."""

    media_type = "text/event-stream"

    def __init__(self, stream: _ClosableStream, headers: dict[str, str] | None = None) -> None:
        super().__init__(
            stream,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
        )
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The headers and the first event (whose token is already here) go out at once.
        # Starlette sends the body from a task of its own, which would first wait its turn
        # behind whatever else the event loop has ready: other replies' tokens.
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code,
                 "headers": self.raw_headers}
            )  # fmt: skip
            first = await anext(self._stream, None)
            if first is not None:
                await send({"type": "http.response.body", "body": first, "more_body": True})
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()
            raise
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        """The rest of the body: `__call__` has sent the headers and the first event."""
        try:
            async for chunk in self._stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with anyio.CancelScope(shield=True):
                await self._stream.aclose()


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


_CONVERSATION_ID = TypeAdapter(uuid.UUID)


async def reply_target(
    request: Request, session: SessionDep, res: ResourcesDep
) -> service.ReplyTarget:
    """`VerifiedUser` and the caller's conversation together: one query on every message.

    The id is read from the path here, after the caller is known, so that a caller without a
    live session gets 401 whatever the id, as on every other route."""
    claims, via_cookie = access_claims(request, res)
    try:
        conversation_id = _CONVERSATION_ID.validate_python(request.path_params["conversation_id"])
    except ValidationError as exc:
        ensure_verified((await current_auth(request, session, res)).user)
        errors = [{**error, "loc": ("path", "conversation_id")} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    return await service.reply_target(session, claims, conversation_id, via_cookie=via_cookie)


ReplyTargetDep = Annotated[service.ReplyTarget, Depends(reply_target)]


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
    wants_stream = "text/event-stream" in request.headers.get("accept", "")
    user, conversation = target.user, target.conversation
    prepared = await service.prepare(session, res, target, data.content)
    # A reply streamed as it comes; one about an exercise is checked whole before it is sent.
    streamed = wants_stream and prepared.guard is None
    admission = await service.admit(session, res, user, prepared.request if streamed else None)
    lock = admission.lock_key
    handed_over = False
    stored: ConversationMessage | None = None
    try:

        async def store() -> ConversationMessage:
            nonlocal stored
            try:
                question = await service.store_question(session, res, conversation, data.content)
                # Committed now, as submissions are: a provider failure must not lose it.
                await session.commit()
            except BaseException:
                # At once, not when the request ends: on SQLite this transaction holds the
                # write lock, which a stream closing beside it needs to record its call.
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await session.rollback()
                raise
            stored = question
            return question

        if streamed:
            if admission.over_budget is not None:
                await store()  # refused, and the question is kept
                raise admission.over_budget
            stream = service.open_stream(res, open_session, user, prepared, admission)
            handed_over = True  # the stream releases the lock once its reply is stored
            question = await service.store_while_starting(stream, store)
            return EventStream(stream, {MESSAGE_ID: str(question.id)})
        question = await store()
        headers = {MESSAGE_ID: str(question.id)}
        # Exercise conversations are checked against the solution before anything is sent.
        result = await service.answer(session, res, user, prepared)
        reply = await service.store_answer(session, res, conversation, result)
        if wants_stream:
            await session.commit()
            return EventStream(service.ReplayStream(reply, conversation.id), headers)
        await session.commit()  # before the lock goes: the next message sees this reply
        return ReplyOut(
            message=MessageOut.model_validate(question), reply=MessageOut.model_validate(reply)
        )
    except KoanError as exc:
        if stored is not None:  # refused after it was stored (429, 503): say which message
            exc.headers[MESSAGE_ID] = str(stored.id)
        raise
    finally:
        if not handed_over:
            await service.release_reply_lock(res, lock)
