"""A class's assignments, and the exercises written for it awaiting review."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from koan.classes import service as classes
from koan.classes.schemas import (
    ClassAssignmentCreate,
)
from koan.classes.service import Membership
from koan.deps import ResourcesDep
from koan.errors import KoanError, NotFound
from koan.models import User
from koan.resources import Resources
from koan.web.pagekit import (
    PageUser,
    WebRoute,
    WebSession,
    field_errors,
    form_data,
    form_lists,
    form_number,
    in_zone,
    parse_uuid,
    redirect,
    render,
)
from koan.web.pages.classes.common import (
    LOCAL_INPUT,
    ClassId,
    class_context,
    confirm_page,
    membership,
    refused,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


async def _assignments_context(
    session: WebSession, res: Resources, member: Membership, user: User, **extra: Any
) -> dict[str, Any]:
    bank = await classes.assignable_exercises(session, member.room.id)
    now = in_zone(res.clock.now(), member.room.timezone)
    due = (now + timedelta(days=7)).replace(hour=23, minute=59)
    ctx = await class_context(
        session, res, member, user, "assignments",
        assignments=await classes.staff_assignments(session, res, member, user),
        bank=sorted(bank, key=lambda e: (e.language, e.difficulty, e.title.lower())),
        generated=await classes.generated_exercises(session, member),
        skills=sorted({s for e in bank for s in e.skills}),
        errors={}, now=res.clock.now(),
        values={"kind": "exercises", "opens_at": now.strftime(LOCAL_INPUT),
                "due_at": due.strftime(LOCAL_INPUT), "level": "1", "count": "3",
                "language": "python", "exercise_ids": []},
    )  # fmt: skip
    ctx.update(extra)
    return ctx


@router.get("/classes/{class_id}/assignments")
async def assignments_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """The class's assignments, and a form to set one."""
    member = await membership(session, user, class_id, staff=True)
    ctx = await _assignments_context(session, res, member, user)
    return render(request, "classes/assignments.html", ctx)


@router.post("/classes/{class_id}/assignments")
async def create_assignment(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Set an assignment: chosen exercises, or N of a skill at a level picked per learner.
    Opening and due times are in the class's time zone."""
    member = await membership(session, user, class_id, staff=True)
    form = await form_data(request)
    fields = ("title", "kind", "language", "skill", "level", "count", "opens_at", "due_at")
    values: dict[str, Any] = {k: form.get(k, "").strip() for k in fields}
    values["exercise_ids"] = (await form_lists(request)).get("exercise_ids", [])
    errors: dict[str, str] = {}
    body: dict[str, Any] = {
        "title": values["title"],
        "opens_at": values["opens_at"] or None,
        "due_at": values["due_at"] or None,
    }
    if values["kind"] == "adaptive":
        body.update(
            language=values["language"] or None, skill=values["skill"] or None,
            level=form_number(values["level"]), count=form_number(values["count"]),
        )  # fmt: skip
        for name, message in (("skill", "Choose a skill."), ("level", "Choose a level."),
                              ("count", "Say how many exercises.")):  # fmt: skip
            if not values[name]:
                errors[name] = message
    elif not values["exercise_ids"]:
        errors["exercise_ids"] = "Choose at least one exercise."
    else:
        body["exercise_ids"] = values["exercise_ids"]
    if not errors:
        try:
            data = ClassAssignmentCreate.model_validate(body)
        except ValidationError as exc:
            errors = field_errors(exc)
            if "exercise_ids" in errors:
                errors["exercise_ids"] = "Choose exercises from the list."
        else:
            try:
                async with session.begin_nested():
                    await classes.create_assignment(session, res, member, user, data)
            except NotFound as exc:
                # The class is the viewer's (asked above): the exercise is what is not found.
                errors = {"exercise_ids": exc.detail}
            except KoanError as exc:
                errors = refused(exc, dates="due_at")
    if errors:
        ctx = await _assignments_context(session, res, member, user, errors=errors, values=values)
        return render(request, "classes/assignments.html", ctx, status_code=422)
    return redirect(request, f"/classes/{member.room.id}/assignments?set=1")


@router.get("/classes/{class_id}/assignments/{assignment_id}/withdraw")
async def withdraw_form(
    request: Request, class_id: ClassId, assignment_id: str, user: PageUser, session: WebSession,
    res: ResourcesDep,
) -> Response:  # fmt: skip
    member = await membership(session, user, class_id, staff=True)
    wanted = parse_uuid(assignment_id)
    found = next((a for a in await classes.staff_assignments(session, res, member, user)
                  if a.id == wanted), None)  # fmt: skip
    if found is None:
        raise NotFound("There is no class assignment with this id.")
    return confirm_page(
        request, user, member,
        title=f"Withdraw “{found.title}”?",
        text="It leaves the learners' lists and the gradebook. What they submitted stays theirs.",
        action=f"/classes/{member.room.id}/assignments/{wanted}/withdraw",
        button="Withdraw the assignment", back=f"/classes/{member.room.id}/assignments",
    )  # fmt: skip


@router.post("/classes/{class_id}/assignments/{assignment_id}/withdraw")
async def withdraw(
    request: Request, class_id: ClassId, assignment_id: str, user: PageUser, session: WebSession
) -> Response:
    member = await membership(session, user, class_id, staff=True)
    await classes.delete_assignment(session, member, parse_uuid(assignment_id))
    return redirect(request, f"/classes/{member.room.id}/assignments?withdrawn=1")


@router.post("/classes/{class_id}/generated/{exercise_id}/approve")
@router.post("/classes/{class_id}/generated/{exercise_id}/reject")
async def review_generated(
    request: Request, class_id: ClassId, exercise_id: str, user: PageUser, session: WebSession,
    res: ResourcesDep,
) -> Response:  # fmt: skip
    """Share an exercise the AI wrote for a learner of the class with the class, or keep it
    theirs (instructors)."""
    member = await membership(session, user, class_id, instructor=True)
    approve = request.url.path.endswith("/approve")
    try:
        async with session.begin_nested():
            await classes.review_generated(
                session, res, member, user, parse_uuid(exercise_id), approve=approve
            )
    except KoanError as exc:
        ctx = await _assignments_context(session, res, member, user, errors={"form": exc.detail})
        return render(request, "classes/assignments.html", ctx, status_code=exc.status_code)
    done = "approved" if approve else "rejected"
    return redirect(request, f"/classes/{member.room.id}/assignments?{done}=1#generated")
