"""Grading Python submissions: what a learner sees for each kind of result."""

from __future__ import annotations

import pytest

from koan.errors import BadRequest, PayloadTooLarge
from koan.grading.sandbox import Limits, Sandbox, jobs
from koan.grading.sandbox.harness.run_python import precompile
from tests.grading.conftest import ADD_SOLUTION, ADD_TESTS, grade_python


async def test_correct_solution_passes_every_test(sandbox: Sandbox) -> None:
    report = await grade_python(sandbox, ADD_SOLUTION, ADD_TESTS)

    assert report.status == "passed"
    assert [(t.name, t.status) for t in report.tests] == [
        ("test_small", "passed"),
        ("test_negative", "passed"),
    ]
    assert (report.passed, report.total) == (2, 2)
    assert report.tier == sandbox.tier
    assert report.duration_ms >= 0


async def test_failing_assert_shows_its_message(sandbox: Sandbox) -> None:
    code = "def add(a, b):\n    return abs(a) + abs(b)\n"

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "failed"
    assert [t.status for t in report.tests] == ["passed", "failed"]
    assert report.tests[1].message == "negative numbers add too"
    assert report.passed == 1


async def test_bare_comparison_shows_both_sides(sandbox: Sandbox) -> None:
    code = "def add(a, b):\n    return a - b\n"

    report = await grade_python(sandbox, code, ADD_TESTS)

    message = report.tests[0].message
    assert report.tests[0].status == "failed"
    assert "assert add(1, 2) == 3" in message
    assert "left:  -1" in message
    assert "right: 3" in message


async def test_bare_assert_without_comparison_shows_the_failing_line(sandbox: Sandbox) -> None:
    code = "def is_even(n):\n    return n % 2 == 1\n"
    tests = "from solution import is_even\n\ndef test_even():\n    assert is_even(4)\n"

    report = await grade_python(sandbox, code, tests)

    assert report.status == "failed"
    assert "assert is_even(4)" in report.tests[0].message
    assert "tests.py, line 4" in report.tests[0].message


async def test_exception_in_solution_is_an_error_with_type_and_line(sandbox: Sandbox) -> None:
    code = "def add(a, b):\n    return a / 0\n"

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "failed"
    assert [t.status for t in report.tests] == ["error", "error"]
    assert report.tests[0].message == "ZeroDivisionError: division by zero (solution.py, line 2)"


async def test_syntax_error_fails_every_test_with_the_message(sandbox: Sandbox) -> None:
    code = "def add(a, b)\n    return a + b\n"

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "error"
    assert [t.status for t in report.tests] == ["error", "error"]
    assert all(t.message.startswith("SyntaxError:") for t in report.tests)
    assert "solution.py, line 1" in report.tests[0].message


async def test_exception_at_import_fails_every_test(sandbox: Sandbox) -> None:
    code = "raise RuntimeError('broken on import')\n"

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "error"
    assert {t.message for t in report.tests} == {
        "RuntimeError: broken on import (solution.py, line 1)"
    }


async def test_missing_function_is_an_import_error(sandbox: Sandbox) -> None:
    report = await grade_python(sandbox, "def plus(a, b):\n    return a + b\n", ADD_TESTS)

    assert report.status == "error"
    message = "ImportError: solution.py does not define add (tests.py, line 1)"
    assert [t.message for t in report.tests] == [message, message]


async def test_a_missing_name_shows_no_sandbox_path(sandbox: Sandbox) -> None:
    tests = "from solution import add, sub\n\ndef test_sub():\n    assert sub(3, 1) == 2\n"

    report = await grade_python(sandbox, ADD_SOLUTION, tests)

    message = "ImportError: solution.py does not define sub (tests.py, line 1)"
    assert report.tests[0].message == message


async def test_exit_at_import_is_an_error_not_a_pass(sandbox: Sandbox) -> None:
    for code in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"):
        report = await grade_python(sandbox, code, ADD_TESTS)

        assert report.status == "error", code
        assert report.passed == 0


async def test_tests_run_in_definition_order(sandbox: Sandbox) -> None:
    tests = "".join(f"def test_{name}():\n    print({name!r})\n\n" for name in "zyxabc")

    report = await grade_python(sandbox, "", tests)

    assert [t.name for t in report.tests] == [f"test_{name}" for name in "zyxabc"]
    assert report.stdout == "z\ny\nx\na\nb\nc\n"


async def test_async_test_functions_are_awaited(sandbox: Sandbox) -> None:
    code = "async def double(x):\n    return 2 * x\n"
    tests = (
        "from solution import double\n\nasync def test_double():\n    assert await double(2) == 5\n"
    )

    report = await grade_python(sandbox, code, tests)

    assert report.status == "failed"
    assert "left:  4" in report.tests[0].message


async def test_learner_output_is_kept_separately_and_unicode_survives(sandbox: Sandbox) -> None:
    code = (
        "import sys\n"
        "print('héllo wörld ✓ 你好 🐍')\n"
        "print('to stderr', file=sys.stderr)\n"
        "def add(a, b):\n    return a + b\n"
    )

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "passed"
    assert report.stdout == "héllo wörld ✓ 你好 🐍\n"
    assert report.stderr == "to stderr\n"


async def test_output_over_the_cap_is_truncated_and_reported(sandbox: Sandbox) -> None:
    code = "print('é' * 50_000)\ndef add(a, b):\n    return a + b\n"

    report = await grade_python(sandbox, code, ADD_TESTS, Limits(output_bytes=1000))

    assert report.status == "output_limit"
    assert len(report.stdout.encode()) <= 1000 + 3  # a cut multi-byte character may become U+FFFD
    assert report.stdout.startswith("éééé")


async def test_printed_fake_verdicts_do_not_pass(sandbox: Sandbox) -> None:
    fake = '{"t": "test", "name": "test_small", "status": "passed", "message": ""}'
    code = (
        "import sys, json\n"
        f"line = {fake!r}\n"
        "for stream in (sys.stdout, sys.stderr):\n"
        "    print('passed 2 tests', file=stream)\n"
        "    print(line, file=stream)\n"
        "    print('x' * 32 + ' ' + line, file=stream)\n"
        "    print(json.dumps({'status': 'passed', 'passed': 2, 'total': 2}), file=stream)\n"
        "def add(a, b):\n    return 0\n"
    )

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status == "failed"
    assert report.passed == 0
    assert "passed 2 tests" in report.stdout


async def test_fake_verdicts_written_to_every_descriptor_do_not_pass(sandbox: Sandbox) -> None:
    # Someone who guesses the channel is a descriptor still lacks the per-run nonce.
    code = (
        "import os\n"
        'record = b\'%s {"t": "test", "name": "test_small", "status": "passed"}\\n\'\n'
        "for fd in range(3, 1024):\n"
        "    for nonce in (b'0' * 32, b'x'):\n"
        "        try:\n"
        "            os.write(fd, record % nonce)\n"
        '            os.write(fd, nonce + b\' {"t": "end", "phase": "tests"}\\n\')\n'
        "        except OSError:\n"
        "            pass\n"
        "def add(a, b):\n    return 0\n"
    )

    report = await grade_python(sandbox, code, ADD_TESTS)

    assert report.status in {"error", "failed"}
    assert report.passed == 0


async def test_per_exercise_limits_above_the_server_caps_are_capped(sandbox: Sandbox) -> None:
    huge = Limits(cpu_s=1e6, wall_s=1e6, memory_mb=1 << 20, output_bytes=1 << 40, disk_mb=1 << 20)

    report = await grade_python(sandbox, ADD_SOLUTION, ADD_TESTS, huge)

    assert report.status == "passed"


async def test_files_can_be_written_in_the_working_directory(sandbox: Sandbox) -> None:
    code = (
        "import tempfile\n"
        "def roundtrip(text):\n"
        "    with open('notes.txt', 'w') as f:\n"
        "        f.write(text)\n"
        "    with tempfile.NamedTemporaryFile('w+') as t:\n"
        "        t.write(text); t.seek(0)\n"
        "        assert t.read() == text\n"
        "    return open('notes.txt').read()\n"
    )
    tests = "from solution import roundtrip\n\ndef test_rt():\n    assert roundtrip('hi') == 'hi'\n"

    report = await grade_python(sandbox, code, tests)

    assert report.status == "passed", report


async def test_files_do_not_survive_into_the_next_run(sandbox: Sandbox) -> None:
    leave = "open('left-behind.txt', 'w').write('secret of another learner')\n"
    look = (
        "import os\n"
        "def test_clean():\n"
        "    assert not os.path.exists('left-behind.txt')\n"
        "    assert not os.path.exists('/tmp/left-behind.txt')\n"
    )
    for _ in range(3):  # enough runs that both slots have had a leftover to find
        await grade_python(sandbox, leave, "def test_nothing():\n    pass\n")
        report = await grade_python(sandbox, "", look)
        assert report.status == "passed", report


async def test_unknown_languages_and_oversized_code_are_client_errors(sandbox: Sandbox) -> None:
    with pytest.raises(BadRequest):
        await sandbox.grade(language="cobol", code="", tests="")  # type: ignore[arg-type]
    with pytest.raises(PayloadTooLarge):
        await grade_python(sandbox, "x = 1\n" * 200_000, ADD_TESTS)


PASSING_TESTS = "from solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n"
FAILING_TESTS = "from solution import add\n\ndef test_add():\n    assert not add(1, 2)\n"


async def test_the_run_takes_the_tests_the_server_compiled(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The job says one thing in its source and another in its compiled code: the run
    # follows the code, so it did not parse and compile the source again.
    monkeypatch.setattr(jobs, "_precompiled", lambda _tests: precompile(FAILING_TESTS))

    report = await grade_python(sandbox, ADD_SOLUTION, PASSING_TESTS)

    assert report.status == "failed"
    # Its failures still name the line of the tests, at the path of this run.
    assert report.tests[0].message.endswith("(tests.py, line 4)")


async def test_tests_compiled_for_other_bytecode_are_compiled_again_in_the_run(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other_python(_tests: str) -> dict[str, object] | None:
        compiled = precompile(FAILING_TESTS)
        assert compiled is not None
        return {**compiled, "magic": "00000000"}

    monkeypatch.setattr(jobs, "_precompiled", other_python)

    report = await grade_python(sandbox, ADD_SOLUTION, PASSING_TESTS)

    assert report.status == "passed"


def test_tests_that_do_not_parse_go_as_source() -> None:
    assert precompile("def test_a(:\n    pass\n") is None
    compiled = precompile(PASSING_TESTS)
    assert compiled is not None
    assert compiled["names"] == ["test_add"]
