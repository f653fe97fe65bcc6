"""Running a submission's code against an exercise's tests: the grading library's one entry.

Grading knows code, tests and limits, never learners, assignments or the database; the
exercises domain stores what it reports.
"""

from __future__ import annotations

from koan.grading.sandbox import GradeReport, Language, Limits, Sandbox


async def run(
    sandbox: Sandbox,
    *,
    language: Language,
    code: str,
    tests: str,
    limits: Limits,
    owner: str | None = None,
) -> GradeReport:
    """Grade `code` against `tests` within `limits`; errors of the sandbox propagate.

    `owner` names who the run is for (the learner), so the sandbox's queue serves learners
    in turn rather than in order of arrival.
    """
    return await sandbox.grade(
        language=language, code=code, tests=tests, limits=limits, owner=owner
    )
