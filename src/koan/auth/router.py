"""Auth routes: register, log in and out, refresh, verify email, reset password."""

from __future__ import annotations

from fastapi import Request, Response, status

from koan.auth import service
from koan.auth.deps import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    CSRF_HEADER,
    DEVICE_COOKIE,
    REFRESH_COOKIE,
    AccountMakerDep,
    CurrentAuth,
    CurrentUser,
    MailQueueDep,
    check_csrf,
)
from koan.auth.schemas import (
    EmailInput,
    LoginInput,
    Message,
    PasswordResetConfirm,
    RefreshInput,
    RegisterInput,
    RegisterResult,
    TokenInput,
    TokenPair,
)
from koan.common.routing import PrefixedRouter
from koan.deps import ResourcesDep, SessionDep
from koan.errors import NotAuthenticated
from koan.resources import Resources

router = PrefixedRouter(prefix="/auth", tags=["auth"])

REFRESH_COOKIE_PATH = "/api/v1/auth"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def set_auth_cookies(response: Response, res: Resources, tokens: service.IssuedTokens) -> None:
    secure = res.settings.cookies_secure
    response.set_cookie(
        ACCESS_COOKIE, tokens.access_token, max_age=tokens.expires_in,
        httponly=True, secure=secure, samesite="lax", path="/",
    )  # fmt: skip
    response.set_cookie(
        REFRESH_COOKIE, tokens.refresh_token, max_age=res.settings.refresh_token_ttl_s,
        httponly=True, secure=secure, samesite="lax", path=REFRESH_COOKIE_PATH,
    )  # fmt: skip
    # Readable by the page's script, which echoes it in X-CSRF-Token (double submit); bound
    # to the session, so a cookie planted by a sibling subdomain cannot stand in for it.
    response.set_cookie(
        CSRF_COOKIE, tokens.csrf_token, max_age=res.settings.refresh_token_ttl_s,
        httponly=False, secure=secure, samesite="lax", path="/",
    )  # fmt: skip
    if tokens.device_token:
        # Proof of a successful login: spares this browser the account's login ceiling.
        response.set_cookie(
            DEVICE_COOKIE, tokens.device_token, max_age=res.settings.device_cookie_ttl_s,
            httponly=True, secure=secure, samesite="lax", path="/",
        )  # fmt: skip


def clear_auth_cookies(response: Response) -> None:
    """Forget the session's cookies (the device cookie stays: it proves an earlier login)."""
    response.delete_cookie(ACCESS_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_COOKIE_PATH)
    response.delete_cookie(CSRF_COOKIE, path="/")


def sent_by_browser(request: Request) -> bool:
    """Whether a browser sent the request: it adds these headers, and no script can drop them."""
    return "origin" in request.headers or "sec-fetch-site" in request.headers


def _pair(tokens: service.IssuedTokens, *, with_refresh: bool) -> TokenPair:
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token if with_refresh else None,
        expires_in=tokens.expires_in,
    )


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=RegisterResult)
async def register(
    data: RegisterInput,
    request: Request,
    session: SessionDep,
    res: ResourcesDep,
    make_account: AccountMakerDep,
    mail: MailQueueDep,
) -> RegisterResult:
    """Create an account; a verification link is mailed to the address."""
    await res.limiter.hit(
        res.settings.register_limit_per_address,
        "register",
        client_address(request),
        detail="Too many sign-ups from this address; try again later.",
    )
    await service.register(session, res, data, make_account, mail)
    return RegisterResult(
        email=data.email,
        message="Check your email for a link to verify your address, then log in.",
    )


@router.post("/login", response_model=TokenPair, response_model_exclude_none=True)
async def login(
    data: LoginInput, request: Request, response: Response, session: SessionDep, res: ResourcesDep
) -> TokenPair:
    """Exchange email and password for an access and a refresh token (also set as cookies).

    A browser's request gets the refresh token in its httpOnly cookie only, not in the body."""
    tokens = await service.login(
        session,
        res,
        data,
        address=client_address(request),
        user_agent=request.headers.get("User-Agent", ""),
        device=request.cookies.get(DEVICE_COOKIE),
    )
    set_auth_cookies(response, res, tokens)
    return _pair(tokens, with_refresh=not sent_by_browser(request))


@router.post("/refresh", response_model=TokenPair, response_model_exclude_none=True)
async def refresh(
    request: Request,
    response: Response,
    session: SessionDep,
    res: ResourcesDep,
    data: RefreshInput | None = None,
) -> TokenPair:
    """Trade a refresh token (body or cookie) for a new pair; the old one is spent.

    Sent by cookie, the new refresh token goes back in the cookie only, not in the body."""
    token = data.refresh_token if data else None
    csrf = None
    by_cookie = token is None
    if token is None:
        token = request.cookies.get(REFRESH_COOKIE)
        if token is None:
            raise NotAuthenticated("Send the refresh token in the body or the koan_refresh cookie.")
        check_csrf(request)
        csrf = request.headers.get(CSRF_HEADER, "")
    tokens = await service.refresh(session, res, token, csrf=csrf)
    set_auth_cookies(response, res, tokens)
    return _pair(tokens, with_refresh=not by_cookie and not sent_by_browser(request))


@router.post("/logout", response_model=Message)
async def logout(
    auth: CurrentAuth, response: Response, session: SessionDep, res: ResourcesDep
) -> Message:
    """End this session: its access and refresh tokens stop working everywhere."""
    await service.logout(session, res, auth.session)
    clear_auth_cookies(response)
    return Message(message="Logged out.")


@router.post("/logout-all", response_model=Message)
async def logout_all(
    user: CurrentUser, response: Response, session: SessionDep, res: ResourcesDep
) -> Message:
    """End every session of this account, on every device."""
    await service.logout_all(session, res, user)
    clear_auth_cookies(response)
    return Message(message="Logged out everywhere.")


@router.post("/verify-email", response_model=Message)
async def verify_email(data: TokenInput, session: SessionDep, res: ResourcesDep) -> Message:
    """Confirm an email address with the token from the verification mail."""
    await service.verify_email(session, res, data.token)
    return Message(message="Your email is verified.")


@router.post("/resend-verification", response_model=Message)
async def resend_verification(
    user: CurrentUser, session: SessionDep, res: ResourcesDep, mail: MailQueueDep
) -> Message:
    """Mail a new verification link; older links stop working."""
    await service.resend_verification(session, res, user, mail)
    return Message(message="A new verification link is on its way.")


@router.post("/password-reset", response_model=Message, status_code=status.HTTP_202_ACCEPTED)
async def password_reset(
    data: EmailInput, session: SessionDep, res: ResourcesDep, mail: MailQueueDep
) -> Message:
    """Mail a password-reset link if an account uses this address (the answer is the same)."""
    await service.request_password_reset(session, res, data.email, mail)
    return Message(message="If an account uses this address, a reset link is on its way.")


@router.post("/password-reset/confirm", response_model=Message)
async def password_reset_confirm(
    data: PasswordResetConfirm, session: SessionDep, res: ResourcesDep
) -> Message:
    """Set a new password with the token from the reset mail; every session is ended."""
    await service.confirm_password_reset(session, res, data.token, data.new_password)
    return Message(message="Your password has been changed; log in with the new one.")
