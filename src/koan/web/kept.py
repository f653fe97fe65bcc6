"""Forms posted after the login lapsed, kept until the learner has logged in again.

Without JavaScript, a form posted without a live session is answered with the way to the login
page (through the resume route when a refresh token may still be there), and what the learner
typed would be gone when they came back. Koan keeps the fields a page can put back (`FORMS`)
in the cache under a random token that travels in the login's `next` address, and the page puts
them back in its form, unsent. Whose text it is cannot be known while nobody is signed in, so
it is given back to whoever logs in on the browser that sent it, as that browser's own autofill
would, and to no other: the record names a random secret the browser keeps in the httpOnly
`koan_kept` cookie, so the address alone (a history entry, a log line) shows nothing. Logging
out deletes that cookie. Only what this site's own pages post is kept (another site must not
put text in a learner's editor), the text itself is never logged, and records expire.

A form from a page of an earlier login (logged out and in again in another tab) carries that
session's CSRF token and is refused; its fields are kept the same way and the page opens with
them, so a stale page costs a click, not the code.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime

import structlog
from fastapi import Request, Response

from koan.auth.deps import CSRF_COOKIE
from koan.auth.router import client_address
from koan.errors import KoanError
from koan.resources import Resources
from koan.security import same_token

log = structlog.get_logger(__name__)

QUERY = "kept"
COOKIE = "koan_kept"
# The forms whose page puts fields back after the login (by route), and those fields: what a
# learner writes at length (the interview's answer, with the question it answers).
FORMS: dict[str, frozenset[str]] = {
    "/exercises/{exercise_id}/run": frozenset({"code"}),
    "/onboarding": frozenset({"question", "answer"}),
}
# Above what any kept field may be submitted with (code: 64 KB), so that code too long to run
# still comes back to be shortened; the per-address limit bounds what visitors can store.
MAX_BYTES = 256 * 1024
_TOKEN_CHARS = 64


@dataclass(frozen=True)
class KeptForm:
    action: str  # the address the form was posted to
    fields: dict[str, str]
    kept_at: datetime


def _key(token: str) -> str:
    # Stored under a digest: whoever reads the cache cannot rebuild the page's address.
    return "kept-form:" + hashlib.sha256(token.encode()).hexdigest()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def _from_this_site(request: Request, csrf_sent: str) -> bool:
    """Posted by one of this site's pages: the browser says so (Sec-Fetch-Site), or, from a
    browser that does not, the form repeats this browser's CSRF cookie."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and same_token(cookie, csrf_sent)


async def keep(request: Request, res: Resources, csrf_sent: str) -> str | None:
    """Keep the posted form's fields named in `FORMS`; the token that finds them again, or None
    when there is nothing to keep or it may not be kept."""
    if request.method != "POST" or request.headers.get("HX-Request"):
        return None  # HTMX requests keep the page (and its form) where it is
    route = request.scope.get("route")
    kept_fields = FORMS.get(getattr(route, "path", ""))
    if kept_fields is None:
        return None
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    form = await request.form()
    fields = {k: v for k, v in form.multi_items() if k in kept_fields and isinstance(v, str)}
    if not any(value.strip() for value in fields.values()):
        return None
    if not await _from_this_site(request, csrf_sent):
        return None
    size = sum(len(value.encode("utf-8", "replace")) for value in fields.values())
    if size > MAX_BYTES:
        log.info("web.form_not_kept", action=request.url.path, reason="too_large", size=size)
        return None
    secret = request.cookies.get(COOKIE, "")
    if not (0 < len(secret) <= _TOKEN_CHARS and secret.isascii()):
        secret = secrets.token_urlsafe(24)
    token = secrets.token_urlsafe(24)
    record = {
        "action": request.url.path,
        "fields": fields,
        "kept_at": res.clock.now().isoformat(),
        "browser": _digest(secret),
    }
    try:
        await res.limiter.hit(res.settings.kept_form_limit_per_address, "kept-form",
                              client_address(request))  # fmt: skip
        await res.cache.set(_key(token), json.dumps(record), ttl_s=res.settings.kept_form_ttl_s)
    except KoanError:
        log.info("web.form_not_kept", action=request.url.path, reason="rate_limited")
        return None
    except Exception:  # the way to the login page must not fail for this
        log.warning("web.form_not_kept", action=request.url.path, reason="cache", exc_info=True)
        return None
    request.state.kept_secret = secret
    log.info("web.form_kept", action=request.url.path, size=size)  # never the text
    return token


def remember_browser(request: Request, response: Response, res: Resources) -> None:
    """Give the browser the secret its kept forms name (when one was just kept), for as long
    as the newest of them lasts."""
    secret: str | None = getattr(request.state, "kept_secret", None)
    if secret:
        response.set_cookie(
            COOKIE, secret, max_age=res.settings.kept_form_ttl_s,
            httponly=True, secure=res.settings.cookies_secure, samesite="lax", path="/",
        )  # fmt: skip


def forget_browser(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")


async def take(request: Request, res: Resources, token: str) -> KeptForm | None:
    """The form kept under `token`, if this browser sent it and it has not expired."""
    secret = request.cookies.get(COOKIE, "")
    if not token or not secret or len(token) > _TOKEN_CHARS:
        return None
    try:
        raw = await res.cache.get(_key(token))
    except Exception:  # the page shows what the server has instead
        log.warning("web.kept_form_unreadable", exc_info=True)
        return None
    if raw is None:
        return None
    record = json.loads(raw)
    if not same_token(record.get("browser", ""), _digest(secret)):
        return None
    return KeptForm(
        action=record["action"],
        fields=dict(record["fields"]),
        kept_at=datetime.fromisoformat(record["kept_at"]),
    )
