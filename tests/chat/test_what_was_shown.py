"""What the tutor showed a learner about an exercise keeps counting towards the guard's sum:
after the conversation is deleted, from a conversation about no exercise, and in hints."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from koan.models import ShownCode
from tests.chat.helpers import EVENS_HINTS, EvensChat, new_conversation, parse_sse, streamed_text
from tests.fixtures.factories import PASSWORD
from tests.fixtures.llm_server import Reply

# Neither half gives the solution away alone; together they are its loop.
FIRST_HALF = "First guard the addition:\n\n```python\nfor n in numbers:\n    if n % 2 == 0:\n```"
SECOND_HALF = "Then its body:\n\n```python\n        total += n\n```"
SAFE_REPLY = "Look at `total += n`: which numbers reach that line? What should happen to 3?"
SAFE_HINT = "Some numbers should not reach your addition. Which ones?"


def shown_of(r: httpx.Response, *, stream: bool) -> str:
    """The reply as the learner ends up seeing it."""
    return streamed_text(parse_sse(r.text))[1] if stream else str(r.json()["reply"]["content"])


async def hint(chat: EvensChat) -> str:
    r = await chat.client.post(f"/api/v1/exercises/{chat.exercise.id}/hints", headers=chat.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["hint"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_deleted_conversation_still_counts_what_it_showed(
    chat: EvensChat, stream: bool
) -> None:
    first = await chat.start(
        Reply(text=FIRST_HALF), Reply(text=SECOND_HALF), Reply(text=SAFE_REPLY)
    )
    assert shown_of(await chat.ask(first, "the start, please", stream=stream), stream=stream) == (
        FIRST_HALF
    )
    deleted = await chat.client.delete(f"/api/v1/conversations/{first}", headers=chat.headers)
    assert deleted.status_code == 204
    listed = await chat.client.get("/api/v1/conversations", headers=chat.headers)
    assert listed.json()["items"] == []  # gone from the learner's view
    second = await new_conversation(chat.client, chat.headers, chat.exercise)

    r = await chat.ask(second, "and now the rest", stream=stream)

    assert shown_of(r, stream=stream) == SAFE_REPLY
    assert await chat.leak_flags() == [False, True, False]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_general_conversation_counts_towards_the_open_exercise(
    chat: EvensChat, stream: bool
) -> None:
    await chat.prepare(Reply(text=FIRST_HALF), Reply(text=SECOND_HALF), Reply(text=SAFE_REPLY))
    general = await new_conversation(chat.client, chat.headers)
    r = await chat.ask(general, "how do I start a loop that skips odd numbers?", stream=stream)
    assert shown_of(r, stream=stream) == FIRST_HALF
    about = await new_conversation(chat.client, chat.headers, chat.exercise)

    r = await chat.ask(about, "and now the rest", stream=stream)

    assert shown_of(r, stream=stream) == SAFE_REPLY
    assert await chat.leak_flags() == [False, True, False]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_the_open_exercise_counts_towards_a_general_conversation(
    chat: EvensChat, stream: bool
) -> None:
    about = await chat.start(
        Reply(text=FIRST_HALF), Reply(text=SECOND_HALF), Reply(text=SAFE_REPLY)
    )
    assert shown_of(await chat.ask(about, "the start", stream=stream), stream=stream) == FIRST_HALF
    general = await new_conversation(chat.client, chat.headers)

    r = await chat.ask(general, "and the body of such a loop?", stream=stream)

    assert shown_of(r, stream=stream) == SAFE_REPLY
    assert await chat.leak_flags() == [False, True, False]


async def test_a_general_conversation_deleted_still_counts_towards_the_exercise(
    chat: EvensChat,
) -> None:
    await chat.prepare(Reply(text=FIRST_HALF), Reply(text=SECOND_HALF), Reply(text=SAFE_REPLY))
    general = await new_conversation(chat.client, chat.headers)
    assert (await chat.ask(general, "a loop skipping odd numbers?")).json()["reply"][
        "content"
    ] == FIRST_HALF
    await chat.client.delete(f"/api/v1/conversations/{general}", headers=chat.headers)
    about = await new_conversation(chat.client, chat.headers, chat.exercise)

    r = await chat.ask(about, "and now the rest")

    assert r.json()["reply"]["content"] == SAFE_REPLY


async def test_a_tailored_hint_and_a_reply_add_up(chat: EvensChat) -> None:
    await chat.prepare(Reply(text=FIRST_HALF), Reply(text=SECOND_HALF), Reply(text=SAFE_REPLY))
    assert await hint(chat) == FIRST_HALF
    about = await new_conversation(chat.client, chat.headers, chat.exercise)

    r = await chat.ask(about, "and now the rest")

    assert r.json()["reply"]["content"] == SAFE_REPLY
    assert await chat.leak_flags() == [False, True, False]


async def test_a_reply_and_a_tailored_hint_add_up(chat: EvensChat) -> None:
    about = await chat.start(Reply(text=FIRST_HALF), Reply(text=SECOND_HALF))
    assert (await chat.ask(about, "the start")).json()["reply"]["content"] == FIRST_HALF

    assert await hint(chat) == EVENS_HINTS[0]  # the authored rung instead
    assert await chat.leak_flags() == [False, True]


async def test_two_tailored_hints_add_up(chat: EvensChat) -> None:
    await chat.prepare(Reply(text=FIRST_HALF), Reply(text=SECOND_HALF))
    assert await hint(chat) == FIRST_HALF

    assert await hint(chat) == EVENS_HINTS[1]
    assert await chat.leak_flags() == [False, True]


async def test_hints_that_give_nothing_away_are_served_still(chat: EvensChat) -> None:
    about = await chat.start(Reply(text=FIRST_HALF), Reply(text=SAFE_HINT), Reply(text=SAFE_HINT))
    assert (await chat.ask(about, "the start")).json()["reply"]["content"] == FIRST_HALF

    assert await hint(chat) == SAFE_HINT
    assert await hint(chat) == SAFE_HINT


async def test_what_was_shown_goes_with_the_account(chat: EvensChat) -> None:
    about = await chat.start(Reply(text=FIRST_HALF))
    await chat.ask(about, "the start")
    await chat.client.delete(f"/api/v1/conversations/{about}", headers=chat.headers)
    assert await shown_to(chat) == 1  # kept for the guard, the conversation gone

    r = await chat.client.request(
        "DELETE", "/api/v1/users/me", headers=chat.headers, json={"password": PASSWORD}
    )

    assert r.status_code == 200, r.text
    assert await shown_to(chat) == 0


async def test_what_was_shown_keeps_its_code_and_none_of_the_conversations_words(
    chat: EvensChat,
) -> None:
    chatty = f"Good question, Ada. My cat agrees.\n\n{FIRST_HALF}\n\nWhat happens to 3?"
    about = await chat.start(Reply(text=chatty))
    await chat.ask(about, "the start")

    [kept] = (
        await chat.session.execute(
            select(ShownCode.code).where(ShownCode.user_id == chat.learner.id)
        )
    ).scalars()
    assert "if n % 2 == 0:" in kept
    assert "Ada" not in kept
    assert "cat" not in kept


async def shown_to(chat: EvensChat) -> int:
    query = select(func.count()).select_from(ShownCode).where(ShownCode.user_id == chat.learner.id)
    return int((await chat.session.execute(query)).scalar_one())
