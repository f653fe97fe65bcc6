"""The onboarding interview: one question per page, resumable, with a progress indicator."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from koan.common.schemas import timezones
from koan.deps import ResourcesDep
from koan.errors import KoanError
from koan.models import User
from koan.onboarding import service as onboarding
from koan.onboarding.questions import QUESTIONS, Question
from koan.onboarding.schemas import AnswersInput
from koan.web import kept as kept_forms
from koan.web.pagekit import (
    PageUser,
    WebRoute,
    WebSession,
    field_errors,
    form_lists,
    redirect,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

_BY_ID = {q.id: q for q in QUESTIONS}

LABELS: dict[str, str] = {
    "python": "Python",
    "javascript": "JavaScript",
    "beginner": "Beginner: I am new to programming",
    "intermediate": "Intermediate: I have written small programs",
    "advanced": "Advanced: I program regularly",
    "examples": "From worked examples",
    "challenges": "From challenges",
    "explanations": "From explanations",
    "mixed": "A mix of everything",
}


def _resume_at(answers: dict[str, Any]) -> Question | None:
    """The first question never visited, or a required one still unanswered."""
    for question in QUESTIONS:
        value = answers.get(question.id)
        if question.id not in answers or (question.required and value in (None, "", [])):
            return question
    return None


def _index(question: Question) -> int:
    return QUESTIONS.index(question)


def _parse(question: Question, form: dict[str, list[str]]) -> object:
    """The form's answer to `question` as the API would receive it."""
    values = [v.strip() for v in form.get("answer", [])]
    if question.kind == "tags":
        tags = [v for v in values if v]
        for extra in form.get("answer_other", []):
            tags.extend(t.strip() for t in extra.split(",") if t.strip())
        return tags
    value = values[-1] if values else ""
    if question.kind == "number":
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            return value  # pydantic says what is wrong
    return value or None


def _context(
    user: User, question: Question, answers: dict[str, Any], error: str | None = None
) -> dict[str, Any]:
    index = _index(question)
    answered = sum(1 for q in QUESTIONS if answers.get(q.id) not in (None, "", []))
    current = answers.get(question.id)
    if question.kind == "timezone" and not current:
        current = user.timezone if user.timezone != "UTC" else ""
    return {
        "question": question,
        "number": index + 1,
        "total": len(QUESTIONS),
        "answered": answered,
        "previous": QUESTIONS[index - 1].id if index > 0 else None,
        "current": current,
        "labels": LABELS,
        "timezones": sorted(timezones()) if question.kind == "timezone" else [],
        "error": error,
        "is_last": index == len(QUESTIONS) - 1,
    }


@router.get("/onboarding")
async def interview(
    request: Request,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    step: Annotated[str | None, Query(max_length=40)] = None,
    kept: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Show the question at `step`, or where the learner stopped last time; `kept` names an
    answer sent while the login had lapsed, shown again unsaved."""
    profile = await onboarding.profile_of(session, user)
    if profile.onboarding_completed:
        return redirect(request, "/dashboard")
    answers = dict(profile.answers or {})
    question = _BY_ID.get(step or "") or _resume_at(answers) or QUESTIONS[-1]
    restored = False
    form = await kept_forms.take(request, res, kept) if kept else None
    if form is not None and form.action == "/onboarding":
        asked = _BY_ID.get(form.fields.get("question", ""))
        # One value per field is kept: a list of tags does not come back.
        if asked is not None and asked.kind != "tags" and form.fields.get("answer", "").strip():
            question, restored = asked, True
            answers[asked.id] = form.fields["answer"].replace("\r\n", "\n")
    ctx = _context(user, question, answers)
    ctx["restored"] = restored
    return render(request, "onboarding.html", ctx)


@router.post("/onboarding")
async def answer(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    form = await form_lists(request)
    question = _BY_ID.get((form.get("question") or [""])[-1])
    if question is None:
        return redirect(request, "/onboarding")
    profile = await onboarding.profile_of(session, user)
    if profile.onboarding_completed:
        return redirect(request, "/dashboard")
    value = _parse(question, form)
    answers = dict(profile.answers or {})
    if value in (None, "", []) and question.required:
        ctx = _context(user, question, answers, "Please answer this question to continue.")
        return render(request, "onboarding.html", ctx, status_code=422)
    try:
        status = await onboarding.save_answers(
            session, user, AnswersInput.model_validate({question.id: value})
        )
    except ValidationError as exc:
        message = next(iter(field_errors(exc).values()), "Please check this answer.")
        if question.kind == "number":
            low, high = question.limits.get("min"), question.limits.get("max")
            message = f"Enter a whole number of minutes from {low} to {high}."
        ctx = _context(user, question, {**answers, question.id: value}, message)
        return render(request, "onboarding.html", ctx, status_code=422)
    index = _index(question)
    if index + 1 < len(QUESTIONS):
        # Forward in order, so a revisited question leads on to the next one.
        return redirect(request, f"/onboarding?step={QUESTIONS[index + 1].id}")
    missing = _resume_at(status.answers)
    if missing is not None:
        return redirect(request, f"/onboarding?step={missing.id}")
    try:
        async with session.begin_nested():
            await onboarding.complete(session, res, user)
    except KoanError as exc:
        first = _resume_at(status.answers) or QUESTIONS[0]
        ctx = _context(user, first, status.answers, exc.detail)
        return render(request, "onboarding.html", ctx, status_code=422)
    return redirect(request, "/dashboard?welcome=1")
