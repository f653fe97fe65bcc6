"""The class's controls over the tutor (strictness, switching it off, instructions, budgets)
and its spend."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from koan.classes import dashboard
from koan.classes import service as classes
from koan.classes.schemas import (
    ClassUpdate,
    TutorSettings,
)
from koan.classes.service import Membership
from koan.deps import ResourcesDep
from koan.errors import KoanError
from koan.models import User
from koan.resources import Resources
from koan.web.pagekit import (
    PageUser,
    WebRoute,
    WebSession,
    field_errors,
    form_data,
    in_zone,
    redirect,
    render,
)
from koan.web.pages.classes.common import (
    BUDGETS,
    LOCAL_INPUT,
    STRICTNESS_TEXT,
    ClassId,
    blank,
    class_context,
    membership,
    money,
    refused,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _amount(value: Decimal | None) -> str:
    """A stored amount as the form shows it: 0.5 -> "0.50", 0.125 -> "0.125"."""
    if value is None:
        return ""
    text = f"{value.normalize():f}"
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def _tutor_values(member: Membership) -> dict[str, str]:
    """The class's tutor controls as the form's fields (times on the class's clock)."""
    t = classes.tutor_out(member.room)
    zone = member.room.timezone

    def local(moment: datetime | None) -> str:
        return in_zone(moment, zone).strftime(LOCAL_INPUT) if moment else ""

    return {
        "strictness": t.strictness or "",
        "mode": "off" if t.off else "window" if t.off_from else "on",
        "off_from": local(t.off_from),
        "off_until": local(t.off_until),
        "off_reason": t.off_reason,
        "instructions": t.instructions,
        "avoid": "\n".join(t.avoid),
        "learner_daily_budget_usd": _amount(t.learner_daily_budget_usd),
        "class_daily_cap_usd": _amount(t.class_daily_cap_usd),
    }


async def _tutor_context(
    session: WebSession, res: Resources, member: Membership, user: User, **extra: Any
) -> dict[str, Any]:
    ctx = await class_context(
        session, res, member, user, "tutor",
        usage=await dashboard.usage(session, member, now=res.clock.now()),
        strictness_text=STRICTNESS_TEXT, server_strictness=res.settings.tutor_strictness,
        errors={}, values=_tutor_values(member),
    )  # fmt: skip
    ctx.update(extra)
    return ctx


@router.get("/classes/{class_id}/tutor")
async def tutor_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Strictness, on or off (or off for an exam), instructions, words to avoid, budgets, and
    today's spend. TAs see them; instructors change them."""
    member = await membership(session, user, class_id, staff=True)
    return render(request, "classes/tutor.html", await _tutor_context(session, res, member, user))


@router.post("/classes/{class_id}/tutor")
async def save_tutor(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    member = await membership(session, user, class_id, instructor=True)
    form = await form_data(request)
    fields = ("strictness", "mode", "off_from", "off_until", "off_reason", "instructions",
              "avoid", "learner_daily_budget_usd", "class_daily_cap_usd")  # fmt: skip
    values = {k: form.get(k, "") for k in fields}
    mode = values["mode"] if values["mode"] in ("on", "off", "window") else "on"
    errors: dict[str, str] = {}
    if mode == "window":
        for name in ("off_from", "off_until"):
            if not values[name].strip():
                errors[name] = "Give the exam's start and end."
    avoid = [w.strip() for w in re.split(r"[\n,]", values["avoid"]) if w.strip()]
    budgets: dict[str, Decimal | None] = {}
    for name in BUDGETS:
        try:
            budgets[name] = money(values[name])
        except ValueError:
            errors[name] = "Enter an amount in US dollars, like 0.50, or leave it empty."
    if not errors:
        try:
            tutor = TutorSettings.model_validate(
                {
                    "strictness": values["strictness"] or None,
                    "instructions": values["instructions"].replace("\r\n", "\n").strip(),
                    "avoid": avoid,
                    "off": mode == "off",
                    "off_from": blank(values["off_from"]) if mode == "window" else None,
                    "off_until": blank(values["off_until"]) if mode == "window" else None,
                    "off_reason": values["off_reason"].strip(),
                    **budgets,
                }
            )
            async with session.begin_nested():
                await classes.update_class(session, member, ClassUpdate(tutor=tutor))
        except ValidationError as exc:
            errors = field_errors(exc)
        except KoanError as exc:
            errors = refused(exc, dates="off_until")
    if errors:
        values["mode"] = mode
        # The refused change was rolled back: read the class again.
        member = await membership(session, user, class_id, instructor=True)
        ctx = await _tutor_context(session, res, member, user, errors=errors, values=values)
        return render(request, "classes/tutor.html", ctx, status_code=422)
    return redirect(request, f"/classes/{member.room.id}/tutor?saved=1")
