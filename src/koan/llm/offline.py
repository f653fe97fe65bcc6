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
from typing import Literal

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
    "Can you describe, in plain words, the steps your code should take?",
)
# Without an exercise there is no code of the learner's to speak of.
_OPEN_QUESTIONS: tuple[str, ...] = (
    "What are you working on, and where would you like to start?",
    "Which concept would you like to go through together: loops, functions, lists, or "
    "something else?",
)


@dataclass(frozen=True, slots=True)
class _Concept:
    """A concept of the skill vocabulary (docs/exercise-format.md), per language."""

    name: str
    pattern: re.Pattern[str]
    python: str
    javascript: str
    tie: str  # one sentence tying it to the exercise at hand


def _concept(name: str, pattern: str, python: str, javascript: str, tie: str) -> _Concept:
    return _Concept(name, re.compile(pattern, re.IGNORECASE), python, javascript, tie)


# Most specific first: "list comprehension" must win over "list".
_CONCEPTS: tuple[_Concept, ...] = (
    _concept(
        "comprehensions",
        r"\bcomprehensions?\b",
        "A comprehension builds a new collection from an existing one in one expression: "
        "`[x * x for x in numbers if x > 0]` takes each item, keeps it only if the condition "
        "holds, and transforms it. Dict and set comprehensions use `{...}` the same way.",
        "JavaScript has no comprehensions; `array.filter(...)` keeps the items a test accepts "
        "and `array.map(...)` transforms each one, so `xs.filter((x) => x > 0).map((x) => x * x)` "
        "plays the same role.",
        "Is there a place in this exercise where you build one collection from another?",
    ),
    _concept(
        "return",
        r"\breturn(s|ing)?\b",
        "`return` ends the function at once and hands a value back to whoever called it. A "
        "function that reaches its end without `return` gives back `None`; printing a value is "
        "not the same as returning it.",
        "`return` ends the function at once and hands a value back to the caller. A function "
        "that ends without `return` gives back `undefined`; `console.log` shows a value but does "
        "not return it. An arrow function with a body in `{}` needs an explicit `return`.",
        "In this exercise the tests check what your function returns, not what it prints.",
    ),
    _concept(
        "recursion",
        r"\brecurs",
        "Recursion means a function solves a problem by calling itself on a smaller version "
        "of it. Every recursive function needs a base case that answers directly, and each "
        "call must move closer to that base case.",
        "Recursion means a function solves a problem by calling itself on a smaller version "
        "of it. Every recursive function needs a base case that answers directly, and each "
        "call must move closer to that base case.",
        "Ask which input of this exercise is small enough to answer without any further call.",
    ),
    _concept(
        "generators",
        r"\b(generators?|yield)\b",
        "A generator is a function that uses `yield`: each `yield` hands out one value and "
        "pauses the function until the next value is asked for (by a `for` loop or `next()`). "
        "It produces values lazily instead of building a whole list.",
        "A generator function is written `function*` and uses `yield`: each `yield` hands out one "
        "value and pauses until the caller asks for the next (`for...of` or `.next()`).",
        "Think about which values this exercise asks you to produce one at a time.",
    ),
    _concept(
        "closures",
        r"\b(closures?|scope|nonlocal)\b",
        "A closure is an inner function that remembers the variables of the function it was "
        "created in, even after that function has returned. To change such a variable from "
        "the inner function, Python needs `nonlocal`.",
        "A closure is an inner function that remembers the variables of the function it was "
        "created in, even after that function has returned; each call of the outer function "
        "makes a fresh set of them.",
        "In this exercise, ask which value has to survive from one call to the next.",
    ),
    _concept(
        "higher-order-functions",
        r"\b(higher[- ]order|callbacks?|lambdas?|arrow functions?|map|filter|reduce)\b",
        "A higher-order function takes a function as an argument or returns one: `map(f, xs)`, "
        "`sorted(xs, key=f)` and decorators are examples. `lambda x: x * 2` writes a small "
        "function inline.",
        "A higher-order function takes a function as an argument or returns one: `xs.map(f)`, "
        "`xs.filter(f)`, `xs.reduce(f, start)` and `setTimeout(f)` are examples. "
        "`(x) => x * 2` writes a small function inline.",
        "Look at which function in this exercise is passed around as a value.",
    ),
    _concept(
        "classes",
        r"\b(class(es)?|objects? oriented|methods?|self|this|constructor|__init__|instances?)\b",
        "A class describes a kind of object: `__init__` sets up each new instance's attributes "
        "on `self`, and methods are functions that receive the instance as `self`.",
        "A class describes a kind of object: the `constructor` sets up each new instance's "
        "fields on `this`, and methods are functions called on an instance.",
        "In this exercise, ask which values each object keeps, and which method changes them.",
    ),
    _concept(
        "error-handling",
        r"\b(exceptions?|try|except|catch|raise|throw|error handling)\b",
        "`try` runs code that may fail; `except SomeError:` handles that error type; `raise` "
        "signals an error yourself. Catch only the errors you expect, so real bugs still show.",
        "`try` runs code that may fail, `catch (err)` handles what was thrown, and `throw new "
        "Error(...)` signals an error yourself. Catch only what you expect.",
        "Check which inputs of this exercise should fail, and what should happen then.",
    ),
    _concept(
        "promises",
        r"\b(promises?|async|await)\b",
        "An `async def` function returns a coroutine; `await` pauses it until the awaited work "
        "finishes, and the result only exists after that point.",
        "An async function returns a promise at once; `await` pauses that function until the "
        "promise settles, and the value only exists after that point.",
        "In this exercise, ask at which point each value is actually available.",
    ),
    _concept(
        "dictionaries",
        r"\b(dict|dictionar(y|ies)|hash ?maps?|maps?|keys?)\b",
        "A dictionary maps keys to values: `counts[word]` looks a key up, `counts[word] = 1` sets "
        "it. Keys are unique, and reading a missing key raises `KeyError` unless you check "
        "`key in d` or use `d.get(key, default)`.",
        "An object (or a `Map`) maps keys to values: `counts[word]` reads a key and "
        "`counts[word] = 1` sets it. Reading a missing key gives `undefined`, so check with "
        "`key in obj` or `map.has(key)` first.",
        "In this exercise, ask what your keys are and what value each should hold.",
    ),
    _concept(
        "objects",
        r"\b(objects?|propert(y|ies)|json)\b",
        "In Python most things are objects with attributes (`obj.name`); plain data is usually "
        "kept in a dictionary (`data['name']`).",
        "A JavaScript object groups named properties: `user.name` or `user['name']` reads one; "
        "`Object.keys(obj)` lists them; a missing property reads as `undefined`.",
        "In this exercise, ask which properties your data has and which one you need to read.",
    ),
    _concept(
        "sets",
        r"\bsets?\b",
        "A set holds unique values with no order: adding a value twice keeps one copy, and "
        "`x in s` is fast. `a & b`, `a | b` and `a - b` are intersection, union and difference.",
        "A `Set` holds unique values: `new Set(array)` drops duplicates, `set.has(x)` is fast, "
        "and `[...set]` turns it back into an array.",
        "In this exercise, ask whether duplicates matter, or only what is present.",
    ),
    _concept(
        "tuples",
        r"\btuples?\b",
        "A tuple is a fixed, unchangeable sequence such as `(x, y)`: good for a few values "
        "that belong together. `a, b = pair` unpacks it, and a function can return several "
        "values as one tuple.",
        "JavaScript has no tuples; a small array such as `[x, y]` plays that role, and "
        "`const [a, b] = pair` unpacks it.",
        "In this exercise, ask which values travel together as one pair.",
    ),
    _concept(
        "arrays",
        r"\b(arrays?|lists?|index(es|ing)?|append|push|slices?|slicing)\b",
        "A list is an ordered, changeable sequence: `items[0]` is the first item, `items[-1]` "
        "the last, `len(items)` the count, `items.append(x)` adds at the end and `items[a:b]` "
        "slices out a part (b not included).",
        "An array is an ordered list of values: `items[0]` is the first, "
        "`items[items.length - 1]` the last, `items.push(x)` adds at the end and "
        "`items.slice(a, b)` copies out a part (b not included).",
        "In this exercise, ask which positions you read and which one is the last valid index.",
    ),
    _concept(
        "strings",
        r"\b(strings?|text|characters?|substrings?|split|join|f-strings?|template literals?)\b",
        "A string is an unchangeable sequence of characters: `s[0]`, `len(s)`, `s.lower()`, "
        "`s.split()` and `' '.join(words)` are the common tools; every method returns a new "
        "string.",
        "A string is an unchangeable sequence of characters: `s[0]`, `s.length`, "
        "`s.toLowerCase()`, `s.split(' ')` and `words.join(' ')` are the common tools; every "
        "method returns a new string.",
        "In this exercise, ask whether you need each character or each word.",
    ),
    _concept(
        "loops",
        r"\b(loops?|for|while|iterat\w*|range)\b",
        "A loop repeats a block: `for item in items:` once per item, `for i in range(n):` for "
        "i = 0 to n - 1 (n itself is not included), `while condition:` as long as it holds. "
        "Most loop bugs are on the first or last pass, so check those two.",
        "A loop repeats a block: `for (const item of items)` once per item, "
        "`for (let i = 0; i < n; i++)` for i = 0 to n - 1, `while (condition)` as long as it "
        "holds. Most loop bugs are on the first or last pass, so check those two.",
        "In this exercise, ask what should happen on the first and on the last pass of your loop.",
    ),
    _concept(
        "conditionals",
        r"\b(if|else|elif|conditions?|conditionals?|boolean|comparisons?)\b",
        "An `if` runs its block only when the condition is true; `elif` and `else` handle the "
        "other cases, checked top to bottom, and only the first true branch runs. Comparisons "
        "(`==`, `<`, `>=`) give `True` or `False`.",
        "An `if` runs its block only when the condition is true; `else if` and `else` handle the "
        "other cases, top to bottom. Use `===` for comparisons: `==` converts types first.",
        "In this exercise, ask which case each branch is for, and in which order they run.",
    ),
    _concept(
        "sorting-searching",
        r"\b(sort\w*|search\w*|binary search|order(ed|ing)?)\b",
        "`sorted(xs)` returns a new sorted list and `xs.sort()` sorts in place (returning "
        "None); `key=` sorts by a computed value. Binary search halves a sorted range each step.",
        "`array.sort()` sorts in place and compares as strings unless you pass a comparator: "
        "`xs.sort((a, b) => a - b)` for numbers. Binary search halves a sorted range each step.",
        "In this exercise, ask what decides the order, and what happens when two items tie.",
    ),
    _concept(
        "math",
        r"\b(modulo|remainder|%|division|integer division|floor|round\w*|math)\b",
        "`a % b` is the remainder of a divided by b (`n % 2 == 0` means even), `a // b` "
        "divides and rounds down, `a / b` always gives a float, and `round(x, 2)` rounds.",
        "`a % b` is the remainder (`n % 2 === 0` means even, but `-3 % 2` is `-1`), "
        "`Math.floor(a / b)` divides and rounds down, and `x.toFixed(2)` formats two decimals.",
        "In this exercise, ask which arithmetic step gives each test's expected number.",
    ),
    _concept(
        "functions",
        r"\b(functions?|def|parameters?|arguments?|calls?|calling)\b",
        "A function is a named block of code: `def name(params):` defines it, the parameters "
        "receive the arguments of each call, and `return` hands the result back.",
        "A function is a named block of code: `function name(params) { ... }` or "
        "`const name = (params) => ...` defines it, the parameters receive the arguments of each "
        "call, and `return` hands the result back.",
        "In this exercise, ask what your function receives and what it must hand back.",
    ),
    _concept(
        "variables",
        r"\b(variables?|assign\w*|let|const|var|none|null|undefined)\b",
        "A variable is a name for a value: `total = 0` makes `total` refer to 0, and a later "
        "assignment replaces it. A name used before it is assigned is a `NameError`.",
        "A variable is a name for a value: `let total = 0` can be reassigned, `const` cannot, "
        "and a name used before its declaration is a `ReferenceError`.",
        "In this exercise, ask what each variable should hold before, during and after the work.",
    ),
    _concept(
        "algorithms",
        r"\b(algorithms?|complexity|big[- ]o|efficien\w*|dynamic programming|graph|bfs|dfs)\b",
        "An algorithm is a precise sequence of steps; its cost is how the work grows with the "
        "input (one pass is O(n), a loop inside a loop O(n²)). Work out the steps on paper with "
        "a small input before coding them.",
        "An algorithm is a precise sequence of steps; its cost is how the work grows with the "
        "input (one pass is O(n), a loop inside a loop O(n²)). Work out the steps on paper with "
        "a small input before coding them.",
        "For this exercise, try the steps by hand on the smallest example in the statement.",
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
            yield StreamChunk(
                "".join(words[i : i + self._words_per_chunk]), OFFLINE_MODEL, self.name
            )
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
    return _answer(req).text


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    rung: int | None = None  # the hint rung (0-based) this answer showed, if any


def offline_rung_given(req: CompletionRequest) -> int | None:
    """The hint rung (0-based) the offline tutor's answer to `req` shows, so it is counted."""
    return _answer(req).rung


Intent = Literal["answer", "hint", "concept", "why", "check", "greeting", "other"]

_ANSWER_REQUEST = re.compile(
    r"(?i)\b(give|tell|show|write|send|post)\s+(me\s+)?(the\s+|a\s+)?(whole\s+|full\s+|complete\s+"
    r"|correct\s+|right\s+|working\s+|final\s+)*(answer|solution|code|fix|program|result)"
    r"|\b(just|can you|could you|please)\b.*\b(solve|do|write|fix)\b.*\b(it|this|for me)\b"
    r"|\bwhat('s| is) the (answer|solution)\b|\bsolve it\b|\bgive up\b"
    r"|\b(gib|zeig|sag)\s+mir\b.*\b(l[öo]sung|antwort|code)\b|\bl[öo]sung\b"
    r"|\b(donne|montre|dis)[- ]moi\b.*\b(r[ée]ponse|solution|code)\b"
    r"|\b(dame|d[ée]me|mu[ée]strame|dime)\b.*\b(respuesta|soluci[óo]n|c[óo]digo)\b|\bsoluci[óo]n\b"
)
_HINT_REQUEST = re.compile(
    r"(?i)\b(hints?|stuck|clue|no idea|lost|nudge|tipp|hinweis|indice|pista|bloqu[ée]e?|"
    r"atascad[oa])\b"
)
_CONCEPT_QUESTION = re.compile(
    r"(?i)\b(what\s+(is|are|does|do)|what's|whats|how\s+(does|do)\b.*\b(work|use)|explain|"
    r"meaning of|difference between|tell me about|when (should|do) i use|"
    r"was\s+(ist|sind|bedeutet|macht)|erkl[äa]r|qu'est-ce qu|c'est quoi|explique|"
    r"qu[ée]\s+(es|son|significa|hace)|expl[íi]ca)"
)
_WHY_QUESTION = re.compile(
    r"(?i)\b(why|what('s| is)\s+wrong|fail\w*|error|broken|doesn'?t work|not working|crash\w*|"
    r"warum|wieso|fehler|schl[äa]gt\b.*\bfehl|pourquoi|[ée]choue|erreur|por\s*qu[ée]|falla|error)\b"
)
_CHECK_QUESTION = re.compile(
    r"(?i)\b(is|does)\s+(my|this|the)\s+(code|solution|answer|function|program)\s+"
    r"(right|correct|ok(ay)?|good|work|fine|done)|\bam i (right|done|close)\b|\bdid i\b.*\bright\b"
    r"|\bist\b.*\b(richtig|korrekt)\b|\best[- ]ce\b.*\b(juste|correct)\b|\best\b.*\bcorrect\b"
    r"|\b(est[áa]|es)\b.*\b(bien|correcto)\b"
)
_GREETING = re.compile(r"(?i)^\s*(hi|hello|hey|hallo|bonjour|salut|hola|good (morning|evening))\b")

_LANGUAGE_WORDS: dict[str, frozenset[str]] = {
    "de": frozenset(
        [
            "warum",
            "wieso",
            "was",
            "wie",
            "ist",
            "mein",
            "meine",
            "meinen",
            "ich",
            "nicht",
            "der",
            "die",
            "das",
            "und",
            "ein",
            "eine",
            "mir",
            "bitte",
            "funktioniert",
            "schlägt",
            "fehl",
            "fehler",
            "lösung",
            "code",
            "gib",
            "kannst",
            "du",
            "erklär",
            "erkläre",
            "bedeutet",
            "liste",
            "schleife",
            "richtig",
        ]
    ),
    "fr": frozenset(
        [
            "pourquoi",
            "quoi",
            "comment",
            "est",
            "mon",
            "ma",
            "mes",
            "je",
            "ne",
            "pas",
            "le",
            "la",
            "les",
            "un",
            "une",
            "moi",
            "donne",
            "s'il",
            "plaît",
            "échoue",
            "erreur",
            "réponse",
            "qu'est-ce",
            "que",
            "c'est",
            "une",
            "liste",
            "boucle",
            "juste",
            "fonctionne",
        ]
    ),
    "es": frozenset(
        [
            "por",
            "qué",
            "que",
            "cómo",
            "es",
            "mi",
            "mis",
            "yo",
            "no",
            "el",
            "la",
            "los",
            "las",
            "un",
            "una",
            "dame",
            "falla",
            "prueba",
            "error",
            "respuesta",
            "solución",
            "código",
            "lista",
            "bucle",
            "funciona",
            "está",
            "bien",
            "correcto",
            "explica",
        ]
    ),
}
_ENGLISH_WORDS = frozenset(
    [
        "why",
        "what",
        "how",
        "is",
        "my",
        "the",
        "a",
        "an",
        "i",
        "it",
        "this",
        "does",
        "not",
        "do",
        "you",
        "me",
        "test",
        "code",
        "answer",
        "please",
        "can",
        "your",
        "fail",
        "failing",
        "wrong",
        "right",
    ]
)
_LANGUAGE_NOTE = {
    "de": "(Ich bin Koans Offline-Tutor: Es ist kein KI-Modell verbunden, deshalb antworte ich "
    "auf Englisch, aus der Aufgabe, ihren Hinweisen und deinen Testergebnissen.)",
    "fr": "(Je suis le tuteur hors ligne de Koan : aucun modèle d'IA n'est connecté, je réponds "
    "donc en anglais, à partir de l'exercice, de ses indices et des résultats de tes tests.)",
    "es": "(Soy el tutor sin conexión de Koan: no hay ningún modelo de IA conectado, así que "
    "respondo en inglés, a partir del ejercicio, sus pistas y los resultados de tus pruebas.)",
}
_DECLINE_LOCAL = {
    "de": "Die fertige Lösung gebe ich dir nicht: Du lernst am meisten, wenn du den letzten "
    "Schritt selbst findest. Hier ist der nächste Hinweis.",
    "fr": "Je ne te donne pas la solution toute faite : tu apprends le plus en trouvant "
    "toi-même la dernière étape. Voici l'indice suivant.",
    "es": "No te doy la solución hecha: aprendes más cuando encuentras tú el último paso. "
    "Aquí tienes la siguiente pista.",
}
_WHY_LOCAL = {
    "de": "Dein Test schlägt fehl; hier ist, was die Meldung sagt.",
    "fr": "Ton test échoue ; voici ce que dit le message.",
    "es": "Tu prueba falla; esto es lo que dice el mensaje.",
}


def _language_of(question: str) -> str:
    """en, de, fr or es, from the function words of the question."""
    words = re.findall(r"[\w'À-ÿ]+", question.lower())
    if not words:
        return "en"
    english = sum(word in _ENGLISH_WORDS for word in words)
    best, score = "en", english
    for language, vocabulary in _LANGUAGE_WORDS.items():
        hits = sum(word in vocabulary for word in words)
        if hits > score and hits >= 2:
            best, score = language, hits
    if best == "en" and re.search(r"[äöüß]", question) and english < 2:
        best = "de"
    if best == "en" and re.search(r"[¿¡ñ]", question):
        best = "es"
    return best


def _intent(question: str, purpose: str) -> Intent:
    if purpose == "hint":
        return "hint"
    if _ANSWER_REQUEST.search(question):
        return "answer"
    if _CHECK_QUESTION.search(question):
        return "check"
    if _HINT_REQUEST.search(question):
        return "hint"
    if _CONCEPT_QUESTION.search(question) and _concept_for(question) is not None:
        return "concept"
    if _WHY_QUESTION.search(question):
        return "why"
    if _GREETING.search(question):
        return "greeting"
    return "other"


def _answer(req: CompletionRequest) -> _Answer:
    context = req.context or TutorContext()
    question = context.question or _last_user_message(req.messages) or ""
    language = _language(context.language)
    has_exercise = bool(context.exercise_statement or context.title)
    intent = _intent(question, req.purpose)
    spoken = _language_of(question)
    parts = [_LANGUAGE_NOTE.get(spoken, OFFLINE_NOTE)]
    rung: int | None = None
    failing = _most_informative(context.failing_tests, language)

    if not has_exercise:
        concept = _concept_for(question)
        if concept is not None and intent in ("concept", "other", "why"):
            parts.append(getattr(concept, language))
        elif intent in ("answer", "hint", "why", "check"):
            parts.append(
                "This conversation is not tied to an exercise, so I have no tests or hints to "
                "go on. Open an exercise and ask from there, and I can point at what failed."
            )
        else:
            parts.append(
                "I can explain programming concepts (loops, lists, dictionaries, functions, "
                "recursion, classes and more) or, from an exercise's page, help with its tests. "
                "Open an exercise and run its tests, and I can point at what failed."
            )
        parts.append(_pick(_OPEN_QUESTIONS, context, question))
        return _Answer(_join(parts))

    guiding: str | None = None
    if intent == "answer":
        parts.append(
            _DECLINE_LOCAL.get(spoken)
            or "I won't hand you the finished code: finding the last step yourself is what "
            "makes it stick, and a pasted answer would leave the next exercise just as hard. "
            "Let me give you the next hint instead."
        )
        hint, rung, guiding = _hint_part(context)
        parts.append(hint)
        if failing is not None and guiding is None:
            explanation, guiding = _explain_failure(failing, context)
            parts.append(explanation)
    elif intent == "hint":
        hint, rung, guiding = _hint_part(context)
        parts.append(hint)
        if failing is not None:
            explanation, test_question = _explain_failure(failing, context)
            parts.append(explanation)
            if guiding is None:
                guiding = test_question
    elif intent == "concept":
        concept = _concept_for(question)
        assert concept is not None
        parts.append(getattr(concept, language))
        parts.append(concept.tie)
        guiding = ""  # the tie already asks
        if not concept.tie.rstrip().endswith("?"):
            guiding = _concept_question(concept, failing)
    elif intent == "check":
        if context.latest_code is None:
            parts.append("You have not run the tests yet, so neither of us knows. Run them first.")
        elif failing is None:
            parts.append(
                "Every test passed on your latest run, so yes, it does what the exercise asks. "
                "Could it be simpler or clearer? Read it once more as if someone else wrote it."
            )
        else:
            count = len(context.failing_tests)
            parts.append(
                f"Not yet: {count} test{'s' if count != 1 else ''} still fail"
                f"{'s' if count == 1 else ''} on your latest run. The most telling one:"
            )
            explanation, guiding = _explain_failure(failing, context)
            parts.append(explanation)
    else:
        if spoken in _WHY_LOCAL and failing is not None:
            parts.append(_WHY_LOCAL[spoken])
        if failing is not None:
            explanation, guiding = _explain_failure(failing, context)
            parts.append(explanation)
        elif context.latest_code is None:
            parts.append(
                "Write a first attempt and run the tests; then I can point at what failed."
            )
        elif intent == "why":
            parts.append("Every test passed on your latest run: nothing is failing right now.")
        elif intent == "other" and not _GREETING.search(question):
            parts.append(
                "I can't answer that one offline, but I can help with this exercise: ask me "
                "why a test fails, for a hint, or what a concept means."
            )
    if guiding is None:
        guiding = _pick(_GENERIC_QUESTIONS, context, question)
    parts.append(guiding)
    return _Answer(_join(parts), rung)


def _join(parts: Sequence[str]) -> str:
    return "\n\n".join(part for part in parts if part)


def _hint_part(context: TutorContext) -> tuple[str, int | None, str | None]:
    """The next rung (text, its index, "" when it asks the question itself)."""
    if not context.hints:
        return "This exercise has no written hints, so let's reason it through.", None, None
    total = len(context.hints)
    index = min(context.hints_used, total)
    if index >= total:
        return (
            f"You have already seen all {total} hints for this exercise (the Hints panel shows "
            "them too); let's use them.",
            None,
            None,
        )
    text = f"Hint {index + 1} of {total}: {context.hints[index]}"
    if index + 1 == total:
        text += "\n\nThat was the last hint of this exercise."
    return text, index, "" if context.hints[index].rstrip().endswith("?") else None


def _concept_question(concept: _Concept, failing: FailingTest | None) -> str:
    if failing is not None:
        return f"With that in mind, what does `{failing.name}` need from your code?"
    return "Where in your code would that idea fit?"


def _last_user_message(messages: Sequence[ChatMessage]) -> str | None:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return None


_LOCATION = re.compile(
    r"\s*\((?P<file>[\w.-]+\.(?:py|js|mjs|cjs)), line (?P<line>\d+)\)"
    r"|\s*File \"(?P<tbfile>[^\"]+)\", line (?P<tbline>\d+)(?:, in \S+)?"
)
_EXCEPTION = re.compile(r"\b(?!Assertion)[A-Z]\w*(?:Error|Exception)\b|\bSyntaxError\b")


def _informative(test: FailingTest, language: str) -> int:
    """Exceptions and syntax errors explain a bug better than a bare assertion."""
    message = test.message
    if re.search(r"SyntaxError|IndentationError", message):
        return 4
    if _EXCEPTION.search(message):
        return 3
    if _EXPECTED_GOT.search(message) or _ASSERTION.search(_salient_line(message)[0]):
        return 2
    return 1


def _most_informative(tests: Sequence[FailingTest], language: str) -> FailingTest | None:
    if not tests:
        return None
    return max(enumerate(tests), key=lambda it: (_informative(it[1], language), -it[0]))[1]


def _explain_failure(test: FailingTest, context: TutorContext) -> tuple[str, str]:
    language = _language(context.language)
    first_line, where = _salient_line(test.message.strip())
    message = _LOCATION.sub("", test.message.strip())
    located = f" (reported at {where})" if where else ""
    quoted = f"The test `{test.name}` failed{located} with:\n\n    {first_line}"
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
    values = _LEFT_RIGHT.search(message)
    if values is not None:
        got, want = values.group("got").strip(), values.group("want").strip()
    elif expected is not None and expected.group("want") and expected.group("got"):
        want = expected.group("want").strip().splitlines()[0]
        got = expected.group("got").strip().splitlines()[0]
    else:
        got = want = ""
    if got and want:
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


_LEFT_RIGHT = re.compile(r"left:\s*(?P<got>.+)\n\s*right:\s*(?P<want>.+)")


def _salient_line(message: str) -> tuple[str, str]:
    """The line of a report that names the error (location removed), and the location."""
    where = ""
    for match in _LOCATION.finditer(message):
        file = match.group("file") or (match.group("tbfile") or "").rsplit("/", 1)[-1]
        line = match.group("line") or match.group("tbline")
        if file and not file.startswith("run_") and file not in {"<frozen>"}:
            where = f"line {line} of {file}"
    lines = [
        _LOCATION.sub("", line).strip()
        for line in message.splitlines()
        if line.strip() and not line.strip().startswith(("File ", "Traceback"))
    ]
    lines = [line for line in lines if line]
    if not lines:
        return "(no message)", where
    for line in reversed(lines):
        if re.match(r"^[A-Z]\w*(Error|Exception)\b|^AssertionError|^assert ", line):
            return line[:300], where
    return "\n    ".join(line[:200] for line in lines[:3]), where


def _language(language: str) -> str:
    lowered = language.lower()
    if lowered in {"js", "javascript", "node", "typescript", "ts"}:
        return "javascript"
    return "python"


def _concept_for(question: str) -> _Concept | None:
    for concept in _CONCEPTS:
        if concept.pattern.search(question):
            return concept
    return None


def _pick(options: Sequence[str], context: TutorContext, question: str) -> str:
    """Choose deterministically, varying with the exercise and the learner's progress."""
    key = f"{context.exercise_statement}|{context.hints_used}|{question}".encode()
    return options[zlib.crc32(key) % len(options)]
