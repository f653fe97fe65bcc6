"""A class's name, time zone and dates, and deleting it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from koan.classes import service as classes
from koan.classes.schemas import (
    ClassUpdate,
)
from koan.classes.service import Membership
from koan.common.schemas import timezones
from koan.deps import ResourcesDep
from koan.errors import KoanError
from koan.models import User
from koan.resources import Resources
from koan.web.pagekit import (
    PageUser,
    WebRoute,
    WebSession,
    form_data,
    in_zone,
    redirect,
    render,
)
from koan.web.pages.classes.common import (
    CLASS_DATE_FIELDS,
    ClassId,
    class_context,
    class_fields,
    confirm_page,
    date_errors,
    membership,
    refused,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


async def _settings_context(
    session: WebSession, res: Resources, member: Membership, user: User, **extra: Any
) -> dict[str, Any]:
    room = member.room
    values = {
        "name": room.name,
        "timezone": room.timezone,
        "starts_on": in_zone(room.starts_at, room.timezone).date().isoformat()
        if room.starts_at else "",
        "ends_on": in_zone(room.ends_at, room.timezone).date().isoformat()
        if room.ends_at else "",
    }  # fmt: skip
    ctx = await class_context(session, res, member, user, "settings", values=values,
                               errors={}, timezones=sorted(timezones()))  # fmt: skip
    ctx.update(extra)
    return ctx


@router.get("/classes/{class_id}/settings")
async def settings_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Name, time zone and dates; deleting the class (instructors)."""
    member = await membership(session, user, class_id, instructor=True)
    ctx = await _settings_context(session, res, member, user)
    return render(request, "classes/settings.html", ctx)


@router.post("/classes/{class_id}/settings")
async def save_settings(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    member = await membership(session, user, class_id, instructor=True)
    form = await form_data(request)
    values = {k: form.get(k, "") for k in ("name", "timezone", "starts_on", "ends_on")}
    errors: dict[str, str] = {}
    try:
        data = ClassUpdate.model_validate(class_fields(values))
        async with session.begin_nested():
            await classes.update_class(session, member, data)
    except ValidationError as exc:
        errors = date_errors(exc)
    except KoanError as exc:
        errors = refused(exc, dates="ends_on", fields=CLASS_DATE_FIELDS)
    if errors:
        member = await membership(session, user, class_id, instructor=True)
        ctx = await _settings_context(session, res, member, user, errors=errors, values=values)
        return render(request, "classes/settings.html", ctx, status_code=422)
    return redirect(request, f"/classes/{member.room.id}/settings?saved=1")


@router.get("/classes/{class_id}/delete")
async def delete_form(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    member = await membership(session, user, class_id, instructor=True)
    return confirm_page(
        request, user, member,
        title=f"Delete {member.room.name}?",
        text="The class, its roster, invitations and assignments are deleted for good. Its "
        "learners keep all their work: submissions, progress and conversations.",
        action=f"/classes/{member.room.id}/delete", button="Delete the class",
        back=f"/classes/{member.room.id}/settings",
    )  # fmt: skip


@router.post("/classes/{class_id}/delete")
async def delete_class(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    member = await membership(session, user, class_id, instructor=True)
    await classes.delete_class(session, member)
    return redirect(request, "/classes?deleted=1")
