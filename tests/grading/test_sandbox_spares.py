"""Spare node processes: a slot starts node for its next JavaScript run while it is idle, and
the run that takes it is limited and isolated exactly like one that starts node itself."""

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
    assert one_slot.spares_ready() == 0  # a Python run ended it, and starts none

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
