"""Daily budgets: checked before a call with its projected cost, settled after with the real
one, shared by every worker through the cache, seeded from the call records."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.cache import Cache, RedisCache
from koan.db import transactional
from koan.errors import BudgetExceeded
from koan.llm.tutor_llm import build_tutor_llm
from koan.models import LLMCall, User
from koan.ratelimit import RateLimiter, create_storage
from koan.resources import Resources
from koan.tutor_gateway import budgets
from koan.tutor_gateway.budgets import global_spend_key, user_spend_key, utc_day
from tests.chat.helpers import ask, new_conversation
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.live import LiveApp
from tests.fixtures.llm_server import FakeLLMServer, FakeTimer, Reply

Tutor = Callable[..., Resources]
# 1000 + 1000 tokens at $100 per million: $0.20 a reply, far above any projection (~$0.03).
EXPENSIVE = Reply(text="An expensive answer?", input_tokens=1000, output_tokens=1000)


def shared_cache(cache: Cache) -> Cache:
    """What a second worker would open: the same Redis (new client object), or, on the
    in-process backend, the very same cache object."""
    if isinstance(cache, RedisCache):
        return RedisCache(cache.client, cache.prefix)
    return cache


async def spent_in_cache(res: Resources, user: User) -> float:
    value = await res.cache.get(user_spend_key(utc_day(res.clock.now()), user.id))
    return float(value or 0)


async def test_over_budget_is_a_429_until_midnight_utc(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor(llm_user_daily_budget_usd=Decimal("0.21"))
    llm_server.script(EXPENSIVE)
    conversation_id = await new_conversation(client, headers)
    assert (await ask(client, headers, conversation_id, "first")).status_code == 201
    # $0.20 spent; the next call's worst case (prompt + 50 tokens, over $0.02) would cross $0.21.
    r = await ask(client, headers, conversation_id, "second")
    assert r.status_code == 429
    assert r.json()["error"] == "BudgetExceeded"
    now = resources.clock.now()
    midnight = datetime.combine(utc_day(now) + timedelta(days=1), datetime.min.time())
    assert midnight.date().isoformat() + "T00:00:00Z" in r.json()["detail"]
    assert "$0.21" in r.json()["detail"]
    wait = int(r.headers["Retry-After"])
    until_midnight = (midnight - now.replace(tzinfo=None)).total_seconds()
    assert 1 <= wait <= 86400
    assert abs(wait - until_midnight) < 5
    assert len(llm_server.requests) == 1  # the model was not asked
    # The refused call held nothing back: the running total is exactly what was spent.
    assert await spent_in_cache(resources, learner) == pytest.approx(0.20)

    # Tomorrow the budget starts over.
    resources.clock.advance(timedelta(days=1))
    llm_server.script(Reply(text="A new day?"))
    fresh = await bearer(session, resources, learner)  # yesterday's access token has expired
    assert (await ask(client, fresh, conversation_id, "third")).status_code == 201


async def test_a_streamed_question_over_budget_is_refused_and_kept(
    client: httpx.AsyncClient,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor(llm_user_daily_budget_usd=Decimal("0.21"))
    llm_server.script(EXPENSIVE)
    conversation_id = await new_conversation(client, headers)
    assert (await ask(client, headers, conversation_id, "first", stream=True)).status_code == 200
    r = await ask(client, headers, conversation_id, "second", stream=True)
    assert r.status_code == 429
    assert r.json()["error"] == "BudgetExceeded"
    assert len(llm_server.requests) == 1  # the model was not asked
    detail = (await client.get(f"/api/v1/conversations/{conversation_id}", headers=headers)).json()
    asked = [m["content"] for m in detail["messages"] if m["role"] == "user"]
    assert asked == ["first", "second"]
    assert r.headers["X-Koan-Message-Id"] == detail["messages"][-1]["id"]
    assert await spent_in_cache(resources, learner) == pytest.approx(0.20)
    # The reply lock went with the refusal.
    tutor(llm_user_daily_budget_usd=Decimal("10"))
    llm_server.script(Reply(text="Go on?"))
    assert (await ask(client, headers, conversation_id, "third", stream=True)).status_code == 200


async def test_two_workers_share_one_running_total(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
    make_app: Callable[[Resources], FastAPI],
) -> None:
    tutor(llm_user_daily_budget_usd=Decimal("0.50"))
    namespace = uuid.uuid4().hex
    other = replace(
        resources,
        cache=shared_cache(resources.cache),
        limiter=RateLimiter(create_storage(""), namespace=namespace),
    )
    tutor(other, llm_user_daily_budget_usd=Decimal("0.50"))
    transport = httpx.ASGITransport(app=make_app(other), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker-b") as worker_b:
        llm_server.script(*[EXPENSIVE] * 4)
        conversation_id = await new_conversation(client, headers)
        assert (await ask(client, headers, conversation_id, "a1")).status_code == 201
        assert (await ask(worker_b, headers, conversation_id, "b1")).status_code == 201
        # Counted once each, whichever worker served the call.
        assert await spent_in_cache(resources, learner) == pytest.approx(0.40)
        me = (await worker_b.get("/api/v1/users/me/usage", headers=headers)).json()
        assert me["spent_usd"] == "0.400000"
        assert me["calls_by_purpose"]["chat"] == 2

        assert (await ask(client, headers, conversation_id, "a2")).status_code == 201  # 0.43 ok
        r = await ask(worker_b, headers, conversation_id, "b2")  # 0.60 spent: refused
        assert r.status_code == 429
        assert r.json()["error"] == "BudgetExceeded"
        r = await ask(client, headers, conversation_id, "a3")
        assert r.status_code == 429
    assert len(llm_server.requests) == 3


async def test_the_running_total_is_seeded_from_the_call_records(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor(llm_user_daily_budget_usd=Decimal("0.50"))
    # Spending another worker recorded before this cache existed (a restart, a flushed Redis).
    session.add(
        LLMCall(
            user_id=learner.id, purpose="chat", provider="openai", model="tutor-test",
            cost_usd=Decimal("0.49"), day=utc_day(resources.clock.now()),
        )
    )  # fmt: skip
    await session.flush()
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "hello")
    assert r.status_code == 429
    assert r.json()["error"] == "BudgetExceeded"
    assert await spent_in_cache(resources, learner) == pytest.approx(0.49)
    assert llm_server.requests == []


async def test_the_global_budget_covers_everyone(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor(llm_global_daily_budget_usd=Decimal("1.00"))
    someone = await create_user(session, resources)
    session.add(
        LLMCall(
            user_id=someone.id, purpose="generation", provider="openai", model="tutor-test",
            cost_usd=Decimal("0.99"), day=utc_day(resources.clock.now()),
        )
    )  # fmt: skip
    await session.flush()
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "hello")
    assert r.status_code == 429
    assert "Koan's daily AI budget ($1.00)" in r.json()["detail"]
    day = utc_day(resources.clock.now())
    assert float(await resources.cache.get(global_spend_key(day)) or 0) == pytest.approx(0.99)


async def test_an_administrator_sets_a_learners_own_budget(
    client: httpx.AsyncClient,
    learner: User,
    headers: dict[str, str],
    admin_headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    url = f"/api/v1/admin/usage/users/{learner.id}/budget"
    r = await client.put(url, headers=admin_headers, json={"daily_budget_usd": "0.01"})
    assert r.status_code == 200
    assert r.json() == {
        "user_id": str(learner.id), "daily_budget_usd": "0.010000", "is_default": False,
        "spent_today_usd": "0.000000",
    }  # fmt: skip
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "hello")
    assert r.status_code == 429
    assert "$0.01" in r.json()["detail"]

    r = await client.put(url, headers=admin_headers, json={"daily_budget_usd": None})
    assert r.json()["is_default"]
    assert r.json()["daily_budget_usd"] == "0.500000"
    assert (await ask(client, headers, conversation_id, "hello")).status_code == 201

    assert (
        await client.put(url, headers=headers, json={"daily_budget_usd": "99"})
    ).status_code == 403
    for bad in ("-1", "abc", "1e9"):
        r = await client.put(url, headers=admin_headers, json={"daily_budget_usd": bad})
        assert r.status_code == 422, bad
    missing = f"/api/v1/admin/usage/users/{uuid.UUID(int=0)}/budget"
    assert (await client.get(missing, headers=admin_headers)).status_code == 404


async def test_a_budget_change_rolled_back_leaves_the_learner_the_budget_on_record(
    session: AsyncSession, resources: Resources, learner: User
) -> None:
    admin = await create_user(session, resources, role="admin")
    default = await budgets.daily_budget(session, resources, learner.id)
    savepoint = await session.begin_nested()
    await budgets.set_budget_override(session, resources, learner.id, Decimal("9"), by=admin.id)
    await savepoint.rollback()
    # Every worker reads the budget through the cache: a change that never committed is not it.
    assert await budgets.daily_budget(session, resources, learner.id) == default


async def test_the_offline_tutor_is_never_refused_for_budget(
    client: httpx.AsyncClient, resources: Resources, learner: User, headers: dict[str, str]
) -> None:
    resources.settings = resources.settings.model_copy(
        update={"llm_user_daily_budget_usd": Decimal(0)}
    )
    conversation_id = await new_conversation(client, headers)
    assert (await ask(client, headers, conversation_id, "hello")).status_code == 201
    assert await spent_in_cache(resources, learner) == 0


async def test_a_total_missing_beside_a_kept_one_is_seeded_then_added_to(
    session: AsyncSession, learner: User, tutor: Tutor
) -> None:
    res = tutor(llm_user_daily_budget_usd=Decimal("0.50"))
    day = utc_day(res.clock.now())
    await res.cache.set(global_spend_key(day), "0.25")  # kept; the learner's is not, yet
    session.add(
        LLMCall(
            user_id=learner.id, purpose="chat", provider="openai", model="tutor-test",
            cost_usd=Decimal("0.10"), day=day,
        )
    )  # fmt: skip
    await session.flush()

    held = await budgets.reserve(session, res, learner.id, Decimal("0.05"))
    assert held.amount == pytest.approx(0.05)
    assert await spent_in_cache(res, learner) == pytest.approx(0.15)
    assert float(await res.cache.get(global_spend_key(day)) or 0) == pytest.approx(0.30)

    with pytest.raises(BudgetExceeded):  # 0.15 + 0.40 is over 0.50: both totals given back
        await budgets.reserve(session, res, learner.id, Decimal("0.40"))
    assert await spent_in_cache(res, learner) == pytest.approx(0.15)
    assert float(await res.cache.get(global_spend_key(day)) or 0) == pytest.approx(0.30)


async def test_a_total_lost_while_a_call_runs_is_seeded_again_not_settled_into(
    session: AsyncSession, learner: User, tutor: Tutor
) -> None:
    res = tutor(llm_user_daily_budget_usd=Decimal("0.50"))
    day = utc_day(res.clock.now())
    session.add(
        LLMCall(
            user_id=learner.id, purpose="chat", provider="openai", model="tutor-test",
            cost_usd=Decimal("0.40"), day=day,
        )
    )  # fmt: skip
    await session.flush()
    held = await budgets.reserve(session, res, learner.id, Decimal("0.05"))
    assert await spent_in_cache(res, learner) == pytest.approx(0.45)
    # The cache loses the day's totals while the call runs (a flushed Redis, an evicted key).
    await res.cache.delete(user_spend_key(day, learner.id))
    await res.cache.delete(global_spend_key(day))
    await budgets.settle(res, held, Decimal("0.02"))
    assert await res.cache.get(user_spend_key(day, learner.id)) is None
    assert await res.cache.get(global_spend_key(day)) is None
    session.add(
        LLMCall(
            user_id=learner.id, purpose="chat", provider="openai", model="tutor-test",
            cost_usd=Decimal("0.02"), day=day,
        )
    )  # fmt: skip
    await session.flush()
    # The next call starts from what the records say ($0.42), not from the correction alone.
    with pytest.raises(BudgetExceeded):
        await budgets.reserve(session, res, learner.id, Decimal("0.10"))
    assert await spent_in_cache(res, learner) == pytest.approx(0.42)


async def test_settling_deletes_what_the_call_held_besides_whether_or_not_it_corrects(
    session: AsyncSession, learner: User, tutor: Tutor
) -> None:
    """A streamed reply settles its budget and releases its lock together, once stored."""
    res = tutor()
    held = await budgets.reserve(session, res, learner.id, Decimal("0.05"))
    await res.cache.set("held:a", "1", ttl_s=60)
    await budgets.settle(res, held, Decimal("0.02"), delete=["held:a"])
    assert await spent_in_cache(res, learner) == pytest.approx(0.02)
    assert await res.cache.get("held:a") is None
    # Settled already: nothing more is corrected, but what is to be deleted still is.
    await res.cache.set("held:b", "1", ttl_s=60)
    await budgets.settle(res, held, Decimal("0.04"), delete=["held:b"])
    assert await spent_in_cache(res, learner) == pytest.approx(0.02)
    assert await res.cache.get("held:b") is None


async def _change_while_read(live: LiveApp, monkeypatch: pytest.MonkeyPatch, read: str) -> User:
    """Make the budget module's `read` (a query of the override) return what the row held,
    then let an administrator change the learner's budget to $9 and commit before the reader
    goes on: the reader holds the row as it was before the change."""
    res = live.res
    async with res.session_factory() as session, transactional(session):
        learner = await create_user(session, res, onboarded=True)
        admin = await create_user(session, res, role="admin")
    live.users += [learner.id, admin.id]
    original = getattr(budgets.repository, read)

    async def read_then_change(session: AsyncSession, *args: Any, **kwargs: Any) -> Any:
        found = await original(session, *args, **kwargs)
        # The reader's transaction ends (SQLite would make the change wait for it); what it
        # read is all it keeps.
        await session.rollback()
        monkeypatch.setattr(budgets.repository, read, original)
        async with res.session_factory() as session, transactional(session):
            await budgets.set_budget_override(session, res, learner.id, Decimal("9"), by=admin.id)
        return found

    monkeypatch.setattr(budgets.repository, read, read_then_change)
    return learner


async def test_a_worker_reading_the_old_budget_does_not_put_it_back(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    learner = await _change_while_read(live, monkeypatch, "budget_override")
    async with live.res.session_factory() as session:
        # This read raced the change: it may answer with what it read, once.
        await budgets.daily_budget(session, live.res, learner.id)
        # Every later read, on any worker, has the administrator's budget.
        assert await budgets.daily_budget(session, live.res, learner.id) == Decimal("9")


async def test_a_call_reading_the_old_budget_does_not_put_it_back(
    live: LiveApp,
    monkeypatch: pytest.MonkeyPatch,
    llm_server: FakeLLMServer,
    fake_timer: FakeTimer,
) -> None:
    learner = await _change_while_read(live, monkeypatch, "spending_and_override")
    res = live.res
    res.settings = res.settings.model_copy(
        update={
            "llm_provider": "openai",
            "llm_base_url": llm_server.openai_base_url,
            "llm_model": "gpt-4o-mini",
        }
    )
    res.llm = build_tutor_llm(res.settings, timer=fake_timer)
    async with res.session_factory() as session:
        # The learner's first call of the day seeds their total, and reads the budget with it.
        reservation = await budgets.reserve(session, res, learner.id, Decimal("0.01"))
        await budgets.settle(res, reservation, Decimal("0.01"))
        assert await budgets.daily_budget(session, res, learner.id) == Decimal("9")
    await res.llm.close()
