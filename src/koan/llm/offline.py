"""Koan's offline tutor: deterministic Socratic guidance from the exercise and test results.

It needs no network and no model. It reads the failing test's message, explains the error it
names, offers the next unseen rung of the exercise's hint ladder, and closes with exactly one
guiding question. It never writes code for the learner: it has no solution to give.
"""

from __future__ import annotations

import re
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from koan.llm.base import AsyncClosing
from koan.llm.errors import ProviderError
from koan.llm.pricing import estimate_message_tokens, estimate_tokens
from koan.llm.types import (
    ChatMessage,
    Completion,
    CompletionRequest,
    FailingTest,
    StreamChunk,
    StreamEnd,
    StreamItem,
    TutorContext,
    Usage,
)

OFFLINE_MODEL = "koan-offline"
OFFLINE_NOTE = (
    "(Koan's offline tutor here: no AI model is connected, so I answer from the exercise, "
    "its hints and your test results.)"
)


@dataclass(frozen=True, slots=True)
class _ErrorRule:
    """How to recognise one kind of error message and what to say about it."""

    pattern: re.Pattern[str]
    languages: frozenset[str]
    explanation: str  # may use the pattern's named groups
    question: str


def _rule(pattern: str, languages: str, explanation: str, question: str) -> _ErrorRule:
    return _ErrorRule(re.compile(pattern), frozenset(languages.split()), explanation, question)


# Most specific first: "TypeError: x is not a function" must win over a generic TypeError.
_ERROR_RULES: tuple[_ErrorRule, ...] = (
    _rule(
        r"UnboundLocalError:.*?'(?P<name>\w+)'",
        "python",
        "An UnboundLocalError means `{name}` is assigned somewhere inside the function, so "
        "Python treats it as a local variable everywhere in that function, but it is read "
        "before that assignment has run.",
        "Which line reads `{name}` before any line in the same function has given it a value?",
    ),
    _rule(
        r"NameError: name '(?P<name>\w+)' is not defined",
        "python",
        "A NameError means Python reached the name `{name}` but nothing by that name exists "
        "at that point: it may be misspelled, defined later, defined inside another function, "
        "or never imported.",
        "Where in your code do you expect `{name}` to get its value, and does that line run "
        "before the line that uses it?",
    ),
    _rule(
        r"ReferenceError: (?P<name>[\w$]+) is not defined",
        "javascript",
        "A ReferenceError means JavaScript reached the identifier `{name}` but no variable "
        "by that name is in scope there: check the spelling, and whether it was declared "
        "with let/const in a different block.",
        "In which block is `{name}` declared, and is the line that uses it inside that block?",
    ),
    _rule(
        r"ReferenceError: Cannot access '(?P<name>[\w$]+)' before initialization",
        "javascript",
        "This ReferenceError comes from the temporal dead zone: `{name}` is declared with "
        "let or const, but the code reads it before the declaration line has run.",
        "What happens if you move the use of `{name}` below its declaration?",
    ),
    _rule(
        r"TypeError: (?P<name>[\w$.\[\]()]+) is not a function",
        "javascript",
        '"{name} is not a function" means the value you tried to call with `()` is '
        "something else: undefined, a number, an array, or a property whose name is slightly "
        "different from the method you meant.",
        "What value does `{name}` actually hold just before that call, if you log it?",
    ),
    _rule(
        r"TypeError: Cannot read propert(?:y|ies) of (?P<value>undefined|null)"
        r"(?: \(reading '(?P<name>[^']+)'\))?",
        "javascript",
        "This TypeError means you asked for a property of `{value}`: the object you expected "
        "is not there, often because an index went past the end of an array or a function "
        "returned nothing.",
        "Which value on that line is `{value}` when it runs, and where should it have been set?",
    ),
    _rule(
        r"RangeError: Maximum call stack size exceeded",
        "javascript",
        '"Maximum call stack size exceeded" means a function kept calling itself without '
        "ever reaching a case that stops: the recursion has no reachable base case.",
        "For the smallest possible input, which line returns without calling the function again?",
    ),
    _rule(
        r"RangeError: (?P<detail>.+)",
        "javascript",
        "A RangeError means a number was outside the allowed range for the operation ({detail}), "
        "for example a negative array length or too many digits for toFixed.",
        "Which number flows into that operation, and what values can it take?",
    ),
    _rule(
        r"RecursionError: maximum recursion depth exceeded",
        "python",
        "A RecursionError means your function called itself so many times that Python gave "
        "up: the base case is missing, or the recursive call does not move closer to it.",
        "For the smallest possible input, which line returns without making another "
        "recursive call?",
    ),
    _rule(
        r"ZeroDivisionError",
        "python",
        "A ZeroDivisionError means something was divided by zero: a count, a length or a "
        "step ended up as 0 for one of the test inputs, often an empty list.",
        "Which of the test inputs makes the divisor zero, and what should happen for it?",
    ),
    _rule(
        r"IndexError: (?P<detail>.*index out of range)",
        "python",
        "An IndexError ({detail}) means you asked for a position that does not exist: a list "
        "of length n only has the indexes 0 to n - 1, and an empty list has none.",
        "What is the largest index your loop or expression uses, compared with the length of "
        "the sequence?",
    ),
    _rule(
        r"KeyError: (?P<key>.+)",
        "python",
        "A KeyError means you looked up the key {key} in a dictionary that does not contain "
        "it. Looking up with `d[key]` fails for missing keys; `d.get(key, default)` and "
        "`key in d` let you handle them.",
        "At the moment of that lookup, has anything put {key} into the dictionary yet?",
    ),
    _rule(
        r"AttributeError: '(?P<type>\w+)' object has no attribute '(?P<name>\w+)'",
        "python",
        "An AttributeError means the value is a `{type}`, and a `{type}` has no `{name}`. "
        "When the type is NoneType, some function returned None (many list methods such as "
        "sort and append change the list in place and return None).",
        "Which expression produced the `{type}` you called `.{name}` on, and what did you "
        "expect it to be?",
    ),
    _rule(
        r"TypeError: unsupported operand type\(s\) for (?P<op>\S+): '(?P<a>\w+)' and '(?P<b>\w+)'",
        "python",
        "This TypeError means `{op}` was used between a `{a}` and a `{b}`, and Python does not "
        "know how to combine those two types.",
        "Which of the two values has a type you did not expect, and where did it come from?",
    ),
    _rule(
        r"TypeError: can only concatenate (?P<a>\w+) \(not \"(?P<b>\w+)\"\) to \w+",
        "python",
        "This TypeError means you joined a `{a}` and a `{b}` with `+`. Python does not convert "
        "between them automatically: str() or an f-string turns a number into text.",
        "Which value in that expression is the `{b}`, and should it become text first?",
    ),
    _rule(
        r"TypeError: '(?P<type>\w+)' object is not (?P<what>subscriptable|iterable|callable)",
        "python",
        "This TypeError means a `{type}` value was used as if it were {what}. A NoneType here "
        "usually means a function returned None instead of a value.",
        "Where does the `{type}` value come from, and what did you expect it to be instead?",
    ),
    _rule(
        r"TypeError: (?P<func>[\w.]+)\(\) (?:takes|missing) (?P<detail>.+)",
        "python",
        "This TypeError means `{func}()` was called with a different number of arguments than "
        "its definition accepts ({detail}).",
        "How many parameters does `{func}` define, and how many values does the call pass?",
    ),
    _rule(
        r"TypeError: (?P<detail>.+)",
        "python javascript",
        "A TypeError means an operation got a value of the wrong type ({detail}).",
        "What type does each value in that line have when it runs?",
    ),
    _rule(
        r"ValueError: (?P<detail>.+)",
        "python",
        "A ValueError means a function got an argument of the right type but an unusable "
        "value ({detail}), for example int() on text that is not a number.",
        "Which input reaches that call, and what does it look like exactly?",
    ),
    _rule(
        r"IndentationError: (?P<detail>.+)",
        "python",
        "An IndentationError ({detail}) means the blocks are not lined up: Python uses "
        "indentation to know which lines belong to an if, a loop or a function, and every "
        "line of one block must be indented by the same amount.",
        "Which block should the reported line belong to, and is it indented like the rest "
        "of that block?",
    ),
    _rule(
        r"SyntaxError: (?P<detail>.+)",
        "python javascript",
        "A SyntaxError ({detail}) means the code cannot even be read, so no test ran. The "
        "real mistake is often just before the reported spot: a missing colon, bracket, "
        "quote or comma.",
        "Looking at the line before the one reported, is every bracket and quote closed?",
    ),
    _rule(
        r"ModuleNotFoundError: No module named '(?P<name>[\w.]+)'|"
        r"Cannot find module '(?P<jsname>[^']+)'",
        "python javascript",
        "The grader could not import a module your code asks for. Exercises run with the "
        "standard library only.",
        "Can the same result be reached with what the language provides out of the box?",
    ),
    _rule(
        r"(?i)timed? ?out|time limit",
        "python javascript",
        "The test ran out of time, which usually means a loop whose condition never becomes "
        "false, or a recursion that never ends.",
        "In your loop, which variable changes on every pass, and does that change bring the "
        "loop closer to stopping?",
    ),
)

_ASSERTION = re.compile(
    r"(?:AssertionError:\s*)?(?:assert\s+)?(?P<got>.+?)\s*(?:===|!==|==|!=)\s*(?P<want>.+)"
)
_EXPECTED_GOT = re.compile(
    r"(?is)expected(?: value)?\s*:?\s*(?P<want>.+?)[,;]?\s+(?:but\s+)?"
    r"(?:got|received|was|actual)\s*:?\s*(?P<got>\S.*)"
)

_GENERIC_QUESTIONS: tuple[str, ...] = (
    "What have you tried so far, and what did you expect it to do?",
    "If you trace your code by hand with the smallest example from the statement, where does "
    "the result first differ from what you expect?",
    "Which part of the statement feels least clear to you right now?",
    "Can you describe, in plain words, the steps your function should take?",
)

_CONCEPTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(?i)\brecurs"),
        "Recursion means a function solves a problem by calling itself on a smaller version "
        "of it. Every recursive function needs a base case that answers directly, and each "
        "call must move closer to that base case.",
    ),
    (
        re.compile(r"(?i)\b(dict|dictionar|hash ?map|object literal)"),
        "A dictionary maps keys to values. Looking up a key is fast, keys must be unique, "
        "and asking for a missing key is an error unless you check for it first.",
    ),
    (
        re.compile(r"(?i)\b(list comprehension|comprehension)"),
        "A comprehension builds a new collection from an existing one in a single "
        "expression: for each item, optionally keep it if a condition holds, and transform it.",
    ),
    (
        re.compile(r"(?i)\b(loop|iterat)"),
        "A loop repeats a block for each item of a collection (for) or while a condition "
        "holds (while). Most loop bugs are about the first or last pass, so check those two.",
    ),
    (
        re.compile(r"(?i)\b(promise|async|await)"),
        "An async function returns a promise at once; `await` pauses that function until the "
        "promise settles, and the value only exists after that point.",
    ),
    (
        re.compile(r"(?i)\b(closure|scope)"),
        "Scope decides where a name is visible: a name defined inside a function exists only "
        "there, and an inner function can read the names of the function around it.",
    ),
)


class OfflineProvider(AsyncClosing):
    """A deterministic, network-free tutor that guides from the exercise context."""

    def __init__(self, *, name: str = "offline", words_per_chunk: int = 1) -> None:
        self.name = name
        self.model = OFFLINE_MODEL
        self._words_per_chunk = max(1, words_per_chunk)

    async def close(self) -> None:
        """Nothing to release."""

    def _check(self, req: CompletionRequest) -> None:
        if req.purpose == "generation" or req.json_schema is not None:
            raise ProviderError(
                "the offline tutor cannot generate exercises or structured output",
                provider=self.name,
                kind="unsupported",
            )

    async def complete(self, req: CompletionRequest) -> Completion:
        """Answer at once."""
        self._check(req)
        started = time.perf_counter()
        text = offline_reply(req)
        return self._completion(req, text, started)

    async def stream(self, req: CompletionRequest) -> AsyncIterator[StreamItem]:
        """Yield the same answer word by word."""
        self._check(req)
        started = time.perf_counter()
        text = offline_reply(req)
        words = re.findall(r"\S+\s*", text)
        for i in range(0, len(words), self._words_per_chunk):
            yield StreamChunk("".join(words[i : i + self._words_per_chunk]))
        yield StreamEnd(self._completion(req, text, started))

    def _completion(self, req: CompletionRequest, text: str, started: float) -> Completion:
        return Completion(
            text=text,
            model=OFFLINE_MODEL,
            provider=self.name,
            usage=Usage(estimate_message_tokens(req.messages), estimate_tokens(text), True),
            latency_ms=int((time.perf_counter() - started) * 1000),
            finish_reason="stop",
        )


def offline_reply(req: CompletionRequest) -> str:
    """The offline tutor's whole answer to a request."""
    context = req.context or TutorContext()
    question = context.question or _last_user_message(req.messages) or ""
    wants_hint = req.purpose == "hint" or bool(_HINT_REQUEST.search(question))
    parts = [OFFLINE_NOTE]
    # None: still to choose; "": the hint already asks the question.
    guiding: str | None = None
    if wants_hint:
        if context.hints:
            hint = _next_hint(context)
            parts.append(hint)
            if hint.rstrip().endswith("?"):
                guiding = ""
        else:
            parts.append("This exercise has no written hints, so let's reason it through.")
    if context.failing_tests:
        explanation, test_question = _explain_failure(context.failing_tests[0], context)
        parts.append(explanation)
        if guiding is None:
            guiding = test_question
    else:
        concept = None if wants_hint else _concept_for(question)
        if concept:
            parts.append(concept)
        if not (context.exercise_statement or context.title):
            parts.append("Open an exercise and run its tests, and I can point at what failed.")
        elif context.latest_code is None:
            parts.append(
                "Write a first attempt and run the tests; then I can point at what failed."
            )
    if guiding is None:
        guiding = _pick(_GENERIC_QUESTIONS, context, question)
    parts.append(guiding)
    return "\n\n".join(part for part in parts if part)


# "help" alone is not here: "help me understand recursion" asks for a concept, not a hint.
_HINT_REQUEST = re.compile(r"(?i)\b(hints?|stuck|clue|no idea|give up|lost)\b")


def _last_user_message(messages: Sequence[ChatMessage]) -> str | None:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return None


def _next_hint(context: TutorContext) -> str:
    total = len(context.hints)
    index = min(context.hints_used, total)
    if index >= total:
        return f"You have already seen all {total} hints for this exercise; let's use them."
    return f"Hint {index + 1} of {total}: {context.hints[index]}"


def _explain_failure(test: FailingTest, context: TutorContext) -> tuple[str, str]:
    language = _language(context.language)
    message = test.message.strip()
    first_line = _salient_line(message)
    quoted = f"The test `{test.name}` failed with:\n\n    {first_line}"
    for rule in _ERROR_RULES:
        if language not in rule.languages:
            continue
        match = rule.pattern.search(message)
        if match is None:
            continue
        groups = {k: (v or "").strip() for k, v in match.groupdict().items()}
        for key in ("name", "value", "type", "key", "detail", "op", "a", "b", "func", "what"):
            groups.setdefault(key, "")
        explanation = rule.explanation.format(**groups)
        question = rule.question.format(**groups)
        return f"{quoted}\n\n{explanation}", question
    expected = _EXPECTED_GOT.search(message) or _ASSERTION.search(first_line)
    if expected is not None and expected.group("want") and expected.group("got"):
        want = expected.group("want").strip().splitlines()[0]
        got = expected.group("got").strip().splitlines()[0]
        return (
            f"{quoted}\n\nYour code ran without crashing, but it produced {got} where the test "
            f"expected {want}.",
            f"Which input does `{test.name}` use, and at which step does your code's value "
            f"stop matching {want}?",
        )
    return (
        f"{quoted}\n\nRead the message slowly: it names what the test checked.",
        f"What does `{test.name}` check that your code does not do yet?",
    )


def _salient_line(message: str) -> str:
    """The line of a traceback that names the error, or the start of a plain report."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    for line in reversed(lines):
        if re.match(r"^[A-Z]\w*(Error|Exception)\b|^AssertionError|^assert ", line):
            return line[:300]
    return "\n    ".join(line[:200] for line in lines[:3])


def _language(language: str) -> str:
    lowered = language.lower()
    if lowered in {"js", "javascript", "node", "typescript", "ts"}:
        return "javascript"
    return "python"


def _concept_for(question: str) -> str | None:
    for pattern, explanation in _CONCEPTS:
        if pattern.search(question):
            return explanation
    return None


def _pick(options: Sequence[str], context: TutorContext, question: str) -> str:
    """Choose deterministically, varying with the exercise and the learner's progress."""
    key = f"{context.exercise_statement}|{context.hints_used}|{question}".encode()
    return options[zlib.crc32(key) % len(options)]
