"""The rules of the tutor chat: conversations, the reply (whole or streamed), the leak guard."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth.deps import authenticated, ensure_verified
from koan.auth.tokens import AccessClaims
from koan.chat import repository
from koan.chat.context import (
    STRICTER,
    LeakGuard,
    exercise_context,
    hint_style_answer,
    learner_profile,
)
from koan.chat.schemas import (
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    MessageOut,
)
from koan.deps import SessionOpener
from koan.errors import BadRequest, BudgetExceeded, Conflict, KoanError, NotFound, TutorUnavailable
from koan.exercises import repository as exercises
from koan.llm import (
    ChatMessage,
    Completion,
    CompletionRequest,
    StreamEnd,
    StreamItem,
    TutorContext,
    build_system_prompt,
    trim_history,
)
from koan.llm.base import aclose_quietly
from koan.llm.pricing import estimate_usage
from koan.models import Conversation, ConversationMessage, User
from koan.models import LearnerProfile as LearnerProfileRow
from koan.resources import Resources
from koan.usage import service as usage

log = structlog.get_logger(__name__)

# Enough turns to fill any context window; trim_history keeps what fits.
HISTORY_LIMIT = 200
CHAT_TEMPERATURE = 0.3


# -- conversations -------------------------------------------------------------------------------


def _no_conversation() -> NotFound:
    """Missing and someone else's look the same."""
    return NotFound("There is no conversation with this id.")


def conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut.model_validate(conversation)


async def owned(session: AsyncSession, user: User, conversation_id: uuid.UUID) -> Conversation:
    """The learner's own conversation; anyone else's is reported as missing."""
    conversation = await repository.conversation_of(session, user.id, conversation_id)
    if conversation is None:
        raise _no_conversation()
    return conversation


@dataclass
class ReplyTarget:
    """Who asks, in which of their conversations, with the profile the prompt is built from
    and the conversation's newest messages (as of `conversation.message_count`)."""

    user: User
    conversation: Conversation
    profile: LearnerProfileRow | None
    history: list[tuple[str, str]] = field(default_factory=list)


async def reply_target(
    session: AsyncSession, claims: AccessClaims, conversation_id: uuid.UUID, *, via_cookie: bool
) -> ReplyTarget:
    """The verified caller and their conversation, checked as `VerifiedUser` and `owned` do
    (401, 403, then 404 for anyone else's), and the history: one query instead of three."""
    found = await repository.caller_and_conversation(
        session, claims.session_id, claims.user_id, conversation_id, history_limit=HISTORY_LIMIT
    )
    auth = authenticated(None if found is None else found[:2], via_cookie=via_cookie)
    ensure_verified(auth.user)
    if found is None or found.conversation is None:
        raise _no_conversation()
    return ReplyTarget(auth.user, found.conversation, found.profile, found.history)


async def start(
    session: AsyncSession, res: Resources, user: User, exercise_id: uuid.UUID | None
) -> Conversation:
    title = ""
    if exercise_id is not None:
        exercise = await exercises.exercise_by_id(session, exercise_id)
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


def _encode(data: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _decode(cursor: str) -> list[Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(
            "The cursor is not valid; start again without it.", code="BadCursor"
        ) from exc
    if not isinstance(data, list):
        raise BadRequest("The cursor is not valid; start again without it.", code="BadCursor")
    return data


async def conversations_page(
    session: AsyncSession, user: User, *, limit: int, cursor: str | None
) -> ConversationPage:
    before = None
    if cursor:
        data = _decode(cursor)
        try:
            before = (datetime.fromisoformat(data[0]), uuid.UUID(data[1]))
        except (IndexError, TypeError, ValueError) as exc:
            raise BadRequest(
                "The cursor is not valid; start again without it.", code="BadCursor"
            ) from exc
    rows = await repository.conversations(session, user.id, before=before, limit=limit + 1)
    items = [conversation_out(c) for c in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = _encode([last.updated_at.isoformat(), str(last.id)])
    return ConversationPage(items=items, next_cursor=next_cursor)


async def detail(
    session: AsyncSession, conversation: Conversation, *, limit: int, cursor: str | None
) -> ConversationDetail:
    """The conversation with its newest messages (oldest first); the cursor pages back."""
    before_seq = None
    if cursor:
        data = _decode(cursor)
        if len(data) != 1 or not isinstance(data[0], int):
            raise BadRequest("The cursor is not valid; start again without it.", code="BadCursor")
        before_seq = data[0]
    rows = await repository.messages_before(
        session, conversation.id, before_seq=before_seq, limit=limit + 1
    )
    page = list(rows[:limit])
    next_cursor = _encode([page[-1].seq]) if len(rows) > limit else None
    page.reverse()
    return ConversationDetail(
        **conversation_out(conversation).model_dump(),
        messages=[MessageOut.model_validate(m) for m in page],
        next_cursor=next_cursor,
    )


async def delete(session: AsyncSession, conversation: Conversation) -> None:
    await repository.delete_conversation(session, conversation)


# -- one reply in flight per learner -------------------------------------------------------------


def reply_lock_key(user_id: uuid.UUID) -> str:
    return f"chat:reply-lock:{user_id}"


async def check_rate(res: Resources, user: User) -> None:
    await res.limiter.hit(
        res.settings.llm_chat_limit,
        "chat",
        str(user.id),
        detail="You are sending messages faster than the tutor can answer; wait a moment.",
    )


async def acquire_reply_lock(res: Resources, user: User) -> str:
    """Refuse (409 ReplyInProgress) while the tutor is still answering this learner."""
    key = reply_lock_key(user.id)
    if not await res.cache.set_if_absent(key, "1", ttl_s=res.settings.llm_reply_lock_ttl_s):
        raise _reply_in_progress()
    return key


def _reply_in_progress() -> Conflict:
    return Conflict(
        "The tutor is still answering your previous message; wait for it to finish.",
        code="ReplyInProgress",
    )


async def release_reply_lock(res: Resources, key: str) -> None:
    await res.cache.delete(key)


@dataclass
class Admission:
    """A question let through: the learner's reply lock, and for a streamed reply the budget
    held for it, or the budget's refusal (the question is stored before it is answered)."""

    lock_key: str
    reservation: usage.Reservation | None = None
    over_budget: KoanError | None = None


async def admit(
    session: AsyncSession, res: Resources, user: User, streamed: CompletionRequest | None
) -> Admission:
    """The rate limit (429), the one-reply lock (409) and, for a `streamed` request, the
    budget (429 BudgetExceeded): checked at once, so that on Redis their round trips overlap
    instead of adding up. Whatever one check took is given back when an earlier one refuses."""
    checks: list[Awaitable[object]] = [check_rate(res, user), acquire_reply_lock(res, user)]
    if streamed is not None:
        checks.append(usage.reserve(session, res, user.id, res.llm.projected_cost(streamed)))
    rate, lock, *budget = await asyncio.gather(*checks, return_exceptions=True)
    reservation = budget[0] if budget else None
    for outcome in (rate, lock):
        if isinstance(outcome, BaseException):
            with anyio.CancelScope(shield=True):
                if isinstance(lock, str):
                    await release_reply_lock(res, lock)
                if isinstance(reservation, usage.Reservation):
                    await usage.settle(res, reservation, Decimal(0))
            raise outcome
    assert isinstance(lock, str)
    if reservation is None or isinstance(reservation, usage.Reservation):
        return Admission(lock, reservation)
    if isinstance(reservation, KoanError):
        return Admission(lock, over_budget=reservation)
    with anyio.CancelScope(shield=True):
        await release_reply_lock(res, lock)
    raise cast(BaseException, reservation)


# -- the learner's message and the request to the model ------------------------------------------


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
        raise _reply_in_progress()
    return stored


async def _add_message(
    session: AsyncSession, conversation: Conversation, message: ConversationMessage
) -> ConversationMessage:
    stored = await repository.add_message(session, conversation, message)
    if stored is None:  # deleted (in another tab) while the learner was asking
        raise _no_conversation()
    return stored


@dataclass
class Prepared:
    """The request for the model, and the guard when the conversation is about an exercise."""

    conversation_id: uuid.UUID
    exercise_id: uuid.UUID | None
    request: CompletionRequest
    guard: LeakGuard | None = None


async def prepare(
    session: AsyncSession, res: Resources, target: ReplyTarget, question: str
) -> Prepared:
    """System prompt from the profile and the exercise, then the history that fits, ending
    with `question` (read before the question is stored, so one commit covers the request)."""
    settings = res.settings
    user, conversation = target.user, target.conversation
    profile = await learner_profile(session, user, target.profile)
    context: TutorContext | None = None
    guard: LeakGuard | None = None
    exercise_id = conversation.exercise_id
    if exercise_id is not None:
        exercise = await exercises.exercise_by_id(session, exercise_id)
        if exercise is not None:
            context, guard = await exercise_context(
                session, user, exercise, threshold=settings.llm_leak_threshold
            )
    system = build_system_prompt(profile=profile, context=context, mode="chat")
    history = [ChatMessage("user" if role == "user" else "assistant", content)
               for role, content in target.history if content]  # fmt: skip
    history.append(ChatMessage("user", question))
    messages = trim_history(
        system, history, settings.llm_context_tokens, settings.llm_reply_max_tokens
    )
    request = CompletionRequest(
        messages=messages,
        temperature=CHAT_TEMPERATURE,
        max_tokens=settings.llm_reply_max_tokens,
        purpose="chat",
        context=context,
    )
    return Prepared(conversation.id, exercise_id, request, guard)


def _stricter(request: CompletionRequest) -> CompletionRequest:
    system, *rest = request.messages
    return replace(
        request,
        messages=[ChatMessage("system", f"{system.content}\n\n{STRICTER}"), *rest],
        temperature=0.0,
    )


# -- a whole reply (JSON, and streams of exercise conversations) ---------------------------------


@dataclass
class Answer:
    text: str
    model: str
    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    leak_caught: bool = False

    def add(self, completion: Completion) -> None:
        self.input_tokens += completion.usage.input_tokens
        self.output_tokens += completion.usage.output_tokens
        self.cost_usd += completion.cost_usd


async def answer(session: AsyncSession, res: Resources, user: User, prepared: Prepared) -> Answer:
    """Ask the model; for an exercise, check the reply against the solution, regenerate once
    with a stricter instruction, and replace a reply that still leaks by a hint-style nudge."""
    exercise_id, conversation_id = prepared.exercise_id, prepared.conversation_id
    first = await usage.complete(
        session, res, user_id=user.id, request=prepared.request,
        exercise_id=exercise_id, conversation_id=conversation_id,
    )  # fmt: skip
    result = Answer(first.completion.text, first.completion.model, first.completion.provider)
    result.add(first.completion)
    guard = prepared.guard
    if guard is None or not guard.leaks(first.completion.text):
        return result
    first.record.leak_caught = True
    result.leak_caught = True
    # metrics: solution leak caught (chat, first draft) — count koan_tutor_leaks_caught here.
    log.warning("tutor.leak_caught", purpose="chat", stage="first", exercise_id=str(exercise_id))
    try:
        second = await usage.complete(
            session, res, user_id=user.id, request=_stricter(prepared.request),
            exercise_id=exercise_id, conversation_id=conversation_id,
        )  # fmt: skip
    except (TutorUnavailable, BudgetExceeded):
        second = None
    if second is not None:
        result.add(second.completion)
        result.model, result.provider = second.completion.model, second.completion.provider
        if not guard.leaks(second.completion.text):
            result.text = second.completion.text
            await session.flush()
            return result
        second.record.leak_caught = True
        # metrics: solution leak caught (chat, regenerated draft) — count it here as well.
        log.warning("tutor.leak_caught", purpose="chat", stage="regenerated")
    result.text = hint_style_answer(guard)
    await session.flush()
    return result


async def store_answer(
    session: AsyncSession, res: Resources, conversation: Conversation, result: Answer
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
            cost_usd=usage.usd(result.cost_usd),
            leak_caught=result.leak_caught,
            created_at=res.clock.now(),
        ),
    )


# -- Server-Sent Events ----------------------------------------------------------------------------


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One event; the data is JSON on a single line, so deltas with newlines stay intact."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def done_payload(message: ConversationMessage | None, conversation_id: uuid.UUID) -> dict[str, Any]:
    return {
        "message_id": str(message.id) if message else None,
        "conversation_id": str(conversation_id),
        "model": message.model if message else None,
        "input_tokens": message.input_tokens if message else 0,
        "output_tokens": message.output_tokens if message else 0,
        "cost_usd": str(message.cost_usd) if message else "0",
        "incomplete": message.incomplete if message else True,
    }


def error_payload(exc: KoanError, message_id: uuid.UUID | None) -> dict[str, Any]:
    return {
        "error": exc.code,
        "detail": exc.detail,
        "retry_after": int(exc.headers.get("Retry-After", "0") or 0) or None,
        "message_id": str(message_id) if message_id else None,
    }


_PIECES = re.compile(r"\S+\s*|\s+")


class ReplayStream:
    """A reply that was generated (and checked) before streaming: sent word by word."""

    def __init__(self, message: ConversationMessage, conversation_id: uuid.UUID) -> None:
        self._events = [sse("token", {"delta": p}) for p in _PIECES.findall(message.content)]
        self._events.append(sse("done", done_payload(message, conversation_id)))
        self._iter = iter(self._events)

    def __aiter__(self) -> ReplayStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._iter)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Nothing to store: the whole reply was stored before the first byte went out."""


@dataclass
class _Outcome:
    message: ConversationMessage | None = None
    payload: dict[str, Any] = field(default_factory=dict)


class ReplyStream:
    """Tokens straight from the model as Server-Sent Events; stores the reply when the stream
    ends, however it ends (finished, provider failure, or the learner leaving mid-reply)."""

    def __init__(
        self,
        res: Resources,
        open_session: SessionOpener,
        *,
        user_id: uuid.UUID,
        prepared: Prepared,
        reservation: usage.Reservation,
        lock_key: str,
    ) -> None:
        self._res = res
        self._open_session = open_session
        self._user_id = user_id
        self._prepared = prepared
        self._reservation = reservation
        self.reply_lock_key = lock_key
        self._items: AsyncIterator[StreamItem] = res.llm.provider.stream(prepared.request)
        self._pending: StreamItem | None = None
        self._parts: list[str] = []
        self._completion: Completion | None = None
        self._outcome: _Outcome | None = None
        self._events = self._generate()
        res.llm.streams.begin()

    async def start(self) -> None:
        """Wait for the first token, so a provider failing before it answers is a plain 503.
        If this raises, the caller ends the stream with `fail` (or `aclose`)."""
        self._pending = await anext(self._items, None)

    async def fail(self, exc: BaseException) -> None:
        """End a stream whose start failed: record the call, give the budget and lock back."""
        with anyio.CancelScope(shield=True):
            await self._finish(error=exc if isinstance(exc, KoanError) else None)

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Called by the response however it ends: a learner who left gets a partial reply."""
        await self._events.aclose()
        with anyio.CancelScope(shield=True):
            await self._finish(incomplete=True)

    async def _generate(self) -> AsyncGenerator[bytes, None]:
        try:
            item = self._pending
            while item is not None:
                if isinstance(item, StreamEnd):
                    self._completion = item.completion
                    break
                if item.delta:
                    self._parts.append(item.delta)
                    yield sse("token", {"delta": item.delta})
                item = await anext(self._items, None)
            outcome = await self._finish()
            yield sse("done", outcome.payload)
        except TutorUnavailable as exc:
            # Broke off mid-reply (TutorStreamInterrupted): what arrived is kept, flagged.
            outcome = await self._finish(error=exc)
            yield sse("error", outcome.payload)
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish(incomplete=True)

    async def _finish(
        self, *, error: KoanError | None = None, incomplete: bool = False
    ) -> _Outcome:
        """Store the reply (complete or partial) and its call, settle the budget, unlock.
        Runs once; later calls return the first outcome."""
        if self._outcome is not None:
            return self._outcome
        self._outcome = outcome = _Outcome()
        res, prepared = self._res, self._prepared
        try:
            await aclose_quietly(self._items)
            text = "".join(self._parts)
            completion = self._completion
            cut_short = completion is None or error is not None or incomplete
            if completion is not None:
                used, cost = completion.usage, completion.cost_usd
                model, provider = completion.model, completion.provider
            elif text:
                # Billed for what was generated; the provider never sent its count.
                model, provider = res.llm.model, res.llm.provider.name
                used = estimate_usage(prepared.request.messages, text)
                cost = res.llm.prices.cost_usd(model, used)
            else:
                model, provider = res.llm.model, res.llm.provider.name
                used = estimate_usage([], "")
                cost = Decimal(0)
            await usage.settle(res, self._reservation, cost)
            async with self._open_session() as session:
                if text:
                    outcome.message = await repository.append_message(
                        session,
                        prepared.conversation_id,
                        ConversationMessage(
                            role="assistant",
                            content=text,
                            incomplete=cut_short,
                            model=model[:128],
                            provider=provider[:64],
                            input_tokens=used.input_tokens,
                            output_tokens=used.output_tokens,
                            cost_usd=usage.usd(cost),
                            created_at=res.clock.now(),
                        ),
                    )
                await usage.record(
                    session,
                    res,
                    user_id=self._user_id,
                    purpose="chat",
                    day=self._reservation.day,
                    usage=used,
                    cost_usd=cost,
                    completion=completion,
                    outcome="error" if error is not None and not text else (
                        "incomplete" if cut_short else "ok"
                    ),
                    exercise_id=prepared.exercise_id,
                    conversation_id=prepared.conversation_id,
                )  # fmt: skip
        except Exception:
            log.exception("chat.stream_store_failed", conversation_id=str(prepared.conversation_id))
        finally:
            await release_reply_lock(res, self.reply_lock_key)
            res.llm.streams.end()
        message_id = outcome.message.id if outcome.message else None
        outcome.payload = (
            error_payload(error, message_id)
            if error is not None
            else done_payload(outcome.message, prepared.conversation_id)
        )
        return outcome


async def store_while_starting(
    stream: ReplyStream, store: Callable[[], Awaitable[ConversationMessage]]
) -> ConversationMessage:
    """Store and commit the learner's question while the model works on its first token.

    The stream is handed back only once both are done, so no reply goes out for a question
    that was not stored; a provider failure is raised after the commit (the question is kept),
    and a failed store closes the stream before the error goes up."""
    first = asyncio.create_task(stream.start())
    try:
        question = await store()
    except BaseException:
        first.cancel()
        with anyio.CancelScope(shield=True):
            [started] = await asyncio.gather(first, return_exceptions=True)
        if isinstance(started, Exception):  # the provider had failed as well
            await stream.fail(started)
        else:  # the first token may have come: release the provider
            with anyio.CancelScope(shield=True):
                await stream.aclose()
        raise
    try:
        await first
    except BaseException as exc:
        # Only now, with the question's transaction over: on SQLite the call's record would
        # otherwise wait for that transaction's write lock.
        await stream.fail(exc)
        raise
    return question


def open_stream(
    res: Resources,
    open_session: SessionOpener,
    user: User,
    prepared: Prepared,
    admission: Admission,
) -> ReplyStream:
    """The stream of an admitted question, with the budget held for it."""
    assert admission.reservation is not None
    return ReplyStream(
        res,
        open_session,
        user_id=user.id,
        prepared=prepared,
        reservation=admission.reservation,
        lock_key=admission.lock_key,
    )
