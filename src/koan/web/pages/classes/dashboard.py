"""A class's dashboard for its staff: the roster, the gradebook, who needs help, per-exercise
figures, and one learner's work."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from koan.classes import dashboard
from koan.classes import service as classes
from koan.classes.schemas import (
    MemberOut,
    Roster,
)
from koan.classes.service import Membership
from koan.deps import ResourcesDep
from koan.errors import BadRequest, NotFound
from koan.pagination import MAX_CURSOR_CHARS, BadCursor, decode_newest_first
from koan.web.pagekit import (
    PageUser,
    WebRoute,
    WebSession,
    parse_uuid,
    render,
)
from koan.web.pages.classes.common import (
    REASON_TEXT,
    ROSTER_COLUMNS,
    SUBMISSIONS_SHOWN,
    ClassId,
    class_context,
    csv_download,
    membership,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


async def _roster(
    session: WebSession, member: Membership, res: ResourcesDep, sort: str, order: str
) -> Roster:
    """The roster as asked; a column it cannot be sorted by is ignored (sorted by name), as an
    unknown order is (A to Z)."""
    if sort not in dashboard.ROSTER_SORTS:
        sort = "name"
    return await dashboard.roster(session, member, now=res.clock.now(), sort=sort, order=order)


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
    member = await membership(session, user, class_id, staff=True)
    table = await _roster(session, member, res, sort, order)
    ctx = await class_context(session, res, member, user, "roster", table=table,
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
    member = await membership(session, user, class_id, staff=True)
    table = await _roster(session, member, res, sort, order)
    return csv_download(
        dashboard.roster_csv(table), dashboard.csv_file_name(member.room.name, "roster")
    )


@router.get("/classes/{class_id}/gradebook")
async def gradebook_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Each assignment's status per learner: passed, passed late, attempted, not started."""
    member = await membership(session, user, class_id, staff=True)
    book = await dashboard.gradebook(session, member)
    ctx = await class_context(session, res, member, user, "gradebook", book=book)
    return render(request, "classes/gradebook.html", ctx)


@router.get("/classes/{class_id}/gradebook.csv")
async def gradebook_csv(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession
) -> Response:
    member = await membership(session, user, class_id, staff=True)
    book = await dashboard.gradebook(session, member)
    return csv_download(
        dashboard.gradebook_csv(book), dashboard.csv_file_name(member.room.name, "gradebook")
    )


@router.get("/classes/{class_id}/needs-help")
async def needs_help_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Learners stuck right now, each with why they are listed."""
    member = await membership(session, user, class_id, staff=True)
    entries = await dashboard.needs_help(session, member, now=res.clock.now())
    ctx = await class_context(session, res, member, user, "needs-help", entries=entries,
                              reason_text=REASON_TEXT)  # fmt: skip
    return render(request, "classes/needs_help.html", ctx)


@router.get("/classes/{class_id}/exercises")
async def exercises_page(
    request: Request, class_id: ClassId, user: PageUser, session: WebSession, res: ResourcesDep
) -> Response:
    """Per exercise: pass rate, median attempts and time to pass, the commonest failure."""
    member = await membership(session, user, class_id, staff=True)
    stats = await dashboard.exercise_stats(session, member, now=res.clock.now())
    ctx = await class_context(session, res, member, user, "exercises", stats=stats)
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
    before: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> Response:
    """One learner's submissions to the class's exercises (code and results) and their tutor
    conversations about them."""
    member = await membership(session, user, class_id, staff=True)
    learner_id = parse_uuid(user_id)
    since = None
    if before:
        try:
            since = decode_newest_first(before)
        except BadCursor as exc:
            raise BadRequest("This page address is not valid: go back to the first page.") from exc
    now = res.clock.now()
    work = await dashboard.learner_submissions(
        session, member, learner_id, before=since, limit=SUBMISSIONS_SHOWN, now=now
    )
    talks = await dashboard.learner_conversations(session, member, learner_id, now=now)
    learner = await _learner(session, member, learner_id)
    ctx = await class_context(session, res, member, user, "roster", learner=learner, work=work,
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
    member = await membership(session, user, class_id, staff=True)
    learner_id = parse_uuid(user_id)
    now = res.clock.now()
    detail = await dashboard.learner_conversation(
        session, member, learner_id, parse_uuid(conversation_id), now=now
    )
    talks = await dashboard.learner_conversations(session, member, learner_id, now=now)
    summary = next((c for c in talks.items if c.id == detail.id), None)
    learner = await _learner(session, member, learner_id)
    ctx = await class_context(session, res, member, user, "roster", learner=learner,
                              conversation=detail, summary=summary)  # fmt: skip
    return render(request, "classes/conversation.html", ctx)
