"""Submitting code: admit, store, commit, grade, record the verdict. The API route and the
exercise page both call `submit`.

The submission is committed (the checkpoint) before it is graded, so a crash while grading
cannot lose what the learner wrote; whatever happens afterwards, the submission ends with a
verdict or as `error` with a message, never `pending`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from math import ceil
from typing import Any, Literal, cast

import structlog
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import checkpoint
from koan.errors import (
    KoanError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManySubmissions,
)
from koan.exercises import lifecycle, repository
from koan.exercises.schemas import MAX_CODE_BYTES, SubmissionOut, TestResult
from koan.grading import service as grading
from koan.grading.limits import effective_limits, server_limits
from koan.grading.sandbox import GradeReport, Language
from koan.models import Assignment, Exercise, Submission, User
from koan.ops import metrics
from koan.resources import Resources

log = structlog.get_logger(__name__)

# Longer than any grading can take: a slot a crashed worker held frees itself after this.
SLOT_HOLD = timedelta(minutes=10)
TEST_MESSAGE_CHARS = 2000
NOT_GRADED = "Not graded: your earlier submissions were still being graded."
BUSY = "The grader could not run your code just now; it is saved, submit it again shortly."
FAILED = "Grading failed on our side; your code is saved. Please submit again."
NOT_STORED = "The result could not be stored; your code is saved. Please submit again."
INTERRUPTED = "Grading was interrupted; your code is saved. Please submit again."
ACCOUNT_DELETED = "This account was deleted while the code was being graded; nothing was kept."
EXERCISE_DELETED = "This exercise was removed while the code was being graded."


@dataclass
class Graded:
    submission: Submission
    assignment: Assignment
    achievements_unlocked: list[str] = field(default_factory=list)


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


def stored_text(text: str, limit: int) -> str:
    """Text as both databases store it: a NUL shown as `\\0` (PostgreSQL refuses NUL in text),
    text that is not valid Unicode replaced, and at most `limit` characters kept."""
    safe = text.replace("\x00", "\\0").encode("utf-8", "replace").decode("utf-8")
    if len(safe) <= limit:
        return safe
    return safe[:limit] + f"\n... ({len(safe) - limit} more characters not kept)"


def _verdict(report: GradeReport, output_chars: int) -> dict[str, Any]:
    """The submission's columns a verdict sets, as both databases store them."""
    return {
        "status": report.status,
        "passed": report.passed,
        "total": report.total,
        "tests": [
            {
                "name": stored_text(t.name, TEST_MESSAGE_CHARS),
                "status": t.status,
                "message": stored_text(t.message, TEST_MESSAGE_CHARS),
            }
            for t in report.tests
        ],
        "stdout": stored_text(report.stdout, output_chars),
        "stderr": stored_text(report.stderr, output_chars),
        "duration_ms": report.duration_ms,
        "tier": report.tier.name.lower(),
    }


# --- admission -----------------------------------------------------------------------------------


def _slot_key(user_id: uuid.UUID, index: int) -> str:
    return f"submissions:in-flight:{user_id}:{index}"


@asynccontextmanager
async def in_flight_slot(res: Resources, user_id: uuid.UUID) -> AsyncIterator[int | None]:
    """One of the learner's in-flight slots, held until the block ends; None when all are taken.

    The slots live in the cache, so the cap holds across workers when it is Redis."""
    token = secrets.token_hex(8)
    taken: int | None = None
    for index in range(res.settings.submissions_in_flight):
        if await res.cache.set_if_absent(
            _slot_key(user_id, index), token, ttl_s=SLOT_HOLD.total_seconds()
        ):
            taken = index
            break
    try:
        yield taken
    finally:
        if taken is not None:
            # Held far longer than any grading takes, so the slot is still this one's.
            await res.cache.delete(_slot_key(user_id, taken))


def _retry_after(res: Resources) -> int:
    """About how long one grading run takes at most."""
    return ceil(res.settings.sandbox_wall_s) + 1


# --- the path ------------------------------------------------------------------------------------


async def submit(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise: Exercise,
    code: str,
    *,
    latest: Assignment | None | Literal[lifecycle.Unread.UNREAD] = lifecycle.UNREAD,
) -> Graded:
    """Store `code` as a submission of `exercise`, commit, grade it and record the verdict.
    `latest`: as `lifecycle.for_work` takes it."""
    if len(code.encode("utf-8")) > MAX_CODE_BYTES:
        raise PayloadTooLarge(f"Code is limited to {MAX_CODE_BYTES // 1024} KB.")
    await res.limiter.hit(
        res.settings.submission_limit,
        "submissions",
        str(user.id),
        detail="You are submitting too often; wait a little and submit again.",
    )
    # A refusal here (skipped or expired) leaves nothing written, so the exercise page, which
    # shows the refusal and commits, keeps nothing of it; no SAVEPOINT needed to undo it.
    assignment = await lifecycle.for_work(
        session, res, user, exercise, keep_expiry=False, latest=latest
    )
    async with in_flight_slot(res, user.id) as slot:
        submission = Submission(
            id=uuid.uuid4(),
            user_id=user.id,
            exercise_id=exercise.id,
            assignment_id=assignment.id,
            code=code,
            status="pending" if slot is not None else "rejected",
            passed=0,
            total=0,
            tests=[],
            stdout="",
            stderr="" if slot is not None else NOT_GRADED,
            duration_ms=0,
            tier="",
            created_at=res.clock.now(),
            graded_at=None,
        )
        made = await repository.add_submission(session, submission)
        if slot is None:
            cap = res.settings.submissions_in_flight
            raise TooManySubmissions(
                f"You already have {cap} submission{'s' if cap > 1 else ''} being graded; "
                f"this one is saved (submission {submission.id}) but not graded. "
                "Submit again once they are done.",
                retry_after=_retry_after(res),
                keep_changes=True,
            )
        try:
            # The checkpoint: from here on the learner's code survives whatever happens.
            await checkpoint(session)
            # Older submissions lose their code only once there are more than the history keeps.
            forget = made >= res.settings.submission_history
            return await _grade(session, res, user, exercise, assignment, submission, forget)
        except asyncio.CancelledError:
            # The request ended while grading, or as its code was committed (the client went
            # away): no verdict will come.
            await _interrupted(session, res, submission)
            raise


async def _grade(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise: Exercise,
    assignment: Assignment,
    submission: Submission,
    forget: bool,
) -> Graded:
    started = time.perf_counter()
    try:
        report = await grading.run(
            res.sandbox,
            language=cast(Language, exercise.language),
            code=submission.code,
            tests=exercise.tests,
            limits=effective_limits(
                server_limits(res.settings),
                time_limit_s=exercise.time_limit_s,
                memory_limit_mb=exercise.memory_limit_mb,
            ),
            owner=str(user.id),
        )
    except ServiceUnavailable as exc:
        # Busy or down: the code stays recorded, as an error the learner can resubmit.
        await _failed(session, res, submission, BUSY)
        exc.keep_changes = True
        raise
    except KoanError as exc:
        await _failed(session, res, submission, stored_text(exc.detail, 2000))
        exc.keep_changes = True
        raise
    except Exception:
        log.exception("grading.failed", submission_id=str(submission.id))
        metrics.grading_finished("error", "none", time.perf_counter() - started)
        await _failed(session, res, submission, FAILED)
        return Graded(submission, assignment)
    metrics.grading_finished(report.status, report.tier.name.lower(), time.perf_counter() - started)
    # No SAVEPOINT around the verdict: the checkpoint committed everything before it, so if
    # storing it fails, rolling the transaction back undoes exactly the verdict's work.
    try:
        unlocked = await lifecycle.attempted(
            session,
            res,
            user=user,
            exercise=exercise,
            assignment=assignment,
            submission=submission,
            verdict=_verdict(report, res.settings.submission_output_chars),
            graded_at=res.clock.now(),
            tests_ran=report.tests_ran,
        )
        if forget:
            await repository.forget_old_submissions(
                session, user.id, exercise.id, keep=res.settings.submission_history
            )
    except asyncio.CancelledError:
        # Ended while recording: nothing of the verdict is kept (submit records the error).
        await _undo_verdict(session, submission)
        raise
    except Exception as exc:
        gone = await _undo_verdict(session, user, exercise, submission, assignment)
        if gone is not None:
            # Deleted meanwhile, and the submission with it: the verdict has nowhere to go, and
            # there is nothing left to record as failed.
            if gone is user:
                raise NotFound(ACCOUNT_DELETED, code="AccountDeleted") from exc
            raise NotFound(EXERCISE_DELETED) from exc
        if not isinstance(exc, KoanError):
            log.exception("submission.store_failed", submission_id=str(submission.id))
        if isinstance(exc, KoanError):
            raise
        await _failed(session, res, submission, NOT_STORED)
        return Graded(submission, assignment)
    return Graded(submission, assignment, unlocked)


async def _undo_verdict(session: AsyncSession, *held: object) -> object | None:
    """Roll back what recording a verdict wrote (the checkpoint kept everything before it), and
    read back the rows the request still shows: the rollback expired every row it held. Returns
    the first of them that is gone (an account or exercise deleted while the code was graded)."""
    await session.rollback()
    for row in held:
        try:
            await session.refresh(row)
        except InvalidRequestError:  # no longer in the database
            return row
    return None


async def _interrupted(session: AsyncSession, res: Resources, submission: Submission) -> None:
    try:
        await _failed(session, res, submission, INTERRUPTED)
        await checkpoint(session)
    except Exception:
        # The cancellation cut the checkpoint's COMMIT short, and the session cannot go on: if
        # the code was stored all the same, the start-up sweep records it as interrupted.
        log.warning("submission.interruption_not_recorded", submission_id=str(submission.id))


async def _failed(session: AsyncSession, res: Resources, submission: Submission, why: str) -> None:
    await repository.set_submission(
        session, submission, status="error", stderr=why, graded_at=res.clock.now()
    )


# Longer than any grading run can take, so only submissions a crash interrupted match.
STALE_AFTER = timedelta(minutes=10)


async def fail_interrupted(session: AsyncSession, now: datetime) -> int:
    """Submissions a crash left pending are recorded as errors (the code is kept), at start-up."""
    return await repository.mark_stale_submissions(session, before=now - STALE_AFTER)
