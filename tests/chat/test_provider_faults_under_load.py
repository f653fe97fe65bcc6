"""The tutor under load while its provider fails: errors, garbage, rate limits, hangs.

A crowd of learners asks at once (as JSON and as streams). Whatever the provider does, every
question is stored, every learner gets a 503 TutorUnavailable with Retry-After (never a 500,
never a hang past the configured timeout), the circuit breaker stops the retries so a failing
provider is not hammered, and once the provider is back and the cool-down is over, answers
flow again without a restart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from koan.db import transactional
from koan.llm.tutor_llm import build_tutor_llm
from koan.models import ConversationMessage
from tests.chat.helpers import ask, new_conversation
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.live import LiveApp
from tests.fixtures.llm_server import FakeLLMServer, FakeTimer, Reply

CROWD = 10
# Every attempt of every learner, with room to spare: the fault never runs out mid-test.
ENOUGH = 10 * CROWD
Crowd = list[tuple[dict[str, str], str]]


@pytest.fixture
async def crowd(
    live: LiveApp, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> AsyncIterator[Crowd]:
    """CROWD verified learners, each with a conversation, on the live app (committed sessions,
    so their requests really run at once), tutored by the fake provider."""
    res = live.res
    res.settings = res.settings.model_copy(
        update={
            "llm_provider": "openai",
            "llm_base_url": llm_server.openai_base_url,
            "llm_model": "gpt-4o-mini",
            "llm_reply_max_tokens": 50,
        }
    )
    res.llm = build_tutor_llm(res.settings, timer=fake_timer)
    async with res.session_factory() as session, transactional(session):
        users = [await create_user(session, res, onboarded=True) for _ in range(CROWD)]
        tokens = [await bearer(session, res, user) for user in users]
    live.users += [user.id for user in users]
    yield [(headers, await new_conversation(live.client, headers)) for headers in tokens]
    await res.llm.close()


def with_timeout(live: LiveApp, fake_timer: FakeTimer, seconds: float) -> None:
    res = live.res
    res.settings = res.settings.model_copy(update={"llm_timeout_s": seconds})
    res.llm = build_tutor_llm(res.settings, timer=fake_timer)


async def everyone_asks(
    live: LiveApp, crowd: Crowd, text: str, *, stream: bool = False
) -> list[httpx.Response]:
    asking = (ask(live.client, h, c, text, stream=stream) for h, c in crowd)
    return list(await asyncio.gather(*asking))


def assert_all_unavailable(responses: list[httpx.Response]) -> None:
    for r in responses:
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "TutorUnavailable"
        assert int(r.headers["Retry-After"]) >= 1


async def questions_and_replies(live: LiveApp, crowd: Crowd) -> tuple[int, int]:
    ids = [uuid.UUID(conversation) for _, conversation in crowd]
    query = (
        select(ConversationMessage.role, func.count())
        .where(ConversationMessage.conversation_id.in_(ids))
        .group_by(ConversationMessage.role)
    )
    async with live.res.session_factory() as session:
        counts = {role: n for role, n in (await session.execute(query)).all()}
    return counts.get("user", 0), counts.get("assistant", 0)


async def back_online(live: LiveApp, crowd: Crowd, llm: FakeLLMServer, clock: FakeTimer) -> None:
    """The provider answers again and the cool-down is over: one learner's question is the
    probe that closes the circuit."""
    llm.reset()
    clock.advance(61)
    [(headers, conversation), *_] = crowd
    probe = await ask(live.client, headers, conversation, "are you back?")
    assert probe.status_code == 201, probe.text


async def test_a_failing_provider_under_load(
    live: LiveApp, crowd: Crowd, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    faults = [Reply.server_error(500), Reply.broken_json(), Reply.rate_limited(retry_after="60")]
    for fault, stream in zip(faults, (False, True, False), strict=True):
        await back_online(live, crowd, llm_server, fake_timer)
        llm_server.reset()
        llm_server.script(*[fault] * ENOUGH)

        assert_all_unavailable(await everyone_asks(live, crowd, "first", stream=stream))
        # The breaker opened after five consecutive failures: the attempts already in flight
        # reached the provider (all of them, or on SQLite, which takes the writes one at a
        # time, just the five), then the retries stopped (three attempts each: 3 x CROWD).
        reached = len(llm_server.requests)
        assert 5 <= reached < 2 * CROWD, (fault, reached)
        assert_all_unavailable(await everyone_asks(live, crowd, "again", stream=not stream))
        # While it is open, nobody's request reaches the failing provider at all.
        assert len(llm_server.requests) == reached, fault

    # Nothing a learner wrote is lost, and no reply was invented: the only replies are the
    # three probes'.
    asked = 3 * 2 * CROWD + 3
    assert await questions_and_replies(live, crowd) == (asked, 3)

    await back_online(live, crowd, llm_server, fake_timer)
    answered = await everyone_asks(live, crowd, "last wave", stream=True)
    assert [r.status_code for r in answered] == [200] * CROWD
    assert all("event: done" in r.text for r in answered)
    assert await questions_and_replies(live, crowd) == (asked + 1 + CROWD, 3 + 1 + CROWD)


async def test_a_hanging_provider_under_load_times_out_instead_of_holding_learners(
    live: LiveApp, crowd: Crowd, llm_server: FakeLLMServer, fake_timer: FakeTimer
) -> None:
    with_timeout(live, fake_timer, 0.5)
    llm_server.script(*[Reply.hanging()] * ENOUGH)

    # Bounded by the timeout (the first attempts time out together, which opens the breaker
    # and stops the retries); the outer bound only turns a hang into a failure here.
    responses = await asyncio.wait_for(everyone_asks(live, crowd, "hello?", stream=True), 30)

    assert_all_unavailable(responses)
    details = [r.json()["detail"] for r in responses]
    # Timed out, or (for a learner whose retry came after the breaker opened) skipped.
    assert all("timed out" in d or "paused after repeated failures" in d for d in details), details
    assert any("timed out" in d for d in details)
    assert await questions_and_replies(live, crowd) == (CROWD, 0)
