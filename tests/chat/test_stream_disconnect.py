"""A learner who leaves mid-reply: through a real HTTP server, the partial reply is stored.

The app runs under uvicorn on loopback in the test's own event loop, so its requests (and the
sessions the stream stores its reply with) share the test's rolled-back connection. The fake
provider holds its stream open after two chunks, so "mid-reply" is a fact, not a race.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import service as chat_service
from koan.chat.admission import reply_lock_key
from koan.chat.reply import ReplyTarget
from koan.llm import Usage
from koan.models import ConversationMessage, Exercise, LLMCall, User
from koan.resources import Resources
from koan.tutor_gateway.budgets import usd, user_spend_key, utc_day
from tests.chat.helpers import (
    LEAKING_REPLY,
    HeldReply,
    HoldingServer,
    new_conversation,
    record_attempt,
)
from tests.fixtures.llm_server import FakeLLMServer, Reply

Tutor = Callable[..., Resources]


@pytest_asyncio.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on 127.0.0.1, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5)  # fmt: skip
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    await server.shutdown(sockets=[sock])
    sock.close()


async def test_leaving_mid_stream_stores_the_partial_reply_as_incomplete(
    live_url: str,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    holding_server: HoldingServer,
) -> None:
    tutor(llm_base_url=holding_server.openai_base_url)
    holding_server.script(HeldReply(text="alpha beta gamma delta", hold_after=2))

    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        conversation_id = await new_conversation(http, headers)
        deltas: list[str] = []
        async with http.stream(
            "POST",
            f"/api/v1/conversations/{conversation_id}/messages",
            headers={**headers, "Accept": "text/event-stream"},
            json={"content": "tell me a story"},
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data: dict[str, Any] = json.loads(line[len("data: ") :])
                    deltas.append(data["delta"])
                    if len(deltas) == 2:
                        break
        # Leaving the block closed the connection while the provider was still mid-reply.
        await asyncio.wait_for(resources.llm.streams.wait_idle(), timeout=30)
        holding_server.release.set()

        assert deltas == ["alpha ", "beta "]
        reply = (
            await session.execute(
                select(ConversationMessage).where(ConversationMessage.role == "assistant")
                .where(ConversationMessage.content == "alpha beta ")
            )
        ).scalar_one()  # fmt: skip
        assert reply.incomplete
        assert reply.output_tokens > 0
        [call] = (
            (await session.execute(select(LLMCall).where(LLMCall.user_id == learner.id)))
            .scalars()
            .all()
        )
        assert call.outcome == "incomplete"

        # The learner's lock went with the stream: the next question is answered.
        holding_server.script(Reply(text="Welcome back."))
        r = await http.post(
            f"/api/v1/conversations/{conversation_id}/messages",
            headers=headers,
            json={"content": "sorry, I was gone"},
        )
        assert r.status_code == 201
        assert r.json()["reply"]["content"] == "Welcome back."
        history = await http.get(f"/api/v1/conversations/{conversation_id}", headers=headers)
        flags = [(m["role"], m["incomplete"]) for m in history.json()["messages"]]
        assert flags == [
            ("user", False),
            ("assistant", True),
            ("user", False),
            ("assistant", False),
        ]


@pytest.mark.parametrize("fallback", [False, True])
async def test_a_stream_left_before_its_first_token_is_billed_the_prompt_the_model_read(
    session: AsyncSession, resources: Resources, learner: User, tutor: Tutor,
    llm_server: FakeLLMServer, fallback: bool,
) -> None:  # fmt: skip
    # A learner who closes the connection as the reply starts leaves no text behind, but the
    # model read the whole prompt: a call billed nothing would let questions cost nothing.
    # After a fallback, the fallback's model read it, and is billed at its price.
    if fallback:
        res = tutor(
            llm_fallback="openai",
            llm_fallback_base_url=llm_server.openai_base_url,
            llm_fallback_model="gpt-4o",
        )
        llm_server.script(*[Reply.server_error()] * 3)
    else:
        res = tutor()
    llm_server.script(Reply(text="alpha beta gamma"))
    conversation = await chat_service.start(session, res, learner, None)
    target = ReplyTarget(learner, conversation, None)

    @asynccontextmanager
    async def open_session() -> AsyncIterator[AsyncSession]:
        async with res.session_factory() as own:
            yield own
            await own.commit()

    asked = await chat_service.ask(session, res, open_session, target, "a question", stream=True)
    assert asked.events is not None
    await asked.events.aclose()  # the response ended before it sent a token
    [call] = (
        (await session.execute(select(LLMCall).where(LLMCall.user_id == learner.id)))
        .scalars()
        .all()
    )
    assert call.outcome == "incomplete"
    assert call.input_tokens > 0
    assert call.cost_usd > 0
    model = "gpt-4o" if fallback else res.llm.model
    assert call.model == model
    assert call.cost_usd == usd(
        res.llm.prices.cost_usd(model, Usage(call.input_tokens, call.output_tokens))
    )


async def test_leaving_while_a_withheld_draft_is_rewritten_keeps_both_calls_on_record(
    session: AsyncSession,
    resources: Resources,
    learner: User,
    evens: Exercise,
    tutor: Tutor,
    holding_server: HoldingServer,
) -> None:
    # The streamed draft gives the solution away; the learner leaves while the model writes
    # the draft that replaces it. Both calls were paid for.
    res = tutor(llm_base_url=holding_server.openai_base_url, llm_user_daily_budget_usd=100)
    await record_attempt(session, res, learner, evens)
    holding_server.script(
        Reply(text=LEAKING_REPLY, input_tokens=300, output_tokens=40),
        HeldReply(text="Which numbers reach `total += n`?", input_tokens=320, output_tokens=8),
    )
    conversation = await chat_service.start(session, res, learner, evens.id)
    target = ReplyTarget(learner, conversation, None)

    @asynccontextmanager
    async def open_session() -> AsyncIterator[AsyncSession]:
        async with res.session_factory() as own:
            yield own
            await own.commit()

    asked = await chat_service.ask(session, res, open_session, target, "code?", stream=True)
    assert asked.events is not None
    events = asked.events

    async def read() -> None:
        async for _ in events:
            pass

    # As Starlette does when the client goes away: the task sending the body is cancelled
    # through its task group, then the body is closed.
    async with anyio.create_task_group() as sending:
        sending.start_soon(read)
        await holding_server.wait_until_held()  # the replacement is being written
        sending.cancel_scope.cancel()
        holding_server.release.set()
    await events.aclose()
    await asyncio.wait_for(res.llm.streams.wait_idle(), timeout=30)

    calls = (
        (
            await session.execute(
                select(LLMCall).where(LLMCall.user_id == learner.id).order_by(LLMCall.created_at)
            )
        )
        .scalars()
        .all()
    )
    # The draft was stopped once the guard saw the solution coming (its tokens estimated).
    assert [c.leak_caught for c in calls] == [True, False]
    assert calls[0].input_tokens > 0
    assert calls[1].input_tokens == 320
    spent = await res.cache.get(user_spend_key(utc_day(res.clock.now()), learner.id))
    assert usd(float(spent or 0)) == sum(c.cost_usd for c in calls)
    stored = (
        await session.execute(
            select(ConversationMessage.content).where(
                ConversationMessage.conversation_id == conversation.id,
                ConversationMessage.role == "assistant",
            )
        )
    ).scalars()
    # The replacement written after the learner left is there when they come back.
    assert list(stored) == ["Which numbers reach `total += n`?"]


async def test_a_reply_streaming_longer_than_the_locks_ttl_is_still_the_only_one(
    live_url: str,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    holding_server: HoldingServer,
) -> None:
    # A slow model (a local one on a CPU) can write for longer than the reply lock lives: the
    # lock is there for a crashed worker, not to let a second question in beside a live reply.
    ttl = 60.0
    res = tutor(llm_base_url=holding_server.openai_base_url, llm_reply_lock_ttl_s=ttl)
    holding_server.script(HeldReply(text="alpha beta gamma delta", hold_after=1, hold_again=2))
    lock = reply_lock_key(learner.id)

    async with httpx.AsyncClient(base_url=live_url, timeout=30) as http:
        conversation_id = await new_conversation(http, headers)
        url = f"/api/v1/conversations/{conversation_id}/messages"
        async with http.stream(
            "POST", url, headers={**headers, "Accept": "text/event-stream"},
            json={"content": "tell me slowly"},
        ) as response:  # fmt: skip
            assert response.status_code == 200
            lines = response.aiter_lines()
            events: list[dict[str, Any]] = []

            async def next_event() -> dict[str, Any]:
                async for line in lines:
                    if line.startswith("data: "):
                        events.append(json.loads(line[len("data: ") :]))
                        return events[-1]
                raise AssertionError("the stream ended")

            assert (await next_event())["delta"] == "alpha "
            # The model is slow: the lock's time runs out while it writes.
            res.clock.advance(timedelta(seconds=ttl))
            await res.cache.delete(lock)
            holding_server.release.set()
            assert (await next_event())["delta"] == "beta "

            second = await http.post(url, headers=headers, json={"content": "are you there?"})
            assert second.status_code == 409, second.text
            assert second.json()["error"] == "ReplyInProgress"

            holding_server.release.set()
            while "message_id" not in await next_event():
                pass
        await asyncio.wait_for(res.llm.streams.wait_idle(), timeout=30)
        assert await res.cache.get(lock) is None  # released with the reply
