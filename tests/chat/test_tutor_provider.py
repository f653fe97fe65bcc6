"""The chat route against a real loopback provider: prompt, retries, fallback, circuit breaker,
failures, streaming."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import streaming
from koan.llm import Usage
from koan.llm.offline import OFFLINE_NOTE
from koan.models import ConversationMessage, LLMCall, User
from koan.resources import Resources
from koan.tutor_gateway.budgets import usd, user_spend_key, utc_day
from tests.chat.helpers import (
    EVENS_SOLUTION,
    EVENS_STARTER,
    EvensChat,
    HeldReply,
    HoldingServer,
    ask,
    new_conversation,
    parse_sse,
    record_attempt,
)
from tests.fixtures.llm_server import FakeLLMServer, FakeTimer, Reply

Tutor = Callable[..., Resources]


async def calls_of(session: AsyncSession, user: User) -> list[LLMCall]:
    rows = await session.execute(
        select(LLMCall).where(LLMCall.user_id == user.id).order_by(LLMCall.created_at)
    )
    return list(rows.scalars())


async def test_the_model_sees_profile_exercise_code_and_history_but_never_the_solution(
    chat: EvensChat,
) -> None:
    chat.tutor()
    await record_attempt(chat.session, chat.resources, chat.learner, chat.exercise, hints_used=1)
    conversation_id = await new_conversation(chat.client, chat.headers, chat.exercise)
    chat.llm.script(
        Reply(text="Which numbers does your loop add?", input_tokens=1000, output_tokens=200)
    )
    r = await chat.ask(conversation_id, "Why is my total too big?")
    assert r.status_code == 201, r.text
    reply = r.json()["reply"]
    assert reply["content"] == "Which numbers does your loop add?"
    # 1000 + 200 tokens at $100 per million.
    assert reply["cost_usd"] == "0.120000"
    assert reply["model"] == "tutor-test"

    await chat.ask(conversation_id, "The odd ones too?")
    first, second = (req.body for req in chat.llm.requests)
    system = first["messages"][0]
    assert system["role"] == "system"
    for fact in (
        "Experience: beginner",  # the onboarding profile
        "Write small scripts for my job.",
        "Name: Ada Learner",
        "Write `sum_of_evens(numbers)`",  # the statement
        EVENS_STARTER.splitlines()[3].strip(),  # the latest code
        "test_mixed: AssertionError: 2 + 4 is 6",  # its failing test
        "1. The loop visits every number",  # the hint already seen...
    ):
        assert fact in system["content"], fact
    assert "n % 2 == 0" not in system["content"]  # ...not the unseen ones, nor the solution
    assert EVENS_SOLUTION.splitlines()[3] not in str(first)
    assert first["temperature"] == 0.3
    assert first["max_tokens"] == 50
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][2]["content"] == "Which numbers does your loop add?"


async def test_long_histories_are_trimmed_to_the_context_window(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor(llm_context_tokens=1400)
    conversation_id = await new_conversation(client, headers)
    for n in range(6):
        r = await ask(client, headers, conversation_id, f"question {n}: " + "words " * 150)
        assert r.status_code == 201
    last = llm_server.requests[-1].body["messages"]
    assert last[0]["role"] == "system"
    assert last[1]["role"] == "user"
    assert last[-1]["content"].startswith("question 5")
    assert len(last) < 12  # older turns were dropped, the newest question kept


async def test_a_rate_limited_provider_is_retried(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
    fake_timer: FakeTimer,
) -> None:
    tutor()
    llm_server.script(Reply.rate_limited(retry_after="2"), Reply(text="What does line 4 do?"))
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "hello")
    assert r.status_code == 201
    assert r.json()["reply"]["content"] == "What does line 4 do?"
    assert len(llm_server.requests) == 2
    assert fake_timer.sleeps == [2.0]


async def test_falls_back_to_the_offline_tutor_then_the_circuit_opens_and_closes(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
    fake_timer: FakeTimer,
) -> None:
    tutor(llm_fallback="offline")
    conversation_id = await new_conversation(client, headers)
    llm_server.script(*[Reply.server_error()] * 5)

    replies = []
    for n in range(3):
        r = await ask(client, headers, conversation_id, f"attempt {n}")
        assert r.status_code == 201, r.text
        replies.append(r.json()["reply"])
    assert all(OFFLINE_NOTE in reply["content"] for reply in replies)
    # 3 attempts on the first message, 2 on the second: the 5th failure opened the circuit,
    # so the third message never reached the provider.
    assert len(llm_server.requests) == 5
    calls = await calls_of(session, learner)
    assert [c.provider for c in calls] == ["offline"] * 3
    assert all(c.outcome == "ok" for c in calls)

    fake_timer.advance(31)  # the cool-down is over: one probe goes through, and succeeds
    llm_server.script(Reply(text="Back online: what did you try?"))
    r = await ask(client, headers, conversation_id, "are you back?")
    assert r.json()["reply"]["content"] == "Back online: what did you try?"
    assert len(llm_server.requests) == 6


async def test_provider_failure_is_a_503_and_the_question_is_kept(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    llm_server.script(*[Reply.server_error(502)] * 3)
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "Is anyone there?")
    assert r.status_code == 503
    assert r.json()["error"] == "TutorUnavailable"
    assert int(r.headers["Retry-After"]) >= 1
    assert "HTTP 502" in r.json()["detail"]
    detail = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [("user", "Is anyone there?")]
    assert r.headers["X-Koan-Message-Id"] == detail["messages"][0]["id"]
    [call] = await calls_of(session, learner)
    assert call.outcome == "error"
    assert call.cost_usd == 0

    # The learner's lock was released: asking again works once the provider recovers.
    llm_server.script(Reply(text="Yes, sorry about that."))
    r = await ask(client, headers, conversation_id, "Is anyone there?")
    assert r.status_code == 201


async def test_streaming_from_the_provider(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    llm_server.script(
        Reply(text="What happens\nwhen n is odd?", chunks=["What ", "happens\n", "when n is odd?"])
    )
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "stream please", stream=True)
    assert r.status_code == 200, r.text
    events = parse_sse(r.text)
    assert events[:3] == [
        ("token", {"delta": "What "}),
        ("token", {"delta": "happens\n"}),
        ("token", {"delta": "when n is odd?"}),
    ]
    name, done = events[3]
    assert name == "done"
    assert len(events) == 4
    assert done["input_tokens"] == 12
    assert done["output_tokens"] == 5
    assert done["cost_usd"] == "0.001700"
    assert done["incomplete"] is False
    message = await session.get(ConversationMessage, uuid.UUID(done["message_id"]))
    assert message is not None
    assert message.content == "What happens\nwhen n is odd?"
    assert llm_server.requests[0].stream
    [call] = await calls_of(session, learner)
    assert (call.outcome, call.input_tokens, call.output_tokens) == ("ok", 12, 5)


async def test_a_stream_failing_before_the_first_token_is_a_503(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    llm_server.script(*[Reply.server_error()] * 3)
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "stream please", stream=True)
    assert r.status_code == 503
    assert r.json()["error"] == "TutorUnavailable"
    assert "Retry-After" in r.headers
    # The question was committed while the provider was being asked: it is kept.
    detail = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [("user", "stream please")]
    assert r.headers["X-Koan-Message-Id"] == detail["messages"][0]["id"]
    # The failed call is recorded once the question is stored, and the reply lock is free.
    [call] = await calls_of(session, learner)
    assert (call.outcome, call.cost_usd) == ("error", 0)
    llm_server.script(Reply(text="Here now."))
    assert (await ask(client, headers, conversation_id, "again?", stream=True)).status_code == 200


async def test_a_stream_whose_question_cannot_be_committed_is_closed(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The question commits while the provider is asked: if the database fails that commit,
    no reply goes out, the provider's stream is closed and the learner's lock released."""
    res = tutor()
    conversation_id = await new_conversation(client, headers)
    commit = AsyncSession.commit
    failures = [OperationalError("COMMIT", {}, OSError("server closed the connection"))]

    async def failing_once(self: AsyncSession) -> None:
        if failures:
            raise failures.pop()
        await commit(self)

    monkeypatch.setattr(AsyncSession, "commit", failing_once)
    llm_server.script(Reply(text="This reply is never shown."))
    r = await ask(client, headers, conversation_id, "Hello?", stream=True)
    assert r.status_code == 503
    assert r.json()["error"] == "ServiceUnavailable"
    assert "X-Koan-Message-Id" not in r.headers  # nothing was stored
    assert not failures
    monkeypatch.setattr(AsyncSession, "commit", commit)
    stored = await session.execute(
        select(ConversationMessage.role).where(
            ConversationMessage.conversation_id == uuid.UUID(conversation_id)
        )
    )
    assert "assistant" not in list(stored.scalars())
    # The projected cost held for the reply was given back.
    spent = await res.cache.get(user_spend_key(utc_day(res.clock.now()), learner.id))
    assert float(spent or 0) == 0

    llm_server.script(Reply(text="Back again?"))
    r = await ask(client, headers, conversation_id, "Hello?", stream=True)
    assert r.status_code == 200, r.text  # the reply lock went with the failure
    assert parse_sse(r.text)[-1][0] == "done"


async def test_a_stream_cut_mid_reply_ends_with_an_error_event_and_keeps_the_partial(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor(llm_fallback="offline")
    llm_server.script(Reply(text="one two three four five", drop_after_chunks=2))
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "go", stream=True)
    events = parse_sse(r.text)
    assert [n for n, _ in events] == ["token", "token", "error"]
    error: dict[str, Any] = events[-1][1]
    assert error["error"] == "TutorStreamInterrupted"
    assert error["retry_after"] >= 1
    message = await session.get(ConversationMessage, uuid.UUID(error["message_id"]))
    assert message is not None
    assert message.content == "one two "
    assert message.incomplete
    [call] = await calls_of(session, learner)
    assert call.outcome == "incomplete"
    assert call.output_tokens > 0

    # No fallback after the first token: the offline tutor did not start over.
    assert OFFLINE_NOTE not in r.text
    assert (await ask(client, headers, conversation_id, "again")).status_code == 201


async def test_chat_replies_are_never_cached(
    chat: EvensChat,
) -> None:
    first = await chat.start(Reply(text="One."), Reply(text="Two."))
    second = await new_conversation(chat.client, chat.headers, chat.exercise)
    a = await chat.ask(first, "Same question")
    b = await chat.ask(second, "Same question")
    assert (a.json()["reply"]["content"], b.json()["reply"]["content"]) == ("One.", "Two.")
    assert len(chat.llm.requests) == 2
    assert not any(c.cache_hit for c in await calls_of(chat.session, chat.learner))


async def test_a_reply_reporting_absurd_usage_is_stored_and_billed_in_bounds(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(
        Reply(text="What does your loop add?", input_tokens=10**12, output_tokens=10**12),
        Reply(text="Which numbers pass?", input_tokens=-(10**9), output_tokens=5),
        llm_user_daily_budget_usd=10**9,
    )
    for stream in (False, True):
        r = await chat.ask(conversation_id, "Why does my test fail?", stream=stream)
        assert r.status_code in (200, 201), r.text
        await chat.resources.llm.streams.wait_idle()
    calls = await calls_of(chat.session, chat.learner)
    assert [c.outcome for c in calls] == ["ok", "ok"]
    assert all(c.input_tokens >= 0 and c.cost_usd >= 0 for c in calls)
    replies = (
        await chat.session.execute(
            select(ConversationMessage.content).where(ConversationMessage.role == "assistant")
        )
    ).scalars()
    assert sorted(replies) == ["What does your loop add?", "Which numbers pass?"]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_blank_reply_is_a_503_and_never_stored_as_the_answer(
    chat: EvensChat, stream: bool
) -> None:
    conversation_id = await chat.start(Reply(text=" \n\t ", chunks=[" ", "\n", "\t "]))
    r = await chat.ask(conversation_id, "Why does my test fail?", stream=stream)
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "TutorUnavailable"
    assert int(r.headers["Retry-After"]) >= 1
    contents = (
        await chat.session.execute(
            select(ConversationMessage.role).where(
                ConversationMessage.conversation_id == uuid.UUID(conversation_id)
            )
        )
    ).scalars()
    assert list(contents) == ["user"]
    # The lock was released: the next question is answered.
    chat.llm.script(
        Reply(
            text="\n\nWhich numbers does your loop add?",
            chunks=["\n", "\n", "Which numbers does your loop add?"],
        )
    )
    r = await chat.ask(conversation_id, "Again?", stream=stream)
    assert r.status_code in (200, 201), r.text
    if stream:
        assert parse_sse(r.text)[0] == ("token", {"delta": "\n\nWhich numbers does your loop add?"})


async def test_a_fallback_cut_mid_reply_is_billed_at_the_fallback_models_price(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    res = tutor(
        llm_fallback="openai",
        llm_fallback_base_url=llm_server.openai_base_url,
        llm_fallback_model="gpt-4o",
        llm_user_daily_budget_usd=100,
    )
    # The primary fails three times before a word; the fallback writes two words, then breaks.
    llm_server.script(
        *[Reply.server_error()] * 3, Reply(text="one two three four five", drop_after_chunks=2)
    )
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "go", stream=True)
    assert [n for n, _ in parse_sse(r.text)] == ["token", "token", "error"]
    await res.llm.streams.wait_idle()

    [call] = await calls_of(session, learner)
    assert call.outcome == "incomplete"
    # The words came from the fallback: its model is named, at its price, not the primary's.
    assert call.model == "gpt-4o"
    expected = res.llm.prices.cost_usd("gpt-4o", Usage(call.input_tokens, call.output_tokens, True))
    assert call.cost_usd == usd(expected)
    message = await session.get(
        ConversationMessage, uuid.UUID(parse_sse(r.text)[-1][1]["message_id"])
    )
    assert message is not None
    assert (message.model, message.cost_usd) == ("gpt-4o", call.cost_usd)
    # The budget was settled at what was recorded.
    spent = await res.cache.get(user_spend_key(utc_day(res.clock.now()), learner.id))
    assert usd(float(spent or 0)) == call.cost_usd


async def test_a_reply_whose_conversation_was_deleted_meanwhile_stays_on_record(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    holding_server: HoldingServer,
) -> None:
    res = tutor(llm_base_url=holding_server.openai_base_url)
    holding_server.script(
        HeldReply(text="What does your loop add?", input_tokens=400, output_tokens=9)
    )
    conversation_id = await new_conversation(client, headers)
    asking = asyncio.create_task(ask(client, headers, conversation_id, "why?"))
    await holding_server.wait_until_held()  # the model has written its reply
    url = f"/api/v1/conversations/{conversation_id}"
    assert (await client.delete(url, headers=headers)).status_code == 204
    holding_server.release.set()
    r = await asking
    assert r.status_code == 404, r.text

    # The model was paid for: its call stays on record, as the budget counted it.
    [call] = await calls_of(session, learner)
    assert (call.outcome, call.input_tokens, call.output_tokens) == ("ok", 400, 9)
    assert call.cost_usd > 0
    spent = await res.cache.get(user_spend_key(utc_day(res.clock.now()), learner.id))
    assert usd(float(spent or 0)) == call.cost_usd
    usage = (await client.get("/api/v1/users/me/usage", headers=headers)).json()
    assert Decimal(usage["spent_usd"]) == call.cost_usd
    # The lock went with the request.
    assert (await client.post("/api/v1/conversations", headers=headers, json={})).status_code == 201


async def test_a_streamed_reply_whose_conversation_was_deleted_meanwhile_stays_on_record(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    holding_server: HoldingServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    res = tutor(llm_base_url=holding_server.openai_base_url)
    holding_server.script(
        HeldReply(text="What does your loop add?", input_tokens=400, output_tokens=9, hold_after=1)
    )
    conversation_id = await new_conversation(client, headers)
    # The question is stored while the provider starts: wait for both before the deletion,
    # which shares the test's one database connection.
    stored = asyncio.Event()
    store_while_starting = streaming.store_while_starting

    async def noting_stored(*args: Any) -> ConversationMessage:
        question = await store_while_starting(*args)
        stored.set()
        return question

    monkeypatch.setattr(streaming, "store_while_starting", noting_stored)
    asking = asyncio.create_task(ask(client, headers, conversation_id, "why?", stream=True))
    await holding_server.wait_until_held()
    await asyncio.wait_for(stored.wait(), timeout=10)
    url = f"/api/v1/conversations/{conversation_id}"
    assert (await client.delete(url, headers=headers)).status_code == 204
    holding_server.release.set()
    r = await asking
    await res.llm.streams.wait_idle()
    assert parse_sse(r.text)[-1][0] == "done"

    [call] = await calls_of(session, learner)
    assert (call.outcome, call.input_tokens, call.output_tokens) == ("ok", 400, 9)
    assert call.conversation_id is None
    spent = await res.cache.get(user_spend_key(utc_day(res.clock.now()), learner.id))
    assert usd(float(spent or 0)) == call.cost_usd > 0
