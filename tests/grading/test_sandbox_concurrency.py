"""Many submissions at once: bounded slots, a fair bounded queue, and nothing mixed up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from koan.errors import GraderBusy
from koan.grading.sandbox import Limits, Sandbox, SandboxConfig, Tier
from tests.grading.conftest import ADD_SOLUTION, ADD_TESTS, grade_python

SLOW = "import time\ntime.sleep(0.3)\n" + ADD_SOLUTION


async def until(condition: Callable[[], bool]) -> None:
    """Wait until the sandbox reaches a state (bounded, so a broken sandbox fails the test)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("the sandbox never reached the expected state")


async def test_more_jobs_than_slots_and_queue_are_refused_at_once() -> None:
    # No growth with the throughput (max_wait_s=0): the queue holds one job.
    box = Sandbox(SandboxConfig(slots=1, queue_size=1, max_wait_s=0, min_tier=Tier.RLIMITS))
    await box.start()
    try:
        running = asyncio.create_task(grade_python(box, SLOW, ADD_TESTS))
        waiting = asyncio.create_task(grade_python(box, SLOW, ADD_TESTS))
        await until(lambda: box.queue_depth() == 1)

        with pytest.raises(GraderBusy) as refused:
            await grade_python(box, ADD_SOLUTION, ADD_TESTS)

        assert refused.value.status_code == 503
        assert "Retry-After" in refused.value.headers
        assert (await running).status == "passed"
        assert (await waiting).status == "passed"
        assert box.queue_depth() == 0
        assert (await grade_python(box, ADD_SOLUTION, ADD_TESTS)).status == "passed"
    finally:
        await box.close()


async def test_concurrent_results_are_not_mixed_up(sandbox: Sandbox) -> None:
    def job(n: int) -> tuple[str, str]:
        code = f"print('run {n}')\ndef ident():\n    return {n}\n"
        tests = f"from solution import ident\n\ndef test_ident():\n    assert ident() == {n}\n"
        return code, tests

    reports = await asyncio.gather(*(grade_python(sandbox, *job(n)) for n in range(12)))

    for n, report in enumerate(reports):
        assert report.status == "passed", (n, report)
        assert report.stdout == f"run {n}\n"


async def test_a_mix_of_languages_and_outcomes_at_once(sandbox: Sandbox) -> None:
    good = grade_python(sandbox, ADD_SOLUTION, ADD_TESTS)
    bad = grade_python(sandbox, "def add(a, b):\n    return 0\n", ADD_TESTS)
    js = sandbox.grade(
        language="javascript",
        code="module.exports = { add: (a, b) => a + b };\n",
        tests="const { add } = require('./solution.js');\n"
        "test('t', () => { if (add(1, 2) !== 3) throw new Error('bad'); });\n",
    )

    reports = await asyncio.gather(good, bad, js)

    assert [r.status for r in reports] == ["passed", "failed", "passed"]


async def test_a_cancelled_grading_frees_its_slot_for_the_next() -> None:
    box = Sandbox(SandboxConfig(slots=1, queue_size=1, min_tier=Tier.RLIMITS))
    await box.start()
    try:
        sleeper = "import time\ndef add(a, b):\n    time.sleep(60)\n"
        abandoned = asyncio.create_task(grade_python(box, sleeper, ADD_TESTS))
        await until(lambda: box.running() == 1)
        abandoned.cancel()
        with pytest.raises(asyncio.CancelledError):
            await abandoned

        report = await grade_python(box, ADD_SOLUTION, ADD_TESTS)

        assert report.status == "passed"
    finally:
        await box.close()


async def test_a_grading_cancelled_as_the_slots_spare_exits_is_not_answered_anyway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run of other limits ends the slot's spare first; the learner gives up at the very
    # moment the spare's exit report arrives. The grading must end there, not run on.
    box = Sandbox(SandboxConfig(slots=1, queue_size=1, min_tier=Tier.RLIMITS))
    await box.start()
    try:
        assert (await grade_python(box, ADD_SOLUTION, ADD_TESTS)).status == "passed"
        zygote = box._slots[0].zygote
        assert zygote.spare_key is not None  # prepared after that run, for its disk size
        exit_report = zygote._exit_report
        given_up = False

        async def exit_then_given_up(run_id: int) -> dict[str, object]:
            nonlocal given_up
            report = await exit_report(run_id)
            if not given_up:  # the first exit: the spare's, ended for this run
                given_up = True
                abandoned.cancel()
            return report

        monkeypatch.setattr(zygote, "_exit_report", exit_then_given_up)
        other = Limits(disk_mb=8)
        assert box._spare_for("python", other) is not None
        abandoned = asyncio.create_task(grade_python(box, ADD_SOLUTION, ADD_TESTS, other))
        with pytest.raises(asyncio.CancelledError):
            await abandoned
        monkeypatch.undo()
        assert (await grade_python(box, ADD_SOLUTION, ADD_TESTS)).status == "passed"
    finally:
        await box.close()


async def test_a_sandbox_closing_when_its_caller_is_cancelled_still_stops_its_launchers() -> None:
    box = Sandbox(SandboxConfig(slots=1, queue_size=1, min_tier=Tier.RLIMITS))
    await box.start()
    launcher = box._slots[0].zygote._process
    assert launcher is not None
    assert launcher.returncode is None

    closing = asyncio.create_task(box.close())
    await asyncio.sleep(0)  # it has begun: the launcher is being asked to leave
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing

    async with asyncio.timeout(10):
        await launcher.wait()  # stopped all the same


async def test_a_flooding_owner_delays_another_by_at_most_one_run() -> None:
    box = Sandbox(SandboxConfig(slots=1, queue_size=16, min_tier=Tier.RLIMITS))
    await box.start()
    try:
        finished: list[str] = []

        async def submit(owner: str, code: str) -> None:
            report = await box.grade(language="python", code=code, tests=ADD_TESTS, owner=owner)
            assert report.status == "passed"
            finished.append(owner)

        flood = [asyncio.create_task(submit("flooder", SLOW)) for _ in range(6)]
        await until(lambda: box.running() == 1 and box.queue_depth() == 5)

        await submit("other", ADD_SOLUTION)

        # The run in progress, then at most one more of the flooder's, then the other's.
        assert finished.count("flooder") <= 2
        await asyncio.gather(*flood)
        assert finished.count("flooder") == 6
    finally:
        await box.close()


async def test_the_queue_is_sized_from_the_throughput_it_measured_at_start() -> None:
    box = Sandbox(SandboxConfig(slots=1, queue_size=1, max_wait_s=30, min_tier=Tier.RLIMITS))
    await box.start()
    try:
        # Timed at start, before any request: quick runs, so far more than one job can start
        # within 30 s, and far more than the configured floor of one may wait.
        assert box.queue_capacity() > 30
        running = asyncio.create_task(grade_python(box, SLOW, ADD_TESTS))
        waiting = [
            asyncio.create_task(grade_python(box, ADD_SOLUTION, ADD_TESTS)) for _ in range(5)
        ]
        reports = await asyncio.gather(running, *waiting)
        assert all(report.status == "passed" for report in reports)
    finally:
        await box.close()
