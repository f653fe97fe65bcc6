"""Hints from the model, tailored to the latest code, cached per exercise and code, guarded,
with the authored ladder as the fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import LLMCall
from koan.web.markdown import render_markdown
from tests.chat.helpers import (
    EVENS_HINTS,
    LEAKING_REPLY,
    EvensChat,
    leaks_counted,
    new_conversation,
    record_attempt,
)
from tests.classes.helpers import create_course
from tests.conftest import Backend
from tests.fixtures.factories import bearer, create_user
from tests.fixtures.llm_server import Reply
from tests.test_statement_counts import counted

TAILORED = "Your loop adds every n. Which of them should it skip?"


async def hint(chat: EvensChat, headers: dict[str, str] | None = None) -> httpx.Response:
    """The next hint on the exercise, for the chat's learner unless `headers` say who."""
    url = f"/api/v1/exercises/{chat.exercise.id}/hints"
    return await chat.client.post(url, headers=headers or chat.headers)


async def hint_calls(session: AsyncSession) -> list[LLMCall]:
    rows = await session.execute(
        select(LLMCall).where(LLMCall.purpose == "hint").order_by(LLMCall.created_at)
    )
    return list(rows.scalars())


async def test_the_offline_tutor_serves_the_authored_ladder(chat: EvensChat) -> None:
    await record_attempt(chat.session, chat.resources, chat.learner, chat.exercise)
    r = await hint(chat)
    assert r.json() == {"hint": EVENS_HINTS[0], "index": 1, "remaining": 2}
    assert await hint_calls(chat.session) == []


async def test_a_tailored_hint_is_cached_for_the_next_learner_with_the_same_code(
    chat: EvensChat,
) -> None:
    await chat.prepare(Reply(text=TAILORED, input_tokens=400, output_tokens=20))
    r = await hint(chat)
    assert r.status_code == 200
    assert r.json() == {"hint": TAILORED, "index": 1, "remaining": 2}
    [request] = chat.llm.requests
    assert request.body["temperature"] == 0
    system = request.body["messages"][0]["content"]
    assert "The next hint (do not quote it; give something smaller)" in system
    assert EVENS_HINTS[0] in system
    assert "total += n" in system
    assert "Ada Learner" not in system
    assert "Write small scripts" not in system

    other = await create_user(chat.session, chat.resources, onboarded=True, name="Grace Other")
    await record_attempt(chat.session, chat.resources, other, chat.exercise)  # the very same code
    r = await hint(chat, await bearer(chat.session, chat.resources, other))
    assert r.json()["hint"] == TAILORED
    assert len(chat.llm.requests) == 1  # served from the cache
    first, second = await hint_calls(chat.session)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.cost_usd > 0
    assert second.cost_usd == 0
    assert second.user_id == other.id


async def test_other_code_or_another_rung_is_not_served_from_the_cache(
    chat: EvensChat,
) -> None:
    await chat.prepare(
        Reply(text=TAILORED), Reply(text="Rung two, tailored."), Reply(text="For your other code.")
    )
    assert (await hint(chat)).json()["hint"] == TAILORED
    assert (await hint(chat)).json()["hint"] == "Rung two, tailored."

    other = await create_user(chat.session, chat.resources, onboarded=True)
    await record_attempt(
        chat.session,
        chat.resources,
        other,
        chat.exercise,
        code="def sum_of_evens(xs):\n    return 0\n",
    )
    r = await hint(chat, await bearer(chat.session, chat.resources, other))
    assert r.json()["hint"] == "For your other code."
    assert len(chat.llm.requests) == 3
    assert not any(c.cache_hit for c in await hint_calls(chat.session))


async def test_the_authored_rung_is_served_while_the_provider_is_down(
    chat: EvensChat,
) -> None:
    await chat.prepare(*[Reply.server_error()] * 3)
    assert (await hint(chat)).json() == {
        "hint": EVENS_HINTS[0], "index": 1, "remaining": 2,
    }  # fmt: skip
    [error] = await hint_calls(chat.session)
    assert error.outcome == "error"


async def test_a_hint_that_leaks_is_withheld_and_never_cached(
    chat: EvensChat,
) -> None:
    await chat.prepare(Reply(text=LEAKING_REPLY))
    assert (await hint(chat)).json()["hint"] == EVENS_HINTS[0]
    [leak] = await hint_calls(chat.session)
    assert leak.leak_caught
    other = await create_user(chat.session, chat.resources, onboarded=True)
    await record_attempt(
        chat.session, chat.resources, other, chat.exercise
    )  # the same code and rung
    chat.llm.script(Reply(text="A fresh, safe first hint."))
    r = await hint(chat, await bearer(chat.session, chat.resources, other))
    assert r.json()["hint"] == "A fresh, safe first hint."


async def test_a_hint_that_spells_the_fix_in_character_references_is_withheld(
    chat: EvensChat,
) -> None:
    # The Hints panel renders Markdown, which decodes references: the learner would read
    # "if n % 2 == 0:" with the addition indented under it.
    spelt = "Wrap it:\\\nif n % 2 &#61;&#61; 0:\\\n&nbsp;&nbsp;&nbsp;&nbsp;total &#43;= n"
    assert "if n % 2 == 0:" in render_markdown(spelt, links=False)
    await chat.prepare(Reply(text=spelt))

    assert (await hint(chat)).json()["hint"] == EVENS_HINTS[0]
    [leak] = await hint_calls(chat.session)
    assert leak.leak_caught


async def test_the_authored_rung_is_served_without_asking_the_model_when_the_budget_is_used_up(
    chat: EvensChat,
) -> None:
    await chat.prepare()
    chat.resources.settings = chat.resources.settings.model_copy(
        update={"llm_user_daily_budget_usd": chat.resources.settings.llm_user_daily_budget_usd * 0}
    )
    assert (await hint(chat)).json()["hint"] == EVENS_HINTS[0]
    assert chat.llm.requests == []


async def test_a_withheld_hint_is_counted_in_the_metrics(
    chat: EvensChat,
    app: FastAPI,
) -> None:
    await chat.prepare(Reply(text=LEAKING_REPLY))
    assert (await hint(chat)).json()["hint"] == EVENS_HINTS[0]
    assert leaks_counted(app) == 1


async def in_a_class(chat: EvensChat, **tutor: Any) -> None:
    """The chat's learner in a class that sets the exercise now, with `tutor` its settings."""
    client = chat.client
    course = await create_course(client, chat.session, chat.resources, learners=0)
    staff = course.headers["instructor"]
    joined = await client.post("/api/v1/classes/join", json={"code": course.code},
                               headers=chat.headers)  # fmt: skip
    assert joined.status_code == 200, joined.text
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "W1", "exercise_ids": [str(chat.exercise.id)],
              "opens_at": (now - timedelta(days=1)).isoformat(),
              "due_at": (now + timedelta(days=1)).isoformat()},
        headers=staff,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    r = await client.patch(f"/api/v1/classes/{course.id}", json={"tutor": tutor}, headers=staff)
    assert r.status_code == 200, r.text


async def test_during_a_class_exam_the_authored_rung_is_served_without_asking_the_model(
    chat: EvensChat,
) -> None:
    await chat.prepare(Reply(text=TAILORED))
    now = datetime.now(UTC)
    await in_a_class(chat, off_reason="Final exam",
                     off_from=(now - timedelta(hours=1)).isoformat(),
                     off_until=(now + timedelta(hours=1)).isoformat())  # fmt: skip
    assert (await hint(chat)).json()["hint"] == EVENS_HINTS[0]
    assert chat.llm.requests == []
    assert await hint_calls(chat.session) == []


async def test_a_tailored_hint_is_asked_under_the_class_strictness_instructions_and_words(
    chat: EvensChat,
) -> None:
    await chat.prepare(Reply(text=TAILORED))
    await in_a_class(chat, strictness="hints", instructions="Speak of accumulators only.",
                     avoid=["modulo"])  # fmt: skip
    assert (await hint(chat)).json()["hint"] == TAILORED
    [request] = chat.llm.requests
    system = request.body["messages"][0]["content"]
    assert "Strictness: hints" in system
    assert "## The teacher's instructions" in system
    assert "Speak of accumulators only." in system
    assert "Do not use or mention these words or topics: modulo." in system


async def test_a_fallbacks_hint_is_not_cached_as_the_primary_models(
    chat: EvensChat,
) -> None:
    # The primary is down: its fallback writes the hint. Once the primary is back, the next
    # learner with the same code gets the primary's own hint, not the fallback's from the cache.
    await chat.prepare(
        *[Reply.server_error()] * 3,
        Reply(text="The fallback's hint: which numbers does your loop add?"),
        llm_fallback="openai",
        llm_fallback_base_url=chat.llm.openai_base_url,
        llm_fallback_model="gpt-4o-mini",
    )
    r = await hint(chat)
    assert r.json()["hint"] == "The fallback's hint: which numbers does your loop add?"

    other = await create_user(chat.session, chat.resources, onboarded=True)
    await record_attempt(chat.session, chat.resources, other, chat.exercise)  # the same code
    chat.llm.script(Reply(text=TAILORED))
    r = await hint(chat, await bearer(chat.session, chat.resources, other))
    assert r.json()["hint"] == TAILORED
    assert not any(c.cache_hit for c in await hint_calls(chat.session))


async def test_an_api_client_reads_back_the_hints_as_the_model_wrote_them(
    chat: EvensChat,
) -> None:
    # The model tailors rung 1; its rung 2 is the authored text word for word (nothing kept).
    await chat.prepare(Reply(text=TAILORED), Reply(text=EVENS_HINTS[1]))
    assert (await hint(chat)).json()["hint"] == TAILORED
    assert (await hint(chat)).json()["hint"] == EVENS_HINTS[1]
    asked = len(chat.llm.requests)
    url = f"/api/v1/exercises/{chat.exercise.id}/hints"
    r = await chat.client.get(url, headers=chat.headers)
    assert r.status_code == 200
    assert r.json() == {
        "items": [
            {"index": 1, "text": TAILORED, "tailored": True},
            {"index": 2, "text": EVENS_HINTS[1], "tailored": False},
        ],
        "remaining": 1,
    }
    assert len(chat.llm.requests) == asked  # reading them back asks the model nothing


def _hints_seen(system: str) -> str:
    """The "hints already seen" section of a tutor's system prompt."""
    return system.split("## Hints the learner has already seen\n", 1)[1].split("\n\n", 1)[0]


async def test_the_tutor_in_chat_is_told_the_hints_as_the_learner_was_shown_them(
    chat: EvensChat,
) -> None:
    await chat.prepare(
        Reply(text=TAILORED), Reply(text=EVENS_HINTS[1]), Reply(text="Which numbers, then?")
    )
    await hint(chat)
    await hint(chat)
    conversation = await new_conversation(chat.client, chat.headers, chat.exercise)
    r = await chat.ask(conversation, "What did my first hint mean?")
    assert r.status_code == 201, r.text
    system = chat.llm.requests[-1].body["messages"][0]["content"]
    assert _hints_seen(system) == f"1. {TAILORED}\n2. {EVENS_HINTS[1]}"
    assert EVENS_HINTS[0] not in system  # the rung the learner never saw worded so
    assert EVENS_HINTS[2] not in system  # nor the one not taken yet


async def test_the_tutor_in_chat_is_told_the_authored_hints_the_learner_took(
    chat: EvensChat,
) -> None:
    # The model's hint was the authored rung word for word: nothing kept, the authored text told.
    await chat.prepare(Reply(text=EVENS_HINTS[0]), Reply(text="Which numbers, then?"))
    await hint(chat)
    conversation = await new_conversation(chat.client, chat.headers, chat.exercise)
    r = await chat.ask(conversation, "What did my first hint mean?")
    assert r.status_code == 201, r.text
    system = chat.llm.requests[-1].body["messages"][0]["content"]
    assert _hints_seen(system) == f"1. {EVENS_HINTS[0]}"


async def test_a_question_reads_the_kept_hints_only_once_a_hint_is_taken(
    chat: EvensChat, backend: Backend
) -> None:
    await chat.prepare(
        Reply(text="Where does your loop start?"), Reply(text=TAILORED), Reply(text="And so?")
    )
    conversation = await new_conversation(chat.client, chat.headers, chat.exercise)
    with counted(backend) as sent:
        assert (await chat.ask(conversation, "Where do I start?")).status_code == 201
    assert not [statement for statement in sent if "assignment_hints" in statement]
    await hint(chat)
    with counted(backend) as sent:
        assert (await chat.ask(conversation, "What now?")).status_code == 201
    assert len([statement for statement in sent if "assignment_hints" in statement]) == 1
    assert _hints_seen(chat.llm.requests[-1].body["messages"][0]["content"]) == f"1. {TAILORED}"
