"""Spare runs: a slot starts node for its next JavaScript run, and forks and sets up its next
Python run, while it is idle; the run that takes a spare is limited and isolated exactly like
one started for its job."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from koan.grading.sandbox import Limits, Sandbox, SandboxConfig, Tier
from tests.grading.conftest import assert_still_works

ADD = "exports.add = (a, b) => a + b;\n"
TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

test('adds', () => {
  assert.strictEqual(add(1, 2), 3);
});
"""


@pytest_asyncio.fixture(loop_scope="session")
async def one_slot() -> AsyncIterator[Sandbox]:
    """One slot, so every run lands where the previous one prepared a spare."""
    box = Sandbox(SandboxConfig(slots=1, queue_size=4, min_tier=Tier.RLIMITS))
    await box.start()
    try:
        yield box
    finally:
        await box.close()


async def js(box: Sandbox, code: str, tests: str = TESTS, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    return await box.grade(language="javascript", code=code, tests=tests, limits=limits)


async def test_a_slot_starts_node_for_its_next_javascript_run(one_slot: Sandbox) -> None:
    assert one_slot.spares_ready() == 1  # from the start

    first = await js(one_slot, ADD)
    assert first.status == "passed", first
    assert one_slot.spares_ready() == 1  # the next one, after it

    python = await one_slot.grade(
        language="python", code="def f():\n    return 1\n", tests="def test_f():\n    pass\n"
    )
    assert python.status == "passed", python
    assert one_slot.spares_ready() == 1  # a Python run ended it, and started one for Python

    again = await js(one_slot, ADD)
    assert again.status == "passed", again
    assert one_slot.spares_ready() == 1


async def test_a_run_on_a_spare_gets_its_own_cpu_limit(one_slot: Sandbox) -> None:
    await js(one_slot, ADD)
    assert one_slot.spares_ready() == 1

    report = await js(
        one_slot, "exports.add = () => { for (;;) {} };\n", limits=Limits(cpu_s=1, wall_s=10)
    )

    assert report.status == "timeout", report
    assert "CPU" in report.tests[0].message


async def test_a_run_on_a_spare_sees_nothing_of_the_run_before(one_slot: Sandbox) -> None:
    leave = (
        "require('node:fs').writeFileSync('left-behind.txt', 'x');\n"
        "exports.add = (a, b) => a + b;\n"
    )
    look = (
        "exports.add = (a, b) => (require('node:fs').existsSync('left-behind.txt') ? 0 : a + b);\n"
    )
    assert (await js(one_slot, leave)).status == "passed"
    assert one_slot.spares_ready() == 1

    report = await js(one_slot, look)

    assert report.status == "passed", report


async def test_a_run_with_other_limits_does_not_take_the_spare(one_slot: Sandbox) -> None:
    await js(one_slot, ADD)
    bomb = (
        "const keep = [];\nexports.add = () => { for (;;) keep.push(new Array(1e6).fill(1)); };\n"
    )

    report = await js(one_slot, bomb, limits=Limits(memory_mb=64, cpu_s=5, wall_s=10))

    assert report.status == "memory", report
    assert (await js(one_slot, ADD)).status == "passed"
    await assert_still_works(one_slot)


PY_ADD = "def add(a, b):\n    return a + b\n"
PY_TESTS = "from solution import add\n\n\ndef test_adds():\n    assert add(1, 2) == 3\n"


async def py(box: Sandbox, code: str, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    return await box.grade(language="python", code=code, tests=PY_TESTS, limits=limits)


async def test_a_python_run_on_a_spare_lowers_its_limits_to_its_jobs(one_slot: Sandbox) -> None:
    assert (await py(one_slot, PY_ADD)).status == "passed"
    assert one_slot.spares_ready() == 1

    spin = await py(
        one_slot, "def add(a, b):\n    while True:\n        pass\n", Limits(cpu_s=1, wall_s=10)
    )
    assert spin.status == "timeout", spin
    assert "CPU" in spin.tests[0].message

    hog = "def add(a, b):\n    keep = bytearray(200 << 20)\n    return a + b\n"
    assert (await py(one_slot, hog, Limits(memory_mb=64))).status != "passed"
    assert (await py(one_slot, hog, Limits(memory_mb=512))).status == "passed"


async def test_a_python_run_on_a_spare_sees_nothing_of_the_run_before(one_slot: Sandbox) -> None:
    leave = "open('left-behind.txt', 'w').write('x')\n" + PY_ADD
    look = (
        "import os\n\n\ndef add(a, b):\n"
        "    return 0 if os.path.exists('left-behind.txt') else a + b\n"
    )
    assert (await py(one_slot, leave)).status == "passed"
    assert one_slot.spares_ready() == 1

    report = await py(one_slot, look)

    assert report.status == "passed", report
    await assert_still_works(one_slot)


async def test_a_trial_runs_on_a_python_spare(one_slot: Sandbox) -> None:
    assert (await py(one_slot, PY_ADD)).status == "passed"
    assert one_slot.spares_ready() == 1

    report = await one_slot.try_programs(
        language="python",
        programs=["def add(a, b):\n    return a - b\n", PY_ADD],
        tests=PY_TESTS,
        stop="any",
    )

    assert report.stopped_at == 1
    assert [outcome.status for outcome in report.outcomes] == ["tests", "tests"]
