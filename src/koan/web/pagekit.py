"""What every page uses (the page kit): templates, cookie auth for pages, CSRF for forms,
friendly errors.

Pages reuse the API's cookies (koan_access, koan_refresh, koan_csrf) and its services; what
differs is how failures look: a page answers with HTML (a redirect to /login, a form shown
again with the message beside the field), never with a JSON body or a stack trace.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException as StarletteHTTPException

from koan.auth import snapshots
from koan.auth.deps import ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER, Auth, check_owner
from koan.common.routing import CheckedRoute
from koan.common.schemas import visible
from koan.db.refusals import refusal
from koan.deps import ResourcesDep, get_session
from koan.errors import Forbidden, KoanError, NotFound
from koan.handlers import unavailable
from koan.models import User
from koan.resources import Resources
from koan.security import csrf_token_for, decode_access_token, same_token
from koan.web import kept as kept_forms
from koan.web.markdown import render_markdown

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
CSRF_FIELD = "csrf_token"
# A page route under the refresh cookie's path (/api/v1/auth), the only place the browser
# sends it: pages whose access cookie has lapsed pass through it to be renewed (a GET shows a
# form that posts itself back with the CSRF token; only the POST rotates the token).
RESUME_PATH = "/api/v1/auth/resume"
# The log-out form's page route, under the same path for the same reason: the refresh cookie
# names the session to end even when the access cookie has lapsed.
END_SESSION_PATH = "/api/v1/auth/end-session"

templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
templates.env.filters["markdown"] = render_markdown
LANGUAGE_NAMES = {"python": "Python", "javascript": "JavaScript"}


def small_int(text: str) -> int | None:
    """A form's or query's whole number, or None: ASCII digits only (`"²".isdigit()` is true,
    and `int()` refuses it) and a few of them (`int()` refuses thousands)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def form_number(text: str) -> int | str | None:
    """A form's whole number as a schema takes it (the schemas take no number written as text):
    the number, None when the field was left empty, or else the text itself, which the schema
    refuses with its reason."""
    text = text.strip()
    whole = small_int(text)
    return whole if whole is not None else (text or None)


def in_zone(moment: datetime, zone: str) -> datetime:
    """`moment` on the learner's clock (UTC when the zone is unknown)."""
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError, OverflowError):
        return moment


def earlier_day(moment: datetime, zone: str, now: datetime) -> str | None:
    """The learner's date of `moment` ("Mon 15 Mar") when it is before today on their clock:
    what was worded as of that day ("earlier today") says which day it meant."""
    then, today = in_zone(moment, zone), in_zone(now, zone)
    return f"{then:%a %d %b}" if then.date() < today.date() else None


templates.env.filters["in_zone"] = in_zone
templates.env.filters["language"] = lambda value: LANGUAGE_NAMES.get(value, str(value).title())
templates.env.globals["CSRF_FIELD"] = CSRF_FIELD
templates.env.globals["END_SESSION_PATH"] = END_SESSION_PATH


# ---------------------------------------------------------------------------------------------
# Control flow: raised anywhere in a page route, turned into a response by WebRoute.


class Redirect(Exception):
    """Send the browser elsewhere (a full navigation, for HTMX requests too)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class ShowPage(KoanError):
    """Answer with `response` (e.g. a form shown again with its error): raised, not returned, so
    the request's unit of work rolls back its changes, unless `keep_changes` (as for any
    KoanError: e.g. a session revoked while refusing a replayed token must stay revoked)."""

    def __init__(self, response: Response, *, keep_changes: bool = False) -> None:
        super().__init__("page", status_code=response.status_code, keep_changes=keep_changes)
        self.response = response


class LoginRequired(Redirect):
    def __init__(self, request: Request, *, resume: bool, kept: str | None = None) -> None:
        target = _return_to(request.url.path, request.url.query)
        if request.headers.get("HX-Request") and request.headers.get("HX-Current-URL"):
            target = _return_to(*_path_and_query(request.headers["HX-Current-URL"]))
        if kept:
            target = with_kept(target, kept)
        base = RESUME_PATH if resume else "/login"
        super().__init__(f"{base}?next={quote(target, safe='/')}")


def with_kept(address: str, kept: str) -> str:
    """`address` (a form's) naming the form kept under `kept`: it leads back to the form's
    page, which puts the kept fields back."""
    return address + ("&" if "?" in address else "?") + urlencode({kept_forms.QUERY: kept})


def _path_and_query(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.path, parts.query


# The longest page address the way back through the login page carries with its query
# (percent-encoded again in `next=`, it stays far below the 8 KB a query string may take).
MAX_NEXT = 2000


def _return_to(path: str, query: str) -> str:
    """The page to come back to after logging in: with its query, or without it when that
    is longer than MAX_NEXT."""
    address = path + (f"?{query}" if query else "")
    return local_url(address if len(address) <= MAX_NEXT else path)


def local_url(value: str | None, default: str = "/dashboard") -> str:
    """`value` if it is a path on this site, else `default` (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ch in value for ch in "\r\n\t"):
        return default
    return value


def login_url(request: Request) -> str:
    """The login page, coming back to the page the learner is on (for HTMX: the page, not the
    fragment's address)."""
    target = _return_to(request.url.path, request.url.query)
    if request.headers.get("HX-Current-URL"):
        target = _return_to(*_path_and_query(request.headers["HX-Current-URL"]))
    return f"/login?next={quote(target, safe='/')}"


def redirect(request: Request, url: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    if request.headers.get("HX-Request"):
        # HTMX follows this with a full page load. The address as the Location header carries
        # it (percent-encoded): a header holds no character past Latin-1, as `next` may.
        return Response(status_code=200, headers={"HX-Redirect": response.headers["location"]})
    return response


# ---------------------------------------------------------------------------------------------
# Rendering.


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the page, copied from the ORM row so a rollback cannot expire it."""

    id: uuid.UUID
    name: str
    email: str
    is_admin: bool
    email_verified: bool
    timezone: str = "UTC"  # times on a page are shown on this clock

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(
            user.id, user.name, user.email, user.is_admin, user.email_verified, user.timezone
        )


# What a CSRF token Koan issues looks like (URL-safe base64). A cookie of any other shape was
# not set by Koan (a sibling subdomain or a network attacker can plant one): it is replaced,
# never written into the page.
_CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def csrf_token(request: Request) -> str:
    """The double-submit token for this browser, created on first use."""
    token: str | None = getattr(request.state, "csrf_token", None)
    if token:
        return token
    token = request.cookies.get(CSRF_COOKIE, "")
    if not _CSRF_SHAPE.fullmatch(token):
        token = secrets.token_urlsafe(24)
    request.state.csrf_token = token
    return token


def _attach_csrf_cookie(request: Request, response: Response, res: Resources | None) -> None:
    token: str | None = getattr(request.state, "csrf_token", None)
    if token and request.cookies.get(CSRF_COOKIE) != token and res is not None:
        response.set_cookie(
            CSRF_COOKIE, token, max_age=res.settings.refresh_token_ttl_s,
            httponly=False, secure=res.settings.cookies_secure, samesite="lax", path="/",
        )  # fmt: skip


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a template with the signed-in user, the CSRF token and the current path."""
    user: Viewer | None = getattr(request.state, "web_user", None)
    ctx: dict[str, Any] = {
        "request": request,
        "user": user,
        "csrf_token": csrf_token(request),
        "path": request.url.path,
        "is_htmx": bool(request.headers.get("HX-Request")),
        "session_ttl": None,
    }
    res: Resources | None = getattr(request.app.state, "resources", None)
    expires_at: datetime | None = getattr(request.state, "session_expires_at", None)
    if user is not None and expires_at is not None and res is not None:
        # Seconds left rather than a time: the browser's clock may be wrong.
        ctx["session_ttl"] = max(0, int((expires_at - res.clock.now()).total_seconds()))
    ctx.update(context or {})
    response = templates.TemplateResponse(
        request, template, ctx, status_code=status_code, headers=dict(headers or {})
    )
    _attach_csrf_cookie(request, response, res)
    return response


def error_page(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
    if request.headers.get("HX-Request"):
        # Shown in place by HTMX (koan.js lets 4xx/5xx fragments swap into #flash).
        return render(
            request,
            "partials/error.html",
            {"title": title, "message": message},
            status_code=status_code,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    return render(
        request, "error.html", {"title": title, "message": message}, status_code=status_code
    )


_TITLES = {
    400: "That did not work",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    409: "Not right now",
    413: "Too large",
    422: "Please check what you entered",
    429: "Slow down a little",
    503: "Temporarily unavailable",
}


# ---------------------------------------------------------------------------------------------
# The route class: every page route's failures become pages.


async def _rollback(request: Request) -> None:
    session: AsyncSession | None = getattr(request.state, "web_session", None)
    if session is not None:
        await session.rollback()


def _without_bad_options(request: Request, exc: RequestValidationError) -> Request | None:
    """The page request again without the optional query parameters `exc` finds bad, which
    only change how the page shows (an unknown sort, a flag that is not one): a page ignores
    them rather than answer that nothing is there. None when another part is wrong (the path,
    a required parameter, a form) or the request changes something."""
    if request.method not in ("GET", "HEAD"):
        return None
    bad: set[str] = set()
    for error in exc.errors():
        loc: tuple[object, ...] = tuple(error.get("loc") or ())
        if len(loc) < 2 or loc[0] != "query" or error.get("type") == "missing":
            return None
        bad.add(str(loc[1]))
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in bad]
    scope = {**request.scope, "query_string": urlencode(kept).encode("latin-1")}
    return Request(scope, request.receive)


class WebRoute(CheckedRoute):
    """An APIRoute whose errors render as HTML pages (or HTMX fragments), never JSON.

    The session dependency has already rolled back a failed request's work (unless the error
    says it must stand, like the API's handler); rolling back here again covers errors raised
    outside it.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.methods and "GET" in self.methods:
            # A page answers HEAD as GET (the server sends no body): link checkers and uptime
            # monitors ask with HEAD, and a 405 says the page is broken.
            self.methods.add("HEAD")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired as exc:
                await _rollback(request)
                if request.headers.get("HX-Request"):
                    return _session_ended(request)
                response = redirect(request, exc.url)
                kept_forms.remember_browser(request, response, request.app.state.resources)
                return response
            except Redirect as exc:
                await _rollback(request)
                response = redirect(request, exc.url)
                kept_forms.remember_browser(request, response, request.app.state.resources)
                return response
            except ShowPage as exc:
                if not exc.keep_changes:
                    await _rollback(request)
                return exc.response
            except KoanError as exc:
                if not exc.keep_changes:
                    await _rollback(request)
                if exc.code == "OnboardingRequired":
                    return redirect(request, "/onboarding")
                if exc.code == "EmailNotVerified":
                    return redirect(request, "/check-email")
                if not hasattr(request.state, "web_user"):
                    # Refused before the route read the viewer (a NUL in the address): the
                    # page still shows whose it is.
                    await identify_viewer(request)
                response = error_page(
                    request, exc.status_code, _TITLES.get(exc.status_code, "Error"), exc.detail
                )
                for name, value in exc.headers.items():
                    if name.lower() == "retry-after":
                        response.headers[name] = value
                return response
            except RequestValidationError as exc:
                await _rollback(request)
                without = _without_bad_options(request, exc)
                if without is not None:
                    try:
                        return await handler(without)
                    except RequestValidationError:
                        pass
                return error_page(request, 404, "Not found", "There is nothing at this address.")
            except ValidationError:
                await _rollback(request)
                return error_page(request, 404, "Not found", "There is nothing at this address.")
            except StarletteHTTPException as exc:
                await _rollback(request)
                detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
                return error_page(
                    request, exc.status_code, _TITLES.get(exc.status_code, "Error"), detail
                )
            except Exception as exc:
                await _rollback(request)
                refused = refusal(exc)
                if refused is not None:
                    title = _TITLES.get(refused.status_code, "Error")
                    return error_page(request, refused.status_code, title, refused.detail)
                down = unavailable(exc)
                if down is not None:  # as the API answers it: 503, try again shortly
                    log.warning(
                        "web.page_unavailable", path=request.url.path, error=type(exc).__name__
                    )
                    response = error_page(request, 503, _TITLES[503], down.detail)
                    response.headers.update(down.headers)
                    return response
                log.exception("web.page_failed", path=request.url.path)
                return error_page(
                    request,
                    500,
                    "Something went wrong",
                    "Something went wrong on our side; it has been logged. Please try again.",
                )

        return handler


def _session_ended(request: Request) -> Response:
    """An HTMX request without a live access token: a 401 the page's script answers by renewing
    the session and sending the request again; a navigation here would lose what is on the page
    (the code in the editor)."""
    response = render(
        request,
        "partials/session_ended.html",
        {"login_url": login_url(request)},
        status_code=401,
        headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
    )
    response.headers["X-Koan-Session"] = "expired"
    return response


# ---------------------------------------------------------------------------------------------
# Dependencies.


async def web_session(
    request: Request, session: Annotated[AsyncSession, Depends(get_session, scope="function")]
) -> AsyncIterator[AsyncSession]:
    """The request's session (the app's own dependency), remembered for rollback on error.

    Function scope, as for the API: committed before the page is sent, so the page a redirect
    leads to (perhaps served by another worker) sees what the form saved."""
    request.state.web_session = session
    yield session


WebSession = Annotated[AsyncSession, Depends(web_session, scope="function")]


async def _auth_from_cookie(request: Request, session: AsyncSession, res: Resources) -> Auth | None:
    token = request.cookies.get(ACCESS_COOKIE)
    if not token:
        return None
    try:
        claims = decode_access_token(token, key=res.settings.signing_key, now=res.clock.now())
    except KoanError:
        return None
    found = await snapshots.live_session_and_user(
        session, res.cache, claims.session_id, claims.user_id
    )
    if found is None:
        return None
    # The page's script renews the session shortly before this (see koan.js).
    request.state.session_expires_at = claims.expires_at
    auth_session, user = found
    return Auth(user=user, session=auth_session, via_cookie=True)


async def maybe_auth(request: Request, session: WebSession, res: ResourcesDep) -> Auth | None:
    """The signed-in user's session, or None (pages that anyone may see)."""
    auth = await _auth_from_cookie(request, session, res)
    request.state.web_user = Viewer.of(auth.user) if auth else None
    if auth is not None:
        # Pages carry the session's own token (and mend a cookie that lost it).
        request.state.csrf_token = csrf_token_for(res.settings.signing_key, auth.session.id)
    return auth


async def identify_viewer(request: Request) -> None:
    """Name the signed-in viewer for a page rendered outside the page routes (a dead link's
    404), so it shows their header; any failure leaves the page anonymous."""
    res: Resources | None = getattr(request.app.state, "resources", None)
    if res is None or ACCESS_COOKIE not in request.cookies:
        return
    try:
        async with res.session_factory() as session:  # read only: nothing is committed
            auth = await _auth_from_cookie(request, session, res)
        request.state.web_user = Viewer.of(auth.user) if auth else None
    except Exception:  # a page about a dead link must not fail for this
        log.warning("web.viewer_unknown", exc_info=True)


async def page_auth(request: Request, auth: Annotated[Auth | None, Depends(maybe_auth)]) -> Auth:
    """Signed in (verified or not); otherwise renew the session or go to the login page."""
    res: Resources = request.app.state.resources
    if auth is None:
        # What the learner typed in a form posted now is kept for after the login.
        kept = None
        if request.method == "POST":
            kept = await kept_forms.keep(request, res, await sent_csrf_token(request))
        # The CSRF cookie lives as long as the refresh cookie: when it is here, a refresh
        # token probably is too (the browser drops the access cookie when it expires).
        raise LoginRequired(request, resume=CSRF_COOKIE in request.cookies, kept=kept)
    check_owner(request, auth.user)
    if request.method not in ("GET", "HEAD"):
        try:
            await check_csrf(request, bound_to=auth)
        except CSRFRejected:
            # A page of an earlier login (logged out and in again in another tab): what it
            # sent is not acted on, but what the learner typed goes back in the form.
            kept = await kept_forms.keep(request, res, await sent_csrf_token(request))
            if kept is None:
                raise
            raise Redirect(with_kept(_return_to(request.url.path, ""), kept)) from None
    return auth


async def page_user(auth: Annotated[Auth, Depends(page_auth)]) -> User:
    """Signed in with a verified email."""
    if not auth.user.email_verified:
        raise Redirect("/check-email")
    return auth.user


async def page_admin(user: Annotated[User, Depends(page_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("This page is for administrators.")
    return user


MaybeAuth = Annotated[Auth | None, Depends(maybe_auth)]
PageAuth = Annotated[Auth, Depends(page_auth)]
PageUser = Annotated[User, Depends(page_user)]
PageAdmin = Annotated[User, Depends(page_admin)]


class CSRFRejected(KoanError):
    status_code = 403
    code = "CSRFFailed"


async def sent_csrf_token(request: Request) -> str:
    """The CSRF token the request carries: the X-CSRF-Token header, else the form field."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else ""
    return sent


async def check_csrf(request: Request, *, bound_to: Auth | None = None) -> None:
    """Double submit: the form field or the X-CSRF-Token header must repeat the cookie, and for
    a signed-in session be that session's token (a planted cookie cannot match it)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = await sent_csrf_token(request)
    bound = True
    if bound_to is not None:
        res: Resources = request.app.state.resources
        bound = same_token(sent, csrf_token_for(res.settings.signing_key, bound_to.session.id))
    if not same_token(cookie, sent) or not bound:
        raise CSRFRejected(
            "This form has expired (or cookies are blocked). Reload the page and try again."
        )


async def form_data(request: Request) -> dict[str, str]:
    """The posted form as plain strings (repeated fields: the last value wins)."""
    form = await request.form()
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


async def form_lists(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            out.setdefault(key, []).append(value)
    return out


_FRIENDLY = {
    "greater_than_equal": "Enter a number of at least {ge}.",
    "greater_than": "Enter a number above {gt}.",
    "less_than_equal": "Enter a number of at most {le}.",
    "less_than": "Enter a number below {lt}.",
    "int_parsing": "Enter a whole number.",
    "int_type": "Enter a whole number.",
    "literal_error": "Choose one of the options.",
    "enum": "Choose one of the options.",
    "string_too_long": "Keep this to {max_length} characters or fewer.",
    "too_long": "Choose at most {max_length}.",
    "too_short": "Choose at least {min_length}.",
    "decimal_parsing": "Enter a number, like 12.50.",
    "decimal_type": "Enter a number, like 12.50.",
    "decimal_max_places": "Use at most {decimal_places} digits after the point.",
    "decimal_max_digits": "Enter a shorter number.",
    "float_parsing": "Enter a number, like 12.50.",
    "float_type": "Enter a number, like 12.50.",
    "datetime_parsing": "Enter a date and time.",
    "datetime_from_date_parsing": "Enter a date and time.",
    "datetime_type": "Enter a date and time.",
    "date_parsing": "Enter a date.",
    "date_from_datetime_parsing": "Enter a date.",
    "date_type": "Enter a date.",
    "bool_parsing": "Choose yes or no.",
    "string_pattern_mismatch": "Use only the characters this field allows.",
    "uuid_parsing": "Choose one of the options.",
    "list_type": "Choose from the options.",
}
# What is left of pydantic's wording once the messages above are applied.
_FRAMEWORK_WORDS = ("Input should", "input should", "should match pattern")


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic errors as {field: friendly message}."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
        name = loc[0] if loc else "form"
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        kind = error.get("type", "")
        if kind == "missing":
            message = "This is required."
        elif kind == "string_too_short":
            # Blank to the eye (nothing, or invisible characters alone): as good as left out.
            shown = error.get("input")
            if isinstance(shown, str) and not visible(shown):
                message = "This is required."
        elif name == "email" and kind == "value_error":
            message = "Enter a valid email address, like name@example.com."
        elif kind in _FRIENDLY:
            # Pydantic's own wording ("Input should be ...") is not the app's.
            message = _FRIENDLY[kind].format(**(error.get("ctx") or {}))
        elif any(words in message for words in _FRAMEWORK_WORDS):
            message = "Check this value."
        elif message and message[0].islower():
            message = message[0].upper() + message[1:] + ("" if message.endswith(".") else ".")
        errors.setdefault(name, message)
    return errors


def parse_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound("There is nothing at this address.") from exc
