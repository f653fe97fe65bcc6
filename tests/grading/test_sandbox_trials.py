"""Trials: several programs tried in turn against the same tests in one sandbox run (the tutor's
guard proving a suggested fix), in both languages, with the stop rules, the selected tests and
a deadline for each program."""

from __future__ import annotations

import pytest

from koan.grading.sandbox import Limits, Sandbox
from tests.grading.conftest import assert_still_works

PY_TESTS = """\
from solution import add


def test_small():
    assert add(1, 2) == 3


def test_negative():
    assert add(-1, -2) == -3
"""
JS_TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

test('small', () => {
  assert.strictEqual(add(1, 2), 3);
});

test('negative', async () => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  assert.strictEqual(add(-1, -2), -3);
});
"""
PY = {
    "wrong": "def add(a, b):\n    return a - b\n",
    "loops": "def add(a, b):\n    while True:\n        pass\n",
    "exits": "import sys\nsys.exit(3)\n",
    "half": "def add(a, b):\n    return a + b if a > 0 else 0\n",
    "right": "def add(a, b):\n    return a + b\n",
}
JS = {
    "wrong": "exports.add = (a, b) => a - b;\n",
    "loops": "exports.add = (a, b) => { for (;;) {} };\n",
    "exits": "process.exit(3);\n",
    "half": "exports.add = (a, b) => (a > 0 ? a + b : 0);\n",
    "right": "exports.add = (a, b) => a + b;\n",
}
CASES = {"python": (PY, PY_TESTS, "test_"), "javascript": (JS, JS_TESTS, "")}
QUICK = Limits(cpu_s=1.0, wall_s=0.5)


def programs(language: str, *kinds: str) -> list[str]:
    return [CASES[language][0][kind] for kind in kinds]


def name(language: str, test: str) -> str:
    return CASES[language][2] + test


async def run_trial(sandbox: Sandbox, language: str, kinds: list[str], **options: object):  # type: ignore[no-untyped-def]
    return await sandbox.try_programs(
        language=language,  # type: ignore[arg-type]
        programs=programs(language, *kinds),
        tests=CASES[language][1],
        limits=QUICK,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_every_program_is_tried_and_reports_the_tests_it_passed(
    sandbox: Sandbox, language: str
) -> None:
    kinds = ["wrong", "loops", "exits", "half", "right"]
    report = await run_trial(sandbox, language, kinds)

    small, negative = name(language, "small"), name(language, "negative")
    statuses = [outcome.status for outcome in report.outcomes]
    assert statuses == ["tests", "timeout", "import", "tests", "tests"]
    assert [outcome.passed for outcome in report.outcomes] == [
        frozenset(),
        frozenset(),
        frozenset(),
        frozenset({small}),
        frozenset({small, negative}),
    ]
    assert report.outcomes[0].planned == (small, negative)
    assert report.stopped_at is None
    await assert_still_works(sandbox)


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_stop_any_ends_at_the_first_program_passing_a_selected_test(
    sandbox: Sandbox, language: str
) -> None:
    negative = name(language, "negative")
    report = await run_trial(
        sandbox, language, ["wrong", "half", "right", "wrong"], only=[negative], stop="any"
    )

    # `half` passes only the test that was not selected.
    assert [outcome.status for outcome in report.outcomes] == [
        "tests",
        "tests",
        "tests",
        "not_run",
    ]
    assert report.outcomes[1].planned == (negative,)
    assert report.outcomes[1].passed == frozenset()
    assert report.stopped_at == 2


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_stop_any_ends_the_run_at_the_first_test_passed(
    sandbox: Sandbox, language: str
) -> None:
    report = await run_trial(sandbox, language, ["wrong", "right"], stop="any")

    # `right` passes both tests; the first one decides, the second is not run.
    assert [outcome.status for outcome in report.outcomes] == ["tests", "tests"]
    assert report.outcomes[1].planned == (name(language, "small"), name(language, "negative"))
    assert report.outcomes[1].passed == frozenset({name(language, "small")})
    assert report.stopped_at == 1


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_stop_all_needs_every_test_to_pass(sandbox: Sandbox, language: str) -> None:
    report = await run_trial(sandbox, language, ["half", "right", "wrong"], stop="all")

    assert report.stopped_at == 1
    assert report.outcomes[2].status == "not_run"


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_a_program_that_never_ends_leaves_time_for_the_next(
    sandbox: Sandbox, language: str
) -> None:
    # The whole run may take far longer than the loops' own deadlines, so that a loaded
    # machine's slow start cannot decide the outcome: each loop is cut at its own.
    report = await run_trial(
        sandbox, language, ["loops", "loops", "right"], stop="all", total_wall_s=10.0
    )

    assert [outcome.status for outcome in report.outcomes] == ["timeout", "timeout", "tests"]
    assert report.stopped_at == 2


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_the_whole_trial_has_a_time_limit(sandbox: Sandbox, language: str) -> None:
    report = await sandbox.try_programs(
        language=language,  # type: ignore[arg-type]
        programs=programs(language, "loops", "loops", "loops", "right"),
        tests=CASES[language][1],
        limits=QUICK,
        total_wall_s=1.2,
    )

    assert report.outcomes[0].status == "timeout"
    assert report.outcomes[-1].status == "not_run"
    await assert_still_works(sandbox)


async def test_a_python_programs_changes_to_builtins_do_not_reach_the_next(
    sandbox: Sandbox,
) -> None:
    meddling = "import builtins\nbuiltins.abs = lambda x: 0\n\ndef add(a, b):\n    return 0\n"
    uses_abs = "def add(a, b):\n    return a + b if abs(-1) == 1 else 0\n"
    report = await sandbox.try_programs(
        language="python", programs=[meddling, uses_abs], tests=PY_TESTS, limits=QUICK
    )

    assert report.outcomes[1].passed == frozenset({"test_small", "test_negative"})


async def test_a_javascript_program_cannot_end_the_trial_early(sandbox: Sandbox) -> None:
    report = await sandbox.try_programs(
        language="javascript",
        programs=[
            "exports.add = () => { process.exit(0); };\n",
            "exports.add = (a, b) => a + b;\n",
        ],
        tests=JS_TESTS,
        limits=QUICK,
    )

    assert report.outcomes[0].passed == frozenset()
    assert report.outcomes[1].passed == frozenset({"small", "negative"})


async def test_printing_programs_do_not_fill_the_output(sandbox: Sandbox) -> None:
    noisy = "print('x' * 100_000)\n\ndef add(a, b):\n    return a + b\n"
    report = await sandbox.try_programs(
        language="python",
        programs=[noisy, noisy],
        tests=PY_TESTS,
        limits=Limits(cpu_s=1.0, wall_s=1.0, output_bytes=1024),
    )

    assert [outcome.status for outcome in report.outcomes] == ["tests", "tests"]


async def test_no_programs_is_an_empty_report(sandbox: Sandbox) -> None:
    report = await sandbox.try_programs(language="python", programs=[], tests=PY_TESTS)

    assert report.outcomes == []
    assert report.stopped_at is None
