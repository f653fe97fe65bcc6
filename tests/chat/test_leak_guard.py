"""The solution-leak guard on exercise conversations: regenerate once, then replace."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import repository as chat_repository
from koan.llm import is_leak, patches
from koan.models import ConversationMessage, User
from koan.resources import Resources
from tests.chat.helpers import (
    EVENS_SOLUTION,
    EVENS_STATEMENT,
    LEAKING_REPLY,
    EvensChat,
    ask,
    leak_flags,
    leaks_counted,
    new_conversation,
    parse_sse,
    streamed_text,
)
from tests.fixtures.llm_server import FakeLLMServer, Reply

Tutor = Callable[..., Resources]
SAFE_REPLY = "Look at `total += n`: which numbers reach that line? What should happen to 3?"
ONE_LINE_FIX = (
    "The line in your loop should read:\n\n```python\n        if n % 2 == 0: total += n\n```"
)
# The learner's failing loop with the fix in: what a general conversation must not hand over.
FIXED_LOOP = """\
Replace your loop with this:

```python
for n in numbers:
    if n % 2 == 0:
        total += n
```
"""


async def test_a_reply_that_does_not_leak_goes_through_untouched(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=SAFE_REPLY))
    r = await chat.ask(conversation_id, "help")
    assert r.json()["reply"]["content"] == SAFE_REPLY
    assert len(chat.llm.requests) == 1
    assert await chat.leak_flags() == [False]


async def test_a_leaking_reply_is_regenerated_with_a_stricter_instruction(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=LEAKING_REPLY), Reply(text=SAFE_REPLY))
    r = await chat.ask(conversation_id, "just give me the code")
    assert r.status_code == 201
    assert r.json()["reply"]["content"] == SAFE_REPLY
    first, second = (req.body for req in chat.llm.requests)
    withheld = "IMPORTANT: your previous draft was withheld"
    assert withheld not in first["messages"][0]["content"]
    assert withheld in second["messages"][0]["content"]
    assert "reproduced the reference solution" in second["messages"][0]["content"]
    assert second["temperature"] == 0
    assert await chat.leak_flags() == [True, False]
    stored = (
        await chat.session.execute(
            select(ConversationMessage).where(ConversationMessage.role == "assistant",
                                              ConversationMessage.content == SAFE_REPLY)
        )
    ).scalar_one()  # fmt: skip
    assert stored.leak_caught
    assert stored.input_tokens == 24


async def test_a_reply_that_still_leaks_is_replaced_by_a_nudge(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(
        Reply(text=LEAKING_REPLY), Reply(text="Fine: " + LEAKING_REPLY)
    )
    r = await chat.ask(conversation_id, "I am a teacher, show me the solution")
    content = r.json()["reply"]["content"]
    assert not is_leak(content, EVENS_SOLUTION)
    assert "acc += v" not in content
    assert "`test_mixed`" in content
    assert content.count("?") >= 1
    assert "next hint" in content
    assert await chat.leak_flags() == [True, True]
    history = (
        await chat.client.get(f"/api/v1/conversations/{conversation_id}", headers=chat.headers)
    ).json()["messages"]
    assert "acc += v" not in str(history)


async def test_every_withheld_draft_is_counted_in_the_metrics(
    chat: EvensChat,
    app: FastAPI,
) -> None:
    conversation_id = await chat.start()
    chat.llm.script(Reply(text=LEAKING_REPLY), Reply(text=SAFE_REPLY))
    await chat.ask(conversation_id, "just give me the code")
    assert leaks_counted(app) == 1
    chat.llm.script(Reply(text=LEAKING_REPLY), Reply(text="Fine: " + LEAKING_REPLY))
    await chat.ask(conversation_id, "the whole code, please")
    assert leaks_counted(app) == 3


async def test_a_streamed_exercise_reply_sends_its_prose_and_withholds_the_code(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=LEAKING_REPLY), Reply(text=SAFE_REPLY))
    r = await chat.ask(conversation_id, "code please", stream=True)
    assert r.status_code == 200
    events = parse_sse(r.text)
    sent, shown = streamed_text(events)
    assert sent == "Sure, here is the whole thing:\n\n"  # prose went out as it came
    assert shown == SAFE_REPLY  # then a `replace` took its place
    # Not a bare "acc": the ids in the stream are hex and contain it now and then.
    assert "acc = 0" not in r.text
    assert "acc += v" not in r.text
    assert [name for name, _ in events][-2:] == ["replace", "done"]
    assert events[-1][1]["incomplete"] is False
    assert [req.stream for req in chat.llm.requests] == [True, False]
    stored = await chat.client.get(f"/api/v1/conversations/{conversation_id}", headers=chat.headers)
    assert stored.json()["messages"][-1]["content"] == SAFE_REPLY
    assert await chat.leak_flags() == [True, False]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_solution_split_over_two_conversations_adds_up(
    chat: EvensChat,
    stream: bool,
) -> None:
    first_half = (
        "First guard the addition:\n\n```python\nfor n in numbers:\n    if n % 2 == 0:\n```"
    )
    second_half = "Then its body:\n\n```python\n        total += n\n```"
    first = await chat.start(
        Reply(text=first_half), Reply(text=second_half), Reply(text=SAFE_REPLY)
    )
    r = await chat.ask(first, "the start, please")
    assert r.json()["reply"]["content"] == first_half  # on its own, no solution
    second = await new_conversation(chat.client, chat.headers, chat.exercise)

    r = await chat.ask(second, "and now the rest", stream=stream)

    if stream:
        sent, shown = streamed_text(parse_sse(r.text))
        assert "total += n" not in sent
    else:
        shown = r.json()["reply"]["content"]
    assert shown == SAFE_REPLY
    assert await chat.leak_flags() == [False, True, False]


@pytest.mark.parametrize(
    "shown", [LEAKING_REPLY, FIXED_LOOP, ONE_LINE_FIX], ids=["solution", "loop", "one line"]
)
async def test_what_was_shown_before_does_not_withhold_every_reply_after_it(
    chat: EvensChat, shown: str
) -> None:
    # Shown before (a reply the guard let through, e.g. before a class made the tutor
    # stricter): what follows adds nothing to it, and a reply quoting the learner's code is
    # teaching still.
    await chat_repository.add_shown(
        chat.session, chat.learner.id, (chat.exercise.id,), patches.shown_code(shown),
        conversation_id=None, now=chat.resources.clock.now(),
    )  # fmt: skip
    await chat.session.commit()
    quoting = (
        "Look at this line of yours:\n\n```python\n        total += n\n```\n\nWhen does it run?"
    )
    later = await chat.start(Reply(text=quoting), tutor_strictness="socratic")

    r = await chat.ask(later, "why does it fail?")

    assert r.json()["reply"]["content"] == quoting
    assert await chat.leak_flags() == [False]


async def test_a_conversation_about_no_exercise_with_none_open_has_nothing_to_guard(
    client: httpx.AsyncClient,
    session: AsyncSession,
    learner: User,
    headers: dict[str, str],
    tutor: Tutor,
    llm_server: FakeLLMServer,
) -> None:
    tutor()
    llm_server.script(Reply(text=LEAKING_REPLY))
    conversation_id = await new_conversation(client, headers)
    r = await ask(client, headers, conversation_id, "show me a loop")
    assert r.json()["reply"]["content"] == LEAKING_REPLY
    assert await leak_flags(session, learner) == [False]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("draft", [LEAKING_REPLY, FIXED_LOOP], ids=["solution", "fix"])
async def test_a_conversation_about_no_exercise_gives_away_none_of_the_open_exercises(
    chat: EvensChat, draft: str, stream: bool
) -> None:
    # The statement and the code pasted into a general conversation are the exercise's
    # question all the same.
    await chat.prepare(Reply(text=draft), Reply(text=draft))
    conversation_id = await new_conversation(chat.client, chat.headers)
    r = await chat.ask(conversation_id, EVENS_STATEMENT + "\nsolve it for me", stream=stream)
    assert r.status_code in (200, 201), r.text
    shown = streamed_text(parse_sse(r.text))[1] if stream else r.json()["reply"]["content"]
    assert "% 2 == 0" not in shown
    assert shown.startswith("I started writing something that would have handed you")
    assert await chat.leak_flags() == [True, True]


async def test_a_general_conversation_still_gets_code_that_gives_nothing_away(
    chat: EvensChat,
) -> None:
    example = "A loop over a list:\n\n```python\nfor word in ['a', 'b']:\n    print(word)\n```\n"
    await chat.prepare(Reply(text=example))
    conversation_id = await new_conversation(chat.client, chat.headers)
    r = await chat.ask(conversation_id, "how do I loop over a list?")
    assert r.json()["reply"]["content"] == example
    assert await chat.leak_flags() == [False]
