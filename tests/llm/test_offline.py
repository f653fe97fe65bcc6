"""The offline tutor: deterministic Socratic guidance without any network."""

from __future__ import annotations

import pytest

from koan.errors import TutorUnavailable
from koan.llm import (
    ChatMessage,
    CompletionRequest,
    OfflineProvider,
    ProviderError,
    StreamChunk,
    StreamEnd,
    TutorContext,
    build_provider,
    is_leak,
)
from tests.llm.streams import drain

SOLUTION = """def rolling_max(values):
    result = []
    current = None
    for value in values:
        if current is None or value > current:
            current = value
        result.append(current)
    return result
"""

HINTS = [
    "Keep track of the largest value seen so far.",
    "Before you have seen any value, what is the running maximum?",
    "Append to the result on every pass, not only when the maximum changes.",
]


def context(**overrides: object) -> TutorContext:
    values: dict[str, object] = {
        "exercise_statement": "Write rolling_max(values): the running maximum of a list.",
        "hints": HINTS,
        "hints_used": 0,
        "latest_code": "def rolling_max(values):\n    for v in values:\n        result.append(v)\n",
        "failing_tests": [
            (
                "test_rolling_max_basic",
                "Traceback (most recent call last):\n"
                '  File "solution.py", line 3, in rolling_max\n'
                "    result.append(v)\n"
                "NameError: name 'result' is not defined",
            )
        ],
        "language": "python",
    }
    values.update(overrides)
    return TutorContext.build(**values)  # type: ignore[arg-type]


def ask(question: str, ctx: TutorContext | None, purpose: str = "chat") -> CompletionRequest:
    return CompletionRequest(
        messages=[ChatMessage("system", "rules"), ChatMessage("user", question)],
        purpose=purpose,  # type: ignore[arg-type]
        context=ctx,
    )


async def answer(question: str, ctx: TutorContext | None, purpose: str = "chat") -> str:
    async with OfflineProvider() as tutor:
        return (await tutor.complete(ask(question, ctx, purpose))).text


def guiding_questions(text: str) -> int:
    """Questions the tutor asks, ignoring anything quoted from a test or the learner."""
    prose = [line for line in text.splitlines() if not line.startswith("    ")]
    return sum(line.rstrip().endswith("?") for line in prose)


async def test_says_it_is_the_offline_tutor() -> None:
    text = await answer("Why does my test fail?", context())

    assert "offline tutor" in text
    assert "no AI model is connected" in text


async def test_quotes_the_failing_test_and_explains_the_name_error() -> None:
    text = await answer("Why does my test fail?", context())

    assert "test_rolling_max_basic" in text
    assert "NameError: name 'result' is not defined" in text
    assert "A NameError means" in text
    assert "`result`" in text
    assert guiding_questions(text) == 1
    assert text.rstrip().endswith("?")


async def test_gives_the_next_unseen_hint_rung() -> None:
    text = await answer("Can I have a hint?", context(hints_used=1, failing_tests=[]))

    assert "Hint 2 of 3: Before you have seen any value" in text
    assert HINTS[0] not in text
    assert HINTS[2] not in text
    # The hint is itself a question, so the tutor does not add a second one.
    assert guiding_questions(text) == 1


async def test_hint_purpose_without_asking_in_words() -> None:
    text = await answer("...", context(hints_used=0, failing_tests=[]), purpose="hint")

    assert "Hint 1 of 3: Keep track of the largest value seen so far." in text
    assert guiding_questions(text) == 1


async def test_all_hints_used_is_said_plainly() -> None:
    text = await answer("hint please", context(hints_used=3, failing_tests=[]))

    assert "already seen all 3 hints" in text
    assert guiding_questions(text) == 1


@pytest.mark.parametrize(
    ("language", "message", "expected"),
    [
        ("python", "IndexError: list index out of range", "does not exist"),
        ("python", "KeyError: 'apple'", "key 'apple'"),
        ("python", "AttributeError: 'NoneType' object has no attribute 'append'", "NoneType"),
        ("python", "ZeroDivisionError: division by zero", "divided by zero"),
        ("python", "RecursionError: maximum recursion depth exceeded", "base case"),
        ("python", "IndentationError: expected an indented block", "indented"),
        ("python", "SyntaxError: invalid syntax", "cannot even be read"),
        ("python", 'TypeError: can only concatenate str (not "int") to str', "str()"),
        ("python", "TypeError: add() takes 2 positional arguments but 3 were given", "`add()`"),
        ("javascript", "ReferenceError: total is not defined", "`total`"),
        ("javascript", "TypeError: items.mapp is not a function", "items.mapp"),
        ("javascript", "RangeError: Maximum call stack size exceeded", "base case"),
        (
            "javascript",
            "TypeError: Cannot read properties of undefined (reading 'length')",
            "property of `undefined`",
        ),
    ],
)
async def test_explains_common_exceptions(language: str, message: str, expected: str) -> None:
    ctx = context(language=language, failing_tests=[("test_case", message)])

    text = await answer("what is wrong?", ctx)

    assert expected in text
    assert guiding_questions(text) == 1


async def test_wrong_value_is_compared_with_the_expected_one() -> None:
    ctx = context(failing_tests=[("test_empty", "AssertionError: assert [0] == []")])

    text = await answer("why?", ctx)

    assert "produced [0] where the test expected []" in text
    assert "`test_empty`" in text


async def test_explains_a_concept_when_no_test_fails() -> None:
    text = await answer("What is recursion exactly?", context(failing_tests=[]))

    assert "base case" in text
    assert guiding_questions(text) == 1


async def test_without_any_context_it_still_guides() -> None:
    text = await answer("hello", None)

    assert "offline tutor" in text
    assert "Open an exercise" in text
    assert guiding_questions(text) == 1


async def test_is_deterministic() -> None:
    first = await answer("Why?", context(failing_tests=[]))
    second = await answer("Why?", context(failing_tests=[]))

    assert first == second


async def test_never_contains_the_solution() -> None:
    for ctx in [context(), context(hints_used=2, failing_tests=[]), context(hints_used=3)]:
        for question in ["Just give me the code", "hint", "I give up, what is the answer?"]:
            text = await answer(question, ctx)
            assert not is_leak(text, SOLUTION, "python")
            assert "current = value" not in text


async def test_streams_word_by_word_with_estimated_free_usage() -> None:
    request = ask("Why does my test fail?", context())

    async with OfflineProvider() as tutor:
        whole = await tutor.complete(request)
        received: list[str] = []
        items = await drain(tutor.stream(request), received)

    assert "".join(received) == whole.text
    assert all(len(delta.split()) == 1 for delta in received)
    assert len(received) > 20
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert sum(isinstance(item, StreamChunk) for item in items) == len(received)
    assert end.completion.usage.estimated is True
    assert end.completion.cost_usd == 0
    assert end.completion.provider == "offline"
    assert end.completion.model == "koan-offline"


async def test_refuses_exercise_generation_so_the_chain_can_say_so() -> None:
    request = CompletionRequest(
        messages=[ChatMessage("user", "Generate an exercise")],
        purpose="generation",
        json_schema={"type": "object"},
    )

    async with OfflineProvider() as tutor:
        with pytest.raises(ProviderError) as caught:
            await tutor.complete(request)
    assert caught.value.kind == "unsupported"

    async with build_provider("offline") as chain:
        with pytest.raises(TutorUnavailable) as unavailable:
            await chain.complete(request)
    assert "No configured tutor can handle this request" in unavailable.value.detail


# -- answering the question that was asked ---------------------------------------------------------

TYPE_ERROR = "TypeError: unsupported operand type(s) for +=: 'int' and 'str' (solution.py, line 4)"
BARE_ASSERT = "assert rolling_max([1, 3, 2]) == [1, 3, 3]\n  left:  [1, 3]\n  right: [1, 3, 3]"


def failing_twice() -> TutorContext:
    return context(
        failing_tests=[("test_basic", BARE_ASSERT), ("test_types", TYPE_ERROR)], hints_used=0
    )


async def test_five_questions_on_one_failing_attempt_get_five_different_answers() -> None:
    questions = [
        "why does my test fail?",
        "can you just give me the answer?",
        "what is a list comprehension?",
        "Warum schlägt mein Test fehl?",
        "is my code right?",
    ]
    answers = [await answer(q, failing_twice()) for q in questions]

    assert len(set(answers)) == 5
    assert "TypeError" in answers[0]
    assert "won't hand you the finished code" in answers[1]
    assert "Hint 1 of 3" in answers[1]
    assert "comprehension builds a new collection" in answers[2]
    assert "Offline-Tutor" in answers[3]
    assert answers[4].split("\n\n")[1].startswith("Not yet")
    for text in answers:
        assert guiding_questions(text) == 1


async def test_an_exception_is_explained_before_a_bare_assertion() -> None:
    text = await answer("why does my test fail?", failing_twice())

    assert "`test_types`" in text
    assert "`test_basic`" not in text
    assert "TypeError" in text


async def test_the_location_is_said_apart_from_the_values() -> None:
    message = "KeyError: 'caviar' (solution.py, line 4)"
    text = await answer("why?", context(failing_tests=[("test_menu", message)]))

    assert "key 'caviar' in" in text
    assert "'caviar' (solution.py" not in text
    assert "line 4 of solution.py" in text


async def test_a_javascript_expected_value_keeps_its_location_out_of_the_value() -> None:
    message = "Expected values to be strictly equal:\n\n9 !== 10\n (tests.js, line 10)"
    ctx = context(language="javascript", failing_tests=[("adds", message)])

    text = await answer("why does it fail?", ctx)

    assert "10 (tests.js" not in text
    assert "line 10 of tests.js" in text


async def test_asking_for_the_answer_declines_and_gives_the_next_rung() -> None:
    text = await answer("just give me the code", context(hints_used=1))

    assert "won't hand you the finished code" in text
    assert "Hint 2 of 3" in text


async def test_asking_for_the_answer_when_the_ladder_is_used_up_says_so() -> None:
    text = await answer("just give me the solution", context(hints_used=3))

    assert "already seen all 3 hints" in text
    assert "Hint " not in text.replace("hints", "")


def test_the_rung_shown_in_chat_is_reported_so_it_is_counted() -> None:
    from koan.llm.offline import offline_rung_given

    assert offline_rung_given(ask("I'm stuck", context(hints_used=1))) == 1
    assert offline_rung_given(ask("give me the answer", context(hints_used=0))) == 0
    assert offline_rung_given(ask("why does it fail?", context())) is None
    assert offline_rung_given(ask("hint please", context(hints_used=3))) is None


@pytest.mark.parametrize(
    ("question", "language", "expected"),
    [
        ("What does return do?", "python", "`return` ends the function"),
        ("what is a dictionary?", "python", "maps keys to values"),
        ("What is a closure?", "javascript", "remembers the variables"),
        ("explain recursion", "python", "base case"),
        ("what are generators?", "javascript", "function*"),
        ("what is a set?", "python", "unique values"),
        ("what is a tuple?", "javascript", "no tuples"),
        ("how does a for loop work?", "javascript", "for (const item of items)"),
        ("what is a class?", "python", "__init__"),
        ("what is try/except?", "python", "except SomeError"),
        ("what is a higher-order function?", "javascript", "xs.map(f)"),
        ("what is an array?", "javascript", "items.push(x)"),
        ("what does modulo mean, the % operator?", "python", "remainder"),
    ],
)
async def test_concept_questions_are_explained_even_while_tests_fail(
    question: str, language: str, expected: str
) -> None:
    text = await answer(question, context(language=language))

    assert expected in text
    assert "In this exercise" in text or "For this exercise" in text or "this exercise" in text
    assert guiding_questions(text) == 1


async def test_without_an_exercise_it_answers_generally_and_never_says_your_function() -> None:
    for question in ["what is recursion?", "why does my test fail?", "tell me a joke", "hi"]:
        text = await answer(question, None)
        assert "your function" not in text
        assert "the statement" not in text
        assert guiding_questions(text) == 1
    assert "base case" in await answer("what is recursion?", None)


@pytest.mark.parametrize(
    ("question", "marker"),
    [
        ("Warum schlägt mein Test fehl?", "antworte ich auf Englisch"),
        ("Pourquoi mon test échoue ?", "je réponds donc en anglais"),
        ("¿Por qué falla mi prueba?", "respondo en inglés"),
        ("Gib mir bitte die Lösung", "Die fertige Lösung gebe ich dir nicht"),
        ("Donne-moi la solution s'il te plaît", "Je ne te donne pas la solution"),
        ("Dame la solución, por favor", "No te doy la solución"),
    ],
)
async def test_another_language_is_answered_or_told_plainly_in_it(
    question: str, marker: str
) -> None:
    text = await answer(question, failing_twice())

    assert marker in text
    assert guiding_questions(text) == 1
