"""Grading a stored submission in the sandbox and recording the verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import service as adaptive
from koan.errors import KoanError, ServiceUnavailable
from koan.exercises import repository
from koan.exercises.schemas import SubmissionOut, TestResult
from koan.exercises.service import Recorded
from koan.grading.limits import effective_limits, server_limits
from koan.grading.sandbox import GradeReport
from koan.models import Submission, User
from koan.onboarding import repository as profiles
from koan.ops import metrics
from koan.progress import service as progress
from koan.resources import Resources

log = structlog.get_logger(__name__)


def submission_out(submission: Submission, achievements: list[str] | None = None) -> SubmissionOut:
    return SubmissionOut(
        id=submission.id,
        assignment_id=submission.assignment_id,
        status=submission.status,
        passed=submission.passed,
        total=submission.total,
        tests=[TestResult.model_validate(t) for t in submission.tests],
        stdout=submission.stdout,
        stderr=submission.stderr,
        duration_ms=submission.duration_ms,
        created_at=submission.created_at,
        achievements_unlocked=achievements or [],
    )


def _apply(submission: Submission, report: GradeReport) -> None:
    submission.status = report.status
    submission.passed = report.passed
    submission.total = report.total
    submission.tests = [
        {"name": t.name, "status": t.status, "message": t.message} for t in report.tests
    ]
    submission.stdout = report.stdout
    submission.stderr = report.stderr
    submission.duration_ms = report.duration_ms
    submission.tier = report.tier.name.lower()


@dataclass
class Graded:
    submission: Submission
    achievements_unlocked: list[str] = field(default_factory=list)


async def grade(session: AsyncSession, res: Resources, recorded: Recorded, user: User) -> Graded:
    """Run the tests and record the verdict, the assignment's state, ratings and progress."""
    submission, exercise = recorded.submission, recorded.exercise
    started = time.perf_counter()
    try:
        report = await res.sandbox.grade(
            language=exercise.language,  # type: ignore[arg-type]
            code=submission.code,
            tests=exercise.tests,
            limits=effective_limits(
                server_limits(res.settings),
                time_limit_s=exercise.time_limit_s,
                memory_limit_mb=exercise.memory_limit_mb,
            ),
        )
    except ServiceUnavailable as exc:
        # Busy or down: the code stays recorded (as an error the learner can resubmit).
        submission.status = "error"
        submission.stderr = (
            "The grader could not run your code just now; it is saved, submit it again shortly."
        )
        submission.graded_at = res.clock.now()
        await session.flush()
        exc.keep_changes = True
        raise
    except KoanError:
        raise
    except Exception:
        log.exception("grading.failed", submission_id=str(submission.id))
        metrics.grading_finished("error", "none", time.perf_counter() - started)
        submission.status = "error"
        submission.stderr = "Grading failed on our side; your code is saved. Please submit again."
        submission.graded_at = res.clock.now()
        await session.flush()
        return Graded(submission)
    metrics.grading_finished(report.status, report.tier.name.lower(), time.perf_counter() - started)
    _apply(submission, report)
    now = res.clock.now()
    submission.graded_at = now
    assignment = await repository.lock_assignment(session, recorded.assignment.id)
    # One learner's submissions are counted one after another (ratings, streaks, awards).
    await progress.lock_learner(session, user)
    assignment.attempts += 1
    if assignment.status == "assigned":
        assignment.status = "in_progress"
        assignment.started_at = submission.created_at
    completed_now = report.status == "passed" and assignment.status != "completed"
    if completed_now:
        assignment.status = "completed"
        assignment.completed_at = now
        assignment.closed_at = now
    await session.flush()
    if completed_now:
        await adaptive.record_outcome(
            session,
            user=user,
            profile=await profiles.profile_for(session, user),
            exercise=exercise,
            assignment=assignment,
            passed=True,
            skipped=False,
            now=now,
        )
    # After the adaptive update, so level and mastery include this attempt.
    unlocked = await progress.on_submission_graded(
        session, res, user=user, submission=submission, assignment=assignment, exercise=exercise
    )
    return Graded(submission, unlocked)
