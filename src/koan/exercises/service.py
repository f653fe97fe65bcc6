"""The rules of practice: catalogue, today's exercise, hints and the learner's lists."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import service as adaptive
from koan.adaptive.service import Refill
from koan.errors import Conflict, NotFound
from koan.exercises import lifecycle, repository
from koan.exercises.schemas import (
    AssignmentOut,
    CatalogueItem,
    CatalogueSort,
    DailyOut,
    ExerciseDetail,
    ExercisePage,
    ExerciseSummary,
    HintOut,
    SubmissionPage,
    SubmissionSummary,
    TakenHintOut,
    TakenHintsOut,
    WorkMark,
)
from koan.models import Assignment, Exercise, Submission, User
from koan.onboarding import service as profiles
from koan.pagination import NewestFirstKey, decode_cursor, decode_newest_first, next_cursor
from koan.progress import service as progress
from koan.progress import streaks
from koan.resources import Resources

# Asked to write the exercise the bank lacked for a learner (after the response has gone).
RefillHook = Callable[[uuid.UUID, Refill], Awaitable[object]]
# The exercises of a learner's open class assignments (classes sits above exercises).
ClassWork = Callable[[AsyncSession, uuid.UUID, datetime], Awaitable[set[uuid.UUID]]]


@dataclass(frozen=True)
class DailyHooks:
    """What the daily pick asks of the domains above exercises; the app wires them in."""

    refill: RefillHook
    class_work: ClassWork


@dataclass(frozen=True)
class TakenHint:
    """A hint the learner has taken, as they were shown it."""

    text: str
    # Written by the tutor's model for their code (kept with the assignment), not authored:
    # shown as the model's other text is, links off.
    tailored: bool


class HintTailor(Protocol):
    """Rewrites hint number `rung` (0-based) for the learner's latest code, or returns
    `authored`. The tutor provides it (chat sits above exercises); the app wires it in."""

    async def __call__(
        self,
        session: AsyncSession,
        res: Resources,
        user: User,
        exercise: Exercise,
        *,
        rung: int,
        authored: str,
    ) -> str: ...


def detail(exercise: Exercise) -> ExerciseDetail:
    return ExerciseDetail(
        id=exercise.id,
        slug=exercise.slug,
        title=exercise.title,
        language=exercise.language,
        difficulty=exercise.difficulty,
        skills=list(exercise.skills),
        statement=exercise.statement,
        starter_code=exercise.starter_code,
        hints_total=len(exercise.hints),
        time_limit_s=exercise.time_limit_s,
        memory_limit_mb=exercise.memory_limit_mb,
        authored=exercise.authored,
    )


def assignment_out(assignment: Assignment) -> AssignmentOut:
    return AssignmentOut(
        id=assignment.id,
        kind=assignment.kind,
        status=assignment.status,
        reason=assignment.reason,
        hints_used=assignment.hints_used,
        attempts=assignment.attempts,
        assigned_at=assignment.assigned_at,
        completed_at=assignment.completed_at,
        skipped_at=assignment.skipped_at,
        available_until=lifecycle.resumable_until(assignment),
        exercise=ExerciseSummary.model_validate(assignment.exercise),
    )


def _newest_first(cursor: str | None) -> NewestFirstKey | None:
    return decode_newest_first(cursor) if cursor else None


def _sees_everything(user: User) -> bool:
    # Admins see every exercise, so they can review generated ones before approving them.
    return user.role == "admin"


def work_mark(statuses: Sequence[tuple[str, datetime | None]]) -> WorkMark | None:
    """What a learner's assignments of one exercise (oldest first: status, skipped at) say
    about it: solved once any passed, else what the latest one says."""
    if any(status == "completed" for status, _ in statuses):
        return "solved"
    if not statuses:
        return None
    status, skipped_at = statuses[-1]
    if status == "skipped" or (status == "expired" and skipped_at is not None):
        return "skipped"
    return "in_progress" if status == "in_progress" else None


def _catalogue_key(sort: CatalogueSort, exercise: Exercise) -> tuple[str | int, ...]:
    if sort == "title":
        return (exercise.title, exercise.slug)
    if sort == "skill":
        return (exercise.skills[0] if exercise.skills else "", exercise.difficulty, exercise.slug)
    return (exercise.difficulty, exercise.slug)


_CURSOR_KINDS: dict[str, tuple[type, ...]] = {
    "difficulty": (int, str),
    "title": (str, str),
    "skill": (str, int, str),
}


async def catalogue(
    session: AsyncSession,
    user: User,
    *,
    language: str | None,
    skill: str | None,
    difficulty: int | None,
    title: str | None = None,
    sort: CatalogueSort = "difficulty",
    limit: int,
    cursor: str | None,
) -> ExercisePage:
    """A page of the exercises this learner may see, each marked with their work on it."""
    after = decode_cursor(cursor, *_CURSOR_KINDS[sort]) if cursor else None
    rows = await repository.catalogue(
        session,
        language=language,
        skill=skill,
        difficulty=difficulty,
        title=title,
        sort=sort,
        after=after,
        limit=limit + 1,
        viewer=user.id,
        everything=_sees_everything(user),
    )
    shown = rows[:limit]
    work: dict[uuid.UUID, list[tuple[str, datetime | None]]] = {}
    for exercise_id, status, skipped_at in await repository.work_on(
        session, user.id, [e.id for e in shown]
    ):
        work.setdefault(exercise_id, []).append((status, skipped_at))
    items = [
        CatalogueItem(
            **ExerciseSummary.model_validate(e).model_dump(),
            progress=work_mark(work.get(e.id, [])),
        )
        for e in shown
    ]
    return ExercisePage(
        items=items, next_cursor=next_cursor(rows, limit, lambda e: _catalogue_key(sort, e))
    )


async def get_exercise(session: AsyncSession, exercise_id: uuid.UUID, user: User) -> Exercise:
    """The exercise, if this learner may see it (a generated one not approved yet is its
    requester's alone): otherwise 404, as if it did not exist."""
    exercise = await repository.visible_exercise(
        session, exercise_id, user.id, everything=_sees_everything(user)
    )
    if exercise is None:
        raise NotFound("There is no exercise with this id.")
    return exercise


async def exercise_for_work(
    session: AsyncSession, exercise_id: uuid.UUID, user: User, *, code: bool = False
) -> tuple[Exercise, Assignment | None]:
    """`get_exercise`, and the learner's latest assignment of it (read with it), which a
    submission or a hint then works in (`lifecycle.for_work`); with `code`, their latest
    submission too, for what tailors a hint to it (`repository.latest_submission` then
    answers without reading it again)."""
    found = await repository.visible_exercise_and_latest(
        session, exercise_id, user.id, everything=_sees_everything(user), submission=code
    )
    if found is None:
        raise NotFound("There is no exercise with this id.")
    return found


async def daily(
    session: AsyncSession,
    res: Resources,
    user: User,
    hooks: DailyHooks,
) -> DailyOut:
    """The learner's open daily assignment, or a newly chosen one. A poor fit (nothing new at
    the learner's level) is handed to `hooks.refill`: writing the exercise the bank lacked."""
    now = res.clock.now()
    profile = await profiles.profile_of(session, user)
    if not profile.onboarding_completed:
        raise Conflict(
            "Finish the onboarding interview first, so Koan knows what to give you.",
            code="OnboardingRequired",
        )
    language = profile.language or "python"
    assignment, last_done = await lifecycle.current_daily(session, user, now, language=language)
    if assignment is None:
        assignment = await _assign_daily(session, res, user, now, hooks)
    return DailyOut(
        assignment_id=assignment.id,
        status=assignment.status,
        hints_used=assignment.hints_used,
        reason=assignment.reason,
        assigned_at=assignment.assigned_at,
        # An open daily is never the completed one: finishing today's makes this one more.
        extra=last_done is not None and await _done_today(session, user, last_done, now),
        exercise=detail(assignment.exercise),
    )


async def daily_done_today(
    session: AsyncSession, res: Resources, user: User
) -> AssignmentOut | None:
    """The daily exercise the learner completed today (on their own clock), if any: the next
    daily is then an extra, not today's."""
    found = await repository.last_completed_daily(session, user.id)
    if found is None:
        return None
    done, done_at = found
    if not await _done_today(session, user, done_at, res.clock.now()):
        return None
    return assignment_out(done)


async def _done_today(session: AsyncSession, user: User, done_at: datetime, now: datetime) -> bool:
    """Whether work done at `done_at` was done today, as the learner's streak counts it."""
    if streaks.local_day(done_at, user.timezone) != streaks.local_day(now, user.timezone):
        return False
    # The same day on today's clock, yet after a move east it may have been lived the day
    # before: progress keeps each completion on the day it was lived on.
    return await progress.active_today(session, user, now)


async def _assign_daily(
    session: AsyncSession,
    res: Resources,
    user: User,
    now: datetime,
    hooks: DailyHooks,
) -> Assignment:
    profile = await profiles.profile_of(session, user)
    bank = await repository.daily_bank(
        session, language=profile.language or "python", viewer=user.id
    )
    # Work a class has set is done as class work; the daily exercise leaves it alone (unless
    # class work is all the bank has left).
    class_work = await hooks.class_work(session, user.id, now)
    bank = [e for e in bank if e.id not in class_work] or bank
    history = {e.id: (e.last_given, e.completed) for e in bank if e.last_given is not None}
    pick = await adaptive.choose_daily(
        session,
        user,
        profile,
        bank,
        history,
        given=bank[0].given if bank else 0,
        now=now,
        target=res.settings.adaptive_target_success,
    )
    if pick is None:
        raise NotFound(
            "There are no exercises for your language yet; ask an administrator to import some.",
            code="NoExercises",
        )
    refill = adaptive.refill_for(pick, target=res.settings.adaptive_target_success)
    if refill is not None:
        await hooks.refill(user.id, refill)
    exercise = await repository.exercise_by_id(session, pick.exercise.id)
    if exercise is None:  # deleted since the bank was read
        raise NotFound("Today's exercise was just removed; ask again.", code="NoExercises")
    return await lifecycle.open_daily(session, user, exercise, reason=pick.reason, now=now)


async def next_hint(
    session: AsyncSession,
    res: Resources,
    user: User,
    exercise: Exercise,
    tailor: HintTailor | None = None,
    *,
    latest: Assignment | None | Literal[lifecycle.Unread.UNREAD] = lifecycle.UNREAD,
) -> HintOut:
    """The next rung of the hint ladder, counted as used; `tailor` may rewrite it for the
    learner's latest code (the tutor's model), the authored rung being the fallback.
    `latest`: as `lifecycle.for_work` takes it."""
    assignment = await lifecycle.for_work(session, res, user, exercise, latest=latest)
    total = len(exercise.hints)
    if assignment.hints_used >= total:
        raise Conflict(
            "You have seen every hint for this exercise, and you have passed it."
            if assignment.status == "completed"
            else "You have seen every hint for this exercise. Ask the tutor, or look again at "
            "the failing test's message.",
            code="NoMoreHints",
        )
    rung = assignment.hints_used
    hint = exercise.hints[rung]
    if tailor is not None:
        hint = await tailor(session, res, user, exercise, rung=rung, authored=hint)
    seen = await repository.count_hint_shown(session, assignment, rung + 1)
    if hint != exercise.hints[rung]:
        # What the learner was shown (and charged for) is what the page shows from now on.
        await repository.keep_hint(session, assignment.id, rung, hint, now=res.clock.now())
    return HintOut(hint=hint, index=rung + 1, remaining=max(total - seen, 0))


async def hints_taken(
    session: AsyncSession, exercise: Exercise, assignment: Assignment | None
) -> list[TakenHint]:
    """The hints taken in the assignment, in order: each rung the model tailored as it was
    shown, the others as authored. Nothing is read before a hint is taken."""
    used = assignment.hints_used if assignment is not None else 0
    if assignment is None or used == 0:
        return []
    kept = await repository.kept_hints(session, assignment.id)
    return [
        TakenHint(text=kept.get(rung, authored), tailored=rung in kept)
        for rung, authored in enumerate(exercise.hints[:used])
    ]


async def taken_hints_out(
    session: AsyncSession, exercise_id: uuid.UUID, user: User
) -> TakenHintsOut:
    """The hints taken on the learner's latest assignment of a visible exercise (the one a
    hint is given in), as they were shown; 404 as `get_exercise`."""
    exercise, latest = await exercise_for_work(session, exercise_id, user)
    taken = await hints_taken(session, exercise, latest)
    used = latest.hints_used if latest is not None else 0
    return TakenHintsOut(
        items=[
            TakenHintOut(index=n, text=hint.text, tailored=hint.tailored)
            for n, hint in enumerate(taken, 1)
        ],
        remaining=max(len(exercise.hints) - used, 0),
    )


async def assignments_page(
    session: AsyncSession,
    res: Resources,
    user: User,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AssignmentOut], str | None]:
    await lifecycle.expire_skipped(session, res, user)
    rows = await repository.assignments(
        session, user.id, status=status, skipped_since=res.clock.now() - lifecycle.SKIP_KEEP,
        before=_newest_first(cursor), limit=limit + 1,
    )  # fmt: skip
    items = [assignment_out(a) for a in rows[:limit]]
    return items, next_cursor(rows, limit, lambda a: (a.assigned_at, a.id))


async def submissions_page(
    session: AsyncSession, user: User, exercise: Exercise, *, limit: int, cursor: str | None
) -> SubmissionPage:
    rows = await repository.submissions(
        session, user.id, exercise.id, before=_newest_first(cursor), limit=limit + 1
    )
    items = [SubmissionSummary.model_validate(s) for s in rows[:limit]]
    return SubmissionPage(
        items=items, next_cursor=next_cursor(rows, limit, lambda s: (s.created_at, s.id))
    )


async def assignment_of(session: AsyncSession, user: User, assignment_id: uuid.UUID) -> Assignment:
    found = await repository.assignment_by_id(session, assignment_id)
    if found is None or found.user_id != user.id:
        raise NotFound("There is no assignment with this id.")
    return found


async def latest_work(
    session: AsyncSession, user: User, exercise: Exercise
) -> tuple[Assignment | None, Submission | None]:
    """The learner's latest assignment of an exercise and latest submission to it."""
    return (
        await repository.latest_assignment(session, user.id, exercise.id),
        await repository.latest_submission(session, user.id, exercise.id),
    )


async def skill_names(session: AsyncSession) -> list[str]:
    """Every skill some exercise practises (the catalogue's skill filter offers these)."""
    return await repository.skill_names(session)
