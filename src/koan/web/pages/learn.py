"""Dashboard, catalogue and the exercise page: run tests, take a hint, skip, resume."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from koan.classes import service as classes
from koan.classes.tutor import tutor_policy_for
from koan.deps import ResourcesDep
from koan.drafts import service as drafts
from koan.errors import KoanError, PayloadTooLarge
from koan.exercises import lifecycle
from koan.exercises import service as exercises
from koan.exercises.deps import DailyHooksDep, HintTailorDep
from koan.exercises.schemas import CatalogueSort, SubmissionIn, SubmissionOut
from koan.exercises.submit import submission_out, submit
from koan.models import Exercise, User
from koan.pagination import MAX_CURSOR_CHARS
from koan.progress import achievements
from koan.progress import service as progress_service
from koan.resources import Resources
from koan.web import kept as kept_forms
from koan.web.kept import KeptForm
from koan.web.pagekit import (
    LANGUAGE_NAMES,
    PageUser,
    WebRoute,
    WebSession,
    earlier_day,
    field_errors,
    form_data,
    parse_uuid,
    redirect,
    render,
    small_int,
)
from koan.web.pages.classes import STATUS_TEXT as CLASS_STATUS_TEXT

router = APIRouter(route_class=WebRoute, include_in_schema=False)

STATUS_TEXT = {
    "passed": "All tests passed",
    "failed": "Some tests failed",
    "error": "Your code raised an error",
    "timeout": "Your code took too long",
    "memory": "Your code used too much memory",
    "output_limit": "Your code printed too much",
    "pending": "Waiting for the grader",
    "rejected": "Not graded: earlier submissions were still running",
}
ASSIGNMENT_TEXT = {
    "assigned": "Not started",
    "in_progress": "In progress",
    "completed": "Completed",
    "skipped": "Skipped",
    "expired": "Expired",
}
# A run refused because the exercise is closed: the page's words (the API's name its route)
# and the button that opens it again.
NOT_GRADED = {
    "AssignmentSkipped": (
        "You skipped this exercise, so this run was not graded. Resume it to keep working on "
        "it: your code is kept.",
        "Resume this exercise",
    ),
    "AssignmentExpired": (
        "This exercise has expired, so this run was not graded. Start it again to keep "
        "working on it: your code is kept.",
        "Start it again",
    ),
}
# A hint refused for the same reason, in the page's words (the button is NOT_GRADED's).
NOT_HINTED = {
    "AssignmentSkipped": "You skipped this exercise, so no hint was shown. Resume it to see "
    "the next one.",
    "AssignmentExpired": "This exercise has expired, so no hint was shown. Start it again to "
    "keep working on it.",
}
DIFFICULTY = {1: "Warm-up", 2: "Easy", 3: "Medium", 4: "Hard", 5: "Expert"}
CATALOGUE_SORTS: dict[str, str] = {"difficulty": "Difficulty", "title": "Title", "skill": "Skill"}
WORK_TEXT = {"solved": "Solved", "skipped": "Skipped", "in_progress": "In progress"}
CLASS_WORK_SHOWN = 6


def _common() -> dict[str, Any]:
    return {
        "status_text": STATUS_TEXT,
        "assignment_text": ASSIGNMENT_TEXT,
        "difficulty": DIFFICULTY,
        "work_text": WORK_TEXT,
    }


@router.get("/dashboard")
async def dashboard(
    request: Request,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    hooks: DailyHooksDep,
    welcome: bool = False,
) -> Response:
    """Today's exercise and why it was chosen, streak, level, skills and recent achievements."""
    daily = None
    no_exercises = None
    try:
        async with session.begin_nested():
            daily = await exercises.daily(session, res, user, hooks)
    except KoanError as exc:
        if exc.code == "OnboardingRequired" and await classes.skips_onboarding(session, user):
            # Admins and instructors are not sent through the learner interview.
            no_exercises = (
                "Daily practice starts once you take the learner interview "
                "(Settings, or /onboarding), whenever you want to learn too."
            )
        elif exc.code != "NoExercises":
            raise
        else:
            no_exercises = exc.detail
    done_today = (
        await exercises.daily_done_today(session, res, user) if daily and daily.extra else None
    )
    progress = await progress_service.overview(session, res, user)
    earned = await progress_service.achievement_list(session, res, user)
    skipped, _ = await exercises.assignments_page(
        session, res, user, status="skipped", limit=5, cursor=None
    )
    class_work = [
        a
        for a in await classes.learner_assignments(session, res, user)
        if a.is_open or a.status not in ("passed", "late")
    ]
    return render(
        request,
        "dashboard.html",
        {
            **_common(),
            "daily": daily,
            "chosen_on": (
                earlier_day(daily.assigned_at, user.timezone, res.clock.now()) if daily else None
            ),
            "done_today": done_today,
            "no_exercises": no_exercises,
            "progress": progress,
            "recent_achievements": list(reversed(earned.earned))[:3],
            "skipped": skipped,
            "welcome": welcome,
            "class_work": class_work[:CLASS_WORK_SHOWN],
            "class_status_text": CLASS_STATUS_TEXT,
        },
    )


@router.get("/exercises")
async def catalogue(
    request: Request,
    user: PageUser,
    session: WebSession,
    language: Annotated[str, Query(max_length=40)] = "",
    difficulty: Annotated[str, Query(max_length=40)] = "",
    skill: Annotated[str, Query(max_length=80)] = "",
    q: Annotated[str, Query(max_length=100)] = "",
    sort: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Response:
    """Browse and practise any exercise, marked solved or skipped; search titles, sort, and
    filter (a filter that cannot match says so)."""
    notices: list[str] = []
    order: CatalogueSort = "difficulty"
    if sort in CATALOGUE_SORTS:
        order = cast(CatalogueSort, sort)
    elif sort:
        notices.append(
            "Exercises can be sorted by difficulty, title or skill: sorted by difficulty."
        )
    title = " ".join(q.split())
    language = language.strip().lower()
    if language and language not in LANGUAGE_NAMES:
        notices.append(f"Koan has no exercises in “{language}”: showing every language.")
        language = ""
    level = None
    if difficulty.strip():
        number = small_int(difficulty)
        if number is not None and 1 <= number <= 5:
            level = number
        else:
            notices.append("Difficulty goes from 1 to 5: showing every difficulty.")
        difficulty = str(level or "")
    skills = await exercises.skill_names(session)
    wanted = "-".join(skill.strip().lower().split())
    if wanted and wanted not in skills:
        notices.append(f"No exercise practises “{skill.strip()}”: pick a skill from the list.")
        wanted = ""
    page = await exercises.catalogue(
        session,
        user,
        language=language or None,
        skill=wanted or None,
        difficulty=level,
        title=title or None,
        sort=order,
        limit=20,
        cursor=cursor,
    )
    filters = {"language": language, "difficulty": difficulty, "skill": wanted, "q": title}
    return render(
        request,
        "catalogue.html",
        {
            **_common(),
            "page": page,
            "skills": skills,
            "notices": notices,
            "filters": {**filters, "sort": order},
            "sorts": CATALOGUE_SORTS,
            "more": urlencode({**{k: v for k, v in filters.items() if v}, "sort": order}),
        },
    )


async def _exercise(session: WebSession, exercise_id: str, user: User) -> Exercise:
    return await exercises.get_exercise(session, parse_uuid(exercise_id), user)


async def _exercise_context(
    session: WebSession,
    res: Resources,
    user: User,
    exercise: Exercise,
    *,
    code: str | None = None,
    kept: KeptForm | None = None,
) -> dict[str, Any]:
    assignment, latest = await exercises.latest_work(session, user, exercise)
    # Said on the page, in place of the chat box, before the learner types a question.
    policy = await tutor_policy_for(session, user, exercise.id, now=res.clock.now())
    tutor_off = None
    if policy is not None and policy.off:
        tutor_off = policy.off_reason or "Your class has switched the tutor off for now."
    draft = await drafts.find(session, user, exercise.id)
    # An open daily after the one finished today is an extra, as Today's page says.
    one_more = False
    if assignment is not None and assignment.kind == "daily" and assignment.status == "assigned":
        done = await exercises.daily_done_today(session, res, user)
        one_more = done is not None and done.id != assignment.id
    hints_used = assignment.hints_used if assignment else 0
    result = None
    if latest is not None and latest.status != "pending":
        result = submission_out(latest)
    # The editor opens on what the learner wrote last: the draft, or a run made after it.
    saved_at = None
    if code is None:
        if draft is not None and (latest is None or draft.updated_at >= latest.created_at):
            code, saved_at = draft.code, draft.updated_at
        elif latest is not None:
            code, saved_at = latest.code, latest.created_at
        else:
            code = exercise.starter_code
    # Code run while the login had lapsed, unless the learner has written or run since.
    restored = (
        kept is not None
        and kept.action == f"/exercises/{exercise.id}/run"
        and "code" in kept.fields
        and (saved_at is None or kept.kept_at > saved_at)
    )
    if restored and kept is not None:
        # As written then: a copy the browser kept from before it is older.
        code, saved_at = kept.fields["code"].replace("\r\n", "\n"), kept.kept_at
    return {
        **_common(),
        "exercise": exercises.detail(exercise),
        "assignment": assignment,
        "hints": await exercises.hints_taken(session, exercise, assignment),
        "hints_remaining": len(exercise.hints) - hints_used,
        "code": code,
        "saved_at_ms": int(saved_at.timestamp() * 1000) if saved_at else 0,
        # The saved draft the editor's saves build on: one saved since (another tab) is not
        # overwritten without the learner's say.
        "draft_at_ms": int(draft.updated_at.timestamp() * 1000) if draft else 0,
        # The server's clock as the page left it: the browser measures its own clock's offset
        # before comparing a copy it kept (its clock) with the saved one (the server's).
        "server_now_ms": int(res.clock.now().timestamp() * 1000),
        "result": result,
        "tutor_off": tutor_off,
        "one_more": one_more,
        "restored": restored,
        "chosen_on": (
            earlier_day(assignment.assigned_at, user.timezone, res.clock.now())
            if assignment is not None
            else None
        ),
    }


@router.get("/exercises/{exercise_id}")
async def exercise_page(
    request: Request,
    exercise_id: str,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    unlocked_codes: Annotated[str, Query(alias="unlocked", max_length=500)] = "",
    kept: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Statement, editor, tests, hints and the tutor, side by side."""
    exercise = await _exercise(session, exercise_id, user)
    kept_form = await kept_forms.take(request, res, kept) if kept else None
    ctx = await _exercise_context(session, res, user, exercise, kept=kept_form)
    until = lifecycle.resumable_until(ctx["assignment"]) if ctx["assignment"] else None
    ctx["resume_until"] = until if until and until > res.clock.now() else None
    if ctx["result"] is not None:
        ctx.update(_shared_error(ctx["result"]))
    # After a run without script (POST-redirect-GET), what it unlocked is celebrated here.
    unlocked = [code for code in unlocked_codes.split(",") if code in achievements.BY_CODE]
    ctx["celebrate"] = [achievements.describe(code) for code in unlocked]
    return render(request, "exercise.html", ctx)


def _results(
    request: Request,
    ctx: dict[str, Any],
    *,
    result: SubmissionOut | None = None,
    error: KoanError | str | None = None,
    status_code: int = 200,
) -> Response:
    ctx = {**ctx, "result": result, "run_error": error}
    if isinstance(error, KoanError):
        ctx["run_error"] = error.detail
        status_code = error.status_code
    if result is not None:
        ctx["celebrate"] = [achievements.describe(code) for code in result.achievements_unlocked]
        ctx.update(_shared_error(result))
    template = "partials/results.html" if request.headers.get("HX-Request") else "exercise.html"
    response = render(request, template, ctx, status_code=status_code)
    if isinstance(error, KoanError) and "Retry-After" in error.headers:
        response.headers["Retry-After"] = error.headers["Retry-After"]
    return response


_LEARNER_LINE = re.compile(r"solution\.(?:py|js|mjs)\D{0,12}?line (\d+)|solution\.(?:js|mjs):(\d+)")


def _shared_error(result: SubmissionOut) -> dict[str, Any]:
    """A failure every test shares (a syntax or import error) is shown once, not per test; the
    line of the learner's code it names is marked in the editor."""
    failing = [t for t in result.tests if t.status != "passed"]
    messages = {t.message for t in failing}
    shared = None
    if result.tests and len(failing) == len(result.tests) and len(messages) == 1:
        shared = messages.pop() or None
    line = _LEARNER_LINE.search(shared or (failing[0].message if failing else "") or result.stderr)
    return {
        "shared_error": shared,
        "error_line": int(line.group(1) or line.group(2)) if line else None,
    }


@router.post("/exercises/{exercise_id}/run")
async def run_tests(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Grade the code in the editor; HTMX swaps in the per-test results."""
    exercise, latest = await exercises.exercise_for_work(session, parse_uuid(exercise_id), user)
    code = (await form_data(request)).get("code", "").replace("\r\n", "\n")
    try:
        data = SubmissionIn(code=code)
    except ValidationError as exc:
        ctx = await _exercise_context(session, res, user, exercise, code=code)
        message = next(iter(field_errors(exc).values()), "Write some code first.")
        return _results(
            request, ctx, error=f"Your code {message[0].lower()}{message[1:]}", status_code=422
        )
    try:
        graded = await submit(session, res, user, exercise, data.code, latest=latest)
    except KoanError as exc:
        if exc.code == "AccountDeleted":
            raise  # deleted while the code was graded: nothing is left to keep it in
        if not request.headers.get("HX-Request") and not isinstance(exc, PayloadTooLarge):
            # Without script nothing else keeps the code: as the draft, it is what the page
            # opens on after the learner resumes, reloads or comes back. Code over the size
            # limit is no draft either: the page below shows it back to be cut down.
            await drafts.save(session, res, user, exercise.id, data.code)
        # What the refusal left (a submission kept as an error) is committed with the page.
        ctx = await _exercise_context(session, res, user, exercise, code=code)
        if exc.code in NOT_GRADED:
            message, ctx["start_offer"] = NOT_GRADED[exc.code]
            return _results(request, ctx, error=message, status_code=exc.status_code)
        return _results(request, ctx, error=exc)
    result = submission_out(graded.submission, graded.achievements_unlocked)
    if not request.headers.get("HX-Request"):
        # POST-redirect-GET: the page shows this run (the latest), and a reload does not grade
        # the code again.
        unlocked = ",".join(result.achievements_unlocked)
        query = "?" + urlencode({"unlocked": unlocked}) if unlocked else ""
        return redirect(request, f"/exercises/{exercise.id}{query}#results")
    ctx = await _exercise_context(session, res, user, exercise, code=code)
    return _results(request, ctx, result=result)


@router.post("/exercises/{exercise_id}/hint")
async def hint(
    request: Request,
    exercise_id: str,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    tailor: HintTailorDep,
) -> Response:
    """The next rung of the hint ladder."""
    exercise, latest = await exercises.exercise_for_work(
        session, parse_uuid(exercise_id), user, code=tailor is not None
    )
    error = None
    closed = None
    try:
        async with session.begin_nested():
            await exercises.next_hint(session, res, user, exercise, tailor, latest=latest)
    except KoanError as exc:
        error = NOT_HINTED.get(exc.code, exc.detail)
        closed = NOT_GRADED.get(exc.code)
    if error is None and not request.headers.get("HX-Request"):
        # POST-redirect-GET: a reload shows the hints instead of taking another one.
        return redirect(request, f"/exercises/{exercise.id}#hints-panel")
    ctx = await _exercise_context(session, res, user, exercise)
    ctx["hint_error"] = error
    ctx["start_offer"] = closed[1] if closed else None
    if request.headers.get("HX-Request"):
        return render(request, "partials/hints.html", ctx)
    return render(request, "exercise.html", ctx, status_code=409)


@router.get("/exercises/{exercise_id}/reset")
async def reset_form(
    request: Request, exercise_id: str, user: PageUser, session: WebSession
) -> Response:
    """Ask before the draft is thrown away (the page's script asks in place)."""
    exercise = await _exercise(session, exercise_id, user)
    return render(request, "reset.html", {"exercise": exercises.detail(exercise)})


@router.post("/exercises/{exercise_id}/reset")
async def reset(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Start again from the starter code: it replaces the draft, on every device."""
    exercise = await _exercise(session, exercise_id, user)
    await drafts.save(session, res, user, exercise.id, exercise.starter_code)
    return redirect(request, f"/exercises/{exercise.id}")


@router.post("/exercises/{exercise_id}/skip")
async def skip(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    exercise = await _exercise(session, exercise_id, user)
    await lifecycle.skip(session, res, user, exercise)
    return redirect(request, "/dashboard?skipped=1")


@router.post("/exercises/{exercise_id}/start")
async def start(
    request: Request, exercise_id: str, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    exercise = await _exercise(session, exercise_id, user)
    await lifecycle.start(session, res, user, exercise)
    return redirect(request, f"/exercises/{exercise.id}")


@router.get("/exercises/{exercise_id}/{action}")
async def exercise_form_address(
    request: Request, exercise_id: str, action: Literal["run", "hint", "skip", "start"],
    user: PageUser, kept: Annotated[str, Query(max_length=100)] = "",
) -> Response:  # fmt: skip
    """A form's address opened directly (a reload after a page the form showed, the way back
    from the login page with the code it kept): the exercise."""
    query = "?" + urlencode({kept_forms.QUERY: kept}) if kept else ""
    return redirect(request, f"/exercises/{parse_uuid(exercise_id)}{query}")
