"""The built-in bank: enough exercises, broad skills, every one valid in the sandbox."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from koan.config import Settings
from koan.exercises.pack import (
    SKILL_VOCABULARY,
    ExerciseSpec,
    builtin_pack_path,
    check_unique,
    read_pack,
)
from koan.exercises.validation import validate_all, validate_spec
from koan.grading.limits import server_limits
from koan.grading.sandbox import Sandbox

ENTRIES = check_unique(read_pack(builtin_pack_path()))
SPECS = [e.spec for e in ENTRIES if e.spec is not None]


def test_every_builtin_exercise_parses() -> None:
    assert [e.origin for e in ENTRIES if e.spec is None] == []


def test_the_bank_is_broad_enough() -> None:
    languages = Counter(s.language for s in SPECS)
    assert languages["python"] >= 60
    assert languages["javascript"] >= 20
    skills = {skill for s in SPECS for skill in s.skills if skill in SKILL_VOCABULARY}
    assert len(skills) >= 12
    for language in ("python", "javascript"):
        levels = {s.difficulty for s in SPECS if s.language == language}
        assert levels == {1, 2, 3, 4, 5}, language


def test_each_exercise_has_enough_tests_and_a_three_step_ladder() -> None:
    for spec in SPECS:
        if spec.language == "python":
            tests = re.findall(r"^def test_\w+\(", spec.tests, flags=re.MULTILINE)
        else:
            tests = re.findall(r"^\s*test\(", spec.tests, flags=re.MULTILINE)
        assert len(tests) >= 4, spec.slug
        assert len(spec.hints) == 3, spec.slug


async def test_every_builtin_exercise_validates_in_the_sandbox(sandbox: Sandbox) -> None:
    limits = server_limits(Settings(_env_file=None))
    outcomes = await validate_all(sandbox, SPECS, limits)
    problems = {o.slug: o.problems for o in outcomes if not o.ok}
    assert problems == {}


async def test_a_starter_that_runs_out_of_time_is_a_problem(sandbox: Sandbox) -> None:
    spec = next(s for s in SPECS if s.slug == "py-math-prime-factors")
    endless = "def prime_factors(n):\n    while True:\n        pass\n"
    slow = spec.model_copy(update={"starter_code": endless, "time_limit_s": 1})

    outcome = await validate_spec(sandbox, slow, server_limits(Settings(_env_file=None)))

    assert outcome.problems == ["starter code hits the timeout limit; it must fail quickly"]


def solution_names(spec_tests: str, language: str) -> list[str]:
    """The names the tests take from the solution module."""
    if language == "python":
        pattern = r"^from solution import \(?([^)\n]+)\)?$"
    else:
        pattern = r"\{([^}]*)\}\s*=\s*require\('\./solution(?:\.js)?'\)"
    found = re.findall(pattern, spec_tests, flags=re.MULTILINE)
    return [
        part.split(" as ")[0].split(":")[0].strip()
        for group in found
        for part in group.split(",")
        if part.strip()
    ]


def test_every_statement_names_what_the_tests_call() -> None:
    unnamed = {}
    for spec in SPECS:
        names = solution_names(spec.tests, spec.language)
        assert names, spec.slug
        missing = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", spec.statement)]
        if missing:
            unnamed[spec.slug] = missing
    assert unnamed == {}


async def test_a_sort_that_empties_its_input_fails_the_large_sort(sandbox: Sandbox) -> None:
    """The expected order is worked out before the learner's function runs: a function that
    empties the list it is given and returns the empty list must not match it afterwards."""
    spec = next(s for s in SPECS if s.slug == "pyx-merge-sort")
    vandal = "def merge_sort(items, key=lambda x: x):\n    items.clear()\n    return []\n"

    report = await sandbox.grade(
        language="python", code=vandal, tests=spec.tests, limits=server_limits(Settings())
    )

    assert {t.name: t.status for t in report.tests}["test_large_random"] != "passed"


# Exercises whose statement says the input is left as it was, with the test that checks it.
UNCHANGED_INPUT_TESTS = {
    "py-dictionaries-cart-total": "test_prices_unchanged",
    "py-dictionaries-flatten-nested": "test_flatten_does_not_modify",
    "py-lists-above-average": "test_does_not_modify_input",
    "py-lists-chunk": "test_input_unchanged",
    "py-lists-rotate": "test_new_list_and_input_unchanged",
    "py-loops-spiral-order": "test_grid_unchanged",
    "py-tuples-merge-intervals": "test_returns_tuples_and_leaves_input",
    "pyx-find-all-positions": "test_does_not_modify_input",
    "pyx-flatten-nested-list": "test_input_not_modified",
    "pyx-merge-intervals": "test_input_not_modified",
    "pyx-merge-sort": "test_does_not_modify_input",
    "js-flatten-deep": "does not modify the input",
    "js-group-by": "calls keyFn once per item and leaves the input alone",
    "js-sort-by-keys": "returns a new array and leaves the input alone",
    "js-sum-of-evens": "does not modify the input",
}

# The reference solution, then its list and dict arguments changed after the answer is worked
# out: the answers stay right, only the promise to leave the input alone is broken.
PY_MUTATIONS = {
    "sorts": "x.sort(key=repr) if isinstance(x, list) else x.setdefault('extra', 0)",
    "reverses": "x.reverse() if isinstance(x, list) else x.popitem()",
}
JS_MUTATIONS = {
    "sorts": "x.sort((p, q) => (JSON.stringify(p) < JSON.stringify(q) ? -1 : 1))",
    "reverses": "x.reverse()",
}
PY_AFTER_CALL = """

import inspect as _inspect


def _breaking_promises(func):
    def wrapper(*args, **kwargs):
        result = func(*args, **kwargs)
        for x in args:
            if isinstance(x, (list, dict)) and x:
                {mutation}
        return result
    return wrapper


for _name in {names!r}:
    if _inspect.isfunction(globals()[_name]):
        globals()[_name] = _breaking_promises(globals()[_name])
"""
JS_AFTER_CALL = """
for (const name of {names}) {{
  const func = module.exports[name];
  module.exports[name] = (...args) => {{
    const result = func(...args);
    for (const x of args) if (Array.isArray(x) && x.length) {mutation};
    return result;
  }};
}}
"""


def input_changing_solution(spec: ExerciseSpec, how: str) -> str:
    names = solution_names(spec.tests, spec.language)
    if spec.language == "python":
        tail = PY_AFTER_CALL.format(names=names, mutation=PY_MUTATIONS[how])
    else:
        tail = JS_AFTER_CALL.format(names=json.dumps(names), mutation=JS_MUTATIONS[how])
    return spec.solution + tail


@pytest.mark.parametrize("how", ["sorts", "reverses"])
async def test_a_solution_that_changes_its_input_fails_the_unchanged_input_test(
    sandbox: Sandbox, how: str
) -> None:
    """Each input is one that sorting or reversing would change, and is built inside the test:
    a module-level value that an earlier test's call already changed would compare equal."""
    specs = {s.slug: s for s in SPECS}
    survivors = []
    for slug, test_name in UNCHANGED_INPUT_TESTS.items():
        spec = specs[slug]
        report = await sandbox.grade(
            language=spec.language,
            code=input_changing_solution(spec, how),
            tests=spec.tests,
            limits=server_limits(Settings(_env_file=None)),
        )
        if {t.name: t.status for t in report.tests}.get(test_name) == "passed":
            survivors.append(slug)
    assert survivors == []


async def test_curry_refuses_a_third_argument_its_function_could_take(sandbox: Sandbox) -> None:
    """A curry that calls the function once it has at least its arity passes the extra
    arguments on; a function without defaults raises TypeError by itself, one with a default
    takes them, and only the second shows the curry never refuses anything."""
    spec = next(s for s in SPECS if s.slug == "pyx-curry-function")
    eager = (
        "import inspect\n\n"
        "def curry(func):\n"
        "    arity = sum(1 for p in inspect.signature(func).parameters.values()\n"
        "                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)\n"
        "                and p.default is p.empty)\n"
        "    def waiting(collected):\n"
        "        def curried(*args):\n"
        "            so_far = collected + args\n"
        "            return func(*so_far) if len(so_far) >= arity else waiting(so_far)\n"
        "        return curried\n"
        "    return waiting(())\n"
    )

    report = await sandbox.grade(
        language="python", code=eager, tests=spec.tests, limits=server_limits(Settings())
    )

    assert [t.name for t in report.tests if t.status != "passed"] == [
        "test_too_many_arguments_even_when_func_would_take_them"
    ]


# Solutions that give every right answer but break the rule their statement sets (a library
# function it rules out, a count kept in a global), and the test that must catch each.
RULE_BREAKING_SOLUTIONS = {
    "pyx-counter-closure": (
        "_counts = {}\n\n"
        "def make_counter(start=0, step=1):\n"
        "    key = object()\n"
        "    _counts[key] = start - step\n"
        "    def tick():\n"
        "        _counts[key] += step\n"
        "        return _counts[key]\n"
        "    return tick\n",
        "test_count_lives_in_the_closure",
    ),
    "pyx-merge-sort": (
        "def merge_sort(items, key=None):\n"
        "    result = list(items)\n"
        "    result.sort(key=key)\n"
        "    return result\n",
        "test_sorts_by_itself",
    ),
    "pyx-memoize-decorator": (
        "from functools import lru_cache, wraps\n\n"
        "def memoize(func):\n"
        "    cached = lru_cache(maxsize=None)(func)\n"
        "    return wraps(func)(lambda *args: cached(*args))\n",
        "test_builds_its_own_cache",
    ),
    "pyx-reduce-from-scratch": (
        "_MISSING = object()\n\n"
        "def my_reduce(func, iterable, initial=_MISSING):\n"
        "    import functools\n"
        "    if initial is _MISSING:\n"
        "        return functools.reduce(func, iterable)\n"
        "    return functools.reduce(func, iterable, initial)\n",
        "test_does_not_use_functools",
    ),
}


@pytest.mark.parametrize("slug", sorted(RULE_BREAKING_SOLUTIONS))
async def test_a_solution_that_breaks_the_statements_rule_fails(
    sandbox: Sandbox, slug: str
) -> None:
    """The learner's builtins are a copy of their own, so replacing `builtins.sorted` from the
    tests never reaches them: each rule is checked on the solution module itself."""
    spec = next(s for s in SPECS if s.slug == slug)
    code, catching_test = RULE_BREAKING_SOLUTIONS[slug]

    report = await sandbox.grade(
        language="python", code=code, tests=spec.tests, limits=server_limits(Settings())
    )

    assert [t.name for t in report.tests if t.status != "passed"] == [catching_test]


# The reference solution with one slip a learner makes (a bound off by one, the wrong end of
# a list), and the test that must catch it.
SLIPS = {
    "py-conditionals-letter-grade": (
        ("score >= 80", "score >= 79"),
        "test_decimals_are_not_rounded",
    ),
    "py-functions-final-price": (("discount > 100", "discount > 101"), "test_invalid_discount"),
    "py-math-evaluate-expression": (
        ("if b == 0:", "if b == 1:"),
        "test_integer_division_toward_zero",
    ),
    "py-strings-longest-unique-run": (
        (
            "best_start, best_len = start, i - start + 1",
            "best_start, best_len = start, i + start + 1",
        ),
        "test_restart_just_after_the_repeat",
    ),
    "py-tuples-merge-intervals": (
        ("start <= merged[-1][1]", "start <= merged[0][1]"),
        "test_merges_into_the_latest_slot",
    ),
    "pyx-config-exception-hierarchy": (("port <= 65535", "port <= 65536"), "test_invalid_values"),
    "pyx-retry-on-failure": (("if attempts < 1:", "if attempts < 2:"), "test_one_attempt"),
    "pyx-take-generator": (("if n <= 0:", "if n <= 1:"), "test_zero_and_negative"),
}


@pytest.mark.parametrize("slug", sorted(SLIPS))
async def test_a_reference_with_one_slip_fails_the_test_meant_for_it(
    sandbox: Sandbox, slug: str
) -> None:
    spec = next(s for s in SPECS if s.slug == slug)
    (right, wrong), catching_test = SLIPS[slug]
    assert spec.solution.count(right) == 1
    slipped = spec.solution.replace(right, wrong)

    report = await sandbox.grade(
        language="python", code=slipped, tests=spec.tests, limits=server_limits(Settings())
    )

    assert [t.name for t in report.tests if t.status != "passed"] == [catching_test]
