"""Dashboard, catalogue and the exercise page: run tests, take a hint, skip, resume."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from pydantic import ValidationError

from koan.deps import ResourcesDep, SessionOpenerDep
from koan.errors import KoanError, NotFound
from koan.exercises import repository as exercise_repository
from koan.exercises import service as exercises
from koan.exercises.schemas import SubmissionIn, SubmissionOut
from koan.grading import service as grading
from koan.models import Exercise, User
from koan.web import integrations
from koan.web.core import (
    PageUser,
    WebRoute,
    WebSession,
    field_errors,
    form_data,
    parse_uuid,
    redirect,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
T = TypeVar("T")

STATUS_TEXT = {
    "passed": "All tests passed",
    "failed": "Some tests failed",
    "error": "Your code raised an error",
    "timeout": "Your code took too long",
    "memory": "Your code used too much memory",
    "output_limit": "Your code printed too much",
    "pending": "Waiting for the grader",
}
ASSIGNMENT_TEXT = {
    "assigned": "Not started",
    "in_progress": "In progress",
    "completed": "Completed",
    "skipped": "Skipped",
    "expired": "Expired",
}
DIFFICULTY = {1: "Warm-up", 2: "Easy", 3: "Medium", 4: "Hard", 5: "Expert"}


def _common() -> dict[str, Any]:
    return {
        "status_text": STATUS_TEXT,
        "assignment_text": ASSIGNMENT_TEXT,
        "difficulty": DIFFICULTY,
    }


@router.get("/dashboard")
async def dashboard(
    request: Request,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    open_session: SessionOpenerDep,
    tasks: BackgroundTasks,
    welcome: bool = False,
) -> Response:
    """Today's exercise and why it was chosen, streak, level, skills and recent achievements."""
    daily = None
    no_exercises = None
    try:
        async with session.begin_nested():
            daily = await exercises.daily(session, res, user, open_session, tasks)
    except KoanError as exc:
        if exc.code != "NoExercises":
            raise
        no_exercises = exc.detail
    progress = await integrations.progress_overview(session, res, user)
    earned = await integrations.achievements(session, res, user)
    skipped, _ = await exercises.assignments_page(
        session, res, user, status="skipped", limit=5, cursor=None
    )
    return render(
        request,
        "dashboard.html",
        {
            **_common(),
            "daily": daily,
            "no_exercises": no_exercises,
            "progress": progress,
            "recent_achievements": list(reversed(earned.earned))[:3] if earned else [],
            "skipped": skipped,
            "welcome": welcome,
        },
    )


@router.get("/exercises")
async def catalogue(
    request: Request,
    user: PageUser,
    session: WebSession,
    language: Literal["python", "javascript", ""] = "",
    difficulty: Annotated[str, Query(max_length=1)] = "",
    skill: Annotated[str, Query(max_length=40, pattern=r"^[a-z0-9-]*$")] = "",
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Browse and practise any exercise."""
    level = int(difficulty) if difficulty.isdigit() and 1 <= int(difficulty) <= 5 else None
    page = await exercises.catalogue(
        session,
        language=language or None,
        skill=skill or None,
        difficulty=level,
        limit=20,
        cursor=cursor,
    )
    return render(
        request,
        "catalogue.html",
        {
            **_common(),
            "page": page,
            "filters": {"language": language, "difficulty": difficulty, "skill": skill},
        },
    )


async def _exercise(session: WebSession, exercise_id: str) -> Exercise:
    return await exercises.get_exercise(session, parse_uuid(exercise_id))


async def _exercise_context(
    session: WebSession, user: User, exercise: Exercise, *, code: str | None = None
) -> dict[str, Any]:
    assignment = await exercise_repository.latest_assignment(session, user.id, exercise.id)
    latest = await exercise_repository.latest_submission(session, user.id, exercise.id)
    hints_used = assignment.hints_used if assignment else 0
    result = None
    if latest is not None and latest.status != "pending":
        result = grading.submission_out(latest)
    return {
        **_common(),
        "exercise": exercises.detail(exercise),
        "assignment": assignment,
        "hints": list(exercise.hints[:hints_used]),
        "hints_remaining": len(exercise.hints) - hints_used,
        "code": code if code is not None else (latest.code if latest else exercise.starter_code),
        "result": result,
        "chat_available": integrations.chat_available(),
    }


@router.get("/exercises/{exercise_id}")
async def exercise_page(
    request: Request, exercise_id: str, user: PageUser, session: WebSession
) -> Response:
    """Statement, editor, tests, hints and the tutor, side by side."""
    exercise = await _exercise(session, exercise_id)
    return render(request, "exercise.html", await _exercise_context(session, user, exercise))


def _results(
    request: Request,
    ctx: dict[str, Any],
    *,
    result: SubmissionOut | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    ctx = {**ctx, "result": result, "run_error": error}
    if result is not None:
        ctx["celebrate"] = integrations.achievement_titles(result.achievements_unlocked)
    template = "partials/results.html" if request.headers.get("HX-Request") else "exercise.html"
    return render(request, template, ctx, status_code=status_code)


async def _reload(session: WebSession, model: type[T], key: uuid.UUID) -> T:
    found = await session.get(model, key, populate_existing=True)
    if found is None:
        raise NotFound("There is nothing at this address.")
    return found


@router.post("/exercises/{exercise_id}/run")
async def run_tests(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Grade the code in the editor; HTMX swaps in the per-test results."""
    exercise = await _exercise(session, exercise_id)
    ids = (user.id, exercise.id)
    code = (await form_data(request)).get("code", "").replace("\r\n", "\n")
    try:
        data = SubmissionIn(code=code)
    except ValidationError as exc:
        ctx = await _exercise_context(session, user, exercise, code=code)
        message = next(iter(field_errors(exc).values()), "Write some code first.")
        return _results(
            request, ctx, error=f"Your code {message[0].lower()}{message[1:]}", status_code=422
        )
    try:
        result = await integrations.submit(session, res, user, exercise, data.code)
    except KoanError as exc:
        if exc.keep_changes:
            await session.commit()
        else:
            await session.rollback()  # expires every loaded row: load them again
        user = await _reload(session, User, ids[0])
        exercise = await _reload(session, Exercise, ids[1])
        ctx = await _exercise_context(session, user, exercise, code=code)
        return _results(request, ctx, error=exc.detail, status_code=exc.status_code)
    ctx = await _exercise_context(session, user, exercise, code=code)
    return _results(request, ctx, result=result)


@router.post("/exercises/{exercise_id}/hint")
async def hint(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """The next rung of the hint ladder."""
    exercise = await _exercise(session, exercise_id)
    error = None
    try:
        async with session.begin_nested():
            await exercises.next_hint(session, res, user, exercise)
    except KoanError as exc:
        error = exc.detail
    ctx = await _exercise_context(session, user, exercise)
    ctx["hint_error"] = error
    if request.headers.get("HX-Request"):
        return render(request, "partials/hints.html", ctx)
    return render(request, "exercise.html", ctx)


@router.post("/exercises/{exercise_id}/skip")
async def skip(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    exercise = await _exercise(session, exercise_id)
    await exercises.skip(session, res, user, exercise)
    return redirect(request, "/dashboard?skipped=1")


@router.post("/exercises/{exercise_id}/start")
async def start(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    exercise = await _exercise(session, exercise_id)
    await exercises.start(session, res, user, exercise)
    return redirect(request, f"/exercises/{exercise.id}")
