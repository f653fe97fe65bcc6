"""An assignment's whole life: opened, attempted, passed, skipped, resumed, expired.

Every change of an assignment's state goes through here, whether a verdict or the learner
caused it; the adaptive ratings and progress hear of it through their services.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import service as adaptive
from koan.errors import Conflict
from koan.exercises import repository
from koan.models import Assignment, Exercise, Submission, User
from koan.models.exercise import OPEN_STATUSES
from koan.onboarding import service as profiles
from koan.progress import service as progress
from koan.resources import Resources

# A skipped assignment can be resumed for this long; then it expires.
SKIP_KEEP = timedelta(hours=48)
# A daily assignment left open this long expires, and a new one is chosen.
DAILY_TTL = timedelta(days=7)


def resumable_until(assignment: Assignment) -> datetime | None:
    """Until when a skipped assignment can be resumed (None when it is not skipped)."""
    if assignment.status == "skipped" and assignment.skipped_at:
        return assignment.skipped_at + SKIP_KEEP
    return None


def _expire(assignment: Assignment, now: datetime) -> None:
    assignment.status = "expired"
    assignment.closed_at = now


async def open_daily(
    session: AsyncSession, user: User, exercise: Exercise, *, reason: str, now: datetime
) -> Assignment:
    """Open today's assignment; if another request opened one first, that one is returned."""
    assignment = Assignment(
        id=uuid.uuid4(),
        user_id=user.id,
        exercise_id=exercise.id,
        kind="daily",
        status="assigned",
        reason=reason[:300],
        hints_used=0,
        attempts=0,
        assigned_at=now,
        started_at=None,
        completed_at=None,
        skipped_at=None,
        closed_at=None,
    )
    if not await repository.add_open_daily(session, assignment):
        # Another request assigned one first; the database kept exactly one open.
        existing = await repository.open_daily(session, user.id)
        if existing is None:  # and it was closed since
            raise Conflict("Today's exercise changed meanwhile; ask again.", code="DailyChanged")
        return existing
    assignment.exercise = exercise
    return assignment


async def current_daily(
    session: AsyncSession, user: User, now: datetime, *, language: str
) -> tuple[Assignment | None, datetime | None]:
    """The learner's open daily assignment, and when they last completed a daily one. One left
    open too long expires instead, and so does one not yet touched in another language than
    `language`, the learner's (they changed it since): the next is in theirs."""
    assignment, last_done = await repository.open_daily_and_last_done(session, user.id)
    if assignment is None or not _stale(assignment, now, language):
        return assignment, last_done
    # Expired under the learner's lock, read again: verdicts are counted under it (see
    # `attempted`), and a pass recorded meanwhile must not be overwritten as expired.
    await progress.lock_learner(session, user)
    assignment, last_done = await repository.open_daily_and_last_done(session, user.id, fresh=True)
    if assignment is None or not _stale(assignment, now, language):
        return assignment, last_done
    _expire(assignment, now)
    await session.flush()
    return None, last_done


def _stale(assignment: Assignment, now: datetime, language: str) -> bool:
    """Whether an open daily assignment is due to expire (see `current_daily`)."""
    untouched = assignment.status == "assigned" and not (
        assignment.hints_used or assignment.attempts
    )
    untouched_elsewhere = untouched and assignment.exercise.language != language
    return assignment.assigned_at < now - DAILY_TTL or untouched_elsewhere


async def _open_practice(
    session: AsyncSession, user: User, exercise: Exercise, now: datetime
) -> Assignment:
    assignment = Assignment(
        user_id=user.id,
        exercise_id=exercise.id,
        kind="practice",
        status="assigned",
        reason="picked from the catalogue",
        assigned_at=now,
    )
    session.add(assignment)
    await session.flush()
    assignment.exercise = exercise
    return assignment


class Unread(Enum):
    """The learner's latest assignment of an exercise, not read yet (see `for_work`)."""

    UNREAD = 0


UNREAD = Unread.UNREAD


async def for_work(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise: Exercise,
    *,
    keep_expiry: bool = True,
    latest: Assignment | None | Literal[Unread.UNREAD] = UNREAD,
) -> Assignment:
    """The assignment a submission or hint belongs to; a practice one is opened if none.
    `latest`: the learner's latest assignment of the exercise, when the request has read it
    with the exercise (`service.exercise_for_work`).

    A skipped assignment past its 48 hours is refused as expired; with `keep_expiry` it is
    also recorded as expired first (False: the caller would undo that write anyway)."""
    if latest is UNREAD:
        latest = await repository.latest_assignment(session, user.id, exercise.id)
    now = res.clock.now()
    if latest is None:
        # Two first requests at once (a double click on "Run tests") would each open one:
        # under the learner's lock, the second finds the first's, whatever became of it.
        await progress.lock_learner(session, user)
        latest = await repository.latest_assignment(session, user.id, exercise.id)
    if latest is None:
        return await _open_practice(session, user, exercise, now)
    if latest.status == "skipped":
        if latest.skipped_at and latest.skipped_at < now - SKIP_KEEP:
            if not keep_expiry:
                raise _expired(exercise)
            _expire(latest, now)
            await session.flush()
        else:
            raise Conflict(
                "You skipped this exercise. Resume it with POST "
                f"/api/v1/exercises/{exercise.id}/start to keep working on it.",
                code="AssignmentSkipped",
            )
    if latest.status == "expired":
        raise _expired(exercise)
    return latest


def _expired(exercise: Exercise) -> Conflict:
    return Conflict(
        "This assignment has expired. Start the exercise again with POST "
        f"/api/v1/exercises/{exercise.id}/start.",
        code="AssignmentExpired",
    )


async def start(
    session: AsyncSession, res: Resources, user: User, exercise: Exercise
) -> Assignment:
    """Open (or resume) practice on an exercise outside the daily pick."""
    now = res.clock.now()
    await progress.lock_learner(session, user)  # one opening at a time (see `for_work`)
    latest = await repository.latest_assignment(session, user.id, exercise.id)
    if latest is not None and latest.status in OPEN_STATUSES:
        return latest
    if (
        latest is not None
        and latest.status == "skipped"
        and latest.skipped_at
        and latest.skipped_at >= now - SKIP_KEEP
    ):
        # A resumed daily becomes practice, so a new daily can still be assigned. Its
        # `closed_at` stays: the skip that closed it has been counted (see `skip`).
        latest.kind = "practice"
        latest.status = "in_progress" if latest.attempts else "assigned"
        latest.skipped_at = None
        await session.flush()
        return latest
    return await _open_practice(session, user, exercise, now)


async def skip(session: AsyncSession, res: Resources, user: User, exercise: Exercise) -> Assignment:
    """Close the open assignment as skipped; the ratings count it as a miss, once: not when
    the learner solved its exercise before, nor when they gave it up before (in another
    assignment, or in this one before resuming it): that says nothing new about them, nor
    about it."""
    # The learner's lock before the assignment is read, as for a verdict (see `attempted`): a
    # pass recorded meanwhile is then seen, not overwritten with a skip.
    await progress.lock_learner(session, user)
    latest = await repository.latest_assignment(session, user.id, exercise.id)
    if latest is None or latest.status not in OPEN_STATUSES:
        raise Conflict(
            "There is no open assignment of this exercise to skip.", code="NothingToSkip"
        )
    now = res.clock.now()
    # An open assignment closed before was skipped, then resumed (`start`).
    skipped_before = latest.closed_at is not None
    latest.status = "skipped"
    latest.skipped_at = now
    latest.closed_at = now
    await session.flush()
    if skipped_before or await repository.settled_before(session, latest):
        return latest  # nothing new (see `attempted`)
    await adaptive.record_outcome(
        session,
        user=user,
        profile=await profiles.profile_of(session, user),
        exercise=exercise,
        assignment=latest,
        passed=False,
        skipped=True,
        now=now,
    )
    await progress.on_assignment_skipped(session, res, user=user)
    return latest


async def expire_skipped(session: AsyncSession, res: Resources, user: User) -> None:
    """Skipped assignments kept past their time become expired."""
    await repository.expire_skipped(session, user.id, before=res.clock.now() - SKIP_KEEP)


async def attempted(
    session: AsyncSession,
    res: Resources,
    *,
    user: User,
    exercise: Exercise,
    assignment: Assignment,
    submission: Submission,
    verdict: dict[str, Any],
    graded_at: datetime,
    tests_ran: bool = True,
) -> list[str]:
    """Record a stored submission's verdict (`verdict`: the columns it sets) and count it as
    an attempt (a pass completes the assignment); return the codes of the achievements the
    attempt unlocked. `assignment` and `submission` take their new state.

    A run whose code could not load (`tests_ran` false: a syntax or import error) is recorded
    but is not an attempt, so it does not cost the learner a first-try pass.
    """
    # One learner's verdicts are counted one after another (ratings, streaks, awards), and the
    # lock comes before the count: two first submissions at once may each have opened an
    # assignment of the exercise, and the second pass must see the first as solved before.
    await progress.lock_learner(session, user)
    counted = await repository.count_attempt(
        session,
        assignment,
        exercise,
        submission,
        {**verdict, "graded_at": graded_at},
        counted=tests_ran,
        completes_at=graded_at if verdict["status"] == "passed" else None,
    )
    # Only the first time a learner solves an exercise tells the ratings something: passing it
    # again (with the code they wrote before at hand) would raise their skills and lower the
    # exercise's difficulty for everyone, as often as they liked.
    if counted.completed and not counted.solved_before:
        await adaptive.record_outcome(
            session,
            user=user,
            profile=await profiles.profile_of(session, user),
            exercise=exercise,
            assignment=assignment,
            passed=True,
            skipped=False,
            now=graded_at,
        )
    # After the adaptive update, so level and mastery include this attempt.
    return await progress.on_submission_graded(
        session, res, user=user, submission=submission, assignment=assignment, exercise=exercise,
        tests_ran=tests_ran,
    )  # fmt: skip
