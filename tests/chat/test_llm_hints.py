"""Hints from the model, tailored to the latest code, cached per exercise and code, guarded,
with the authored ladder as the fallback."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise, LLMCall, User
from koan.resources import Resources
from tests.chat.helpers import EVENS_HINTS, LEAKING_REPLY, leaks_counted, record_attempt
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.llm_server import FakeLLMServer, Reply

Tutor = Callable[..., Resources]
TAILORED = "Your loop adds every n. Which of them should it skip?"


async def hint(
    client: httpx.AsyncClient, headers: dict[str, str], exercise: Exercise
) -> httpx.Response:
    return await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=headers)


async def hint_calls(session: AsyncSession) -> list[LLMCall]:
    rows = await session.execute(
        select(LLMCall).where(LLMCall.purpose == "hint").order_by(LLMCall.created_at)
    )
    return list(rows.scalars())


async def test_the_offline_tutor_serves_the_authored_ladder(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
) -> None:
    await record_attempt(session, resources, learner, evens)
    r = await hint(client, headers, evens)
    assert r.json() == {"hint": EVENS_HINTS[0], "index": 1, "remaining": 2}
    assert await hint_calls(session) == []


async def test_a_tailored_hint_is_cached_for_the_next_learner_with_the_same_code(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    llm_server.script(Reply(text=TAILORED, input_tokens=400, output_tokens=20))
    await record_attempt(session, resources, learner, evens)
    r = await hint(client, headers, evens)
    assert r.status_code == 200
    assert r.json() == {"hint": TAILORED, "index": 1, "remaining": 2}
    [request] = llm_server.requests
    assert request.body["temperature"] == 0
    system = request.body["messages"][0]["content"]
    assert "The next hint (do not quote it; give something smaller)" in system
    assert EVENS_HINTS[0] in system
    assert "total += n" in system
    assert "Ada Learner" not in system
    assert "Write small scripts" not in system

    other = await create_user(session, resources, onboarded=True, name="Grace Other")
    await record_attempt(session, resources, other, evens)  # the very same code
    r = await hint(client, await bearer(session, resources, other), evens)
    assert r.json()["hint"] == TAILORED
    assert len(llm_server.requests) == 1  # served from the cache
    first, second = await hint_calls(session)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.cost_usd > 0
    assert second.cost_usd == 0
    assert second.user_id == other.id


async def test_other_code_or_another_rung_is_not_served_from_the_cache(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    llm_server.script(Reply(text=TAILORED), Reply(text="Rung two, tailored."),
                      Reply(text="For your other code."))  # fmt: skip
    await record_attempt(session, resources, learner, evens)
    assert (await hint(client, headers, evens)).json()["hint"] == TAILORED
    assert (await hint(client, headers, evens)).json()["hint"] == "Rung two, tailored."

    other = await create_user(session, resources, onboarded=True)
    await record_attempt(
        session, resources, other, evens, code="def sum_of_evens(xs):\n    return 0\n"
    )
    r = await hint(client, await bearer(session, resources, other), evens)
    assert r.json()["hint"] == "For your other code."
    assert len(llm_server.requests) == 3
    assert not any(c.cache_hit for c in await hint_calls(session))


async def test_the_authored_rung_is_served_while_the_provider_is_down(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    await record_attempt(session, resources, learner, evens)
    llm_server.script(*[Reply.server_error()] * 3)
    assert (await hint(client, headers, evens)).json() == {
        "hint": EVENS_HINTS[0], "index": 1, "remaining": 2,
    }  # fmt: skip
    [error] = await hint_calls(session)
    assert error.outcome == "error"


async def test_a_hint_that_leaks_is_withheld_and_never_cached(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    await record_attempt(session, resources, learner, evens)
    llm_server.script(Reply(text=LEAKING_REPLY))
    assert (await hint(client, headers, evens)).json()["hint"] == EVENS_HINTS[0]
    [leak] = await hint_calls(session)
    assert leak.leak_caught
    other = await create_user(session, resources, onboarded=True)
    await record_attempt(session, resources, other, evens)  # the same code and rung
    llm_server.script(Reply(text="A fresh, safe first hint."))
    r = await hint(client, await bearer(session, resources, other), evens)
    assert r.json()["hint"] == "A fresh, safe first hint."


async def test_the_authored_rung_is_served_without_asking_the_model_when_the_budget_is_used_up(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    await record_attempt(session, resources, learner, evens)
    resources.settings = resources.settings.model_copy(
        update={"llm_user_daily_budget_usd": resources.settings.llm_user_daily_budget_usd * 0}
    )
    assert (await hint(client, headers, evens)).json()["hint"] == EVENS_HINTS[0]
    assert llm_server.requests == []


async def test_a_withheld_hint_is_counted_in_the_metrics(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    await record_attempt(session, resources, learner, evens)
    llm_server.script(Reply(text=LEAKING_REPLY))
    assert (await hint(client, headers, evens)).json()["hint"] == EVENS_HINTS[0]
    assert leaks_counted(app) == 1
