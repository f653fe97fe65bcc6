"""A reply sent as Server-Sent Events: straight from the model, or a stored reply word by word;
the question stored while the model starts; and the response that always closes its stream."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import anyio
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from koan.chat import repository
from koan.chat.admission import release_reply_lock
from koan.chat.reply import Prepared
from koan.errors import KoanError, TutorUnavailable
from koan.llm import Completion, StreamEnd, StreamItem
from koan.llm.base import aclose_quietly
from koan.llm.pricing import estimate_usage
from koan.models import ConversationMessage
from koan.resources import Resources
from koan.tutor_gateway import budgets, calls

log = structlog.get_logger(__name__)

# Opens a session of its own (committed on success): a streamed reply is stored after the
# request's handler, and its session, are done.
SessionOpener = Callable[[], AbstractAsyncContextManager[AsyncSession]]


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


class ReplyEvents(Protocol):
    """A reply's events, closed by the response however it ends."""

    def __aiter__(self) -> ReplyEvents: ...
    async def __anext__(self) -> bytes: ...
    async def aclose(self) -> None: ...


_PIECES = re.compile(r"\S+\s*|\s+")


class StoredReplyStream:
    """A reply that was generated, checked and stored before streaming: sent word by word."""

    def __init__(self, message: ConversationMessage, conversation_id: uuid.UUID) -> None:
        self._events = [sse("token", {"delta": p}) for p in _PIECES.findall(message.content)]
        self._events.append(sse("done", done_payload(message, conversation_id)))
        self._iter = iter(self._events)

    def __aiter__(self) -> StoredReplyStream:
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


class LiveReplyStream:
    """Tokens straight from the model as Server-Sent Events; stores the reply when the stream
    ends, however it ends (finished, provider failure, or the learner leaving mid-reply), and
    then releases the learner's reply lock."""

    def __init__(
        self,
        res: Resources,
        open_session: SessionOpener,
        *,
        user_id: uuid.UUID,
        prepared: Prepared,
        reservation: budgets.Reservation,
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

    def __aiter__(self) -> LiveReplyStream:
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
            await budgets.settle(res, self._reservation, cost)
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
                            cost_usd=budgets.usd(cost),
                            created_at=res.clock.now(),
                        ),
                    )
                await calls.record(
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
    stream: LiveReplyStream, store: Awaitable[ConversationMessage]
) -> ConversationMessage:
    """Store and commit the learner's question (`store`, not yet awaited) while the model
    works on its first token.

    The stream is handed back only once both are done, so no reply goes out for a question
    that was not stored; a provider failure is raised after the commit (the question is kept),
    and a failed store closes the stream before the error goes up."""
    first = asyncio.create_task(stream.start())
    try:
        question = await store
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


class EventStream(StreamingResponse):
    """text/event-stream whose body is always closed, even when the client went away while a
    chunk was being sent (Starlette then abandons the iterator without closing it)."""

    media_type = "text/event-stream"

    def __init__(self, stream: ReplyEvents, headers: dict[str, str] | None = None) -> None:
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
