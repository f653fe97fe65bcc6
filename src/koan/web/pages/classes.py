"""Class pages: a teacher's (the class, its roster and invitations, assignments, gradebook, who
needs help, per-exercise figures, one learner's work, the tutor's controls and spend) and a
learner's (joining with the code or an invitation, the class's work, leaving).

Every page asks `classes.service.member_of` first: a class the viewer is not in answers 404, a
staff page asked for by a learner 403, as the API does."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from koan.auth.deps import MailQueueDep
from koan.classes import dashboard
from koan.classes import service as classes
from koan.classes.schemas import (
    ClassAssignmentCreate,
    ClassCreate,
    ClassUpdate,
    InviteResult,
    MemberOut,
    TutorSettings,
)
from koan.classes.service import Membership
from koan.common.schemas import EARLIEST_YEAR, LATEST_YEAR, timezones
from koan.deps import ResourcesDep
from koan.errors import BadRequest, KoanError, NotFound, RateLimited
from koan.mail.sender import MailQueue
from koan.models import User
from koan.pagination import BadCursor, decode_time_cursor
from koan.resources import Resources
from koan.web.pagekit import (
    LANGUAGE_NAMES,
    PageUser,
    WebRoute,
    WebSession,
    field_errors,
    form_data,
    form_lists,
    in_zone,
    parse_uuid,
    redirect,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

STATUS_TEXT = {
    "passed": "Passed",
    "late": "Passed late",
    "attempted": "Attempted",
    "not_started": "Not started",
}
ROLE_TEXT = {"instructor": "Instructor", "ta": "TA", "learner": "Learner"}
STRICTNESS_TEXT = {
    "socratic": "Socratic: questions only, never code",
    "hints": "Hints: guiding hints and small fragments",
    "open": "Open: explains freely, still no full solution",
}
REASON_TEXT = {
    "failing": "Failing repeatedly",
    "ladder_used_up": "Used every hint",
    "inactive": "Inactive",
}
ROSTER_COLUMNS = (
    ("name", "Learner"),
    ("completed", "Completed"),
    ("attempts", "Attempts"),
    ("hints_used", "Hints"),
    ("tutor_messages", "Tutor messages"),
    ("assignments_done", "Assignments done"),
    ("last_active", "Last active"),
    ("streak", "Streak"),
)
SUBMISSIONS_SHOWN = 10
LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # an <input type="datetime-local"> value

ClassId = str


def _common(user: User, **extra: Any) -> dict[str, Any]:
    return {
        "status_text": STATUS_TEXT,
        "role_text": ROLE_TEXT,
        "languages": LANGUAGE_NAMES,
        "tz": user.timezone,
        **extra,
    }


async def _member(
    session: WebSession, user: User, class_id: str, *, staff: bool = False,
    instructor: bool = False,
) -> Membership:  # fmt: skip
    return await classes.member_of(
        session, user, parse_uuid(class_id), staff=staff or instructor, instructor=instructor
    )


async def _class_context(
    session: WebSession, res: Resources, member: Membership, user: User, tab: str, **extra: Any
) -> dict[str, Any]:
    """What every staff page shows around its own part: the class and its tabs."""
    room = await classes.describe(session, res, member.room, member.role, counts=False)
    return _common(user, room=room, member=member, tab=tab, **extra)


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


BUDGETS = ("learner_daily_budget_usd", "class_daily_cap_usd")


# An amount as people write one: ASCII digits, a point, one dollar sign before them (Decimal
# also reads "1_000", "1e3", "١" and "NaN", and "$" alone was read as blank: no limit at all).
_AMOUNT = re.compile(r"([-+]?)\s*\$?\s*(\d+(?:\.\d*)?|\.\d+)")


def _money(value: str) -> Decimal | None:
    """A budget field: blank is no limit. Raises ValueError for what is not an amount."""
    text = value.strip()
    if not text:
        return None
    amount = _AMOUNT.fullmatch(text) if text.isascii() else None
    if amount is None:
        raise ValueError(text)
    return Decimal(amount.group(1) + amount.group(2))


def _file_name(name: str, what: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "class"
    return f"{slug}-{what}.csv"


def _csv(content: str, filename: str) -> Response:
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _class_fields(values: dict[str, str]) -> dict[str, Any]:
    """A class's name, time zone and dates as the schemas take them."""
    ends_on = _blank(values["ends_on"])
    return {
        "name": values["name"],
        "timezone": values["timezone"] or "UTC",
        "starts_at": _blank(values["starts_on"]),
        # The end date is a whole day: the class runs until its last minute.
        "ends_at": f"{ends_on}T23:59" if ends_on else None,
    }


def _date_errors(exc: ValidationError) -> dict[str, str]:
    renamed = {"starts_at": "starts_on", "ends_at": "ends_on"}
    errors = {renamed.get(k, k): v for k, v in field_errors(exc).items()}
    for name in ("starts_on", "ends_on"):
        if name in errors:
            errors[name] = (
                f"Enter a date between the years {EARLIEST_YEAR} and {LATEST_YEAR}, like "
                "2026-09-01, or leave it empty."
            )
    return errors


# --- my classes, creating, joining ------------------------------------------------------------


async def _classes_context(
    session: WebSession, res: Resources, user: User, **extra: Any
) -> dict[str, Any]:
    mine = await classes.my_classes(session, res, user)
    ctx = _common(
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
        data = ClassCreate.model_validate(_class_fields(values))
    except ValidationError as exc:
        errors = _date_errors(exc)
    else:
        try:
            async with session.begin_nested():
                room = await classes.create_class(session, res, user, data)
                class_id = room.id
        except KoanError as exc:
            errors = {"ends_on" if exc.code == "InvalidDates" else "form": exc.detail}
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
    ctx: dict[str, Any] = _common(user, code=code.strip(), preview=None, errors={})
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
        return _code_refused(request, _common(user, code=code.strip()[:40], preview=None), exc)
    return redirect(request, f"/classes/{member.room.id}?joined=1")


InviteToken = Annotated[str, Query(max_length=200)]


@router.get("/classes/invite")
async def invite_page(
    request: Request, user: PageUser, session: WebSession, token: InviteToken = ""
) -> Response:
    """The mailed invitation's page: the class and what its teacher will see, then Join."""
    if not token:
        raise NotFound("This invitation link is incomplete: open the whole link from the mail.")
    preview = await classes.invite_preview(session, user, token)
    ctx = _common(user, code="", preview=preview, token=token, errors={})
    return render(request, "classes/join.html", ctx)


@router.post("/classes/invite")
async def accept_invite(
    request: Request, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    token = (await form_data(request)).get("token", "")[:200]
    member = await classes.accept_invite(session, res, user, token)
    return redirect(request, f"/classes/{member.room.id}?joined=1")


# --- the class page ---------------------------------------------------------------------------


async def _overview_context(
    session: WebSession, res: Resources, member: Membership, user: User, **extra: Any
) -> dict[str, Any]:
    ctx = await _class_context(
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
    member = await _member(session, user, class_id)
    if member.is_staff:
        ctx = await _overview_context(session, res, member, user)
        return render(request, "classes/overview.html", ctx)
    ctx = _common(
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
    member = await _member(session, user, class_id, staff=True)
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
    member = await _member(session, user, class_id, staff=True)
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
    member = await _member(session, user, class_id, instructor=True)
    await classes.new_join_code(session, member)
    return redirect(request, f"/classes/{member.room.id}?new_code=1")


@router.post("/classes/{class_id}/members/{user_id}/role")
async def change_role(
    request: Request, class_id: ClassId, user_id: str, user: PageUser, session: WebSession
) -> Response:
    """Promote a learner to TA or instructor, or a TA back to learner (instructors)."""
    member = await _member(session, user, class_id, instructor=True)
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
    member = await _member(session, user, class_id, staff=True)
    target = parse_uuid(user_id)
    found = next((m for m in await classes.roster_members(session, member) if m.user_id == target),
                 None)  # fmt: skip
    if found is None:
        raise NotFound("This account is not a member of the class.")
    return _confirm(
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
    member = await _member(session, user, class_id, staff=True)
    await classes.remove_member(session, member, parse_uuid(user_id))
    return redirect(request, f"/classes/{member.room.id}?removed=1#members")


def _confirm(
    request: Request, user: User, member: Membership, *, title: str, text: str, action: str,
    button: str, back: str,
) -> Response:  # fmt: skip
    """Ask before something that cannot be undone from the page."""
    ctx = _common(user, title=title, text=text, action=action, button=button, back=back,
                  room=member.room)  # fmt: skip
    return render(request, "classes/confirm.html", ctx)


@router.get("/classes/{class_id}/leave")
async def leave_form(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    member = await _member(session, user, class_id)
    return _confirm(
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
    member = await _member(session, user, class_id)
    await classes.leave(session, member, user, now=res.clock.now())
    return redirect(request, "/classes?left=1")


# --- the dashboard ----------------------------------------------------------------------------


@router.get("/classes/{class_id}/roster")
async def roster_page(
    request: Request,
    class_id: ClassId,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    sort: Annotated[str, Query(max_length=20)] = "name",
    order: Literal["asc", "desc"] = "asc",
) -> Response:
    """Per learner: completed, attempts, hints, tutor messages, assignments, last active,
    streak; sorted by any column."""
    member = await _member(session, user, class_id, staff=True)
    table = await dashboard.roster(session, member, now=res.clock.now(), sort=sort, order=order)
    ctx = await _class_context(session, res, member, user, "roster", table=table,
                               columns=ROSTER_COLUMNS)  # fmt: skip
    return render(request, "classes/roster.html", ctx)


@router.get("/classes/{class_id}/roster.csv")
async def roster_csv(
    request: Request,
    class_id: ClassId,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    sort: Annotated[str, Query(max_length=20)] = "name",
    order: Literal["asc", "desc"] = "asc",
) -> Response:
    member = await _member(session, user, class_id, staff=True)
    table = await dashboard.roster(session, member, now=res.clock.now(), sort=sort, order=order)
    return _csv(dashboard.roster_csv(table), _file_name(member.room.name, "roster"))


@router.get("/classes/{class_id}/gradebook")
async def gradebook_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Each assignment's status per learner: passed, passed late, attempted, not started."""
    member = await _member(session, user, class_id, staff=True)
    book = await dashboard.gradebook(session, member)
    ctx = await _class_context(session, res, member, user, "gradebook", book=book)
    return render(request, "classes/gradebook.html", ctx)


@router.get("/classes/{class_id}/gradebook.csv")
async def gradebook_csv(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    member = await _member(session, user, class_id, staff=True)
    book = await dashboard.gradebook(session, member)
    return _csv(dashboard.gradebook_csv(book), _file_name(member.room.name, "gradebook"))


@router.get("/classes/{class_id}/needs-help")
async def needs_help_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Learners stuck right now, each with why they are listed."""
    member = await _member(session, user, class_id, staff=True)
    entries = await dashboard.needs_help(session, member, now=res.clock.now())
    ctx = await _class_context(session, res, member, user, "needs-help", entries=entries,
                               reason_text=REASON_TEXT)  # fmt: skip
    return render(request, "classes/needs_help.html", ctx)


@router.get("/classes/{class_id}/exercises")
async def exercises_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Per exercise: pass rate, median attempts and time to pass, the commonest failure."""
    member = await _member(session, user, class_id, staff=True)
    stats = await dashboard.exercise_stats(session, member)
    ctx = await _class_context(session, res, member, user, "exercises", stats=stats)
    return render(request, "classes/exercises.html", ctx)


async def _learner(session: WebSession, member: Membership, learner_id: uuid.UUID) -> MemberOut:
    found = next(
        (m for m in await classes.roster_members(session, member) if m.user_id == learner_id), None
    )
    if found is None or found.role != "learner":
        raise NotFound("This class has no learner with this id.")
    return found


@router.get("/classes/{class_id}/learners/{user_id}")
async def learner_page(
    request: Request,
    class_id: ClassId,
    user_id: str,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
    before: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """One learner's submissions to the class's exercises (code and results) and their tutor
    conversations about them."""
    member = await _member(session, user, class_id, staff=True)
    learner_id = parse_uuid(user_id)
    since = None
    if before:
        try:
            since = decode_time_cursor(before)
        except BadCursor as exc:
            raise BadRequest("This page address is not valid: go back to the first page.") from exc
    now = res.clock.now()
    work = await dashboard.learner_submissions(
        session, member, learner_id, before=since, limit=SUBMISSIONS_SHOWN, now=now
    )
    talks = await dashboard.learner_conversations(session, member, learner_id, now=now)
    learner = await _learner(session, member, learner_id)
    ctx = await _class_context(session, res, member, user, "roster", learner=learner, work=work,
                               conversations=talks.items, first_page=before is None)  # fmt: skip
    return render(request, "classes/learner_work.html", ctx)


@router.get("/classes/{class_id}/learners/{user_id}/conversations/{conversation_id}")
async def conversation_page(
    request: Request,
    class_id: ClassId,
    user_id: str,
    conversation_id: str,
    user: PageUser,
    session: WebSession,
    res: ResourcesDep,
) -> Response:
    """A learner's conversation with the tutor about one of the class's exercises."""
    member = await _member(session, user, class_id, staff=True)
    learner_id = parse_uuid(user_id)
    now = res.clock.now()
    detail = await dashboard.learner_conversation(
        session, member, learner_id, parse_uuid(conversation_id), now=now
    )
    talks = await dashboard.learner_conversations(session, member, learner_id, now=now)
    summary = next((c for c in talks.items if c.id == detail.id), None)
    learner = await _learner(session, member, learner_id)
    ctx = await _class_context(session, res, member, user, "roster", learner=learner,
                               conversation=detail, summary=summary)  # fmt: skip
    return render(request, "classes/conversation.html", ctx)


# --- class assignments ------------------------------------------------------------------------


async def _assignments_context(
    session: WebSession, res: Resources, member: Membership, user: User, **extra: Any
) -> dict[str, Any]:
    bank = await classes.assignable_exercises(session, member.room.id)
    now = in_zone(res.clock.now(), member.room.timezone)
    due = (now + timedelta(days=7)).replace(hour=23, minute=59)
    ctx = await _class_context(
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
    member = await _member(session, user, class_id, staff=True)
    ctx = await _assignments_context(session, res, member, user)
    return render(request, "classes/assignments.html", ctx)


@router.post("/classes/{class_id}/assignments")
async def create_assignment(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Set an assignment: chosen exercises, or N of a skill at a level picked per learner.
    Opening and due times are in the class's time zone."""
    member = await _member(session, user, class_id, staff=True)
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
            level=values["level"] or None, count=values["count"] or None,
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
            except KoanError as exc:
                errors = {"due_at" if exc.code == "InvalidDates" else "form": exc.detail}
    if errors:
        ctx = await _assignments_context(session, res, member, user, errors=errors, values=values)
        return render(request, "classes/assignments.html", ctx, status_code=422)
    return redirect(request, f"/classes/{member.room.id}/assignments?set=1")


@router.get("/classes/{class_id}/assignments/{assignment_id}/withdraw")
async def withdraw_form(
    request: Request, class_id: ClassId, assignment_id: str, user: PageUser, session: WebSession,
    res: ResourcesDep,
) -> Response:  # fmt: skip
    member = await _member(session, user, class_id, staff=True)
    wanted = parse_uuid(assignment_id)
    found = next((a for a in await classes.staff_assignments(session, res, member, user)
                  if a.id == wanted), None)  # fmt: skip
    if found is None:
        raise NotFound("There is no class assignment with this id.")
    return _confirm(
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
    member = await _member(session, user, class_id, staff=True)
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
    member = await _member(session, user, class_id, instructor=True)
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


# --- the tutor's controls and spend ----------------------------------------------------------


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
    ctx = await _class_context(
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
    member = await _member(session, user, class_id, staff=True)
    return render(request, "classes/tutor.html", await _tutor_context(session, res, member, user))


@router.post("/classes/{class_id}/tutor")
async def save_tutor(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    member = await _member(session, user, class_id, instructor=True)
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
            budgets[name] = _money(values[name])
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
                    "off_from": _blank(values["off_from"]) if mode == "window" else None,
                    "off_until": _blank(values["off_until"]) if mode == "window" else None,
                    "off_reason": values["off_reason"].strip(),
                    **budgets,
                }
            )
            async with session.begin_nested():
                await classes.update_class(session, member, ClassUpdate(tutor=tutor))
        except ValidationError as exc:
            errors = field_errors(exc)
        except KoanError as exc:
            errors = {"off_until" if exc.code == "InvalidDates" else "form": exc.detail}
    if errors:
        values["mode"] = mode
        # The refused change was rolled back: read the class again.
        member = await _member(session, user, class_id, instructor=True)
        ctx = await _tutor_context(session, res, member, user, errors=errors, values=values)
        return render(request, "classes/tutor.html", ctx, status_code=422)
    return redirect(request, f"/classes/{member.room.id}/tutor?saved=1")


# --- the class's settings ---------------------------------------------------------------------


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
    ctx = await _class_context(session, res, member, user, "settings", values=values,
                               errors={}, timezones=sorted(timezones()))  # fmt: skip
    ctx.update(extra)
    return ctx


@router.get("/classes/{class_id}/settings")
async def settings_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Name, time zone and dates; deleting the class (instructors)."""
    member = await _member(session, user, class_id, instructor=True)
    ctx = await _settings_context(session, res, member, user)
    return render(request, "classes/settings.html", ctx)


@router.post("/classes/{class_id}/settings")
async def save_settings(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    member = await _member(session, user, class_id, instructor=True)
    form = await form_data(request)
    values = {k: form.get(k, "") for k in ("name", "timezone", "starts_on", "ends_on")}
    errors: dict[str, str] = {}
    try:
        data = ClassUpdate.model_validate(_class_fields(values))
        async with session.begin_nested():
            await classes.update_class(session, member, data)
    except ValidationError as exc:
        errors = _date_errors(exc)
    except KoanError as exc:
        errors = {"ends_on" if exc.code == "InvalidDates" else "form": exc.detail}
    if errors:
        member = await _member(session, user, class_id, instructor=True)
        ctx = await _settings_context(session, res, member, user, errors=errors, values=values)
        return render(request, "classes/settings.html", ctx, status_code=422)
    return redirect(request, f"/classes/{member.room.id}/settings?saved=1")


@router.get("/classes/{class_id}/delete")
async def delete_form(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    member = await _member(session, user, class_id, instructor=True)
    return _confirm(
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
    member = await _member(session, user, class_id, instructor=True)
    await classes.delete_class(session, member)
    return redirect(request, "/classes?deleted=1")


@router.get("/classes/{class_id}/invites")
@router.get("/classes/{class_id}/invites/csv")
@router.get("/classes/{class_id}/join-code")
@router.get("/classes/{class_id}/generated/{exercise_id}/approve")
@router.get("/classes/{class_id}/generated/{exercise_id}/reject")
@router.get("/classes/{class_id}/members/{user_id}/role")
async def form_address(request: Request, class_id: ClassId, user: PageUser) -> Response:
    """A form's address opened directly (a reload after a form shown again): its page."""
    return redirect(request, f"/classes/{parse_uuid(class_id)}")
