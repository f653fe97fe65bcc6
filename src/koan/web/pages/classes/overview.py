"""A class's page: its members and invitations, the join code, roles, removing and leaving."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from koan.auth.deps import MailQueueDep
from koan.classes import service as classes
from koan.classes.schemas import (
    InviteResult,
)
from koan.classes.service import Membership
from koan.deps import ResourcesDep
from koan.errors import BadRequest, KoanError, NotFound
from koan.mail.sender import MailQueue
from koan.models import User
from koan.resources import Resources
from koan.web.pagekit import (
    PageUser,
    WebRoute,
    WebSession,
    form_data,
    parse_uuid,
    redirect,
    render,
)
from koan.web.pages.classes.common import (
    ClassId,
    class_context,
    common_context,
    confirm_page,
    membership,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


async def _overview_context(
    session: WebSession, res: Resources, member: Membership, user: User, **extra: Any
) -> dict[str, Any]:
    ctx = await class_context(
        session, res, member, user, "overview",
        members=await classes.roster_members(session, member),
        invites=await classes.invites_of(session, member),
        invite_result=None, errors={}, pasted="",
    )  # fmt: skip
    ctx.update(extra)
    return ctx


@router.get("/classes/{class_id}")
async def class_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Staff: the join code and link, invitations and the members. Learners: the class's
    work, what the teacher sees, and leaving."""
    member = await membership(session, user, class_id)
    if member.is_staff:
        ctx = await _overview_context(session, res, member, user)
        return render(request, "classes/overview.html", ctx)
    ctx = common_context(
        user,
        room=await classes.describe(session, res, member.room, member.role),
        about=await classes.preview_of(session, user, member.room),
        assignments=await classes.learner_assignments(session, res, user, class_id=member.room.id),
    )
    return render(request, "classes/learner.html", ctx)


async def _invited(
    request: Request,
    session: WebSession,
    res: Resources,
    member: Membership,
    user: User,
    addresses: list[str],
    mail: MailQueue,
    *,
    pasted: str = "",
    field: str,
) -> Response:
    """Send the invitations; all sent: back to the page with the counts. Addresses that are
    not valid are shown again to correct (the valid ones are invited all the same)."""
    try:
        async with session.begin_nested():
            result = await classes.invite(session, res, member, user, addresses, mail)
    except KoanError as exc:
        ctx = await _overview_context(
            session, res, member, user, errors={field: exc.detail}, pasted=pasted
        )
        page = render(request, "classes/overview.html", ctx, status_code=exc.status_code)
        if "Retry-After" in exc.headers:
            page.headers["Retry-After"] = exc.headers["Retry-After"]
        return page
    if result.invalid:
        ctx = await _overview_context(
            session, res, member, user, invite_result=result, pasted="\n".join(result.invalid),
            errors={field: "These are not email addresses: " + ", ".join(result.invalid[:20])},
        )  # fmt: skip
        return render(request, "classes/overview.html", ctx, status_code=422)
    return redirect(request, f"/classes/{member.room.id}?{_counts(result)}#invite")


def _counts(result: InviteResult) -> str:
    return (
        f"invited={len(result.invited)}&members={len(result.already_members)}"
        f"&pending={len(result.already_invited)}"
    )


@router.post("/classes/{class_id}/invites")
async def invite(
    request: Request,
    class_id: ClassId,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    mail: MailQueueDep,
) -> Response:
    """Invite a pasted list of addresses (commas, spaces or one a line)."""
    member = await membership(session, user, class_id, staff=True)
    pasted = (await form_data(request)).get("emails", "")[:100_000]
    addresses = classes.emails_from_text(pasted)
    return await _invited(
        request, session, res, member, user, addresses, mail, pasted=pasted, field="emails"
    )


@router.post("/classes/{class_id}/invites/csv")
async def invite_csv(
    request: Request,
    class_id: ClassId,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    mail: MailQueueDep,
) -> Response:
    """Invite every address in an uploaded CSV file."""
    member = await membership(session, user, class_id, staff=True)
    upload = (await request.form()).get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise BadRequest("Choose a CSV file to upload.", code="NoFile")
        addresses = classes.emails_from_upload(await upload.read(classes.MAX_CSV_BYTES + 1))
    except KoanError as exc:
        ctx = await _overview_context(session, res, member, user, errors={"file": exc.detail})
        return render(request, "classes/overview.html", ctx, status_code=exc.status_code)
    return await _invited(request, session, res, member, user, addresses, mail, field="file")


@router.post("/classes/{class_id}/join-code")
async def new_join_code(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    """A new join code (instructors): the old code and link join nobody any more."""
    member = await membership(session, user, class_id, instructor=True)
    await classes.new_join_code(session, member)
    return redirect(request, f"/classes/{member.room.id}?new_code=1")


@router.post("/classes/{class_id}/members/{user_id}/role")
async def change_role(
    request: Request, class_id: ClassId, user_id: str, user: PageUser, session: WebSession
) -> Response:
    """Promote a learner to TA or instructor, or a TA back to learner (instructors)."""
    member = await membership(session, user, class_id, instructor=True)
    role = (await form_data(request)).get("role", "")
    if role not in ("ta", "learner", "instructor"):
        raise BadRequest("Choose TA, learner or instructor.", code="BadRole")
    await classes.change_role(session, member, parse_uuid(user_id), role)
    return redirect(request, f"/classes/{member.room.id}?role={role}#members")


@router.get("/classes/{class_id}/members/{user_id}/remove")
async def remove_member_form(
    request: Request, class_id: ClassId, user_id: str, user: PageUser, session: WebSession,
    res: ResourcesDep,
) -> Response:  # fmt: skip
    member = await membership(session, user, class_id, staff=True)
    target = parse_uuid(user_id)
    found = next((m for m in await classes.roster_members(session, member) if m.user_id == target),
                 None)  # fmt: skip
    if found is None:
        raise NotFound("This account is not a member of the class.")
    return confirm_page(
        request, user, member,
        title=f"Remove {found.name} from {member.room.name}?",
        text=f"{found.name} ({found.email}) leaves the roster and the gradebook. Their own work "
        "and history stay theirs; they can join again with the class's code.",
        action=f"/classes/{member.room.id}/members/{target}/remove",
        button="Remove from the class", back=f"/classes/{member.room.id}#members",
    )  # fmt: skip


@router.post("/classes/{class_id}/members/{user_id}/remove")
async def remove_member(
    request: Request, class_id: ClassId, user_id: str, user: PageUser, session: WebSession
) -> Response:
    member = await membership(session, user, class_id, staff=True)
    await classes.remove_member(session, member, parse_uuid(user_id))
    return redirect(request, f"/classes/{member.room.id}?removed=1#members")


@router.get("/classes/{class_id}/leave")
async def leave_form(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    member = await membership(session, user, class_id)
    return confirm_page(
        request, user, member,
        title=f"Leave {member.room.name}?",
        text="You leave the class's roster and gradebook, and its teachers no longer see your "
        "work. Everything you did stays yours: your submissions, progress and conversations.",
        action=f"/classes/{member.room.id}/leave", button="Leave the class",
        back=f"/classes/{member.room.id}",
    )  # fmt: skip


@router.post("/classes/{class_id}/leave")
async def leave(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    member = await membership(session, user, class_id)
    await classes.leave(session, member, user, now=res.clock.now())
    return redirect(request, "/classes?left=1")
