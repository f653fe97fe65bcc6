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

from koan import turns
from koan.chat import repository
from koan.chat.admission import release_reply_lock
from koan.chat.context import hint_style_answer
from koan.chat.hints import count_offline_rung
from koan.chat.reply import Answer, Prepared, caught, remember_shown, replace_leak
from koan.common.schemas import money_text
from koan.errors import KoanError, TutorUnavailable
from koan.llm import Completion, StreamChunk, StreamEnd, StreamItem, Usage, holdback, patches
from koan.llm.base import aclose_quietly
from koan.llm.leak_check import Verdict
from koan.llm.offline import OFFLINE_MODEL
from koan.llm.pricing import estimate_usage
from koan.models import ConversationMessage, LLMCall, User
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
        "cost_usd": money_text(message.cost_usd if message else Decimal(0)),
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


@dataclass(frozen=True)
class _Bill:
    used: Usage
    cost: Decimal
    model: str
    provider: str


@dataclass
class _Stored:
    """The reply as stored: its text, and when the guard replaced the model's draft, the
    answer that replaced it (whose calls were recorded as they were made)."""

    text: str
    replaced: bool = False
    extra: Answer | None = None


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
        # Who wrote the reply so far (model, provider): the chain may have fallen back.
        self._writer: tuple[str, str] | None = None
        self._completion: Completion | None = None
        self._outcome: _Outcome | None = None
        self._stopped = False  # no more of the model's reply is wanted
        self._billed: _Bill | None = None
        self._call_recorded = False
        self._lock_kept_at = res.clock.now()  # the lock was taken just before
        self._events = self._generate()
        res.llm.streams.begin()

    async def start(self) -> None:
        """Wait for the first token, so a provider failing before it answers is a plain 503.
        If this raises, the caller ends the stream with `fail` (or `aclose`)."""
        self._pending = first = await anext(self._items, None)
        if isinstance(first, StreamChunk) and first.model:
            self._writer = (first.model, first.provider)  # it read the prompt, if nothing more

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
        await self._close(billed=True)

    async def abandon(self) -> None:
        """End a stream Koan gives up before sending anything (its question could not be
        stored): nothing is stored or billed to the learner, the provider is let go."""
        await self._close(billed=False)

    async def _close(self, *, billed: bool) -> None:
        await self._events.aclose()
        with anyio.CancelScope(shield=True):
            await self._finish(incomplete=True, billed=billed)

    async def _generate(self) -> AsyncGenerator[bytes, None]:
        try:
            item = self._pending
            while item is not None:
                if isinstance(item, StreamEnd):
                    self._completion = item.completion
                    break
                if item.delta:
                    if item.model:
                        self._writer = (item.model, item.provider)
                    await self._keep_lock()
                    self._parts.append(item.delta)
                    async for event in self._pass_on(item.delta):
                        yield event
                    if self._stopped:
                        break
                # The rest of the reply (reading it, and storing it at the end) waits while
                # other questions wait for their turn to reach a first token (koan/turns.py).
                await turns.step_aside()
                item = await anext(self._items, None)
            async for event in self._conclude():
                yield event
            outcome = await self._finish()
            yield sse("done", outcome.payload)
        except TutorUnavailable as exc:
            # Broke off mid-reply (TutorStreamInterrupted): what arrived is kept, flagged.
            outcome = await self._finish(error=exc)
            yield sse("error", outcome.payload)
        finally:
            with anyio.CancelScope(shield=True):
                await self._finish(incomplete=True)

    async def _keep_lock(self) -> None:
        """Keep the learner's reply lock while the reply streams. Its TTL is there for a worker
        that crashed; a slow model (a local one on a CPU) may write for longer, and a second
        question must not be answered beside a reply still being written. Renewed with the first
        token a third of its TTL after it was taken or last renewed."""
        ttl = self._res.settings.llm_reply_lock_ttl_s
        now = self._res.clock.now()
        if (now - self._lock_kept_at).total_seconds() < ttl / 3:
            return
        self._lock_kept_at = now
        await self._res.cache.set(self.reply_lock_key, "1", ttl_s=ttl)

    async def _pass_on(self, delta: str) -> AsyncIterator[bytes]:
        """The events for a piece of the reply: straight out."""
        yield sse("token", {"delta": delta})

    async def _conclude(self) -> AsyncIterator[bytes]:
        """Events after the model's last token, before `done`: none."""
        return
        yield b""  # pragma: no cover - makes this an async generator

    def _stored(self) -> _Stored:
        """What is stored as the reply: everything the model sent."""
        return _Stored("".join(self._parts))

    async def _bill(self, *, prompt_read: bool = True) -> _Bill:
        """What the model's call cost (worked out once; the budget held for it is settled with
        it by `_settle`). A reply the learner left before its first token still had its prompt
        read by the model, which is billed; a provider that failed before writing anything (or
        a stream Koan gave up before sending anything: `prompt_read` false) costs the learner
        nothing."""
        if self._billed is not None:
            return self._billed
        res, prepared = self._res, self._prepared
        await aclose_quietly(self._items)
        generated = "".join(self._parts)
        completion = self._completion
        if completion is not None:
            used, cost = completion.usage, completion.cost_usd
            model, provider = completion.model, completion.provider
        elif generated or prompt_read:
            # Billed for what the model read and wrote; the provider never sent its count. The
            # model that wrote is priced (a fallback's may cost more); before its first word,
            # the primary's.
            model, provider = self._writer or (res.llm.model, res.llm.provider.name)
            used = estimate_usage(prepared.request.messages, generated)
            cost = res.llm.prices.cost_usd(model, used)
        else:
            model, provider = res.llm.model, res.llm.provider.name
            used = estimate_usage([], "")
            cost = Decimal(0)
        self._billed = bill = _Bill(used, cost, model, provider)
        return bill

    async def _settle(self, *, unlock: bool = False) -> None:
        """Settle the budget held for the model's call at what it cost (once), and with
        `unlock` release the learner's reply lock in the same round trip."""
        lock = [self.reply_lock_key] if unlock else []
        if self._billed is not None:
            await budgets.settle(self._res, self._reservation, self._billed.cost, delete=lock)
        elif unlock:  # no bill was worked out (it failed): nothing to settle it by
            await release_reply_lock(self._res, self.reply_lock_key)

    async def _record_call(
        self, session: AsyncSession, *, outcome: str, leak_caught: bool = False
    ) -> None:
        """The model's call on record (once), its budget settled."""
        call = await self._call(outcome=outcome, leak_caught=leak_caught)
        await self._settle()
        if call is not None:
            await calls.store(session, call)

    async def _call(self, *, outcome: str, leak_caught: bool = False) -> LLMCall | None:
        """The record of the model's call, to be stored by the caller; None once it was."""
        if self._call_recorded:
            return None
        bill = await self._bill()
        self._call_recorded = True
        return calls.call_record(
            self._res, user_id=self._user_id, purpose="chat",
            day=self._reservation.day, usage=bill.used, cost_usd=bill.cost,
            completion=self._completion, model=bill.model, provider=bill.provider,
            leak_caught=leak_caught, outcome=outcome,
            exercise_id=self._prepared.exercise_id,
            conversation_id=self._prepared.conversation_id,
        )  # fmt: skip

    async def _finish(
        self, *, error: KoanError | None = None, incomplete: bool = False, billed: bool = True
    ) -> _Outcome:
        """Store the reply (complete or partial) and its call, then settle the budget and
        unlock (one round trip). Runs once, to its end even when the learner leaves meanwhile
        (a store or a settlement cut off half-way would lose the call, the budget or the
        lock); later calls return the first outcome."""
        if self._outcome is not None:
            return self._outcome
        self._outcome = outcome = _Outcome()
        with anyio.CancelScope(shield=True):
            await self._store(outcome, error=error, incomplete=incomplete, billed=billed)
        return outcome

    async def _store(
        self, outcome: _Outcome, *, error: KoanError | None, incomplete: bool, billed: bool
    ) -> None:
        """`_finish`'s work, filling in `outcome`."""
        res, prepared = self._res, self._prepared
        try:
            bill = await self._bill(prompt_read=billed and error is None)
            generated = "".join(self._parts)
            stored = self._stored()
            cut_short = self._completion is None or error is not None or incomplete
            if stored.replaced:
                cut_short = False  # Koan stopped the draft; what is stored is whole
            extra = stored.extra
            call = await self._call(
                leak_caught=stored.replaced,
                outcome="error" if error is not None and not generated else (
                    "incomplete" if cut_short else "ok"
                ),
            )  # fmt: skip
            async with self._open_session() as session:
                if stored.text:
                    # The call is stored with the reply (in one statement on PostgreSQL).
                    outcome.message = await repository.append_message(
                        session,
                        prepared.conversation_id,
                        ConversationMessage(
                            role="assistant",
                            content=stored.text,
                            incomplete=cut_short,
                            model=(extra.model if extra else bill.model)[:128],
                            provider=(extra.provider if extra else bill.provider)[:64],
                            input_tokens=bill.used.input_tokens
                            + (extra.input_tokens if extra else 0),
                            output_tokens=bill.used.output_tokens
                            + (extra.output_tokens if extra else 0),
                            cost_usd=budgets.usd(bill.cost + (extra.cost_usd if extra else 0)),
                            leak_caught=stored.replaced,
                            created_at=res.clock.now(),
                        ),
                        call=call,
                    )
                    # Shown, whether or not its conversation is still there to store it.
                    await remember_shown(
                        session, res, self._user_id, prepared, stored.text,
                        extra.model if extra else bill.model,
                        conversation_id=prepared.conversation_id if outcome.message else None,
                    )  # fmt: skip
                elif call is not None:
                    await calls.store(session, call)
        except Exception:
            log.exception("chat.stream_store_failed", conversation_id=str(prepared.conversation_id))
        finally:
            try:
                await self._settle(unlock=True)
            except Exception:
                log.exception(
                    "chat.stream_settle_failed", conversation_id=str(prepared.conversation_id)
                )
                await release_reply_lock(res, self.reply_lock_key)
            res.llm.streams.end()
        message_id = outcome.message.id if outcome.message else None
        outcome.payload = (
            error_payload(error, message_id)
            if error is not None
            else done_payload(outcome.message, prepared.conversation_id)
        )


class GuardedReplyStream(LiveReplyStream):
    """A reply about an exercise, streamed as the model writes it, with everything that could
    be a fix held back until the leak guard has checked it (`koan.llm.holdback`).

    Prose goes out at once. A held stretch (a code block, a sentence with inline code) is
    checked with the reply up to its end, then sent; programs already run clean are not run
    again (`tried`). When the model is done the whole reply is checked once more (fixes made
    of several parts). A leak found on the way stops the model; one found at the end is too
    late to hold back anything, but nothing of it was sent unchecked. Either way the draft is
    withheld as `reply.answer` does (regenerated once, else a nudge), and a `replace` event
    carries the text that takes the place of what was shown; only that text is stored.
    """

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
        super().__init__(
            res, open_session, user_id=user_id, prepared=prepared, reservation=reservation,
            lock_key=lock_key,
        )  # fmt: skip
        assert prepared.guard is not None
        self._guard = prepared.guard
        self._text = ""
        self._folded = ""  # the text with look-alike letters folded, scanned for what to hold
        self._shown = 0  # how much of the text has gone out
        self._tried: set[str] = set()
        self._verdict: Verdict | None = None  # the leak that withholds this draft
        self._replacement: Answer | None = None

    async def _pass_on(self, delta: str) -> AsyncIterator[bytes]:
        # What takes no room on the screen is not sent: code strewn with it reads as the code.
        self._text += patches.strip_invisible(delta)
        self._folded += patches.fold(self._text[len(self._folded) :])
        async for event in self._release(final=False):
            yield event

    async def _release(self, *, final: bool) -> AsyncIterator[bytes]:
        """Send what is prose, and each held stretch once the guard has passed it."""
        while self._verdict is None:
            found = holdback.scan(self._folded, self._shown, final=final)
            if found.free > self._shown:
                yield self._send(found.free)
            if found.unit is None or found.unit <= self._shown:
                return
            verdict = await self._guard.check(self._text[: found.unit], self._tried)
            if verdict.leak:
                self._withhold(verdict)
                return
            yield self._send(found.unit)

    def _send(self, end: int) -> bytes:
        delta = self._text[self._shown : end]
        self._shown = end
        return sse("token", {"delta": delta})

    def _withhold(self, verdict: Verdict) -> None:
        self._verdict = verdict
        self._stopped = True  # the rest of this draft is not wanted
        caught(verdict, self._prepared.exercise_id)

    async def _conclude(self) -> AsyncIterator[bytes]:
        if self._verdict is None:
            async for event in self._release(final=True):
                yield event
        completion = self._completion
        if self._verdict is None and completion is not None and completion.model == OFFLINE_MODEL:
            # The chain fell back to Koan's own tutor, which writes no code; a hint rung it
            # showed counts as used.
            async with self._open_session() as session:
                user = await session.get(User, self._user_id)
                if user is not None:
                    await count_offline_rung(
                        session, self._res, user, self._prepared.exercise_id,
                        self._prepared.request,
                    )  # fmt: skip
            return
        if self._verdict is None:
            verdict = await self._guard.check(self._text, self._tried)
            if not verdict.leak:
                return
            self._withhold(verdict)
        assert self._verdict is not None
        replacement = Answer("", self._res.llm.model, self._res.llm.provider.name)
        # Both calls are paid for whether or not the learner stays: the withheld draft's goes
        # on record first, in a transaction of its own, and the replacement is written to its
        # end even if the learner leaves meanwhile (it is stored for them, and on record).
        with anyio.CancelScope(shield=True):
            async with self._open_session() as session:
                await self._record_call(session, outcome="ok", leak_caught=True)
            async with self._open_session() as session:
                await replace_leak(
                    session, self._res, self._user_id, self._prepared, self._verdict, replacement
                )
        self._replacement = replacement
        yield sse("replace", {"text": replacement.text})

    def _stored(self) -> _Stored:
        if self._replacement is not None:
            return _Stored(self._replacement.text, True, self._replacement)
        if self._verdict is not None:
            # Gone before the replacement was written: the nudge, never the draft.
            return _Stored(hint_style_answer(self._guard), True)
        # Only what went out: a reply cut short never stores what was still held back.
        return _Stored(self._text[: self._shown])


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
        # The request's own work is done: waiting for the model's first token, it holds no turn
        # (koan/turns.py). Not sooner: the model is asked while the question is stored.
        turns.give_back()
    except BaseException:
        first.cancel()
        with anyio.CancelScope(shield=True):
            [started] = await asyncio.gather(first, return_exceptions=True)
        if isinstance(started, Exception):  # the provider had failed as well
            await stream.fail(started)
        else:  # the first token may have come: release the provider
            with anyio.CancelScope(shield=True):
                await stream.abandon()
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
