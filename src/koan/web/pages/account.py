"""Progress and settings pages."""

from __future__ import annotations

from typing import Any, Literal, get_args

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from koan.auth import service as auth_service
from koan.auth.deps import AccountCloseCheckDep
from koan.auth.router import clear_auth_cookies
from koan.common.schemas import timezones
from koan.deps import ResourcesDep
from koan.errors import KoanError, RateLimited
from koan.models import User
from koan.onboarding import service as onboarding
from koan.onboarding.questions import INTEREST_TAGS, MAX_MINUTES, MIN_MINUTES
from koan.onboarding.schemas import Experience, Language, LearningStyle, ProfileUpdate
from koan.progress import service as progress_service
from koan.resources import Resources
from koan.usage import reports as usage_reports
from koan.users import service as users
from koan.users.schemas import UserUpdate
from koan.web.heatmap import QUARTER_WEEKS, YEAR_WEEKS, Day, first_day, heatmap_svg
from koan.web.pagekit import (
    PageAuth,
    PageUser,
    WebRoute,
    WebSession,
    field_errors,
    form_data,
    form_lists,
    redirect,
    render,
    small_int,
)
from koan.web.pages.onboarding import LABELS

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/progress")
async def progress_page(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Activity heat-map, skill mastery, streak, level history and achievements."""
    progress = await progress_service.overview(session, res, user)
    earned = await progress_service.achievement_list(session, res, user)
    today = progress.today
    year = await progress_service.history(
        session, res, user, start=first_day(today, YEAR_WEEKS), end=today
    )
    days = [Day(d.date, d.completed, d.attempts) for d in year.days]
    # A year where the card is wide enough, a quarter on a phone (the stylesheet picks one).
    heatmaps = {
        "year": heatmap_svg(days, today=today, weeks=YEAR_WEEKS, name="heatmap-year"),
        "quarter": heatmap_svg(days, today=today, weeks=QUARTER_WEEKS, name="heatmap-quarter"),
    }
    return render(
        request,
        "progress.html",
        {"progress": progress, "achievements": earned, "heatmaps": heatmaps},
    )


# --- settings ---------------------------------------------------------------------------------


async def _settings_context(
    session: WebSession, res: Resources, user: User, **extra: Any
) -> dict[str, Any]:
    me = await users.describe(session, user)
    profile = await onboarding.profile_of(session, user)
    learning = None
    if profile.onboarding_completed:
        learning = {
            "language": profile.language,
            "experience": profile.experience,
            "learning_style": profile.learning_style or "",
            "minutes_per_day": profile.minutes_per_day,
            "goals": profile.goals,
            "interests": list(profile.interests or []),
        }
    ctx: dict[str, Any] = {
        "me": me,
        "timezones": sorted(timezones()),
        "errors": {},
        "values": {"name": me.name, "timezone": me.timezone},
        "learning": learning,
        "choices": _LEARNING_CHOICES,
        "interest_tags": INTEREST_TAGS,
        "labels": LABELS,
        "minutes": (MIN_MINUTES, MAX_MINUTES),
        "saved": None,
        "usage": await usage_reports.my_usage(session, res, user),
    }
    ctx.update(extra)
    return ctx


_LEARNING_CHOICES = {
    "language": get_args(Language),
    "experience": get_args(Experience),
    "learning_style": get_args(LearningStyle),
}


@router.get("/settings")
async def settings_page(
    request: Request,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    saved: Literal["profile", "learning", "password", ""] = "",
) -> Response:
    """Profile, time zone, password, data export and account deletion."""
    ctx = await _settings_context(session, res, user, saved=saved or None)
    return render(request, "settings.html", ctx)


@router.get("/settings/{form}")
async def settings_form_address(request: Request, user: PageUser, form: str) -> Response:
    """A settings form's address opened directly (a reload after a refused form): the page."""
    return redirect(request, "/settings")


@router.post("/settings/profile")
async def save_profile(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    form = await form_data(request)
    values = {"name": form.get("name", ""), "timezone": form.get("timezone", "")}
    try:
        data = UserUpdate(name=values["name"], timezone=values["timezone"])
        await users.update(session, user, data)
    except ValidationError as exc:
        ctx = await _settings_context(session, res, user, errors=field_errors(exc), values=values)
        return render(request, "settings.html", ctx, status_code=422)
    return redirect(request, "/settings?saved=profile#profile")


@router.post("/settings/learning")
async def save_learning(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Language, experience, learning style, daily minutes and goals (the onboarding answers)."""
    form = await form_data(request)
    if not (await onboarding.profile_of(session, user)).onboarding_completed:
        ctx = await _settings_context(
            session, res, user, errors={"form": "Complete onboarding first: /onboarding."}
        )
        return render(request, "settings.html", ctx, status_code=409)
    fields = ("language", "experience", "learning_style", "minutes_per_day", "goals")
    values: dict[str, Any] = {name: form.get(name, "") for name in fields}
    minutes = values["minutes_per_day"].strip()
    whole_minutes = small_int(minutes)
    values["interests"] = (await form_lists(request)).get("interests", [])
    try:
        data = ProfileUpdate(
            language=values["language"],
            experience=values["experience"],
            learning_style=values["learning_style"] or None,
            minutes_per_day=minutes if whole_minutes is None else whole_minutes,
            goals=values["goals"],
            interests=values["interests"],
        )
        async with session.begin_nested():
            await onboarding.update_profile(session, user, data)
    except ValidationError as exc:
        ctx = await _settings_context(session, res, user, errors=field_errors(exc))
        ctx["learning"] = values
        return render(request, "settings.html", ctx, status_code=422)
    return redirect(request, "/settings?saved=learning#learning")


@router.post("/settings/password")
async def change_password(
    request: Request, auth: PageAuth, session: WebSession, res: ResourcesDep
) -> Response:
    user = auth.user
    form = await form_data(request)
    errors: dict[str, str] = {}
    refused: KoanError | None = None
    new = form.get("new_password", "")
    if not form.get("current_password"):
        errors["current_password"] = "Enter your current password."
    if not new:
        errors["new_password"] = "Choose a new password."
    elif new != form.get("password_confirm", new):
        errors["password_confirm"] = "The two passwords are not the same."
    if not errors:
        try:
            async with session.begin_nested():
                await auth_service.change_password(
                    session,
                    res,
                    user,
                    auth.session,
                    current_password=form.get("current_password", ""),
                    new_password=new,
                )
        except KoanError as exc:
            field = "new_password" if exc.code == "WeakPassword" else "current_password"
            errors[field] = exc.detail
            refused = exc
    if errors:
        return await _settings_refused(request, session, res, user, errors, refused)
    return redirect(request, "/settings?saved=password#password")


async def _settings_refused(
    request: Request,
    session: WebSession,
    res: Resources,
    user: User,
    errors: dict[str, str],
    refused: KoanError | None,
) -> Response:
    """The settings page again with its errors; a password asked too often keeps its 429."""
    ctx = await _settings_context(session, res, user, errors=errors)
    limited = isinstance(refused, RateLimited)
    response = render(request, "settings.html", ctx, status_code=429 if limited else 422)
    if limited and refused is not None and "Retry-After" in refused.headers:
        response.headers["Retry-After"] = refused.headers["Retry-After"]
    return response


@router.post("/settings/delete")
async def delete_account(
    request: Request,
    auth: PageAuth,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    check: AccountCloseCheckDep,
) -> Response:
    form = await form_data(request)
    errors: dict[str, str] = {}
    refused: KoanError | None = None
    if form.get("confirm") != "DELETE":
        errors["confirm"] = "Type DELETE in capitals to confirm."
    if not form.get("password"):
        errors["delete_password"] = "Enter your password."
    if not errors:
        try:
            async with session.begin_nested():
                await auth_service.delete_account(
                    session, res, user, auth.session, form.get("password", ""), check=check
                )
        except KoanError as exc:
            errors["delete_password"] = exc.detail
            refused = exc
    if errors:
        return await _settings_refused(request, session, res, user, errors, refused)
    response = redirect(request, "/?deleted=1")
    clear_auth_cookies(response)
    return response
