"""Fixes said in words only, applied to the learner's code (no I/O)."""

from __future__ import annotations

import pytest

from koan.llm.verbal import Change, apply, changes, mentions_edit, programs

COUNT = "def count_up(n):\n    out = []\n    i = 1\n    while i < n:\n        out.append(i)\n        i += 1\n    return out\n"  # noqa: E501


@pytest.mark.parametrize(
    ("reply", "old", "new"),
    [
        ("Change the minus on line 3 to a plus.", "-", "+"),
        ("Use less-than-or-equal instead of less-than in the loop's condition.", "<", "<="),
        ("The < in the while loop should be a <=.", "<", "<="),
        ("Replace the modulo with floor division.", "%", "//"),
        ("On line 4, change the 1 to a 0.", "1", "0"),
        ("Use greater than or equal to instead of greater than.", ">", ">="),
        ("Change the minus on line 3 to a `+`.", "-", "+"),
        ("Use triple equals instead of double equals.", "==", "==="),
        ("Change the loose equality on line 2 to a strict equality.", "==", "==="),
        ("The == in the condition should be a ===.", "==", "==="),
        ("Use strict inequality rather than not equals in the condition.", "!=", "!=="),
        ("Replace the != on line 3 with not strictly equal.", "!=", "!=="),
        # "in the if", "in the while": the statement is the place, not a keyword changed.
        ("The == in the if should be a ===.", "==", "==="),
        ("The < in the while should be a <=.", "<", "<="),
        ("The if should be an elif.", "if", "elif"),
    ],
)
def test_an_operator_or_number_named_in_words_is_read(reply: str, old: str, new: str) -> None:
    [change] = changes(reply)

    assert (change.old, change.new) == (old, new)


@pytest.mark.parametrize(
    ("reply", "old", "new"),
    [
        ("The condition should be a plus, not a minus.", "-", "+"),
        ("The loop's test should be less-than-or-equal, not less-than.", "<", "<="),
        ("Make it <= and not < in the while loop.", "<", "<="),
        ("The comparison should be strictly equal to, not double equals.", "==", "==="),
        # The other reading stays: the words after "not" can name what to leave alone.
        ("Change the minus to a plus, not the times.", "-", "+"),
    ],
)
def test_the_right_operator_then_the_wrong_one_after_not_is_read(
    reply: str, old: str, new: str
) -> None:
    assert (old, new) in [(change.old, change.new) for change in changes(reply)]


def test_the_place_named_is_the_one_changed() -> None:
    [change] = changes("Use less-than-or-equal instead of less-than in the loop's condition.")

    assert change.role == "condition"
    assert apply(COUNT, change) == [COUNT.replace("i < n", "i <= n")]


def test_each_place_alone_then_all_of_them() -> None:
    code = "def f(a, b):\n    x = a - b\n    return x - 1\n"

    found = apply(code, Change(old="-", new="+"))

    assert found == [
        "def f(a, b):\n    x = a + b\n    return x - 1\n",
        "def f(a, b):\n    x = a - b\n    return x + 1\n",
        "def f(a, b):\n    x = a + b\n    return x + 1\n",
    ]


def test_the_minus_of_an_augmented_assignment_is_its_minus() -> None:
    code = "def f(xs):\n    t = 0\n    for x in xs:\n        t -= x\n    return t\n"

    [(program, _)] = programs("Change the minus on line 4 to a plus.", code)

    assert "t += x" in program


def test_a_swap_of_arguments_swaps_a_call_not_a_definition() -> None:
    code = "def power(base, exponent):\n    return pow(exponent, base)\n"

    assert [p for p, _ in programs("Swap the arguments to pow.", code)] == [
        "def power(base, exponent):\n    return pow(base, exponent)\n"
    ]
    assert list(programs("Swap the two arguments on line 1.", code)) == []


@pytest.mark.parametrize(
    "reply",
    [
        "What does the minus do when the list is empty?",
        "Your loop takes less time than you think. Which values reach it?",
        "Look at line 4: what is i when the loop stops?",
        "Strict equality compares the type as well as the value, so you need to ask which one "
        "your comparison means.",
    ],
)
def test_a_remark_is_no_change(reply: str) -> None:
    assert changes(reply) == [] or not mentions_edit(reply)
    assert list(programs(reply, COUNT)) == []


def test_a_swap_of_parameters_swaps_the_definition() -> None:
    code = "def rotate(k, items):\n    return items[k:] + items[:k]\n"

    assert [p for p, _ in programs("Swap the two parameters of the function on line 1.", code)] == [
        "def rotate(items, k):\n    return items[k:] + items[:k]\n"
    ]


RANGE = "def in_range(x, lo, hi):\n    return lo <= x or x <= hi\n"


@pytest.mark.parametrize(
    "reply",
    [
        "Use and instead of or.",
        "Replace or with and on line 2.",
        "Change the or in the return to an and.",
        "The || should be a && here.",
    ],
)
def test_a_logical_operator_named_in_words_is_read(reply: str) -> None:
    [change] = changes(reply)

    assert {change.old, change.new} in ({"or", "and"}, {"||", "&&"})
    assert [p for p, _ in programs(reply, RANGE)] == [RANGE.replace(" or ", " and ")]


# Python's other keywords named in words: membership, identity, constants, loop control.
KEYWORDS = {
    "not in": (
        "def odd(xs):\n    return [x for x in xs if x % 2 in (0,)]\n",
        "Use not in instead of in in the condition.",
        "x % 2 not in (0,)",
    ),
    "in": (
        "def has(xs, x):\n    return x not in xs\n",
        "Replace not in with in on line 2.",
        "return x in xs",
    ),
    "is": ("def f(x):\n    return x == None\n", "Use is instead of == here.", "x is None"),
    "is not": (
        "def f(x):\n    return x is None\n",
        "The is in the return should be an is not.",
        "x is not None",
    ),
    "constants": (
        "def f(xs):\n    if not xs:\n        return True\n",
        "Return False instead of True on line 3.",
        "return False",
    ),
    "loop control": (
        "def f(xs):\n    for x in xs:\n        if x < 0:\n            break\n        print(x)\n",
        "Use continue instead of break in the loop.",
        "continue",
    ),
}


@pytest.mark.parametrize("form", list(KEYWORDS))
def test_a_keyword_named_in_words_is_read(form: str) -> None:
    code, reply, fixed = KEYWORDS[form]

    found = [p for p, _ in programs(reply, code)]

    assert any(fixed in p for p in found), found


def test_a_logical_operator_in_words_changes_its_javascript_spelling() -> None:
    code = "function inRange(x, lo, hi) {\n  return lo <= x || x <= hi;\n}\n"

    [(program, _)] = programs("Use and instead of or in the return.", code)

    assert "lo <= x && x <= hi" in program


SAME = "function same(a, b) {\n  if (a == b) {\n    return a != 0;\n  }\n  return false;\n}\n"


@pytest.mark.parametrize(
    ("reply", "fixed"),
    [
        ("Use triple equals instead of double equals in the condition.", "if (a === b) {"),
        ("Change the not equals on line 3 to strictly not equal.", "return a !== 0;"),
    ],
)
def test_javascript_strict_comparisons_named_in_words_are_read(reply: str, fixed: str) -> None:
    found = [p for p, _ in programs(reply, SAME)]

    assert any(fixed in p for p in found), found
    # Python has no strict comparison: the same words make no program of Python code.
    assert list(programs(reply, "def same(a, b):\n    if a == b:\n        return a != 0\n")) == []


@pytest.mark.parametrize(
    "reply",
    [
        "Put not in front of the condition.",
        "Negate the check on line 3.",
        "Add a not before the if's condition.",
        "Invert the condition.",
    ],
)
def test_a_negation_in_words_negates_the_condition(reply: str) -> None:
    code = "def f(xs):\n    for x in xs:\n        if x % 2 == 1:\n            return x\n"

    assert [p for p, _ in programs(reply, code)] == [
        code.replace("if x % 2 == 1:", "if not (x % 2 == 1):")
    ]


def test_a_negation_in_javascript_wraps_the_condition_in_a_bang() -> None:
    code = "function f(x) {\n  if (x > 0) {\n    return x;\n  }\n  return 0;\n}\n"

    [(program, _)] = programs("Negate the condition.", code)

    assert "if (!(x > 0)) {" in program


@pytest.mark.parametrize(
    "reply",
    [
        "Think about what happens when n is even and when it is odd, or when the list is empty.",
        "Use the tests and your own examples, or print the values, to check your loop.",
        "Change your approach and try a smaller input, or walk through it by hand.",
        "It is not in front of the loop that the problem is: check the condition.",
        "What does your condition check, and is it the one the test expects?",
        "What is in the list when the loop ends, and is it true or false that none is even?",
        "Change the loop so that it is in step with the list, or break it into two.",
        "Make sure the value is not in the wrong place: if it is, use the debugger.",
    ],
)
def test_keywords_in_prose_are_no_change(reply: str) -> None:
    code = "def f(xs, x):\n    if x in xs and x is not None:\n        return True\n    return 0\n"

    assert list(programs(reply, RANGE)) == []
    assert list(programs(reply, COUNT)) == []
    assert list(programs(reply, code)) == []
