"""Landing, sign-up, log-in, email verification and password reset pages."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from koan.auth import repository as auth_repository
from koan.auth import service as auth_service
from koan.auth.deps import CSRF_COOKIE, DEVICE_COOKIE, REFRESH_COOKIE, MailQueueDep
from koan.auth.router import clear_auth_cookies, client_address, set_auth_cookies
from koan.auth.schemas import EmailInput, LoginInput, RegisterInput
from koan.classes import service as classes
from koan.clock import lasting
from koan.deps import ResourcesDep
from koan.errors import KoanError
from koan.security import password_problems, same_token
from koan.users import service as users
from koan.web import kept as kept_forms
from koan.web.pagekit import (
    END_SESSION_PATH,
    RESUME_PATH,
    MaybeAuth,
    PageAuth,
    ShowPage,
    WebRoute,
    WebSession,
    check_csrf,
    field_errors,
    form_data,
    local_url,
    redirect,
    render,
    sent_csrf_token,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

# No length of its own (the query string has one): a page whose session lapsed comes back
# through the resume and login pages with its whole address, a long search included.
Next = Annotated[str | None, Query()]
Token = Annotated[str, Query()]
# Longer than any mailed token: a link that ran into the text after it, or a made-up one.
MAX_TOKEN = 200
LINK_INVALID = "This link is invalid or has already been used."


def _after_login(auth_onboarded: bool, next_url: str | None) -> str:
    return local_url(next_url, "/dashboard" if auth_onboarded else "/onboarding")


@router.get("/")
async def landing(request: Request, auth: MaybeAuth) -> Response:
    """The front page: what Koan is, and the way in (signed in: today's page)."""
    if auth is not None:
        return redirect(request, "/dashboard")
    return render(request, "landing.html", {"signed_in": False})


# --- register ---------------------------------------------------------------------------------


@router.get("/register")
async def register_form(request: Request, auth: MaybeAuth) -> Response:
    if auth is not None:
        return redirect(request, "/dashboard")
    return render(request, "register.html", {"values": {}, "errors": {}})


@router.post("/register")
async def register(
    request: Request, session: WebSession, res: ResourcesDep, mail: MailQueueDep
) -> Response:
    await check_csrf(request)
    form = await form_data(request)
    values = {"name": form.get("name", ""), "email": form.get("email", "")}
    errors: dict[str, str] = {}
    password = form.get("password", "")
    if password != form.get("password_confirm", password):
        errors["password_confirm"] = "The two passwords are not the same."
    try:
        data = RegisterInput(name=values["name"], email=values["email"], password=password)
    except ValidationError as exc:
        errors = {**field_errors(exc), **errors}
    # Every problem with the password at once, not one per try.
    if password and "password" not in errors:
        problems = password_problems(password, email=values["email"].strip() or None)
        if problems:
            errors["password"] = " ".join(problems)
    if errors:
        return render(
            request, "register.html", {"values": values, "errors": errors}, status_code=422
        )
    try:
        await res.limiter.hit(
            res.settings.register_limit_per_address,
            "register",
            client_address(request),
            detail="Too many sign-ups from this address; try again later.",
        )
        await auth_service.register(session, res, data, users.create_user, mail)
    except KoanError as exc:
        field = exc.headers.get("X-Koan-Field", "form") if exc.code == "WeakPassword" else "form"
        page = render(
            request,
            "register.html",
            {"values": values, "errors": {field: exc.detail}},
            status_code=exc.status_code,
        )
        raise ShowPage(page) from exc
    return redirect(request, "/check-email?" + urlencode({"sent": 1, "email": data.email}))


@router.get("/check-email")
async def check_email(
    request: Request,
    auth: MaybeAuth,
    res: ResourcesDep,
    email: Annotated[str | None, Query(max_length=320)] = None,
    sent: bool = False,
    resent: bool = False,
) -> Response:
    """Where a new account waits for its verification link."""
    if auth is not None and auth.user.email_verified:
        return redirect(request, "/dashboard")
    address = auth.user.email if auth else email
    return render(
        request,
        "check_email.html",
        {
            "email": address,
            "sent": sent,
            "resent": resent and auth is not None,
            "lasting": lasting(res.settings.verify_token_ttl_s),
        },
    )


@router.get("/check-email/resend")
async def resend_form_address(request: Request) -> Response:
    """The resend form's address opened directly (a reload, Back): the page it belongs to."""
    return redirect(request, "/check-email")


@router.post("/check-email/resend")
async def resend(
    request: Request, auth: PageAuth, session: WebSession, res: ResourcesDep, mail: MailQueueDep
) -> Response:
    await auth_service.resend_verification(session, res, auth.user, mail)
    # POST-redirect-GET: reloading the page does not send another mail.
    return redirect(request, "/check-email?resent=1")


@router.get("/verify-email")
async def verify_form(request: Request, token: Token = "") -> Response:
    """The link in the verification mail: one button confirms (mail scanners only GET)."""
    if len(token) > MAX_TOKEN:
        return render(
            request, "verify_email.html", {"token": "", "error": LINK_INVALID}, status_code=400
        )
    return render(request, "verify_email.html", {"token": token, "error": None})


@router.post("/verify-email")
async def verify(
    request: Request, auth: MaybeAuth, session: WebSession, res: ResourcesDep
) -> Response:
    await check_csrf(request)
    form = await form_data(request)
    token = form.get("token", "")[:MAX_TOKEN]
    try:
        await auth_service.verify_email(session, res, token)
    except KoanError as exc:
        page = render(
            request, "verify_email.html", {"token": "", "error": exc.detail}, status_code=400
        )
        raise ShowPage(page) from exc
    if auth is not None:
        return redirect(request, "/onboarding")
    return redirect(request, "/login?verified=1")


# --- log in and out ---------------------------------------------------------------------------


@router.get("/login")
async def login_form(
    request: Request,
    auth: MaybeAuth,
    next: Next = None,
    verified: bool = False,
    reset: bool = False,
) -> Response:
    if auth is not None:
        return redirect(request, local_url(next))
    notice = None
    if verified:
        notice = "Your email is verified. Log in to start."
    elif reset:
        notice = "Your password has been changed. Log in with the new one."
    return render(
        request,
        "login.html",
        {"values": {}, "errors": {}, "next": local_url(next, ""), "notice": notice},
    )


@router.post("/login")
async def login(request: Request, session: WebSession, res: ResourcesDep) -> Response:
    await check_csrf(request)
    form = await form_data(request)
    values = {"email": form.get("email", "")}
    next_url = local_url(form.get("next"), "")
    ctx = {"values": values, "next": next_url, "notice": None}
    try:
        data = LoginInput(email=values["email"], password=form.get("password", ""))
    except ValidationError as exc:
        return render(request, "login.html", {**ctx, "errors": field_errors(exc)}, status_code=422)
    try:
        tokens = await auth_service.login(
            session,
            res,
            data,
            address=client_address(request),
            user_agent=request.headers.get("User-Agent", ""),
            device=request.cookies.get(DEVICE_COOKIE),
        )
        user = await auth_repository.user_by_email(session, data.email)
    except KoanError as exc:
        failed = render(
            request,
            "login.html",
            {**ctx, "errors": {"form": exc.detail}},
            status_code=exc.status_code,
        )
        if "Retry-After" in exc.headers:
            failed.headers["Retry-After"] = exc.headers["Retry-After"]
        raise ShowPage(failed) from exc
    onboarded = False
    if user is not None:
        from koan.onboarding import service as profiles

        onboarded = (
            await profiles.profile_of(session, user)
        ).onboarding_completed or await classes.skips_onboarding(session, user)
        if not user.email_verified:
            next_url = "/check-email"
    response = redirect(request, _after_login(onboarded, next_url or None))
    set_auth_cookies(response, res, tokens)
    return response


@router.get("/logout")
async def logout_form_address(request: Request) -> Response:
    """The log-out form's address opened directly: the front page. Only the form (with its
    CSRF token) logs out, so a link elsewhere cannot end someone's session."""
    return redirect(request, "/")


@router.post("/logout")
async def logout(
    request: Request, auth: PageAuth, session: WebSession, res: ResourcesDep
) -> Response:
    await auth_service.logout(session, res, auth.session)
    response = redirect(request, "/")
    clear_auth_cookies(response)
    # Forms kept on this browser while the login had lapsed are no one's to see now.
    kept_forms.forget_browser(response)
    return response


@router.post(END_SESSION_PATH)
async def end_session(
    request: Request, auth: MaybeAuth, session: WebSession, res: ResourcesDep
) -> Response:
    """The log-out form of every page. Posted under the refresh cookie's path, it ends the
    session even when the access cookie has lapsed (without script nothing renews it first):
    the refresh cookie names the session, instead of a renewal leading back into it."""
    await check_csrf(request, bound_to=auth)
    ended = auth.session if auth is not None else None
    if ended is None:
        ended = await auth_service.session_of_refresh_token(
            session, request.cookies.get(REFRESH_COOKIE)
        )
        if ended is not None:
            # The form's token must be this session's, as for any form of a signed-in page.
            auth_service.check_session_csrf(res, ended.id, await sent_csrf_token(request))
    if ended is not None:
        await auth_service.logout(session, res, ended)
    response = redirect(request, "/")
    clear_auth_cookies(response)
    kept_forms.forget_browser(response)
    return response


@router.get(RESUME_PATH)
async def resume_form(request: Request, next: Next = None) -> Response:
    """Where a page whose access cookie lapsed sends the browser: a form that posts itself back
    (koan.js; a button without script) to renew the session. The GET changes nothing."""
    target = local_url(next)
    if REFRESH_COOKIE not in request.cookies:
        response = redirect(request, "/login?next=" + quote(target, safe="/"))
        clear_auth_cookies(response)
        return response
    return render(request, "resume.html", {"next": target})


@router.post(RESUME_PATH)
async def resume(request: Request, session: WebSession, res: ResourcesDep) -> Response:
    """Renew a lapsed page session with the refresh cookie (sent only under /api/v1/auth).

    A POST with the session's CSRF token, so another site can neither force a rotation nor
    replay one; a refused token (ended or replayed session) leads to the login page."""
    form = await form_data(request)
    target = local_url(form.get("next"))
    token = request.cookies.get(REFRESH_COOKIE)
    sent = await sent_csrf_token(request)
    if not same_token(sent, request.cookies.get(CSRF_COOKIE, "")):
        # Not this browser's own form (or cookies are blocked): change nothing, not even cookies.
        return redirect(request, "/login?next=" + quote(target, safe="/"))
    if not token:
        return _to_login(request, target)
    try:
        tokens = await auth_service.refresh(session, res, token, csrf=sent)
    except KoanError as exc:
        # A replayed token's session is revoked (keep_changes): that must stand.
        raise ShowPage(_to_login(request, target), keep_changes=exc.keep_changes) from exc
    response = redirect(request, target)
    set_auth_cookies(response, res, tokens)
    return response


def _to_login(request: Request, target: str) -> Response:
    response = redirect(request, "/login?next=" + quote(target, safe="/"))
    clear_auth_cookies(response)
    return response


# --- password reset ---------------------------------------------------------------------------


@router.get("/forgot-password")
async def forgot_form(
    request: Request,
    email: Annotated[str, Query(max_length=320)] = "",
    sent: bool = False,
) -> Response:
    values = {"email": email}
    return render(request, "forgot_password.html", {"values": values, "errors": {}, "sent": sent})


@router.post("/forgot-password")
async def forgot(
    request: Request, session: WebSession, res: ResourcesDep, mail: MailQueueDep
) -> Response:
    await check_csrf(request)
    form = await form_data(request)
    values = {"email": form.get("email", "")}
    try:
        data = EmailInput(email=values["email"])
    except ValidationError as exc:
        return render(
            request,
            "forgot_password.html",
            {"values": values, "errors": field_errors(exc), "sent": False},
            status_code=422,
        )
    try:
        await auth_service.request_password_reset(session, res, data.email, mail)
    except KoanError as exc:
        page = render(
            request,
            "forgot_password.html",
            {"values": values, "errors": {"form": exc.detail}, "sent": False},
            status_code=exc.status_code,
        )
        raise ShowPage(page) from exc
    # POST-redirect-GET: reloading the page does not send another mail.
    return redirect(request, "/forgot-password?" + urlencode({"sent": 1, "email": data.email}))


@router.get("/reset-password")
async def reset_form(request: Request, token: Token = "") -> Response:
    if len(token) > MAX_TOKEN:
        errors = {"link": LINK_INVALID}
        return render(
            request, "reset_password.html", {"token": "", "errors": errors}, status_code=400
        )
    return render(request, "reset_password.html", {"token": token, "errors": {}})


@router.post("/reset-password")
async def reset(request: Request, session: WebSession, res: ResourcesDep) -> Response:
    await check_csrf(request)
    form = await form_data(request)
    token = form.get("token", "")[:MAX_TOKEN]
    password = form.get("new_password", "")
    errors: dict[str, str] = {}
    if not password:
        errors["new_password"] = "Choose a new password."
    elif password != form.get("password_confirm", password):
        errors["password_confirm"] = "The two passwords are not the same."
    if not errors:
        try:
            await auth_service.confirm_password_reset(session, res, token, password)
        except KoanError as exc:
            field = "new_password" if exc.code == "WeakPassword" else "form"
            errors[field] = exc.detail
            page = render(
                request, "reset_password.html", {"token": token, "errors": errors}, status_code=400
            )
            raise ShowPage(page) from exc
    if errors:
        return render(
            request, "reset_password.html", {"token": token, "errors": errors}, status_code=400
        )
    response = redirect(request, "/login?reset=1")
    clear_auth_cookies(response)
    return response
