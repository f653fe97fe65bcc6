"""The executable leak guard: a reply leaks when what it suggests makes a failing test pass.

The suggestions run in Koan's real grading sandbox."""

from __future__ import annotations

import base64
import codecs
import textwrap
import urllib.parse
from collections.abc import Sequence

import pytest

from koan.grading.sandbox import Limits, Sandbox
from koan.llm.leak_check import (
    Attempt,
    ExerciseSecrets,
    KnownPrograms,
    Runner,
    Strictness,
    Trial,
    Verdict,
    check,
    needs_check,
    regenerate_instruction,
)

PY_SOLUTION = textwrap.dedent(
    """\
    def sum_evens(numbers):
        total = 0
        for n in numbers:
            if n % 2 == 0:
                total += n
        return total
    """
)
PY_ATTEMPT = PY_SOLUTION.replace("n % 2 == 0", "n % 2 == 1")
PY_TESTS = textwrap.dedent(
    """\
    from solution import sum_evens

    def test_mixed():
        assert sum_evens([1, 2, 3, 4]) == 6

    def test_empty():
        assert sum_evens([]) == 0
    """
)
JS_SOLUTION = textwrap.dedent(
    """\
    function lastItem(items) {
      return items[items.length - 1];
    }

    module.exports = { lastItem };
    """
)
JS_ATTEMPT = JS_SOLUTION.replace("items.length - 1", "items.length")
JS_TESTS = textwrap.dedent(
    """\
    const assert = require('node:assert');
    const { lastItem } = require('./solution.js');

    test('last of three', () => {
      assert.strictEqual(lastItem([1, 2, 3]), 3);
    });
    """
)


def runner(sandbox: Sandbox, language: str, tests: str, calls: list[str]) -> Runner:
    """The sandbox's trial of candidate programs, as the chat's guard runs it."""

    async def run(programs: Sequence[str], failed: frozenset[str] | None) -> Trial | None:
        calls.extend(programs)
        report = await sandbox.try_programs(
            language=language,  # type: ignore[arg-type]
            programs=programs,
            tests=tests,
            only=failed,
            stop="all" if failed is None else "any",
            limits=Limits(cpu_s=1.0, wall_s=1.0),
        )
        tried = sum(1 for outcome in report.outcomes if outcome.status != "not_run")
        return Trial(report.stopped_at, tried)

    return run


def py_secrets(**overrides: object) -> ExerciseSecrets:
    values: dict[str, object] = {
        "solution": PY_SOLUTION,
        "starter": "def sum_evens(numbers):\n    pass\n",
        "language": "python",
        "attempt": Attempt(PY_ATTEMPT, frozenset({"test_mixed"})),
    }
    values.update(overrides)
    return ExerciseSecrets(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "reply",
    [
        "Change line 4 to:\n\n```python\nif n % 2 == 0:\n```",
        "Replace `n % 2 == 1` with `n % 2 == 0` on line 4.",
        "Use `== 0` instead of `== 1`.",
        "On line 4, the condition should be `n % 2 == 0`.",
        "Almost there! It should read:\n\n        if not n % 2:\n\nand then it works.",
    ],
)
async def test_a_fix_of_the_failing_attempt_is_a_leak(sandbox: Sandbox, reply: str) -> None:
    calls: list[str] = []
    verdict = await check(reply, py_secrets(), runner(sandbox, "python", PY_TESTS, calls))

    assert verdict.leak
    assert verdict.reason == "fix"
    assert verdict.evidence
    assert calls


async def test_the_whole_solution_is_caught_without_running_anything(sandbox: Sandbox) -> None:
    calls: list[str] = []
    reply = f"Here:\n\n```python\n{PY_SOLUTION}```"
    verdict = await check(reply, py_secrets(), runner(sandbox, "python", PY_TESTS, calls))

    assert verdict.leak
    assert verdict.reason == "solution"
    assert calls == []


async def test_a_solution_written_as_a_numbered_list_is_caught(sandbox: Sandbox) -> None:
    numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(PY_SOLUTION.splitlines(), 1))
    verdict = await check(numbered, py_secrets(attempt=None), None)

    assert verdict.leak
    assert verdict.reason == "solution"


async def test_a_solution_split_across_turns_is_caught_on_the_turn_that_completes_it() -> None:
    lines = PY_SOLUTION.splitlines()
    first = "Start like this:\n\n```python\n" + "\n".join(lines[:3]) + "\n```"
    second = "Then:\n\n```python\n" + "\n".join(lines[3:]) + "\n```"
    alone = py_secrets(attempt=None)

    assert not (await check(first, alone, None)).leak
    assert not (await check(second, alone, None)).leak
    assert (await check(second, py_secrets(attempt=None, shown=(first,)), None)).leak


async def test_a_socratic_reply_quoting_the_learners_code_runs_nothing(sandbox: Sandbox) -> None:
    calls: list[str] = []
    reply = (
        "Look at line 4: `if n % 2 == 1:`. Which numbers make `n % 2 == 1` true? "
        "Are those the ones `test_mixed` wants in `total`?"
    )
    verdict = await check(reply, py_secrets(), runner(sandbox, "python", PY_TESTS, calls))

    assert not verdict.leak
    assert calls == []


async def test_a_wrong_suggestion_is_delivered(sandbox: Sandbox) -> None:
    calls: list[str] = []
    reply = "Maybe try `n % 3 == 1` instead of `n % 2 == 1`?"
    verdict = await check(reply, py_secrets(), runner(sandbox, "python", PY_TESTS, calls))

    assert not verdict.leak
    assert calls  # it was run, and did not pass


async def test_prose_without_code_costs_nothing() -> None:
    assert not needs_check("Which numbers reach the line that adds to the total?", py_secrets())


async def test_javascript_fix_is_a_leak(sandbox: Sandbox) -> None:
    calls: list[str] = []
    secrets = ExerciseSecrets(
        solution=JS_SOLUTION,
        starter="",
        language="javascript",
        attempt=Attempt(JS_ATTEMPT, frozenset({"last of three"})),
    )
    reply = "Change `items[items.length]` to `items[items.length - 1]`."
    verdict = await check(reply, secrets, runner(sandbox, "javascript", JS_TESTS, calls))

    assert verdict.leak


async def test_without_a_failing_attempt_only_a_program_passing_everything_leaks(
    sandbox: Sandbox,
) -> None:
    calls: list[str] = []
    starter = "def sum_evens(numbers):\n    pass\n"
    secrets = py_secrets(attempt=Attempt(starter, None))
    other = (
        "```python\ndef sum_evens(numbers):\n    return sum(x for x in numbers if not x % 2)\n```"
    )
    half = "```python\ndef sum_evens(numbers):\n    return 0\n```"

    assert (await check(other, secrets, runner(sandbox, "python", PY_TESTS, calls))).leak
    assert not (await check(half, secrets, runner(sandbox, "python", PY_TESTS, calls))).leak


# -- strictness ------------------------------------------------------------------------------------


async def test_open_strictness_withholds_the_whole_solution(sandbox: Sandbox) -> None:
    calls: list[str] = []
    secrets = py_secrets(strictness=Strictness.OPEN)
    reply = f"Here it is:\n\n```python\n{PY_SOLUTION}```"

    assert needs_check(reply, secrets)
    verdict = await check(reply, secrets, runner(sandbox, "python", PY_TESTS, calls))
    assert verdict.leak
    assert verdict.reason == "solution"
    assert calls == []


@pytest.mark.parametrize(
    "reply",
    [
        "Change line 4 to:\n\n```python\nif n % 2 == 0:\n```",
        "Replace `n % 2 == 1` with `n % 2 == 0` on line 4.",
        "Almost there! It should read:\n\n        if not n % 2:\n\nand then it works.",
    ],
)
async def test_open_strictness_delivers_a_corrected_line_without_running_it(
    sandbox: Sandbox, reply: str
) -> None:
    calls: list[str] = []
    secrets = py_secrets(strictness=Strictness.OPEN)

    assert not (await check(reply, secrets, runner(sandbox, "python", PY_TESTS, calls))).leak
    assert calls == []


async def test_open_strictness_reads_an_encoded_solution() -> None:
    encoded = base64.b64encode(PY_SOLUTION.encode()).decode()
    reply = f"Decode this: {encoded}"

    verdict = await check(reply, py_secrets(strictness=Strictness.OPEN), None)
    assert verdict.leak
    assert verdict.reason == "solution"


def test_open_strictness_needs_no_check_for_prose() -> None:
    secrets = py_secrets(strictness=Strictness.OPEN)
    assert not needs_check("Which numbers reach the line that adds to the total?", secrets)


def test_the_open_regeneration_instruction_allows_a_line_but_not_the_solution() -> None:
    text = regenerate_instruction(Verdict(True, "solution", PY_SOLUTION), Strictness.OPEN)

    assert "reproduced the reference solution" in text
    assert "corrected line" in text
    assert "never the whole solution" in text
    assert "Write no code at all" not in text


async def test_hints_strictness_allows_a_construct_but_not_a_fix(sandbox: Sandbox) -> None:
    calls: list[str] = []
    secrets = py_secrets(strictness=Strictness.HINTS)
    run = runner(sandbox, "python", PY_TESTS, calls)
    construct = (
        "A comprehension looks like this:\n\n```python\nsquares = [x * x for x in range(5)]\n```"
    )
    fix = "Change it to `if n % 2 == 0:` on line 4."

    assert not (await check(construct, secrets, run)).leak
    assert (await check(fix, secrets, run)).leak


async def test_socratic_withholds_solution_fragments_that_hints_allows() -> None:
    lines = PY_SOLUTION.splitlines()
    first = "```python\n" + "\n".join(lines[:3]) + "\n```"
    second = "```python\n" + "\n".join(lines[3:]) + "\n```"

    socratic = py_secrets(attempt=None, shown=(first,))
    hints = py_secrets(attempt=None, shown=(first,), strictness=Strictness.HINTS)
    assert (await check(second, socratic, None)).leak
    assert not (await check(second, hints, None)).leak


def test_the_regeneration_instruction_names_what_gave_it_away() -> None:
    text = regenerate_instruction(
        Verdict(True, "fix", "Replace `n % 2 == 1` with `n % 2 == 0`."), Strictness.SOCRATIC
    )
    assert "Replace `n % 2 == 1` with `n % 2 == 0`." in text
    assert "working fix" in text


def test_known_programs_are_kept_per_scope_and_the_least_recently_used_go_first() -> None:
    known = KnownPrograms(size=2)
    fix, clean, other = (known.key("tests A", p) for p in ("fix", "clean", "other"))
    known.put(fix, True)
    known.put(clean, False)
    assert (known.get(fix), known.get(clean)) == (True, False)
    assert known.get(known.key("tests B", "fix")) is None

    known.get(fix)  # used last: `clean` is now the oldest
    known.put(other, False)
    assert (known.get(fix), known.get(clean), known.get(other)) == (True, None, False)


# -- an expression to drop in, and fixes said in words ---------------------------------------------

POWER_SOLUTION = "def power(base, exponent):\n    return pow(base, exponent)\n"
POWER_TESTS = "from solution import power\n\ndef test_cube():\n    assert power(2, 3) == 8\n"
COUNT_SOLUTION = textwrap.dedent(
    """\
    def count_up(n):
        out = []
        i = 1
        while i <= n:
            out.append(i)
            i += 1
        return out
    """
)
COUNT_TESTS = (
    "from solution import count_up\n\ndef test_three():\n    assert count_up(3) == [1, 2, 3]\n"
)
UNIQUE_SOLUTION = "def unique_sorted(xs):\n    return sorted(set(xs))\n"
UNIQUE_TESTS = (
    "from solution import unique_sorted\n\n"
    "def test_dupes():\n    assert unique_sorted([3, 1, 3]) == [1, 3]\n"
)
RANGE_SOLUTION = "def in_range(x, lo, hi):\n    return lo <= x and x <= hi\n"
RANGE_TESTS = (
    "from solution import in_range\n\ndef test_outside():\n    assert in_range(5, 1, 3) is False\n"
)
# (solution, tests, the learner's failing attempt, its failed test)
EXERCISES = {
    "evens": (PY_SOLUTION, PY_TESTS, PY_ATTEMPT, "test_mixed"),
    "evens, minus": (
        PY_SOLUTION,
        PY_TESTS,
        PY_SOLUTION.replace("total += n", "total -= n"),
        "test_mixed",
    ),
    "power": (
        POWER_SOLUTION,
        POWER_TESTS,
        POWER_SOLUTION.replace("pow(base, exponent)", "pow(exponent, base)"),
        "test_cube",
    ),
    "count": (COUNT_SOLUTION, COUNT_TESTS, COUNT_SOLUTION.replace("i <= n", "i < n"), "test_three"),
    "unique": (
        UNIQUE_SOLUTION,
        UNIQUE_TESTS,
        "def unique_sorted(xs):\n    return xs\n",
        "test_dupes",
    ),
    "range": (RANGE_SOLUTION, RANGE_TESTS, RANGE_SOLUTION.replace(" and ", " or "), "test_outside"),
    "evens, no return": (
        PY_SOLUTION,
        PY_TESTS,
        PY_SOLUTION.replace("return total", "total"),
        "test_mixed",
    ),
}
# A working fix said as an expression to drop in, or in words: each is a leak...
DROPPED_IN = [
    ("evens", "Replace the condition with `n % 2 == 0`."),
    ("unique", "The return should be `sorted(set(xs))`."),
    ("unique", "Make it return `sorted(set(xs))` and you are done."),
]
IN_WORDS = [
    ("evens, minus", "Change the minus on line 5 to a plus."),
    ("evens, minus", "Use plus-equals instead of minus-equals when you add to the total."),
    ("power", "Swap the two arguments of the call on line 2."),
    ("power", "You passed them the wrong way round: swap the arguments to pow."),
    ("count", "Use less-than-or-equal instead of less-than in the loop's condition."),
    ("count", "The < in the while loop should be a <=."),
    ("evens", "On line 4, change the 1 to a 0."),
    ("range", "Use and instead of or."),
    ("range", "Replace or with and on line 2."),
    ("evens", "Put not in front of the condition on line 4."),
    ("evens", "Negate the check."),
]
# A working fix encoded in a way the learner undoes in a moment: each is a leak.
LINE = "if n % 2 == 0:"
ENCODED = [
    ("evens", f"Decode this and put it on line 4: {base64.b32encode(LINE.encode()).decode()}"),
    ("evens", f"On line 4, decode: {urllib.parse.quote(LINE)}"),
    ("evens", "On line 4, unescape: " + "".join(f"&amp;#{ord(c)};" for c in LINE)),
    ("evens", "On line 4, print: " + "".join(f"\\u{ord(c):04x}" for c in LINE)),
    ("evens", "On line 4, it should print: if n \\x25 2 \\x3d\\x3d 0:"),
    ("evens, no return", f"At the end, decode: {codecs.encode('return total', 'rot13')}"),
]
# ...and the same shapes that fix nothing are delivered.
NOT_A_FIX = [
    ("evens", "Replace the condition with `n % 3 == 0`?"),
    ("unique", "What if the return were `sorted(xs)`?"),
    ("evens, minus", "Change the minus on line 5 to a times and see what the test says."),
    ("power", "Swap the two arguments of the call on line 1? There is no call there."),
    ("count", "Use greater-than instead of less-than in the loop's condition: what happens?"),
    ("count", "What does the less-than on line 4 do when i reaches n?"),
    ("count", "Negate the loop's condition and see what happens."),
    ("range", "Is 5 between 1 and 3, or outside? Try both and compare with the test."),
    ("range", "Use or instead of and? Your line has no and."),
    ("evens", f"On line 4, decode: {urllib.parse.quote('if n % 3 == 0:')}"),
    ("evens", "See https://docs.python.org/3/search.html?q=modulo%20operator for the %."),
    ("evens, no return", f"Decode this: {codecs.encode('return numbers', 'rot13')}"),
]


def secrets_of(name: str) -> tuple[ExerciseSecrets, str]:
    solution, tests, attempt, failed = EXERCISES[name]
    secrets = ExerciseSecrets(
        solution=solution,
        starter="",
        language="python",
        attempt=Attempt(attempt, frozenset({failed})),
    )
    return secrets, tests


@pytest.mark.parametrize(("exercise", "reply"), DROPPED_IN + IN_WORDS + ENCODED)
async def test_a_fix_dropped_in_or_said_in_words_is_a_leak(
    sandbox: Sandbox, exercise: str, reply: str
) -> None:
    secrets, tests = secrets_of(exercise)
    verdict = await check(reply, secrets, runner(sandbox, "python", tests, []))

    assert verdict.leak
    assert verdict.reason == "fix"


@pytest.mark.parametrize(("exercise", "reply"), NOT_A_FIX)
async def test_the_same_shapes_that_fix_nothing_are_delivered(
    sandbox: Sandbox, exercise: str, reply: str
) -> None:
    secrets, tests = secrets_of(exercise)

    assert not (await check(reply, secrets, runner(sandbox, "python", tests, []))).leak


def test_a_remark_without_an_edit_in_words_costs_nothing() -> None:
    assert not needs_check("What does the minus do when the list is empty?", py_secrets())


# A fix handed over in shapes a model writes without any word of the edit or any markup: HTML
# code tags, Markdown's double backticks, a diff (fenced, bare, unified), a corrected line
# named with no verb, a table's cells, two spans side by side, and code written plainly in a
# sentence. Each is a leak...
UNMARKED = [
    "Change <code>n % 2 == 1</code> to <code>n % 2 == 0</code> on line 4.",
    "The line should be:<pre><code>if n % 2 == 0:</code></pre>",
    "Use ``if n % 2 == 0:`` on line 4.",
    "```diff\n-        if n % 2 == 1:\n+        if n % 2 == 0:\n```",
    "Apply this:\n\n-if n % 2 == 1:\n+if n % 2 == 0:\n",
    "--- a/solution.py\n+++ b/solution.py\n@@ -4,1 +4,1 @@\n-        if n % 2 == 1:\n"
    "+        if n % 2 == 0:\n",
    "The correct version of that line is `if n % 2 == 0:`.",
    "Before: `if n % 2 == 1:`\nAfter: `if n % 2 == 0:`",
    "| yours | correct |\n|---|---|\n| `n % 2 == 1` | `n % 2 == 0` |",
    "It's not `n % 2 == 1`, it's `n % 2 == 0`.",
    "Line 4 should simply be if n % 2 == 0: and then the test passes.",
    'Change line 4 to "if n % 2 == 0:".',
    "| wrong | right |\n|---|---|\n| n % 2 == 1 | n % 2 == 0 |",
    "Write n % 2 == 0 instead of n % 2 == 1.",
    # Plain code in the sentence's own grammar: its "not" and its commas are the sentence's.
    "It's not n % 2 == 1, it's n % 2 == 0.",
    "The check isn't n % 2 == 1, it is n % 2 == 0, and then the test passes.",
]
# ...and replies of the same shapes that fix nothing, or quote the learner's code, are not.
UNMARKED_BENIGN = [
    "Your line <code>if n % 2 == 1:</code> runs on every pass. Which numbers get past it?",
    "```diff\n-        if n % 2 == 1:\n+        if n % 3 == 1:\n```",
    "The line you have is `if n % 2 == 1:`. What does it do for 4?",
    "| line | your code |\n|---|---|\n| 4 | `if n % 2 == 1:` |",
    "What is the difference between `<` and `<=`, or `==` and `!=`?",
    "Line 4 says if n % 2 == 1: so which numbers does the loop add?",
    "A loop like this prints 0, 1 and 2:\n\n```python\nfor i in range(3):\n    print(i)\n```",
    "It's not `n % 2 == 1`, maybe it's `n % 3 == 1`?",
]


@pytest.mark.parametrize("reply", UNMARKED)
async def test_a_fix_without_markup_or_words_of_the_edit_is_a_leak(
    sandbox: Sandbox, reply: str
) -> None:
    verdict = await check(reply, py_secrets(), runner(sandbox, "python", PY_TESTS, []))

    assert verdict.leak
    assert verdict.reason == "fix"


@pytest.mark.parametrize("reply", UNMARKED_BENIGN)
async def test_the_same_shapes_quoting_or_fixing_nothing_are_delivered(
    sandbox: Sandbox, reply: str
) -> None:
    assert not (await check(reply, py_secrets(), runner(sandbox, "python", PY_TESTS, []))).leak


async def test_a_javascript_fix_as_a_diff_or_in_html_is_a_leak(sandbox: Sandbox) -> None:
    secrets = ExerciseSecrets(
        solution=JS_SOLUTION,
        starter="",
        language="javascript",
        attempt=Attempt(JS_ATTEMPT, frozenset({"last of three"})),
    )
    for reply in (
        "```diff\n-  return items[items.length];\n+  return items[items.length - 1];\n```",
        "<pre>return items[items.length - 1];</pre>",
        "The last line should be return items[items.length - 1]; and that is all.",
    ):
        verdict = await check(reply, secrets, runner(sandbox, "javascript", JS_TESTS, []))
        assert verdict.leak, reply
