"""Reading fixes out of tutor replies and applying them to the learner's code (no I/O)."""

from __future__ import annotations

import base64
import textwrap

import pytest

from koan.llm.patches import (
    Edit,
    candidates,
    code_blocks,
    has_code,
    prose_edits,
    shown_code,
    strip_markers,
)

PY_ATTEMPT = textwrap.dedent(
    """\
    def sum_evens(numbers):
        total = 0
        for n in numbers:
            if n % 2 == 1:
                total += n
        return total
    """
)
PY_FIXED_LINE = "        if n % 2 == 0:"

JS_ATTEMPT = textwrap.dedent(
    """\
    function sumOfEvens(numbers) {
      let total = 0;
      for (let i = 1; i < numbers.length; i++) {
        if (numbers[i] % 2 === 0) {
          total += numbers[i];
        }
      }
      return total;
    }

    module.exports = { sumOfEvens };
    """
)


def programs(reply: str, attempt: str = PY_ATTEMPT, language: str = "python") -> list[str]:
    return [c.program for c in candidates(reply, attempt, language)]


# -- reading --------------------------------------------------------------------------------------


def test_numbered_bulleted_and_quoted_code_reads_as_code() -> None:
    numbered = "1. def f(xs):\n2.     return sorted(xs)"
    assert strip_markers(numbered) == "def f(xs):\n    return sorted(xs)"
    assert strip_markers("- total = 0\n- return total") == "total = 0\nreturn total"
    assert strip_markers("> for n in xs:\n>     total += n") == "for n in xs:\n    total += n"
    assert strip_markers("10 | x = 1\n11 | y = 2") == "x = 1\ny = 2"


def test_a_numbered_list_of_prose_steps_is_left_alone() -> None:
    steps = "1. Read the statement again.\n2. Trace the loop by hand."
    assert strip_markers(steps) == steps
    assert code_blocks(steps) == []


def test_a_solution_wrapped_in_a_string_literal_is_unwrapped() -> None:
    reply = 'Here: "def f(xs):\\n    return sorted(xs)"'
    assert "def f(xs):\n    return sorted(xs)" in code_blocks(reply)


def test_fenced_blocks_and_code_lines_are_read() -> None:
    reply = "Try:\n\n```python\nx = 1\n```\n\nand then\n\n    return x + 1\n\nOK?"
    assert code_blocks(reply) == ["x = 1", "return x + 1"]


@pytest.mark.parametrize(
    ("reply", "old", "new"),
    [
        ("Replace `n % 2 == 1` with `n % 2 == 0` on line 4.", "n % 2 == 1", "n % 2 == 0"),
        ("Change `== 1` to `== 0` and rerun.", "== 1", "== 0"),
        ("Use `n % 2 == 0` instead of `n % 2 == 1`.", "n % 2 == 1", "n % 2 == 0"),
        ("The test `n % 2 == 1` should be `n % 2 == 0`.", "n % 2 == 1", "n % 2 == 0"),
        ("Swap `range(0, n)` for `range(1, n)`.", "range(0, n)", "range(1, n)"),
        ("`i <= n` -> `i < n`", "i <= n", "i < n"),
        ("Instead of `xs[i]`, use `xs[i - 1]`.", "xs[i]", "xs[i - 1]"),
    ],
)
def test_prose_pairs_are_read_as_edits(reply: str, old: str, new: str) -> None:
    edits = prose_edits(reply)
    assert any(e.old == old and e.new == new for e in edits), edits


def test_on_line_n_with_one_span_is_an_edit_of_that_line() -> None:
    edits = prose_edits("On line 4, write `if n % 2 == 0:` instead.")
    assert (
        Edit(new="if n % 2 == 0:", line=4, evidence="On line 4, write `if n % 2 == 0:` instead.")
        in edits
    )


def test_prose_without_code_has_nothing_to_check() -> None:
    assert not has_code("Which numbers reach the line that adds to the total? Try 3.")
    assert has_code("What does `total` hold after the loop?")


# -- applying: Python ------------------------------------------------------------------------------


def test_a_changed_line_in_a_fence_replaces_the_most_alike_line_keeping_indentation() -> None:
    reply = "Change line 4 to:\n\n```python\nif n % 2 == 0:\n```"
    expected = PY_ATTEMPT.replace("        if n % 2 == 1:", PY_FIXED_LINE)
    assert expected in programs(reply)


def test_a_changed_line_as_an_indented_code_line_in_prose_is_applied() -> None:
    reply = "Almost! It should be:\n\n        if n % 2 == 0:\n\nThat fixes it."
    assert PY_ATTEMPT.replace("        if n % 2 == 1:", PY_FIXED_LINE) in programs(reply)


def test_a_whole_function_replaces_the_learners_function_of_that_name() -> None:
    reply = (
        "Here you go:\n\n```python\ndef sum_evens(numbers):\n"
        "    return sum(n for n in numbers if n % 2 == 0)\n```"
    )
    [program] = [p for p in programs(reply) if "sum(n for n" in p]
    assert program.count("def sum_evens") == 1
    assert "total" not in program


def test_a_numbered_whole_function_is_applied_like_a_fenced_one() -> None:
    reply = "1. def sum_evens(numbers):\n2.     return sum(n for n in numbers if n % 2 == 0)"
    assert any("return sum(n for n in numbers if n % 2 == 0)" in p for p in programs(reply))


def test_a_prose_pair_replaces_the_span_in_the_code() -> None:
    reply = "Replace `n % 2 == 1` with `n % 2 == 0`."
    assert PY_ATTEMPT.replace("n % 2 == 1", "n % 2 == 0") in programs(reply)


def test_a_prose_pair_matches_the_code_despite_spacing() -> None:
    reply = "Change `n%2==1` to `n % 2 == 0`."
    assert PY_ATTEMPT.replace("n % 2 == 1", "n % 2 == 0") in programs(reply)


def test_on_line_n_with_a_fragment_replaces_the_most_alike_tokens_on_that_line() -> None:
    reply = "On line 4, the check should be `n % 2 == 0`."
    assert PY_ATTEMPT.replace("n % 2 == 1", "n % 2 == 0") in programs(reply)


def test_a_missing_line_with_nothing_alike_is_inserted_at_the_end_of_the_body() -> None:
    attempt = "def double(xs):\n    out = [x * 2 for x in xs]\n"
    reply = "You never hand the list back: add `return out` at the end."
    assert "def double(xs):\n    out = [x * 2 for x in xs]\n    return out\n" in programs(
        reply, attempt
    )


def test_a_reply_that_only_quotes_the_learners_code_builds_no_program() -> None:
    reply = (
        "Look at line 4: `if n % 2 == 1:`. What does `n % 2` give for 4? "
        "And what does `total += n` do then?"
    )
    assert programs(reply) == []


def test_edits_spread_over_two_turns_add_up() -> None:
    attempt = "def f(a, b):\n    x = a - b\n    return x * 3\n"
    first = "Replace `a - b` with `a + b`."
    second = "And change `x * 3` to `x * 2`."
    found = candidates(second, attempt, "python", earlier=[first])
    assert "def f(a, b):\n    x = a + b\n    return x * 2\n" in [c.program for c in found]


def test_earlier_turns_alone_are_not_this_replys_program() -> None:
    # The fix was shown before (while the tutor was open); a reply that changes nothing of what
    # it made builds no program: it is not this reply that gives the fix.
    attempt = "def f(a, b):\n    x = a - b\n    return x * 3\n"
    earlier = "Here:\n\n```python\ndef f(a, b):\n    x = a + b\n    return x * 2\n```"
    quoting = "Your line `x = a - b` runs first. What does it give for 1 and 2?"
    assert candidates(quoting, attempt, "python", earlier=[earlier]) == []


EARLIER_TURNS = [
    "First guard the addition:\n\n```python\nfor n in numbers:\n    if n % 2 == 0:\n```\n\n"
    "Does that help?",
    "Replace `a - b` with `a + b`. Then think about the return value.",
    "Nice work so far! Your function is close.\n\n    x = a + b\n    return x * 2\n\nWhy?",
    "On line 3, write `return x * 2`. The test named `test_double` will tell you.",
    "The line should read: if n % 2 == 0: total += n",
]


@pytest.mark.parametrize("earlier", EARLIER_TURNS)
def test_the_code_kept_of_a_reply_adds_up_as_the_reply_does(earlier: str) -> None:
    attempt = "def f(a, b):\n    x = a - b\n    return x * 3\n"
    later = "And change `x * 3` to `x * 2`."
    kept = shown_code(earlier)
    assert code_blocks(kept) == code_blocks(earlier)
    assert prose_edits(kept) == prose_edits(earlier)
    assert candidates(later, attempt, "python", earlier=[kept]) == candidates(
        later, attempt, "python", earlier=[earlier]
    )


def test_the_code_kept_of_a_reply_leaves_its_words_out() -> None:
    reply = "Good thinking, Ada. Look at this.\n\n```python\nx = a + b\n```\n\nMy cat says hi."
    kept = shown_code(reply)
    assert "x = a + b" in kept
    assert "Ada" not in kept
    assert "cat" not in kept
    assert shown_code("What does your loop do with 3? Try it by hand.") == ""


def test_at_most_the_cap_of_programs_is_built() -> None:
    reply = "\n".join(f"Replace `total` with `total + {i}`." for i in range(20))
    assert len(candidates(reply, PY_ATTEMPT, "python", cap=8)) == 8


# -- applying: JavaScript --------------------------------------------------------------------------


def test_js_changed_line_replaces_the_loop_header() -> None:
    reply = "Change line 3 to `for (let i = 0; i < numbers.length; i++) {`."
    expected = JS_ATTEMPT.replace("let i = 1;", "let i = 0;")
    assert expected in programs(reply, JS_ATTEMPT, "javascript")


def test_js_prose_pair() -> None:
    reply = "Use `let i = 0` instead of `let i = 1`."
    expected = JS_ATTEMPT.replace("let i = 1;", "let i = 0;")
    assert expected in programs(reply, JS_ATTEMPT, "javascript")


def test_js_whole_function_replaces_the_namesake_and_keeps_the_export() -> None:
    reply = (
        "```js\nfunction sumOfEvens(numbers) {\n"
        "  return numbers.filter((n) => n % 2 === 0).reduce((a, b) => a + b, 0);\n}\n```"
    )
    [program] = programs(reply, JS_ATTEMPT, "javascript")
    assert "filter((n) => n % 2 === 0)" in program
    assert "let total" not in program
    assert program.rstrip().endswith("module.exports = { sumOfEvens };")


def test_js_arrow_function_replaces_the_namesake() -> None:
    attempt = "const half = (n) => n / 3;\nmodule.exports = { half };\n"
    reply = "```js\nconst half = (n) => {\n  return n / 2;\n};\n```"
    assert any("return n / 2;" in p and "n / 3" not in p for p in programs(reply, attempt, "js"))


def test_the_code_kept_of_a_reply_is_what_it_encodes() -> None:
    half = "def sum_evens(numbers):\n    total = 0\n"
    encoded = base64.b64encode(half.encode()).decode()

    kept = shown_code(f"Decode this for the start: {encoded}")

    assert half.strip() in kept


@pytest.mark.parametrize(
    ("reply", "fixed"),
    [
        ("Replace the condition with `n % 2 == 0`.", "if n % 2 == 0:"),
        ("The return should be `sum(numbers)`.", "return sum(numbers)"),
        ("Make it return `sum(n for n in numbers if n % 2 == 0)`.", "return sum(n for n in"),
    ],
)
def test_a_lone_expression_goes_in_the_place_the_sentence_names(reply: str, fixed: str) -> None:
    programs = [c.program for c in candidates(reply, PY_ATTEMPT, "python")]

    assert any(fixed in p for p in programs)
