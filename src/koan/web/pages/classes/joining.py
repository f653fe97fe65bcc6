"""Class pages anyone signed in uses: their classes, creating one, joining with the code or an
invitation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from koan.classes import service as classes
from koan.classes.schemas import (
    ClassCreate,
)
from koan.common.schemas import timezones
from koan.deps import ResourcesDep
from koan.errors import KoanError, NotFound, RateLimited
from koan.models import User
from koan.resources import Resources
from koan.web.pagekit import (
    PageUser,
    WebRoute,
    WebSession,
    form_data,
    redirect,
    render,
)
from koan.web.pages.classes.common import (
    CLASS_DATE_FIELDS,
    class_fields,
    common_context,
    date_errors,
    refused,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


async def _classes_context(
    session: WebSession, res: Resources, user: User, **extra: Any
) -> dict[str, Any]:
    mine = await classes.my_classes(session, res, user)
    ctx = common_context(
        user,
        teaching=[c for c in mine if c.role != "learner"],
        learning=[c for c in mine if c.role == "learner"],
        may_create=res.settings.class_creators == "anyone" or user.is_admin,
        timezones=sorted(timezones()),
        values={"timezone": user.timezone},
        errors={},
    )
    ctx.update(extra)
    return ctx


@router.get("/classes")
async def my_classes(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """The classes the viewer teaches and learns in; create one, or join one with its code."""
    return render(request, "classes/index.html", await _classes_context(session, res, user))


@router.post("/classes")
async def create_class(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    form = await form_data(request)
    values = {k: form.get(k, "") for k in ("name", "timezone", "starts_on", "ends_on")}
    errors: dict[str, str] = {}
    try:
        data = ClassCreate.model_validate(class_fields(values))
    except ValidationError as exc:
        errors = date_errors(exc)
    else:
        try:
            async with session.begin_nested():
                room = await classes.create_class(session, res, user, data)
                class_id = room.id
        except KoanError as exc:
            errors = refused(exc, dates="ends_on", fields=CLASS_DATE_FIELDS)
    if errors:
        ctx = await _classes_context(session, res, user, values=values, errors=errors)
        return render(request, "classes/index.html", ctx, status_code=422)
    return redirect(request, f"/classes/{class_id}?created=1")


JoinCode = Annotated[str, Query(max_length=40)]


@router.get("/classes/join")
async def join_page(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep, code: JoinCode = ""
) -> Response:
    """The join link's page: with a code, the class and what its teacher will see before
    joining; without, a form for the code."""
    ctx: dict[str, Any] = common_context(user, code=code.strip(), preview=None, errors={})
    if code.strip():
        try:
            ctx["preview"] = await classes.preview(session, res, user, code)
        except (NotFound, RateLimited) as exc:
            return _code_refused(request, ctx, exc)
    return render(request, "classes/join.html", ctx)


def _code_refused(request: Request, ctx: dict[str, Any], exc: KoanError) -> Response:
    """The join form again, the reason beside the code (and, past the limit, when to retry)."""
    ctx["errors"] = {"code": exc.detail}
    page = render(request, "classes/join.html", ctx, status_code=exc.status_code)
    if "Retry-After" in exc.headers:
        page.headers["Retry-After"] = exc.headers["Retry-After"]
    return page


@router.post("/classes/join")
async def join(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    code = (await form_data(request)).get("code", "")
    try:
        async with session.begin_nested():
            member = await classes.join(session, res, user, code[:40])
    except (NotFound, RateLimited) as exc:
        return _code_refused(
            request, common_context(user, code=code.strip()[:40], preview=None), exc
        )
    return redirect(request, f"/classes/{member.room.id}?joined=1")


InviteToken = Annotated[str, Query(max_length=200)]


@router.get("/classes/invite")
async def invite_page(
    request: Request,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    token: InviteToken = "",
) -> Response:
    """The mailed invitation's page: the class and what its teacher will see, then Join."""
    if not token:
        raise NotFound("This invitation link is incomplete: open the whole link from the mail.")
    preview = await classes.invite_preview(session, res, user, token)
    ctx = common_context(user, code="", preview=preview, token=token, errors={})
    return render(request, "classes/join.html", ctx)


@router.post("/classes/invite")
async def accept_invite(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    token = (await form_data(request)).get("token", "")[:200]
    member = await classes.accept_invite(session, res, user, token)
    return redirect(request, f"/classes/{member.room.id}?joined=1")
