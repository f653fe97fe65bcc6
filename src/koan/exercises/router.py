"""Exercise routes: catalogue, today's exercise, submissions, hints, skips, assignments."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Query, status

from koan.auth.deps import VerifiedUser
from koan.common.routing import KoanRouter
from koan.deps import ResourcesDep, SessionDep
from koan.exercises import lifecycle, service
from koan.exercises import submit as submitting
from koan.exercises.deps import DailyHooksDep, HintTailorDep
from koan.exercises.schemas import (
    AssignmentOut,
    AssignmentPage,
    CatalogueSort,
    DailyOut,
    ExerciseDetail,
    ExercisePage,
    HintOut,
    SubmissionIn,
    SubmissionOut,
    SubmissionPage,
    TakenHintsOut,
)
from koan.pagination import MAX_CURSOR_CHARS

router = KoanRouter(tags=["exercises"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=MAX_CURSOR_CHARS, description="From the previous page.")
]
AssignmentStatus = Literal["assigned", "in_progress", "completed", "skipped", "expired"]


@router.get("/exercises", response_model=ExercisePage)
async def catalogue(
    user: VerifiedUser,
    session: SessionDep,
    language: Literal["python", "javascript"] | None = None,
    skill: Annotated[
        str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9-]+$", description="Any case.")
    ] = None,
    difficulty: Annotated[int | None, Query(ge=1, le=5)] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Text the title contains, in any case.")
    ] = None,
    sort: Annotated[
        CatalogueSort, Query(description="Easiest first, by title, or by main skill.")
    ] = "difficulty",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ExercisePage:
    """Browse the exercise bank (easiest first unless sorted otherwise), each exercise marked
    with your work on it (solved, skipped, in progress)."""
    return await service.catalogue(
        session,
        user,
        language=language,
        skill=skill.lower() if skill else None,
        difficulty=difficulty,
        title=q.strip() if q and q.strip() else None,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )


@router.get("/exercises/daily", response_model=DailyOut)
async def daily(
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    hooks: DailyHooksDep,
) -> DailyOut:
    """Today's exercise: the open one, or a new one chosen for this learner."""
    return await service.daily(session, res, user, hooks)


@router.get("/exercises/{exercise_id}", response_model=ExerciseDetail)
async def get_exercise(
    exercise_id: uuid.UUID, user: VerifiedUser, session: SessionDep
) -> ExerciseDetail:
    """One exercise: statement and starter code (never the solution or the tests)."""
    return service.detail(await service.get_exercise(session, exercise_id, user))


@router.post("/exercises/{exercise_id}/start", response_model=AssignmentOut)
async def start(
    exercise_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> AssignmentOut:
    """Practise this exercise (or resume it within 48 hours of skipping it)."""
    exercise = await service.get_exercise(session, exercise_id, user)
    return service.assignment_out(await lifecycle.start(session, res, user, exercise))


@router.post(
    "/exercises/{exercise_id}/submissions",
    response_model=SubmissionOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "The assignment was skipped or has expired"},
        413: {"description": "More than 64 KB of code"},
        429: {
            "description": "Submitting too often, or too many submissions being graded "
            "(TooManySubmissions: the code is kept as a `rejected` submission; Retry-After)"
        },
        503: {"description": "The grader is busy (Retry-After)"},
    },
)
async def submit(
    exercise_id: uuid.UUID,
    data: SubmissionIn,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
) -> SubmissionOut:
    """Grade code against the exercise's tests; the submission is stored before grading."""
    exercise, latest = await service.exercise_for_work(session, exercise_id, user)
    graded = await submitting.submit(session, res, user, exercise, data.code, latest=latest)
    return submitting.submission_out(graded.submission, graded.achievements_unlocked)


@router.get("/exercises/{exercise_id}/submissions", response_model=SubmissionPage)
async def submissions(
    exercise_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> SubmissionPage:
    """The learner's own submissions for this exercise, newest first."""
    exercise = await service.get_exercise(session, exercise_id, user)
    return await service.submissions_page(session, user, exercise, limit=limit, cursor=cursor)


@router.post("/exercises/{exercise_id}/hints", response_model=HintOut)
async def hint(
    exercise_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    tailor: HintTailorDep,
) -> HintOut:
    """The next rung of the hint ladder, from a nudge to a near-solution."""
    exercise, latest = await service.exercise_for_work(
        session, exercise_id, user, code=tailor is not None
    )
    return await service.next_hint(session, res, user, exercise, tailor, latest=latest)


@router.get("/exercises/{exercise_id}/hints", response_model=TakenHintsOut)
async def hints(exercise_id: uuid.UUID, user: VerifiedUser, session: SessionDep) -> TakenHintsOut:
    """The hints taken so far on your current assignment of this exercise, in order, as you
    were shown them (a hint the tutor's model wrote for your code included)."""
    return await service.taken_hints_out(session, exercise_id, user)


@router.post("/exercises/{exercise_id}/skip", response_model=AssignmentOut)
async def skip(
    exercise_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> AssignmentOut:
    """Skip this exercise; it can be resumed for 48 hours, and tomorrow brings another."""
    exercise = await service.get_exercise(session, exercise_id, user)
    return service.assignment_out(await lifecycle.skip(session, res, user, exercise))


@router.get("/assignments", response_model=AssignmentPage)
async def assignments(
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    status: AssignmentStatus | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> AssignmentPage:
    """The learner's assignments, newest first (`status=skipped`: those still resumable)."""
    items, next_cursor = await service.assignments_page(
        session, res, user, status=status, limit=limit, cursor=cursor
    )
    return AssignmentPage(items=items, next_cursor=next_cursor)


@router.get("/assignments/{assignment_id}", response_model=AssignmentOut)
async def assignment(
    assignment_id: uuid.UUID, user: VerifiedUser, session: SessionDep
) -> AssignmentOut:
    """One of the learner's own assignments."""
    return service.assignment_out(await service.assignment_of(session, user, assignment_id))
