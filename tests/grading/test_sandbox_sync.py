"""The synchronous API the `koan exercises validate` CLI uses (no event loop of its own)."""

from __future__ import annotations

from koan.grading.sandbox import (
    GradeJob,
    SandboxConfig,
    SyncSandbox,
    Tier,
    grade_sync,
    probe_tier,
)
from tests.grading.conftest import ADD_SOLUTION, ADD_TESTS, IN_CI


def test_probe_reports_the_tier_the_sandbox_uses() -> None:
    tier = probe_tier()

    assert tier >= Tier.RLIMITS
    if IN_CI:
        assert tier == Tier.FULL


def test_grade_many_runs_jobs_in_parallel_and_keeps_their_order() -> None:
    jobs = [
        GradeJob("python", f"def add(a, b):\n    return a + b + {n}\n", ADD_TESTS) for n in range(6)
    ]
    with SyncSandbox(SandboxConfig(slots=2, queue_size=0, min_tier=Tier.RLIMITS)) as box:
        reports = box.grade_many(jobs)
        single = box.grade(language="python", code=ADD_SOLUTION, tests=ADD_TESTS)

    assert [r.status for r in reports] == ["passed"] + ["failed"] * 5
    assert single.status == "passed"


def test_grade_sync_grades_one_submission() -> None:
    report = grade_sync(
        language="python",
        code=ADD_SOLUTION,
        tests=ADD_TESTS,
        config=SandboxConfig(min_tier=Tier.RLIMITS),
    )

    assert report.status == "passed"
