"""Grading JavaScript submissions: node:assert tests, sync and async, through the same verdicts."""

from __future__ import annotations

from koan.grading.sandbox import GradeReport, Limits, Sandbox, Tier

SOLUTION = "function add(a, b) {\n  return a + b;\n}\nmodule.exports = { add };\n"
TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

test('adds small numbers', () => {
  assert.strictEqual(add(1, 2), 3);
});

test('adds later', async () => {
  await new Promise((resolve) => setTimeout(resolve, 1));
  assert.strictEqual(add(-1, -2), -3, 'negative numbers add too');
});
"""


async def grade_js(
    sandbox: Sandbox, code: str, tests: str = TESTS, limits: Limits | None = None
) -> GradeReport:
    return await sandbox.grade(language="javascript", code=code, tests=tests, limits=limits)


async def test_correct_solution_passes_sync_and_async_tests(sandbox: Sandbox) -> None:
    report = await grade_js(sandbox, SOLUTION)

    assert report.status == "passed", report
    assert [(t.name, t.status) for t in report.tests] == [
        ("adds small numbers", "passed"),
        ("adds later", "passed"),
    ]
    assert report.tier == sandbox.tier


async def test_failed_assertions_show_node_messages(sandbox: Sandbox) -> None:
    code = "module.exports = { add: (a, b) => Math.abs(a) + Math.abs(b) };\n"

    report = await grade_js(sandbox, code)

    assert report.status == "failed"
    assert [t.status for t in report.tests] == ["passed", "failed"]
    assert report.tests[1].message.startswith("negative numbers add too")


async def test_a_rejected_async_test_fails(sandbox: Sandbox) -> None:
    code = "module.exports = { add: (a, b) => a - b };\n"

    report = await grade_js(sandbox, code)

    assert report.status == "failed"
    assert "3 !== -1" not in report.tests[0].message  # node shows actual then expected
    assert "-1 !== 3" in report.tests[0].message
    assert report.tests[1].status == "failed"


async def test_thrown_errors_are_errors_with_location(sandbox: Sandbox) -> None:
    code = "function add() {\n  throw new TypeError('nope');\n}\nmodule.exports = { add };\n"

    report = await grade_js(sandbox, code)

    assert report.status == "failed"
    assert [t.status for t in report.tests] == ["error", "error"]
    assert report.tests[0].message == "TypeError: nope (solution.js, line 2)"


async def test_syntax_error_fails_every_test(sandbox: Sandbox) -> None:
    report = await grade_js(
        sandbox, "function add(a, b) { return a + }\nmodule.exports = { add };\n"
    )

    assert report.status == "error"
    assert [t.name for t in report.tests] == ["adds small numbers", "adds later"]
    assert all(t.status == "error" for t in report.tests)
    assert report.tests[0].message.startswith("SyntaxError:")
    assert "solution.js, line 1" in report.tests[0].message


async def test_a_test_awaiting_forever_is_an_error_not_a_hang(sandbox: Sandbox) -> None:
    tests = "test('waits', () => new Promise(() => {}));\ntest('after', () => {});\n"

    report = await grade_js(sandbox, "", tests)

    assert report.status == "failed"
    assert [t.status for t in report.tests] == ["error", "error"]
    assert "did not finish" in report.tests[0].message


async def test_process_exit_in_a_test_is_not_a_pass(sandbox: Sandbox) -> None:
    code = "module.exports = { add: () => process.exit(0) };\n"

    report = await grade_js(sandbox, code)

    assert report.passed == 0
    assert report.status == "failed"


async def test_printed_fake_verdicts_do_not_pass(sandbox: Sandbox) -> None:
    code = (
        "const record = { t: 'test', name: 'adds small numbers', status: 'passed' };\n"
        "const fake = JSON.stringify(record);\n"
        "console.log(fake); console.error(fake);\n"
        "console.log('x'.repeat(32) + ' ' + fake);\n"
        "const fs = require('node:fs');\n"
        "for (let fd = 3; fd < 64; fd++) {\n"
        "  try { fs.writeSync(fd, 'y ' + fake + '\\n'); } catch {}\n"
        "}\n"
        "module.exports = { add: () => 0 };\n"
    )

    report = await grade_js(sandbox, code)

    assert report.status in {"failed", "error"}
    assert report.passed == 0


async def test_unicode_output_survives(sandbox: Sandbox) -> None:
    code = "console.log('héllo ✓ 你好 🐍');\n" + SOLUTION

    report = await grade_js(sandbox, code)

    assert report.status == "passed"
    assert report.stdout == "héllo ✓ 你好 🐍\n"


async def test_an_endless_loop_times_out(sandbox: Sandbox) -> None:
    code = "module.exports = { add: () => { for (;;) {} } };\n"

    report = await grade_js(sandbox, code, limits=Limits(cpu_s=1, wall_s=30))

    assert report.status == "timeout"
    assert "CPU" in report.tests[0].message


async def test_an_endless_loop_left_running_by_the_last_test_is_reported_on_it(
    sandbox: Sandbox,
) -> None:
    # Every test returns the right value, but the last one starts a loop of promise jobs that
    # never yields to the event loop: the run cannot end, and the learner must see why. A test
    # is settled once its promise jobs have run, so this one never finishes and is the one
    # the limit stopped.
    code = (
        "async function spin() { for (;;) await null; }\n"
        "function add(a, b) {\n  if (a < 0) spin();\n  return a + b;\n}\n"
        "module.exports = { add };\n"
    )

    report = await grade_js(sandbox, code, limits=Limits(cpu_s=1, wall_s=30))

    assert report.status == "timeout"
    assert [t.status for t in report.tests] == ["passed", "error"]
    assert report.tests[1].message == "stopped: used more than 1 s of CPU"


async def test_a_loop_started_after_the_last_test_reported_is_reported_on_it(
    sandbox: Sandbox,
) -> None:
    # The loop of promise jobs starts two turns of the event loop after the test returned,
    # once the test has been reported.
    code = (
        "async function spin() { for (;;) await null; }\n"
        "function add(a, b) {\n  if (a < 0) setImmediate(() => setImmediate(spin));\n"
        "  return a + b;\n}\nmodule.exports = { add };\n"
    )

    report = await grade_js(sandbox, code, limits=Limits(cpu_s=1, wall_s=30))

    assert report.status == "timeout"
    assert [t.status for t in report.tests] == ["passed", "error"]
    assert "still running after this test" in report.tests[1].message


async def test_a_heap_bomb_hits_the_memory_limit(sandbox: Sandbox) -> None:
    code = (
        "module.exports = { add: () => {\n"
        "  const hoard = [];\n"
        "  for (;;) hoard.push(new Array(1e6).fill(1.5));\n"
        "} };\n"
    )

    report = await grade_js(sandbox, code, limits=Limits(memory_mb=64))

    assert report.status == "memory"


async def test_network_and_child_processes_are_refused(sandbox: Sandbox) -> None:
    code = (
        "const cp = require('node:child_process');\n"
        "try { cp.execSync('true'); console.log('spawned'); }\n"
        "catch (e) { console.log('no spawn'); }\n" + SOLUTION
    )

    report = await grade_js(sandbox, code)

    assert report.status == "passed"
    if sandbox.tier == Tier.FULL:
        assert report.stdout == "no spawn\n"


REJECTING_TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

test('leaves a rejection behind', () => {
  add(1, 2);
});

test('async, leaves a rejection behind', async () => {
  add(1, 2);
});

test('still runs', () => {
  assert.strictEqual(1, 1);
});
"""


async def test_an_unhandled_rejection_in_a_test_fails_it(sandbox: Sandbox) -> None:
    code = (
        "function add(a, b) {\n"
        "  Promise.reject(new RangeError('lost ' + (a + b)));\n"
        "  return a + b;\n"
        "}\n"
        "module.exports = { add };\n"
    )

    report = await grade_js(sandbox, code, REJECTING_TESTS)

    assert report.status == "failed", report
    assert [t.status for t in report.tests] == ["error", "error", "passed"]
    assert report.tests[0].message == (
        "unhandled promise rejection: RangeError: lost 3 (solution.js, line 2)"
    )
    assert "RangeError: lost 3" in report.tests[1].message


async def test_a_rejected_async_call_left_unawaited_fails_the_test(sandbox: Sandbox) -> None:
    code = "async function add() {\n  throw 'no sum';\n}\nmodule.exports = { add };\n"

    report = await grade_js(sandbox, code, REJECTING_TESTS)

    assert [t.status for t in report.tests] == ["error", "error", "passed"]
    assert report.tests[0].message == "unhandled promise rejection: Thrown: 'no sum'"


MISSING_EXPORT_TESTS = """\
const assert = require('node:assert');
const { add } = require('./solution.js');

test('adds', () => {
  assert.strictEqual(add(1, 2), 3);
});
"""


async def test_a_name_the_solution_does_not_export_is_named(sandbox: Sandbox) -> None:
    report = await grade_js(
        sandbox, "function add(a, b) {\n  return a + b;\n}\n", MISSING_EXPORT_TESTS
    )

    assert report.status == "failed"
    assert report.tests[0].status == "error"
    assert report.tests[0].message == "solution.js does not export add (tests.js, line 5)"
    assert "/" not in report.tests[0].message


async def test_a_not_a_function_error_on_an_exported_name_is_unchanged(sandbox: Sandbox) -> None:
    report = await grade_js(sandbox, "module.exports = { add: 3 };\n", MISSING_EXPORT_TESTS)

    assert report.tests[0].message == "TypeError: add is not a function (tests.js, line 5)"
