"""Checking an exercise in the sandbox: the reference solution passes, the starter does not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from koan.exercises.pack import ExerciseSpec
from koan.grading.limits import effective_limits
from koan.grading.sandbox import GradeReport, Limits, Sandbox


@dataclass
class ValidationOutcome:
    slug: str
    problems: list[str] = field(default_factory=list)
    solution: GradeReport | None = None
    starter: GradeReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _failures(report: GradeReport) -> str:
    bad = [t for t in report.tests if t.status != "passed"]
    if not bad:
        return report.status + (
            f": {report.stderr.strip()[-300:]}" if report.stderr.strip() else ""
        )
    first = bad[0]
    return f"{len(bad)} of {report.total} failed, e.g. {first.name}: {first.message[:200]}"


async def validate_spec(sandbox: Sandbox, spec: ExerciseSpec, limits: Limits) -> ValidationOutcome:
    """Grade the reference solution (must pass every test) and the starter (must fail one)."""
    outcome = ValidationOutcome(spec.slug)
    own = effective_limits(
        limits, time_limit_s=spec.time_limit_s, memory_limit_mb=spec.memory_limit_mb
    )
    outcome.solution = await sandbox.grade(
        language=spec.language, code=spec.solution, tests=spec.tests, limits=own
    )
    if outcome.solution.status != "passed" or outcome.solution.total == 0:
        outcome.problems.append("reference solution does not pass: " + _failures(outcome.solution))
    outcome.starter = await sandbox.grade(
        language=spec.language, code=spec.starter_code or "\n", tests=spec.tests, limits=own
    )
    if outcome.starter.status == "passed":
        outcome.problems.append("starter code passes every test; it must fail at least one")
    elif outcome.starter.status in ("timeout", "memory"):
        # A starter that burns the whole limit makes every learner's first run slow and
        # occupies a grading slot for nothing: it must fail fast.
        outcome.problems.append(
            f"starter code hits the {outcome.starter.status} limit; it must fail quickly"
        )
    return outcome


async def validate_all(
    sandbox: Sandbox,
    specs: Sequence[ExerciseSpec],
    limits: Limits,
    *,
    on_done: Callable[[ValidationOutcome], None] | None = None,
) -> list[ValidationOutcome]:
    """Validate many exercises, keeping the sandbox busy without overflowing its queue."""
    gate = asyncio.Semaphore(max(1, sandbox.config.slots))

    async def one(spec: ExerciseSpec) -> ValidationOutcome:
        async with gate:
            outcome = await validate_spec(sandbox, spec, limits)
        if on_done is not None:
            on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(spec) for spec in specs)))
