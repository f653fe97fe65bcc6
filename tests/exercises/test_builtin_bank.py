"""The built-in bank: enough exercises, broad skills, every one valid in the sandbox."""

from __future__ import annotations

import re
from collections import Counter

from koan.config import Settings
from koan.exercises.pack import SKILL_VOCABULARY, builtin_pack_path, check_unique, read_pack
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
