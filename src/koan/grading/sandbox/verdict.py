"""Turning what a run produced into a GradeReport.

Only the verdict channel decides which tests passed: a pipe the harness gets before the learner's
code runs, with every record prefixed by a per-run nonce that the parent generated. Whatever the
learner prints goes to stdout/stderr, which are shown but never parsed. A record without the
nonce means someone else wrote to the channel: the run is an error, never a pass.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from koan.grading.sandbox.limits import Language, Limits, cpu_rlimit
from koan.grading.sandbox.report import (
    CaseStatus,
    GradeReport,
    ProgramOutcome,
    RunStatus,
    TestOutcome,
    TestStatus,
    Tier,
    TrialReport,
)
from koan.grading.sandbox.zygote import RunResult

JS_OUT_OF_MEMORY = (
    b"JavaScript heap out of memory",
    b"Reached heap limit",
    b"Fatal process out of memory",
)


class SetupFailed(Exception):
    """The run never reached the learner's code: a sandbox fault, not a submission's."""


@dataclass
class Verdict:
    """The records the harness sent, parsed."""

    ready: bool = False
    fatal: str | None = None
    plan: list[str] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    end_phase: str | None = None
    tampered: bool = False


def parse_verdict(data: bytes, nonce: str) -> Verdict:
    """Parse the verdict channel; any line without the nonce marks it tampered."""
    verdict = Verdict()
    prefix = nonce.encode() + b" "
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        verdict.tampered = True  # a partial last line: the writer was cut off or interfered
        lines.pop()
    for line in lines:
        if not line.startswith(prefix):
            verdict.tampered = True
            continue
        try:
            record = json.loads(line[len(prefix) :])
        except ValueError:
            verdict.tampered = True
            continue
        if not isinstance(record, dict):
            verdict.tampered = True
            continue
        kind = record.get("t")
        if kind == "ready":
            verdict.ready = True
        elif kind == "fatal":
            verdict.fatal = str(record.get("message", "unknown failure"))
        elif kind == "plan" and verdict.plan is None:
            verdict.plan = [str(name) for name in record.get("tests", [])]
        elif kind == "test" and verdict.end_phase is None and _expected(verdict, record):
            verdict.results.append(record)
        elif kind == "end" and verdict.end_phase is None:
            verdict.end_phase = str(record.get("phase", "tests"))
        else:
            verdict.tampered = True
    return verdict


def _expected(verdict: Verdict, record: dict[str, Any]) -> bool:
    """Whether a test record is the next one the plan announced."""
    plan = verdict.plan
    index = len(verdict.results)
    return plan is not None and index < len(plan) and record.get("name") == plan[index]


def _stop_reason(run: RunResult) -> str:
    """How the run ended, for tests that never reported."""
    status = run.status
    if status is None:
        return "the sandbox lost the run"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"the program crashed ({name}) before this test finished"
    code = os.waitstatus_to_exitcode(status)
    return f"the program exited (code {code}) before this test finished"


def _cpu_exhausted(run: RunResult, limits: Limits) -> bool:
    if run.status is None or not os.WIFSIGNALED(run.status):
        return False
    number = os.WTERMSIG(run.status)
    if number == signal.SIGXCPU:
        return True
    # The hard limit is a SIGKILL; the parent's own kills are flagged in run.killed.
    soft, _ = cpu_rlimit(limits.cpu_s)
    return number == signal.SIGKILL and run.killed is None and run.cpu_s >= soft * 0.9


def _out_of_memory(run: RunResult, verdict: Verdict, language: Language) -> bool:
    if any(result.get("exc") == "MemoryError" for result in verdict.results):
        return True
    return language == "javascript" and any(text in run.stderr for text in JS_OUT_OF_MEMORY)


def decide(
    run: RunResult,
    verdict: Verdict,
    *,
    language: Language,
    limits: Limits,
    tier: Tier,
    duration_ms: int,
) -> GradeReport:
    """The overall status and per-test outcomes of a run; SetupFailed if it never started."""
    if verdict.fatal is not None:
        raise SetupFailed(verdict.fatal)
    if not verdict.ready:
        if run.status is None:
            raise SetupFailed("the sandbox launcher stopped during the run")
        raise SetupFailed(
            "the run stopped before the learner's code started: "
            + run.stderr.decode("utf-8", "replace")[-500:]
        )

    status: RunStatus
    if run.output_overflow:
        status, reason = "output_limit", f"stopped: output over {limits.output_bytes} bytes"
    elif run.killed == "wall":
        status, reason = "timeout", f"stopped: took longer than {limits.wall_s:g} s"
    elif _cpu_exhausted(run, limits):
        status, reason = "timeout", f"stopped: used more than {limits.cpu_s:g} s of CPU"
    elif _out_of_memory(run, verdict, language):
        status, reason = "memory", f"stopped: used more than {limits.memory_mb} MB of memory"
    elif run.status is None:
        status, reason = "error", "the sandbox lost the run; please try again"
    elif verdict.tampered or run.verdict_overflow:
        status, reason = "error", "the grader's result channel was tampered with"
    elif verdict.end_phase is None:
        status, reason = "error", _stop_reason(run)
    elif verdict.end_phase == "import":
        status, reason = "error", ""
    else:
        status, reason = "failed", ""

    names = verdict.plan or []
    tests: list[TestOutcome] = []
    for index, name in enumerate(names):
        if index < len(verdict.results):
            record = verdict.results[index]
            reported = record.get("status")
            result_status: TestStatus = "error"
            if reported == "passed":
                result_status = "passed"
            elif reported == "failed":
                result_status = "failed"
            tests.append(TestOutcome(name, result_status, str(record.get("message", ""))))
        else:
            tests.append(TestOutcome(name, "error", reason or "the test did not run"))
    if reason and tests and len(verdict.results) >= len(names):
        # Every test reported, yet the run did not end well: code the last test started (a
        # loop of promise jobs, a timer) kept running. Without this no test would say why.
        last = tests[-1]
        after = f"{reason} (the program was still running after this test)"
        message = f"{last.message}\n{after}" if last.message else after
        tests[-1] = TestOutcome(last.name, "error", message)

    if status == "failed":
        if not tests:
            status = "error"
            tests = [TestOutcome("tests", "error", "the exercise defines no tests")]
        elif all(test.status == "passed" for test in tests):
            status = "passed"

    return GradeReport(
        status=status,
        tests=tests,
        stdout=run.stdout.decode("utf-8", "replace"),
        stderr=run.stderr.decode("utf-8", "replace"),
        duration_ms=duration_ms,
        tier=tier,
        # The harness ends in the import phase when loading the code (or the tests) failed.
        tests_ran=verdict.end_phase != "import",
    )


_CASE_STATUSES: frozenset[str] = frozenset({"tests", "import", "timeout", "error", "tampered"})


def decide_trial(
    run: RunResult, data: bytes, nonce: str, *, programs: int, stop: str, tier: Tier,
    duration_ms: int,
) -> TrialReport:  # fmt: skip
    """The outcome of each program of a trial; SetupFailed if the run never started.

    Programs the run did not report on (it stopped at a limit, or met the stop rule before
    their turn) are `not_run`. A forged or out-of-order record ends the reading there: what
    came before it stands, nothing after it counts.
    """
    prefix = nonce.encode() + b" "
    ready = False
    outcomes: list[ProgramOutcome] = []
    lines = data.split(b"\n")
    lines.pop()  # empty after the last record, or a record cut off
    for line in lines:
        record = _record(line, prefix)
        if record is None:
            break
        kind = record.get("t")
        if kind == "ready":
            ready = True
        elif kind == "fatal":
            raise SetupFailed(str(record.get("message", "unknown failure")))
        elif kind == "case" and ready and _index(record) == len(outcomes) < programs:
            outcomes.append(_outcome(record))
        else:  # the end, or a record out of place
            break
    if not ready:
        if run.status is None:
            raise SetupFailed("the sandbox launcher stopped during the run")
        raise SetupFailed(
            "the trial stopped before any program started: "
            + run.stderr.decode("utf-8", "replace")[-500:]
        )
    stopped_at = None
    if outcomes:
        last = outcomes[-1]
        met = (stop == "any" and bool(last.passed)) or (
            stop == "all" and last.status == "tests" and bool(last.planned)
            and last.passed == frozenset(last.planned)
        )  # fmt: skip
        stopped_at = len(outcomes) - 1 if met else None
    outcomes += [ProgramOutcome("not_run")] * (programs - len(outcomes))
    return TrialReport(outcomes, stopped_at=stopped_at, duration_ms=duration_ms, tier=tier)


def trial_end(data: bytes | bytearray, nonce: str, start: int = 0) -> tuple[int, bool]:
    """Whether a trial's verdict channel, read from `start` (a line start), holds its `end`
    record yet: (where to read from next time, found). Once it does, the records before it are
    the whole verdict; the run only has to exit."""
    prefix = nonce.encode() + b" "
    last = data.rfind(b"\n")
    if last < start:
        return start, False
    for line in bytes(data[start:last]).split(b"\n"):
        record = _record(line, prefix)
        if record is not None and record.get("t") == "end":
            return last + 1, True
    return last + 1, False


def _record(line: bytes, prefix: bytes) -> dict[str, Any] | None:
    if not line.startswith(prefix):
        return None
    try:
        record = json.loads(line[len(prefix) :])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _index(record: dict[str, Any]) -> int:
    try:
        return int(record.get("index", -1))
    except (TypeError, ValueError):
        return -1


def _outcome(record: dict[str, Any]) -> ProgramOutcome:
    raw = str(record.get("status", "error"))
    status: CaseStatus = raw if raw in _CASE_STATUSES else "error"  # type: ignore[assignment]
    planned = record.get("plan")
    passed = record.get("passed")
    planned_names = tuple(str(n) for n in planned) if isinstance(planned, list) else ()
    passed_names = frozenset(str(n) for n in passed) if isinstance(passed, list) else frozenset()
    if status == "tampered":
        passed_names = frozenset()
    return ProgramOutcome(status, planned_names, passed_names & frozenset(planned_names))
