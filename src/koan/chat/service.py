"""The tutor chat: the learner's conversations, and `ask`, which takes a question from
admission to the tutor's answer (whole, or streamed)."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import admission, reply, repository, streaming
from koan.chat.reply import ReplyTarget
from koan.chat.schemas import (
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    MessageOut,
)
from koan.db import checkpoint as db_checkpoint
from koan.errors import KoanError, NotFound
from koan.exercises import repository as exercises
from koan.models import Conversation, ConversationMessage, LLMCall, User
from koan.pagination import decode_cursor, next_cursor
from koan.resources import Resources
from koan.tutor_gateway import budgets

# The id of the learner's stored message, on the reply and on a refusal that came after it.
MESSAGE_ID_HEADER = "X-Koan-Message-Id"


# -- conversations -------------------------------------------------------------------------------


def no_conversation() -> NotFound:
    """Missing and someone else's look the same."""
    return NotFound("There is no conversation with this id.")


def conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut.model_validate(conversation)


async def owned(session: AsyncSession, user: User, conversation_id: uuid.UUID) -> Conversation:
    """The learner's own conversation; anyone else's is reported as missing."""
    conversation = await repository.conversation_of(session, user.id, conversation_id)
    if conversation is None:
        raise no_conversation()
    return conversation


async def start(
    session: AsyncSession, res: Resources, user: User, exercise_id: uuid.UUID | None
) -> Conversation:
    title = ""
    if exercise_id is not None:
        exercise = await exercises.visible_exercise(
            session, exercise_id, user.id, everything=user.role == "admin"
        )
        if exercise is None:
            raise NotFound("There is no exercise with this id.", code="ExerciseNotFound")
        title = exercise.title
    now = res.clock.now()
    conversation = Conversation(
        user_id=user.id,
        exercise_id=exercise_id,
        title=title,
        message_count=0,
        created_at=now,
        updated_at=now,
    )
    session.add(conversation)
    await session.flush()
    return conversation


async def conversations_page(
    session: AsyncSession, user: User, *, limit: int, cursor: str | None
) -> ConversationPage:
    before = decode_cursor(cursor, datetime, uuid.UUID) if cursor else None
    rows = await repository.conversations(session, user.id, before=before, limit=limit + 1)
    items = [conversation_out(c) for c in rows[:limit]]
    return ConversationPage(
        items=items, next_cursor=next_cursor(rows, limit, lambda c: (c.updated_at, c.id))
    )


async def detail(
    session: AsyncSession, conversation: Conversation, *, limit: int, cursor: str | None
) -> ConversationDetail:
    """The conversation with its newest messages (oldest first); the cursor pages back."""
    before_seq = decode_cursor(cursor, int)[0] if cursor else None
    rows = await repository.messages_before(
        session, conversation.id, before_seq=before_seq, limit=limit + 1
    )
    page = list(rows[:limit])
    after = next_cursor(rows, limit, lambda m: (m.seq,))
    page.reverse()
    return ConversationDetail(
        **conversation_out(conversation).model_dump(),
        messages=[MessageOut.model_validate(m) for m in page],
        next_cursor=after,
    )


async def delete(session: AsyncSession, conversation: Conversation) -> None:
    await repository.delete_conversation(session, conversation)


# -- a question and the tutor's answer -----------------------------------------------------------


async def store_question(
    session: AsyncSession, res: Resources, conversation: Conversation, content: str
) -> ConversationMessage:
    """Store the learner's message after the ones the prompt was built from (409 if a reply
    was stored since they were read: the prompt would lack it)."""
    read = conversation.message_count
    if not conversation.title:
        first_line = next((ln.strip() for ln in content.splitlines() if ln.strip()), "")
        conversation.title = first_line[:80]
    question = ConversationMessage(role="user", content=content, created_at=res.clock.now())
    stored = await _add_message(session, conversation, question)
    if stored.seq != read + 1:
        # The history was read before this request took the reply lock, and the previous
        # reply was stored in between, as it would have been answered 409 a moment earlier.
        raise admission.reply_in_progress()
    return stored


async def store_answer(
    session: AsyncSession, res: Resources, conversation: Conversation, result: reply.Answer
) -> ConversationMessage:
    return await _add_message(
        session,
        conversation,
        ConversationMessage(
            role="assistant",
            content=result.text,
            model=result.model[:128],
            provider=result.provider[:64],
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=budgets.usd(result.cost_usd),
            leak_caught=result.leak_caught,
            created_at=res.clock.now(),
        ),
        call=result.record,
    )


async def _add_message(
    session: AsyncSession,
    conversation: Conversation,
    message: ConversationMessage,
    *,
    call: LLMCall | None = None,
) -> ConversationMessage:
    stored = await repository.add_message(session, conversation, message, call=call)
    if stored is None:  # deleted (in another tab) while the learner was asking
        raise no_conversation()
    return stored


class QuestionCheckpoint:
    """The learner's question, stored and committed before the model is asked (as a
    submission is before it is graded): a provider failure or a refused budget keeps it."""

    def __init__(
        self, session: AsyncSession, res: Resources, conversation: Conversation, content: str
    ) -> None:
        self._session, self._res = session, res
        self._conversation, self._content = conversation, content
        self.question: ConversationMessage | None = None

    async def commit(self) -> ConversationMessage:
        session = self._session
        try:
            question = await store_question(session, self._res, self._conversation, self._content)
            await db_checkpoint(session)
        except BaseException:
            # At once, not when the request ends: on SQLite this transaction holds the write
            # lock, which a stream closing beside it needs to record its call.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await session.rollback()
            raise
        self.question = question
        return question


@dataclass
class Asked:
    """A stored question and its answer: the stored reply, or the events that send it."""

    question: ConversationMessage
    reply: ConversationMessage | None = None
    events: streaming.ReplyEvents | None = None


async def ask(
    session: AsyncSession,
    res: Resources,
    open_session: streaming.SessionOpener,
    target: ReplyTarget,
    content: str,
    *,
    stream: bool,
) -> Asked:
    """Ask the tutor: prepare the request, admit it (429, 409), store and commit the question,
    then answer it whole, or as `events` when `stream`. A refusal that comes after the question
    was stored (429 BudgetExceeded, 503) names it in the X-Koan-Message-Id header."""
    user, conversation = target.user, target.conversation
    prepared = await reply.prepare(session, res, target, content)
    # A reply streamed as the model writes it (one about an exercise with what could be a fix
    # held back until checked); the offline tutor's answers, written at once, are sent whole.
    live = stream and (prepared.guard is None or not res.llm.offline_only)
    admitted = await admission.admit(
        session, res, user, prepared.request if live else None, limits=prepared.limits
    )
    checkpoint = QuestionCheckpoint(session, res, conversation, content)
    handed_over = False
    try:
        if live:
            if admitted.over_budget is not None:
                await checkpoint.commit()  # refused, and the question is kept
                raise admitted.over_budget
            assert admitted.reservation is not None
            kind = streaming.LiveReplyStream
            if prepared.guard is not None:
                kind = streaming.GuardedReplyStream  # what could be a fix waits for the guard
            events = kind(
                res, open_session, user_id=user.id, prepared=prepared,
                reservation=admitted.reservation, lock_key=admitted.lock_key,
            )  # fmt: skip
            handed_over = True  # the stream releases the lock once its reply is stored
            question = await streaming.store_while_starting(events, checkpoint.commit())
            return Asked(question, events=events)
        question = await checkpoint.commit()
        # Checked against the solution (and a fix proved by running it) before it is sent.
        result = await reply.answer(session, res, user, prepared)
        try:
            answer = await store_answer(session, res, conversation, result)
        except NotFound as exc:
            # Deleted while the model wrote: its calls were paid for, and stay on record.
            exc.keep_changes = True
            raise
        await reply.remember_shown(
            session, res, user.id, prepared, result.text, result.model,
            conversation_id=conversation.id,
        )  # fmt: skip
        await db_checkpoint(session)  # before the lock goes: the next message sees this reply
        if stream:
            return Asked(question, answer, streaming.StoredReplyStream(answer, conversation.id))
        return Asked(question, answer)
    except KoanError as exc:
        if checkpoint.question is not None:  # refused after it was stored: say which message
            exc.headers[MESSAGE_ID_HEADER] = str(checkpoint.question.id)
        raise
    finally:
        if not handed_over:
            await admission.release_reply_lock(res, admitted.lock_key)
