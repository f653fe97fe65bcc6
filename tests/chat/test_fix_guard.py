"""The leak guard on the chat path: a fix is withheld in any of its forms, JSON and SSE, proved
by running it in the sandbox; Socratic replies are delivered; the strictness modes; and hint
rungs shown by the offline tutor count like the Hints panel's."""

from __future__ import annotations

import codecs
from base64 import b32encode, b64encode
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat.context import sandbox_runner
from koan.llm.leak_check import KnownPrograms
from koan.llm.patches import visible
from koan.models import Assignment, Exercise, User
from koan.resources import Resources
from tests.chat.helpers import (
    EVENS_HINTS,
    EVENS_SOLUTION,
    EVENS_STARTER,
    LEAKING_REPLY,
    EvensChat,
    ask,
    new_conversation,
    parse_sse,
    record_attempt,
    streamed_text,
)
from tests.fixtures.factories import create_exercise
from tests.fixtures.llm_server import Reply

SAFE = "Look at `total += n`: which numbers reach that line? What should happen to 3?"
FIXES = {
    "whole": LEAKING_REPLY,
    "lines": "Wrap the addition like this:\n\n```python\nif n % 2 == 0:\n    total += n\n```",
    "prose": "Replace `total += n` with `total += n if n % 2 == 0 else 0` and you are done.",
    "numbered": (
        "1. def sum_of_evens(numbers):\n2.     return sum(n for n in numbers if n % 2 == 0)"
    ),
}


async def reply_text(r: httpx.Response, stream: bool) -> str:
    """The reply as the learner ends up seeing it."""
    if not stream:
        assert r.status_code == 201, r.text
        return str(r.json()["reply"]["content"])
    assert r.status_code == 200, r.text
    events = parse_sse(r.text)
    assert events[-1][0] == "done"
    return streamed_text(events)[1]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("form", list(FIXES))
async def test_a_fix_in_any_form_is_withheld_and_regenerated(
    chat: EvensChat,
    form: str,
    stream: bool,
) -> None:
    conversation_id = await chat.start(Reply(text=FIXES[form]), Reply(text=SAFE))

    r = await chat.ask(conversation_id, "fix it for me", stream=stream)

    assert await reply_text(r, stream) == SAFE
    assert FIXES[form] not in r.text
    assert await chat.leak_flags() == [True, False]
    second = chat.llm.requests[1].body["messages"][0]["content"]
    assert "IMPORTANT: your previous draft was withheld" in second


# The same fix disguised: as the learner reads it, each still hands the change over.
DISGUISED = {
    "look-alike letters": (
        "Wrap the addition like this:\n\n```python\nif n % 2 == 0:\n    t\u043etal += n\n```"
    ),
    "zero-width characters": "\u200bif n % 2 =\u200b= 0:\n\u200b    total +\u200b= n",
    "fullwidth": "```python\nif n \uff05 2 \uff1d\uff1d 0:\n    total \uff0b= n\n```",
    "character references": (
        "Wrap it:\\\nif n % 2 &#61;&#61; 0:\\\n&nbsp;&nbsp;&nbsp;&nbsp;total &#43;= n"
    ),
    "another solution": "```python\nreturn sum(n for n in numbers if n % 2 == 0)\n```",
    "one line": "Use `if n % 2 == 0: total += n` in the loop.",
    "after a colon": "The line in your loop should read: if n % 2 == 0: total += n",
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("form", list(DISGUISED))
async def test_a_disguised_fix_is_withheld_and_never_streamed(
    chat: EvensChat,
    form: str,
    stream: bool,
) -> None:
    conversation_id = await chat.start(Reply(text=DISGUISED[form]), Reply(text=SAFE))

    r = await chat.ask(conversation_id, "fix it for me", stream=stream)

    assert await reply_text(r, stream) == SAFE
    if stream:
        sent, _ = streamed_text(parse_sse(r.text))
        assert "% 2" not in visible(sent)  # not even the start of the fix went out
    assert await chat.leak_flags() == [True, False]
    history = await chat.client.get(
        f"/api/v1/conversations/{conversation_id}", headers=chat.headers
    )
    assert "% 2" not in visible(str(history.json()["messages"]))


# The fix encoded for the learner to decode in a moment: each hands the change over as surely as
# the code would.
ONE_LINE = "if n % 2 == 0: total += n"
BASE64 = b64encode(ONE_LINE.encode()).decode()
ENCODED = {
    "base64, decode this": f"Decode this and put it in your loop: {BASE64}",
    "base64, no instruction": f"Something to think about: {BASE64}",
    "hex": f"The line you need, in hex: {ONE_LINE.encode().hex()}",
    "reversed": f"Read this backwards: {ONE_LINE[::-1]}",
    "rot13": f"In ROT13, the line is: {codecs.encode(ONE_LINE, 'rot13')}",
    "rot13 inside a sentence": f"Try {codecs.encode(ONE_LINE, 'rot13')} in your loop, then run it.",
    "base32, lower case": f"Decode this: {b32encode(ONE_LINE.encode()).decode().lower()}",
    "characters": f"Join these characters: {list(ONE_LINE)!r}",
    "character codes": f"Join the characters of these codes: {[ord(c) for c in ONE_LINE]}",
    "split spans": "Write `if n % 2 =` then `= 0: total += n` on one line in the loop.",
    "split lines": "Join these lines into one, in the loop:\n\nif n %\n2 == 0: tot\nal += n",
}
# What of each must not be streamed before the guard has read it (the end of the fix, at least).
NEVER_STREAMED = {
    "base64, decode this": ENCODED["base64, decode this"][-16:],
    "base64, no instruction": ENCODED["base64, no instruction"][-16:],
    "hex": ONE_LINE.encode().hex()[:16],
    "reversed": ONE_LINE[::-1][:5],
    "rot13": "gbgny",
    "rot13 inside a sentence": "vs a",
    "base32, lower case": b32encode(ONE_LINE.encode()).decode().lower()[:16],
    "characters": "'t', 'o'",
    "character codes": "116, 111",
    "split spans": "= 0: total",
    "split lines": "al += n",
}
# The same shapes handing over nothing that fixes the attempt.
OFF_BY_ONE = "if n % 3 == 0: total += n"
ENCODED_BENIGN = {
    "base64": f"Decode this for fun: {b64encode(b'keep going, you are close').decode()}",
    "base64 of a wrong line": f"Decode this: {b64encode(OFF_BY_ONE.encode()).decode()}",
    "reversed": f"Read this backwards: {OFF_BY_ONE[::-1]}",
    "split spans": "Is `if n % 3 =` then `= 0: total += n` what you want?",
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("form", list(ENCODED))
async def test_a_fix_encoded_is_withheld(chat: EvensChat, form: str, stream: bool) -> None:
    conversation_id = await chat.start(Reply(text=ENCODED[form]), Reply(text=SAFE))

    r = await chat.ask(conversation_id, "fix it for me", stream=stream)

    assert await reply_text(r, stream) == SAFE
    if stream:
        sent, _ = streamed_text(parse_sse(r.text))
        assert NEVER_STREAMED[form] not in sent
    assert await chat.leak_flags() == [True, False]
    history = await chat.client.get(
        f"/api/v1/conversations/{conversation_id}", headers=chat.headers
    )
    assert ENCODED[form] not in str(history.json()["messages"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("form", list(ENCODED_BENIGN))
async def test_the_same_shapes_fixing_nothing_are_delivered(
    chat: EvensChat, form: str, stream: bool
) -> None:
    conversation_id = await chat.start(Reply(text=ENCODED_BENIGN[form]))

    r = await chat.ask(conversation_id, "a hint please", stream=stream)

    assert await reply_text(r, stream) == ENCODED_BENIGN[form]
    assert await chat.leak_flags() == [False]


# An expression to drop into the learner's code, and a fix said in words (the learner subtracts
# instead of adding, inside the right condition), or of one character encoded, or a keyword
# named in words; the same shapes fixing nothing are delivered.
MINUS = EVENS_SOLUTION.replace("total += n", "total -= n")
ODD = EVENS_SOLUTION.replace("n % 2 == 0", "n % 2 == 1")
OR = EVENS_SOLUTION.replace("n % 2 == 0", "n % 2 == 0 or n")
IN = EVENS_SOLUTION.replace("n % 2 == 0", "n % 2 in (1,)")
DROPPED_IN_OR_IN_WORDS = {
    "expression": (
        EVENS_STARTER,
        "The return should be `sum(n for n in numbers if n % 2 == 0)`.",
        True,
    ),
    "expression, no fix": (EVENS_STARTER, "What if the return were `sum(numbers) - 1`?", False),
    "in words": (MINUS, "Change the minus on line 5 to a plus.", True),
    "in words, the right one first": (MINUS, "Line 5 should have a plus, not a minus.", True),
    "in words, no fix": (
        MINUS,
        "Change the minus on line 5 to a times and see what the test says.",
        False,
    ),
    "one character, encoded": (MINUS, "On line 5, replace `-=` with `Kz0=`.", True),
    "one digit, encoded": (ODD, "On line 4, change the 1 to MA==. Then run it.", True),
    "and, or in words": (OR, "Use and instead of or on line 4. Then run it.", True),
    "a keyword in words": (IN, "Use not in rather than in on line 4.", True),
    "keywords, no fix": (
        OR,
        "What is in the list, and is it true or false that 3 is even? Use print or the debugger.",
        False,
    ),
}
# Where each withheld fix starts: nothing from there on is streamed.
HELD_FROM = {
    "in words": "minus",
    "one character, encoded": "`Kz0=`",
    "one digit, encoded": "MA",
    "and, or in words": "and instead",
    "a keyword in words": "not in",
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("form", list(DROPPED_IN_OR_IN_WORDS))
async def test_a_fix_dropped_in_or_said_in_words_is_withheld_and_a_remark_delivered(
    chat: EvensChat, form: str, stream: bool
) -> None:
    attempt, reply, withheld = DROPPED_IN_OR_IN_WORDS[form]
    # The regenerated remark quotes the learner's own line (`total += n` would be the fix of
    # an attempt that subtracts).
    safe = SAFE if "total += n" in attempt else SAFE.replace("total += n", "total -= n")
    await chat.prepare(Reply(text=reply), Reply(text=safe), attempted=False)
    await record_attempt(chat.session, chat.resources, chat.learner, chat.exercise, code=attempt)
    conversation_id = await new_conversation(chat.client, chat.headers, chat.exercise)

    r = await chat.ask(conversation_id, "what is wrong?", stream=stream)

    assert await reply_text(r, stream) == (safe if withheld else reply)
    assert await chat.leak_flags() == ([True, False] if withheld else [False])
    if stream and withheld:
        sent, _ = streamed_text(parse_sse(r.text))
        assert reply not in sent
        assert HELD_FROM.get(form, reply) not in sent


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_socratic_reply_that_quotes_the_code_is_delivered(
    chat: EvensChat,
    stream: bool,
) -> None:
    conversation_id = await chat.start(Reply(text=SAFE))

    r = await chat.ask(conversation_id, "why?", stream=stream)

    assert await reply_text(r, stream) == SAFE
    assert len(chat.llm.requests) == 1
    assert await chat.leak_flags() == [False]


def count_trials(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of programs of each sandbox trial the guard runs from now on."""
    trials: list[int] = []
    original = resources.sandbox.try_programs

    async def counted(**options: Any) -> Any:
        trials.append(len(options["programs"]))
        return await original(**options)

    monkeypatch.setattr(resources.sandbox, "try_programs", counted)
    return trials


async def test_a_fix_suggested_again_is_withheld_without_running_it_again(
    chat: EvensChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    trials = count_trials(chat.resources, monkeypatch)
    fix = FIXES["prose"]
    first = await chat.start(Reply(text=fix), Reply(text=SAFE), Reply(text=fix), Reply(text=SAFE))
    second = await new_conversation(chat.client, chat.headers, chat.exercise)

    for conversation_id in (first, second):
        text = await reply_text(await chat.ask(conversation_id, "fix it"), False)
        assert text == SAFE

    assert await chat.leak_flags() == [True, False, True, False]
    assert trials == [1]  # the second time, the fix was already known


async def test_the_guard_runs_a_program_again_only_when_its_run_decided_nothing(
    resources: Resources, evens: Exercise, monkeypatch: pytest.MonkeyPatch
) -> None:
    trials = count_trials(resources, monkeypatch)
    run = sandbox_runner(resources.sandbox, evens, "learner", KnownPrograms())
    failed = frozenset({"test_mixed"})
    # Never ends, idly: the trial's deadline ends it, not its CPU limit (which a busy loop
    # alone in a trial reaches as soon as the deadline).
    loops = "import time\n\ntime.sleep(60)\n\n" + EVENS_STARTER

    first = await run([EVENS_STARTER, loops, EVENS_SOLUTION], failed)
    again = await run([EVENS_STARTER, loops, EVENS_SOLUTION], failed)
    # Known: the attempt ran clean, the solution fixed it. A time-out proves nothing, so the
    # looping program runs again (with another set of failed tests, everything does).
    clean = await run([EVENS_STARTER, loops], failed)
    other = await run([EVENS_STARTER], frozenset({"test_mixed", "test_none_even"}))

    outcomes = [(t.fixed_by, t.tried) if t else None for t in (first, again, clean, other)]
    assert outcomes == [(2, 3), (2, 0), (None, 2), (None, 1)]
    assert trials == [3, 1, 1]


async def test_a_fix_given_twice_falls_back_to_a_nudge_without_code(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=FIXES["prose"]), Reply(text=FIXES["lines"]))

    text = await reply_text(await chat.ask(conversation_id, "fix it"), False)

    assert "`test_mixed`" in text
    assert "n % 2" not in text
    assert await chat.leak_flags() == [True, True]


async def test_the_regeneration_names_what_gave_the_fix_away(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=FIXES["prose"]), Reply(text=SAFE))

    await chat.ask(conversation_id, "fix it")

    second = chat.llm.requests[1].body["messages"][0]["content"]
    assert "working fix" in second
    assert "`total += n if n % 2 == 0 else 0`" in second


# -- streamed: prose at once, the fix never -----------------------------------------------------

# What of each withheld draft must never reach the learner, and the prose that leads into it.
NEVER_SENT = {
    "whole": ("acc = 0", "if v % 2 == 0"),
    "lines": ("if n % 2 == 0:",),
    "prose": ("total += n if n % 2 == 0 else 0",),
    "numbered": ("def sum_of_evens", "return sum("),
}
LEADS = {
    "whole": "Sure, here is",
    "lines": "Wrap the addition",
    "prose": "Replace ",
    "numbered": "",
}


@pytest.mark.parametrize("form", list(FIXES))
async def test_a_streamed_fix_in_any_form_never_reaches_the_learner(
    chat: EvensChat,
    form: str,
) -> None:
    conversation_id = await chat.start(Reply(text=FIXES[form]), Reply(text=SAFE))

    r = await chat.ask(conversation_id, "fix it for me", stream=True)

    assert r.status_code == 200, r.text
    events = parse_sse(r.text)
    sent, shown = streamed_text(events)
    for fragment in NEVER_SENT[form]:
        assert fragment not in r.text
    assert sent.startswith(LEADS[form])  # the prose before the fix was streamed
    assert shown == SAFE
    names = [name for name, _ in events]
    assert names.count("replace") == 1
    assert names[-2:] == ["replace", "done"]
    assert await chat.leak_flags() == [True, False]
    stored = await chat.client.get(f"/api/v1/conversations/{conversation_id}", headers=chat.headers)
    assert stored.json()["messages"][-1]["content"] == SAFE


# A fix handed over with no word of the edit and no markup, streamed word by word: the
# corrected line (`return n * 2` for the learner's `return n + 2`) must not reach the learner
# before the guard has read it, in any of the shapes the guard reads.
DOUBLE_SOLUTION = "def double(n):\n    return n * 2\n"
DOUBLE_TESTS = (
    "from solution import double\n\n"
    "def test_three():\n    assert double(3) == 6\n\n"
    "def test_five():\n    assert double(5) == 10\n"
)
UNMARKED = {
    "html code": "Change <code>n + 2</code> to <code>n * 2</code> on line 2.",
    "html pre": "The line should be:<pre><code>return n * 2</code></pre>",
    "double backticks": "Use ``return n * 2`` on line 2.",
    "fenced diff": "```diff\n-    return n + 2\n+    return n * 2\n```",
    "bare diff": "Apply this:\n\n-return n + 2\n+return n * 2\n",
    "bare diff, indented": "-    return n + 2\n+    return n * 2\n",
    "unified diff": (
        "--- a/solution.py\n+++ b/solution.py\n@@ -2,1 +2,1 @@\n-    return n + 2\n"
        "+    return n * 2\n"
    ),
    "span, no verb": "The correct version of that line is `return n * 2`.",
    "before and after": "Before: `return n + 2`\nAfter: `return n * 2`",
    "table of spans": "| yours | correct |\n|---|---|\n| `n + 2` | `n * 2` |",
    "table": "| wrong | right |\n|---|---|\n| n + 2 | n * 2 |",
    "in a sentence": "Line 2 should simply be return n * 2 and then the test passes.",
    "instead of": "Write n * 2 instead of n + 2 on line 2.",
    "not this, that": "It's not `n + 2`, it's `n * 2`.",
}


@pytest.mark.parametrize("form", list(UNMARKED))
async def test_a_fix_without_markup_or_words_is_never_streamed_before_the_check(
    chat: EvensChat, form: str
) -> None:
    double = await create_exercise(
        chat.session, title="Double", statement="Write `double(n)`: twice n.",
        solution=DOUBLE_SOLUTION, starter_code="def double(n):\n    pass\n",
        tests=DOUBLE_TESTS, hints=["What does doubling mean?"], skills=["functions"],
    )  # fmt: skip
    await chat.prepare(Reply(text=UNMARKED[form]), Reply(text=SAFE), attempted=False)
    attempt = DOUBLE_SOLUTION.replace("n * 2", "n + 2")
    failing = [{"name": "test_three", "status": "failed", "message": "assert 5 == 6"}]
    await record_attempt(
        chat.session, chat.resources, chat.learner, double, code=attempt, tests=failing
    )
    conversation_id = await new_conversation(chat.client, chat.headers, double)

    r = await chat.ask(conversation_id, "fix it for me", stream=True)

    events = parse_sse(r.text)
    sent, shown = streamed_text(events)  # every token came before the verdict (`replace`)
    assert "n *" not in sent
    assert "n * 2" not in r.text
    assert [name for name, _ in events][-2:] == ["replace", "done"]
    assert shown == SAFE
    assert await chat.leak_flags() == [True, False]


async def test_a_streamed_socratic_reply_arrives_word_by_word_and_whole(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=SAFE))

    r = await chat.ask(conversation_id, "why?", stream=True)

    events = parse_sse(r.text)
    tokens = [data["delta"] for name, data in events if name == "token"]
    assert tokens[0] == "Look "  # the first word as the model sent it, not held back
    assert len(tokens) > 5  # the words after the held sentence still come one by one
    assert streamed_text(events) == (SAFE, SAFE)
    assert "replace" not in [name for name, _ in events]
    assert await chat.leak_flags() == [False]


async def test_a_fix_found_mid_stream_stops_the_draft_there(
    chat: EvensChat,
) -> None:
    after = " And that is all there is to it, trust me." * 3
    conversation_id = await chat.start(Reply(text=FIXES["prose"] + after), Reply(text=SAFE))

    r = await chat.ask(conversation_id, "fix it", stream=True)

    assert "trust me" not in r.text  # nothing after the withheld sentence went out
    assert streamed_text(parse_sse(r.text))[1] == SAFE


async def test_a_reply_cut_off_while_code_was_held_stores_only_what_was_sent(
    chat: EvensChat,
) -> None:
    text = "Look closely at this:\n\n```python\nif n % 2 == 0:\n    total += n\n```\n"
    conversation_id = await chat.start(
        Reply(text=text, chunks=[text[:30], text[30:60], text[60:]], error_after_chunks=2)
    )

    r = await chat.ask(conversation_id, "fix it", stream=True)

    events = parse_sse(r.text)
    assert events[-1][0] == "error"
    assert "n % 2 == 0" not in r.text
    stored = await chat.client.get(f"/api/v1/conversations/{conversation_id}", headers=chat.headers)
    last = stored.json()["messages"][-1]
    assert last["role"] == "assistant"
    assert last["incomplete"] is True
    assert "n % 2" not in last["content"]
    assert last["content"] == streamed_text(events)[0]


# -- strictness ------------------------------------------------------------------------------------


async def test_open_strictness_delivers_a_fix_and_says_so_in_the_prompt(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=FIXES["prose"]), tutor_strictness="open")

    text = await reply_text(await chat.ask(conversation_id, "fix it"), False)

    assert text == FIXES["prose"]
    assert "Strictness: open" in chat.llm.requests[0].body["messages"][0]["content"]


async def test_open_strictness_streams_prose_as_it_comes_and_code_once_checked(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=FIXES["lines"]), tutor_strictness="open")

    r = await chat.ask(conversation_id, "fix it", stream=True)

    events = parse_sse(r.text)
    tokens = [data["delta"] for name, data in events if name == "token"]
    assert tokens[0].startswith("Wrap")  # prose as it comes
    assert "`" not in tokens[0]
    assert "```python\nif n % 2 == 0:\n    total += n\n```" in tokens  # the block at once
    assert streamed_text(events)[1] == FIXES["lines"]
    assert await chat.leak_flags() == [False]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_open_strictness_withholds_the_whole_solution_and_regenerates(
    chat: EvensChat, stream: bool
) -> None:
    conversation_id = await chat.start(
        Reply(text=FIXES["whole"]), Reply(text=FIXES["lines"]), tutor_strictness="open"
    )

    r = await chat.ask(conversation_id, "just give me the code", stream=stream)

    assert await reply_text(r, stream) == FIXES["lines"]
    assert "return acc" not in r.text
    assert await chat.leak_flags() == [True, False]
    second = chat.llm.requests[1].body["messages"][0]["content"]
    assert "reproduced the reference solution" in second
    assert "never the whole solution" in second


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("form", ["lines", "prose"])
async def test_open_strictness_delivers_a_corrected_line_unchanged(
    chat: EvensChat, form: str, stream: bool
) -> None:
    conversation_id = await chat.start(Reply(text=FIXES[form]), tutor_strictness="open")

    r = await chat.ask(conversation_id, "fix it", stream=stream)

    assert await reply_text(r, stream) == FIXES[form]
    assert await chat.leak_flags() == [False]
    assert len(chat.llm.requests) == 1


async def test_hints_strictness_allows_a_construct_but_withholds_a_fix(
    chat: EvensChat,
) -> None:
    construct = (
        "The `%` operator gives a remainder:\n\n```python\nprint(7 % 3)\n```\n\nWhat is 4 % 2?"
    )
    conversation_id = await chat.start(
        Reply(text=construct),
        Reply(text=FIXES["lines"]),
        Reply(text=SAFE),
        tutor_strictness="hints",
    )

    first = await reply_text(await chat.ask(conversation_id, "what is %?"), False)
    second = await reply_text(await chat.ask(conversation_id, "fix it"), False)

    assert first == construct
    assert second == SAFE
    assert "Strictness: hints" in chat.llm.requests[0].body["messages"][0]["content"]


async def test_socratic_is_the_default_and_the_prompt_says_so(
    chat: EvensChat,
) -> None:
    conversation_id = await chat.start(Reply(text=SAFE), attempted=False)

    await chat.ask(conversation_id, "hello")

    assert "Strictness: socratic" in chat.llm.requests[0].body["messages"][0]["content"]


# -- the offline tutor's hint rungs count ----------------------------------------------------------


async def hints_used(session: AsyncSession, user: User, exercise: Exercise) -> int:
    row = await session.execute(
        select(Assignment.hints_used).where(
            Assignment.user_id == user.id, Assignment.exercise_id == exercise.id
        )
    )
    return int(row.scalar_one())


async def test_a_rung_shown_in_chat_counts_and_the_panel_agrees(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    learner: User,
    headers: dict[str, str],
    evens: Exercise,
) -> None:
    await record_attempt(session, resources, learner, evens)
    conversation_id = await new_conversation(client, headers, evens)

    first = await reply_text(await ask(client, headers, conversation_id, "I'm stuck"), False)
    assert f"Hint 1 of 3: {EVENS_HINTS[0]}" in first
    assert await hints_used(session, learner, evens) == 1

    declined = await reply_text(
        await ask(client, headers, conversation_id, "just give me the code"), False
    )
    assert f"Hint 2 of 3: {EVENS_HINTS[1]}" in declined
    assert await hints_used(session, learner, evens) == 2

    panel = await client.post(f"/api/v1/exercises/{evens.id}/hints", headers=headers)
    assert panel.status_code == 200, panel.text
    assert (panel.json()["index"], panel.json()["remaining"]) == (3, 0)

    used_up = await reply_text(await ask(client, headers, conversation_id, "hint?"), False)
    assert "already seen all 3 hints" in used_up
    assert (await client.post(f"/api/v1/exercises/{evens.id}/hints", headers=headers)).json()[
        "error"
    ] == "NoMoreHints"
    assert await hints_used(session, learner, evens) == 3


async def test_a_streamed_reply_from_the_offline_fallback_counts_its_hint_rung(
    chat: EvensChat,
) -> None:
    # The model fails: Koan's own tutor answers.
    errors = [Reply.server_error()] * 3
    conversation_id = await chat.start(*errors, llm_fallback="offline")

    r = await chat.ask(conversation_id, "I'm stuck", stream=True)

    events = parse_sse(r.text)
    assert f"Hint 1 of 3: {EVENS_HINTS[0]}" in streamed_text(events)[1]
    assert "replace" not in [name for name, _ in events]
    assert await hints_used(chat.session, chat.learner, chat.exercise) == 1
