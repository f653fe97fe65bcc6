"""Who is calling: bearer token or cookie (with CSRF), and what they may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request

from koan.auth import snapshots
from koan.auth.service import AccountCloseCheck, AccountMaker
from koan.deps import ResourcesDep, SessionDep, SessionOpenerDep, session_opener
from koan.errors import (
    Conflict,
    CSRFFailed,
    EmailNotVerified,
    Forbidden,
    InvalidToken,
    NotAuthenticated,
)
from koan.mail.sender import MailQueue
from koan.models import AuthSession, User
from koan.ops.request_log import bind_user
from koan.resources import Resources
from koan.security import AccessClaims, csrf_token_for, decode_access_token, same_token

ACCESS_COOKIE = "koan_access"
REFRESH_COOKIE = "koan_refresh"
CSRF_COOKIE = "koan_csrf"
DEVICE_COOKIE = "koan_device"
CSRF_HEADER = "X-CSRF-Token"
# The account a page was shown to, sent by its script with every request it makes.
OWNER_HEADER = "X-Koan-Owner"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Auth:
    user: User
    session: AuthSession
    via_cookie: bool


def check_csrf(
    request: Request, res: Resources | None = None, session_id: uuid.UUID | None = None
) -> None:
    """Double-submit check: the header must repeat the koan_csrf cookie and, for a signed-in
    session, be that session's token (so a cookie planted by a sibling subdomain fails)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    bound = (
        res is None
        or session_id is None
        or same_token(header, csrf_token_for(res.settings.signing_key, session_id))
    )
    if not same_token(cookie, header) or not bound:
        raise CSRFFailed(
            f"This request needs the {CSRF_HEADER} header matching the {CSRF_COOKIE} cookie."
        )


def access_claims(request: Request, res: Resources) -> tuple[AccessClaims, bool]:
    """The verified claims of the request's access token (bearer header, else cookie with the
    CSRF check), and whether it came from the cookie. Raises 401 without one."""
    header = request.headers.get("Authorization", "")
    via_cookie = False
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Use 'Authorization: Bearer <access token>'.")
        token = token.strip()
    elif ACCESS_COOKIE in request.cookies:
        token = request.cookies[ACCESS_COOKIE]
        via_cookie = True
    else:
        raise NotAuthenticated("Log in first: this needs an access token.")
    claims = decode_access_token(token, key=res.settings.signing_key, now=res.clock.now())
    if via_cookie and request.method not in SAFE_METHODS:
        check_csrf(request, res, claims.session_id)
    return claims, via_cookie


def authenticated(found: tuple[AuthSession, User] | None, *, via_cookie: bool) -> Auth:
    """The caller, from the live session the claims name (None: 401, the session ended)."""
    if found is None:  # logged out, revoked, or the account was deleted (sessions with it)
        raise InvalidToken("This session has ended; log in again.")
    auth_session, user = found
    bind_user(user.id)  # names the user on this request's log lines, the access line too
    return Auth(user=user, session=auth_session, via_cookie=via_cookie)


def check_owner(request: Request, user: User) -> None:
    """A page's request acts for the account the page was shown to, never for another one
    logged in since on the same browser (every tab shares its cookies): a draft saved as a tab
    is left, a run, a question, would otherwise land in the wrong account."""
    owner = request.headers.get(OWNER_HEADER)
    if owner and owner != str(user.id):
        raise Conflict(
            "This page was opened by another account than the one now logged in on this "
            "browser, so nothing was saved or sent. Log in again as yourself to carry on.",
            code="OtherAccount",
        )


def ensure_verified(user: User) -> User:
    if not user.email_verified:
        raise EmailNotVerified("Verify your email address first: check your inbox for the link.")
    return user


async def current_auth(request: Request, session: SessionDep) -> Auth:
    """The caller (401 without a live session), found once per request however many of the
    dependencies below a route asks for."""
    found: Auth | None = getattr(request.state, "koan_auth", None)
    if found is not None:
        return found
    res: Resources = request.app.state.resources
    claims, via_cookie = access_claims(request, res)
    caller = await snapshots.live_session_and_user(
        session, res.cache, claims.session_id, claims.user_id
    )
    auth = authenticated(caller, via_cookie=via_cookie)
    if via_cookie:
        check_owner(request, auth.user)
    request.state.koan_auth = auth
    return auth


async def caller_shown(request: Request) -> snapshots.Caller:
    """The caller, for a route that only shows their account: the same checks as
    `current_auth`, from what this worker kept without a session of the request's own (or
    read in a short one when nothing kept can be used)."""
    res: Resources = request.app.state.resources
    claims, via_cookie = access_claims(request, res)
    caller = await snapshots.caller(
        session_opener(res), res.cache, claims.session_id, claims.user_id
    )
    found = None if caller is None else (caller.auth_session, caller.user)
    auth = authenticated(found, via_cookie=via_cookie)
    if via_cookie:
        check_owner(request, auth.user)
    assert caller is not None  # authenticated() refused a missing one
    return caller


# Each takes the request and session itself rather than through the dependency above it:
# FastAPI solves every level of a dependency tree on every request, at a cost that shows.
async def current_user(request: Request, session: SessionDep) -> User:
    return (await current_auth(request, session)).user


async def verified_user(request: Request, session: SessionDep) -> User:
    return ensure_verified((await current_auth(request, session)).user)


async def admin_user(request: Request, session: SessionDep) -> User:
    user = ensure_verified((await current_auth(request, session)).user)
    if not user.is_admin:
        raise Forbidden("Only administrators may do this.")
    return user


CurrentAuth = Annotated[Auth, Depends(current_auth)]
CallerShown = Annotated[snapshots.Caller, Depends(caller_shown)]
CurrentUser = Annotated[User, Depends(current_user)]
VerifiedUser = Annotated[User, Depends(verified_user)]
AdminUser = Annotated[User, Depends(admin_user)]


async def account_maker(request: Request) -> AccountMaker:
    """How a new account is made: the function the app wired in (app.py)."""
    maker: AccountMaker = request.app.state.account_maker
    return maker


AccountMakerDep = Annotated[AccountMaker, Depends(account_maker)]


async def account_close_check(request: Request) -> AccountCloseCheck | None:
    """What must hold before an account is deleted: the check the app wired in (app.py)."""
    check: AccountCloseCheck | None = getattr(request.app.state, "account_close_check", None)
    return check


AccountCloseCheckDep = Annotated[AccountCloseCheck | None, Depends(account_close_check)]


async def mail_queue(
    background: BackgroundTasks, res: ResourcesDep, open_session: SessionOpenerDep
) -> MailQueue:
    """The request's outgoing mail, delivered after the response whether or not any was queued."""
    queue = MailQueue(res.mailer, open_session)
    background.add_task(queue.deliver)
    return queue


MailQueueDep = Annotated[MailQueue, Depends(mail_queue)]
