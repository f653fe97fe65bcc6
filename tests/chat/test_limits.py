"""Per-learner limits on the chat: a rate limit, and one reply in flight at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from koan.cache import RedisCache
from koan.chat import streaming
from koan.chat.admission import reply_lock_key
from koan.models import ConversationMessage, User
from koan.resources import Resources
from koan.tutor_gateway.budgets import user_spend_key, utc_day
from tests.chat.helpers import HeldReply, HoldingServer, ask, new_conversation, parse_sse
from tests.conftest import REDIS_URL
from tests.fixtures.factories import bearer, create_user

Tutor = Callable[..., Resources]


async def test_chat_is_rate_limited_per_learner(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    headers: dict[str, str],
) -> None:
    resources.settings = resources.settings.model_copy(update={"llm_chat_limit": "2/minute"})
    conversation_id = await new_conversation(client, headers)
    for n in range(2):
        assert (await ask(client, headers, conversation_id, f"q{n}")).status_code == 201
    r = await ask(client, headers, conversation_id, "one too many")
    assert r.status_code == 429
    assert r.json()["error"] == "RateLimited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    detail = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    assert len(detail["messages"]) == 4  # the refused message was not stored

    other = await bearer(session, resources, await create_user(session, resources, onboarded=True))
    theirs = await new_conversation(client, other)
    assert (await ask(client, other, theirs, "my own allowance")).status_code == 201


async def test_a_second_message_while_a_reply_is_in_flight_is_refused(
    client: httpx.AsyncClient,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
) -> None:
    conversation_id = await new_conversation(client, headers)
    # Another worker is answering this learner right now.
    await resources.cache.set_if_absent(reply_lock_key(learner.id), "1", ttl_s=60)
    r = await ask(client, headers, conversation_id, "hello?")
    assert r.status_code == 409
    assert r.json()["error"] == "ReplyInProgress"
    detail = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    assert detail["messages"] == []

    await resources.cache.delete(reply_lock_key(learner.id))
    assert (await ask(client, headers, conversation_id, "hello?")).status_code == 201
    # ...and the lock is released after every reply.
    assert await resources.cache.get(reply_lock_key(learner.id)) is None


async def test_concurrent_messages_get_one_reply_and_one_conflict(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tutor: Tutor,
    holding_server: HoldingServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tutor(llm_base_url=holding_server.openai_base_url)
    holding_server.script(HeldReply(text="first answer, slowly", hold_after=1))
    conversation_id = await new_conversation(client, headers)
    # The question is stored while the provider starts: wait for both before the second
    # request, which shares the test's one database connection.
    stored = asyncio.Event()
    store_while_starting = streaming.store_while_starting

    async def noting_stored(*args: Any) -> ConversationMessage:
        question = await store_while_starting(*args)
        stored.set()
        return question

    monkeypatch.setattr(streaming, "store_while_starting", noting_stored)
    first_ask = asyncio.create_task(ask(client, headers, conversation_id, "one", stream=True))
    await holding_server.wait_until_held()
    await asyncio.wait_for(stored.wait(), timeout=10)

    second = await ask(client, headers, conversation_id, "two")
    assert second.status_code == 409
    assert second.json()["error"] == "ReplyInProgress"

    holding_server.release.set()
    first = await first_ask
    events = parse_sse(first.text)
    assert events[-1][0] == "done"
    assert "".join(d["delta"] for n, d in events if n == "token") == "first answer, slowly"
    assert (await ask(client, headers, conversation_id, "two")).status_code == 201


async def test_a_question_refused_for_a_reply_in_flight_gives_back_the_budget_held(
    client: httpx.AsyncClient,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
) -> None:
    # The rate limit, the reply lock and the budget are checked at the same moment.
    tutor()
    conversation_id = await new_conversation(client, headers)
    spent_key = user_spend_key(utc_day(resources.clock.now()), learner.id)
    await resources.cache.set_if_absent(reply_lock_key(learner.id), "1", ttl_s=60)
    r = await ask(client, headers, conversation_id, "hello?", stream=True)
    assert r.status_code == 409
    assert float(await resources.cache.get(spent_key) or 0) == 0


async def test_a_rate_limited_question_gives_back_the_lock_and_the_budget(
    client: httpx.AsyncClient,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
) -> None:
    tutor(llm_chat_limit="1/minute")
    conversation_id = await new_conversation(client, headers)
    spent_key = user_spend_key(utc_day(resources.clock.now()), learner.id)
    await resources.limiter.hit("1/minute", "chat", str(learner.id))  # the minute's one message
    r = await ask(client, headers, conversation_id, "hello?", stream=True)
    assert r.status_code == 429
    assert r.json()["error"] == "RateLimited"
    assert float(await resources.cache.get(spent_key) or 0) == 0
    assert await resources.cache.set_if_absent(reply_lock_key(learner.id), "1", ttl_s=60)


@pytest.mark.skipif(not REDIS_URL, reason="KOAN_TEST_REDIS_URL is not set (CI sets it)")
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # Redis comes with it
async def test_a_streamed_reply_settles_its_budget_and_unlocks_in_one_round_trip(
    client: httpx.AsyncClient,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
) -> None:
    assert isinstance(resources.cache, RedisCache)
    tutor()
    conversation_id = await new_conversation(client, headers)
    lock = reply_lock_key(learner.id)
    assert (await ask(client, headers, conversation_id, "warm up", stream=True)).status_code == 200
    watcher = redis_asyncio.Redis.from_url(REDIS_URL)
    done = f"done-{learner.id}"
    sent: list[tuple[str, str]] = []
    try:
        async with watcher.monitor() as monitor:

            async def ask_then_mark() -> httpx.Response:
                r = await ask(client, headers, conversation_id, "hello?", stream=True)
                await resources.llm.streams.wait_idle()
                await watcher.echo(done)
                return r

            asking = asyncio.create_task(ask_then_mark())
            async for command in monitor.listen():
                if done in command["command"]:
                    break
                if lock in command["command"]:
                    sent.append((command["client_type"], command["command"].split()[0]))
            r = await asking
    finally:
        await watcher.aclose()
    assert parse_sse(r.text)[-1][0] == "done"
    # Koan named the lock twice: taking it, then in the script that settles the budget and
    # deletes it inside Redis.
    assert [name for who, name in sent if who != "lua"] == ["SET", "EVALSHA"], sent
    assert [name for who, name in sent if who == "lua"] == ["DEL"], sent
    assert await resources.cache.get(lock) is None
