"""A class's tutor budgets: per learner and for the whole class, each day, within the server's.

They count the tutor's replies in conversations about the class's exercises, are held before
each call as the server's budgets are (shared by every worker through the cache), refuse with
429 BudgetExceeded, and start the day from the calls on record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.classes.tutor import class_spend, tutor_policy_for
from koan.errors import BudgetExceeded
from koan.models import Exercise, LLMCall, User
from koan.resources import Resources
from koan.tutor_gateway import budgets
from tests.chat.helpers import ask, new_conversation, record_attempt
from tests.classes.helpers import Course, create_course
from tests.fixtures.factories import bearer, create_exercise, create_user
from tests.fixtures.llm_server import FakeLLMServer, Reply

Tutor = Callable[..., Resources]
# 1000 + 1000 tokens at $100 per million: $0.20 a reply; a projection is about $0.03.
EXPENSIVE = Reply(text="What does your loop do first?", input_tokens=1000, output_tokens=1000)


async def _course(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    timezone: str = "UTC",
    **tutor: str | bool,
) -> tuple[Course, Exercise]:
    course = await create_course(client, session, resources, learners=2, timezone=timezone)
    exercise = await create_exercise(session)
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "W1", "exercise_ids": [str(exercise.id)],
              "opens_at": (now - timedelta(days=1)).isoformat(),
              "due_at": (now + timedelta(days=1)).isoformat()},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    if tutor:
        r = await client.patch(
            f"/api/v1/classes/{course.id}",
            json={"tutor": tutor},
            headers=course.headers["instructor"],
        )
        assert r.status_code == 200, r.text
    return course, exercise


async def test_a_class_sets_budgets_only_for_its_own_exercises(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise = await _course(client, session, resources)
    learner = course.learners[0]
    now = datetime.now(UTC)
    plain = await tutor_policy_for(session, learner, exercise.id, now=now)
    assert plain is not None
    assert plain.budgets == ()
    r = await client.patch(
        f"/api/v1/classes/{course.id}",
        json={"tutor": {"learner_daily_budget_usd": "0.50", "class_daily_cap_usd": "5"}},
        headers=course.headers["instructor"],
    )
    assert r.status_code == 200, r.text
    policy = await tutor_policy_for(session, learner, exercise.id, now=now)
    assert policy is not None
    assert [(b.scope, b.limit_usd) for b in policy.budgets] == [
        (f"class:{course.id}:user:{learner.id}", Decimal("0.5")),
        (f"class:{course.id}", Decimal("5")),
    ]
    other = await create_exercise(session)
    assert await tutor_policy_for(session, learner, other.id, now=now) is None


async def test_budgets_written_with_an_exponent_are_shown_in_plain_figures(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # "1e3" is a number JSON and Decimal both read; echoed as Decimal writes it, it came back
    # as "1E+3", which a spreadsheet or a person reads as text, not as a thousand dollars.
    course, _ = await _course(client, session, resources)
    url = f"/api/v1/classes/{course.id}"
    budgets_in = {"learner_daily_budget_usd": "1e3", "class_daily_cap_usd": "25E-1"}
    saved = await client.patch(
        url, json={"tutor": budgets_in}, headers=course.headers["instructor"]
    )
    read = await client.get(url, headers=course.headers["instructor"])
    for answer in (saved, read):
        assert answer.status_code == 200, answer.text
        tutor = answer.json()["tutor"]
        assert tutor["learner_daily_budget_usd"] == "1000.000000"
        assert tutor["class_daily_cap_usd"] == "2.500000"
    admin = await create_user(session, resources, role="admin", onboarded=True)
    own = await client.put(
        f"/api/v1/admin/usage/users/{course.learners[0].id}/budget",
        json={"daily_budget_usd": 1e2},
        headers=await bearer(session, resources, admin),
    )
    assert own.json()["daily_budget_usd"] == "100.000000", own.text


async def test_a_learner_over_the_class_budget_is_refused_on_its_exercises_only(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    course, exercise = await _course(client, session, resources, learner_daily_budget_usd="0.21")
    llm_server.script(EXPENSIVE, EXPENSIVE, EXPENSIVE)
    h0, h1 = course.headers["learner0"], course.headers["learner1"]
    about = await new_conversation(client, h0, exercise)
    assert (await ask(client, h0, about, "first")).status_code == 201
    # $0.20 spent in the class; the next reply's worst case would cross $0.21.
    for stream in (False, True):
        r = await ask(client, h0, about, "second", stream=stream)
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "BudgetExceeded"
        assert r.json()["detail"].startswith("Your daily AI tutor budget in CS 101 ($0.21)")
        assert "It resets at" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1
    assert len(llm_server.requests) == 1  # the model was not asked again
    # The budget is each learner's own, and it covers the class's exercises only.
    other = await create_exercise(session)
    elsewhere = await new_conversation(client, h0, other)
    assert (await ask(client, h0, elsewhere, "about something else")).status_code == 201
    classmate = await new_conversation(client, h1, exercise)
    assert (await ask(client, h1, classmate, "me too")).status_code == 201


async def test_the_class_cap_counts_every_learners_replies(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    course, exercise = await _course(client, session, resources, class_daily_cap_usd="0.21")
    llm_server.script(EXPENSIVE, EXPENSIVE)
    h0, h1 = course.headers["learner0"], course.headers["learner1"]
    first = await new_conversation(client, h0, exercise)
    assert (await ask(client, h0, first, "first", stream=True)).status_code == 200
    second = await new_conversation(client, h1, exercise)
    r = await ask(client, h1, second, "and me?")
    assert r.status_code == 429, r.text
    detail = r.json()["detail"]
    assert detail.startswith("The daily AI tutor budget of the whole class CS 101 ($0.21)")
    # The spend the instructor sees is what the budgets counted.
    usage = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/usage", headers=course.headers["instructor"]
    )
    assert usage.status_code == 200, usage.text
    assert usage.json()["spent_usd"] == "0.200000"
    assert usage.json()["by_learner"] == {course.learners[0].email: "0.200000"}
    assert usage.json()["class_daily_cap_usd"] == "0.210000"


async def test_class_budgets_start_the_day_from_the_calls_on_record(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    course, exercise = await _course(client, session, resources, learner_daily_budget_usd="0.21")
    a, b = course.learners
    day = resources.clock.now().date()
    other = await create_exercise(session)

    def call(user: User, cost: str, exercise_id: object, purpose: str = "chat") -> LLMCall:
        return LLMCall(user_id=user.id, purpose=purpose, provider="openai", model="m",
                       cost_usd=Decimal(cost), exercise_id=exercise_id, day=day)  # fmt: skip

    session.add_all(
        [
            # Count: a's reply and a hint tailored for a, about the class's exercise.
            call(a, "0.10", exercise.id),
            call(a, "0.10", exercise.id, purpose="hint"),
            # Not the class's tutor spend: another exercise, a written exercise, yesterday.
            call(b, "0.10", other.id),
            call(b, "0.10", None, purpose="generation"),
        ]
    )
    yesterday = call(b, "1.00", exercise.id)
    yesterday.day = day - timedelta(days=1)
    yesterday.created_at = resources.clock.now() - timedelta(days=1)
    session.add(yesterday)
    await session.flush()
    llm_server.script(EXPENSIVE)
    refused = await ask(
        client, course.headers["learner0"], await new_conversation(
            client, course.headers["learner0"], exercise
        ), "hello?",
    )  # fmt: skip
    assert refused.status_code == 429, refused.text
    allowed = await ask(
        client, course.headers["learner1"], await new_conversation(
            client, course.headers["learner1"], exercise
        ), "hello?",
    )  # fmt: skip
    assert allowed.status_code == 201, allowed.text


async def test_the_servers_budget_still_applies_under_a_larger_class_budget(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor(llm_user_daily_budget_usd=Decimal("0.21"))
    course, exercise = await _course(
        client, session, resources, learner_daily_budget_usd="5", class_daily_cap_usd="50"
    )
    llm_server.script(EXPENSIVE, EXPENSIVE)
    h0 = course.headers["learner0"]
    about = await new_conversation(client, h0, exercise)
    assert (await ask(client, h0, about, "first")).status_code == 201
    r = await ask(client, h0, about, "second")
    assert r.status_code == 429, r.text
    assert r.json()["detail"].startswith("Your daily AI tutor budget ($0.21)")


def move_to(resources: Resources, when: datetime) -> None:
    now = resources.clock.now()
    assert when > now
    resources.clock.advance(when - now)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
async def test_class_budgets_start_over_at_midnight_in_the_class_time_zone(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Tutor,
    zone: str,
) -> None:
    # New York's evening is the next UTC day; Tokyo's small hours are the previous one.
    tutor()
    course, exercise = await _course(
        client, session, resources, timezone=zone, learner_daily_budget_usd="0.21"
    )
    learner, local = course.learners[0], ZoneInfo(zone)
    day = resources.clock.now().astimezone(local).date() + timedelta(days=3)
    spent_at = datetime.combine(day, time(15), tzinfo=local)
    session.add(
        LLMCall(user_id=learner.id, purpose="chat", provider="openai", model="m",
                cost_usd=Decimal("0.20"), exercise_id=exercise.id,
                day=spent_at.astimezone(UTC).date(), created_at=spent_at)
    )  # fmt: skip
    await session.flush()

    async def reserve() -> budgets.Reservation:
        policy = await tutor_policy_for(session, learner, exercise.id, now=resources.clock.now())
        assert policy is not None
        return await budgets.reserve(
            session, resources, learner.id, Decimal("0.05"), limits=policy.budgets
        )

    move_to(resources, datetime.combine(day, time(23, 30), tzinfo=local))
    with pytest.raises(BudgetExceeded) as refused:
        await reserve()
    midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=local).astimezone(UTC)
    assert f"It resets at {midnight.isoformat().replace('+00:00', 'Z')}" in refused.value.detail
    assert refused.value.retry_after == 30 * 60
    # The instructor sees the class's day, and what it has spent so far.
    h = await bearer(session, resources, course.instructor)
    usage = await client.get(f"/api/v1/classes/{course.id}/dashboard/usage", headers=h)
    assert usage.status_code == 200, usage.text
    assert (usage.json()["day"], usage.json()["spent_usd"]) == (day.isoformat(), "0.200000")

    move_to(resources, datetime.combine(day + timedelta(days=1), time(0, 30), tzinfo=local))
    await budgets.release(resources, await reserve())


async def test_tailored_hints_count_against_the_class_budgets(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    course, exercise = await _course(client, session, resources, learner_daily_budget_usd="0.21")
    learner, h0 = course.learners[0], course.headers["learner0"]
    await record_attempt(session, resources, learner, exercise, code="def add(a, b):\n    pass\n")
    llm_server.script(EXPENSIVE, EXPENSIVE)
    first = await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=h0)
    assert first.status_code == 200, first.text
    assert first.json()["hint"] == EXPENSIVE.text  # tailored by the model: $0.20 of the $0.21
    # The class's budget is spent: the next hint is the authored rung, the model not asked.
    second = await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=h0)
    assert second.status_code == 200, second.text
    assert second.json()["hint"] == exercise.hints[1]
    assert len(llm_server.requests) == 1
    # And the tutor says so in a conversation about the exercise.
    r = await ask(client, h0, await new_conversation(client, h0, exercise), "help?")
    assert r.status_code == 429, r.text
    assert r.json()["detail"].startswith("Your daily AI tutor budget in CS 101 ($0.21)")
    usage = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/usage", headers=course.headers["instructor"]
    )
    assert usage.json()["by_learner"] == {learner.email: "0.200000"}


async def test_a_class_that_switched_the_tutor_off_gets_the_authored_hints(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    course, exercise = await _course(client, session, resources, off=True)
    learner, h0 = course.learners[0], course.headers["learner0"]
    await record_attempt(session, resources, learner, exercise, code="def add(a, b):\n    pass\n")
    llm_server.script(EXPENSIVE)
    r = await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=h0)
    assert r.status_code == 200, r.text
    assert r.json()["hint"] == exercise.hints[0]
    assert llm_server.requests == []


async def test_a_call_that_ran_over_midnight_counts_on_the_day_it_was_recorded(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # Held (and so counted in the learner's budget) just before midnight UTC, recorded after
    # it: the class's day it was recorded on counts it, as its budgets and the teacher see it.
    course, exercise = await _course(client, session, resources)
    learner = course.learners[0]
    midnight = datetime.combine(resources.clock.now().date(), time(0), tzinfo=UTC)
    session.add(
        LLMCall(
            user_id=learner.id,
            purpose="chat",
            provider="openai",
            model="m",
            cost_usd=Decimal("0.10"),
            exercise_id=exercise.id,
            day=(midnight - timedelta(seconds=5)).date(),
            created_at=midnight + timedelta(seconds=3),
        )  # fmt: skip
    )
    await session.flush()
    today = midnight.date()
    assert await class_spend(course.id, learner.id, "UTC", session, today) == Decimal("0.10")
    assert await class_spend(course.id, None, "UTC", session, today) == Decimal("0.10")
    yesterday = today - timedelta(days=1)
    assert await class_spend(course.id, learner.id, "UTC", session, yesterday) == 0
