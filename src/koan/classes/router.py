"""Class routes: classes, joining, the roster, class assignments and the teacher's dashboard."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import File, Query, Response, UploadFile, status

from koan.auth.deps import MailQueueDep, VerifiedUser
from koan.auth.schemas import Message
from koan.classes import dashboard, repository, service
from koan.classes.schemas import (
    ClassAssignmentCreate,
    ClassAssignmentList,
    ClassAssignmentOut,
    ClassCreate,
    ClassList,
    ClassOut,
    ClassPreview,
    ClassUpdate,
    ClassUsage,
    ConversationDetail,
    ConversationList,
    ExerciseStatsList,
    GeneratedExerciseList,
    GeneratedExerciseOut,
    Gradebook,
    InviteAccept,
    InviteInput,
    InviteList,
    InviteResult,
    JoinInput,
    LearnerSubmissions,
    MemberList,
    MemberOut,
    NeedsHelp,
    RoleChange,
    Roster,
)
from koan.common.download import attachment
from koan.common.routing import PrefixedRouter
from koan.deps import ResourcesDep, SessionDep
from koan.pagination import MAX_CURSOR_CHARS, decode_newest_first

router = PrefixedRouter(prefix="/classes", tags=["classes"])


@router.post("", response_model=ClassOut, status_code=status.HTTP_201_CREATED)
async def create_class(
    data: ClassCreate, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassOut:
    """Create a class; the caller becomes its instructor."""
    room = await service.create_class(session, res, user, data)
    return await service.describe(session, res, room, "instructor")


@router.get("", response_model=ClassList)
async def my_classes(user: VerifiedUser, session: SessionDep, res: ResourcesDep) -> ClassList:
    """The classes the caller belongs to, with their role in each."""
    return ClassList(items=await service.my_classes(session, res, user))


@router.get("/preview", response_model=ClassPreview)
async def preview(
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    code: Annotated[str, Query(min_length=4, max_length=16)],
) -> ClassPreview:
    """What joining the class with this code means: who teaches it and what they will see."""
    return await service.preview(session, res, user, code)


@router.post("/join", response_model=ClassOut)
async def join(
    data: JoinInput, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassOut:
    """Join a class as a learner with its code (joining twice changes nothing)."""
    member = await service.join(session, res, user, data.code)
    return await service.describe(session, res, member.room, member.role)


@router.post("/invites/accept", response_model=ClassOut)
async def accept_invite(
    data: InviteAccept, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassOut:
    """Join the class an invitation mailed to the caller's address is for."""
    member = await service.accept_invite(session, res, user, data.token)
    return await service.describe(session, res, member.room, member.role)


@router.get("/assignments", response_model=ClassAssignmentList)
async def my_assignments(
    user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassAssignmentList:
    """The caller's class assignments in every class they learn in, due times in their zone."""
    return ClassAssignmentList(items=await service.learner_assignments(session, res, user))


@router.get("/{class_id}", response_model=ClassOut)
async def get_class(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassOut:
    """One class; staff also see its code, link and tutor settings."""
    member = await service.member_of(session, user, class_id)
    return await service.describe(session, res, member.room, member.role)


@router.patch("/{class_id}", response_model=ClassOut)
async def update_class(
    class_id: uuid.UUID,
    data: ClassUpdate,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
) -> ClassOut:
    """Change the class's settings and tutor controls (instructors only)."""
    member = await service.member_of(session, user, class_id, instructor=True)
    room = await service.update_class(session, member, data)
    return await service.describe(session, res, room, member.role)


@router.delete("/{class_id}", response_model=Message)
async def delete_class(class_id: uuid.UUID, user: VerifiedUser, session: SessionDep) -> Message:
    """Delete the class (instructors only); learners keep all their work."""
    member = await service.member_of(session, user, class_id, instructor=True)
    await service.delete_class(session, member)
    return Message(message="The class has been deleted; its learners keep their work.")


@router.post("/{class_id}/join-code", response_model=ClassOut)
async def new_join_code(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassOut:
    """Replace the join code (instructors): the old code and link stop working."""
    member = await service.member_of(session, user, class_id, instructor=True)
    room = await service.new_join_code(session, member)
    return await service.describe(session, res, room, member.role)


@router.post("/{class_id}/leave", response_model=Message)
async def leave(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> Message:
    """Leave the class: out of its roster and gradebook; your own history stays yours. Not
    while the class's tutor is off for an exam (409 `ExamInProgress`)."""
    member = await service.member_of(session, user, class_id)
    await service.leave(session, member, user, now=res.clock.now())
    return Message(message="You have left the class.")


@router.get("/{class_id}/members", response_model=MemberList)
async def members(class_id: uuid.UUID, user: VerifiedUser, session: SessionDep) -> MemberList:
    """The class's members and their roles (staff only)."""
    member = await service.member_of(session, user, class_id, staff=True)
    return MemberList(items=await service.roster_members(session, member))


@router.delete("/{class_id}/members/{user_id}", response_model=Message)
async def remove_member(
    class_id: uuid.UUID, user_id: uuid.UUID, user: VerifiedUser, session: SessionDep
) -> Message:
    """Remove a member (staff; only instructors remove staff). Their work stays theirs."""
    member = await service.member_of(session, user, class_id, staff=True)
    await service.remove_member(session, member, user_id)
    return Message(message="The member has been removed from the class.")


@router.patch("/{class_id}/members/{user_id}", response_model=MemberOut)
async def change_role(
    class_id: uuid.UUID,
    user_id: uuid.UUID,
    data: RoleChange,
    user: VerifiedUser,
    session: SessionDep,
) -> MemberOut:
    """Promote a learner to TA or instructor, or a TA back to learner (instructors only)."""
    member = await service.member_of(session, user, class_id, instructor=True)
    changed = await service.change_role(session, member, user_id, data.role)
    account = await repository.user_by_id(session, changed.user_id)
    assert account is not None
    return MemberOut(
        user_id=account.id, name=account.name, email=account.email,
        role=changed.role, joined_at=changed.joined_at,
    )  # fmt: skip


@router.get("/{class_id}/generated-exercises", response_model=GeneratedExerciseList)
async def generated_exercises(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep
) -> GeneratedExerciseList:
    """Exercises the model wrote for the class's learners, and the instructor's decision on
    each (staff)."""
    member = await service.member_of(session, user, class_id, staff=True)
    return GeneratedExerciseList(items=await service.generated_exercises(session, member))


@router.post(
    "/{class_id}/generated-exercises/{exercise_id}/approve",
    response_model=GeneratedExerciseOut,
    responses={409: {"description": "AlreadyShared: an authored or admin-approved exercise"}},
)
async def approve_generated_exercise(
    class_id: uuid.UUID,
    exercise_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
) -> GeneratedExerciseOut:
    """Share an exercise written for one of the class's learners with the class's members,
    who may then open it and be set it (instructors only, not TAs)."""
    member = await service.member_of(session, user, class_id, instructor=True)
    return await service.review_generated(session, res, member, user, exercise_id, approve=True)


@router.post(
    "/{class_id}/generated-exercises/{exercise_id}/reject",
    response_model=GeneratedExerciseOut,
    responses={409: {"description": "AlreadyShared: an authored or admin-approved exercise"}},
)
async def reject_generated_exercise(
    class_id: uuid.UUID,
    exercise_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
) -> GeneratedExerciseOut:
    """Keep an exercise written for one of the class's learners its requester's alone (an
    approval is withdrawn; instructors only, not TAs)."""
    member = await service.member_of(session, user, class_id, instructor=True)
    return await service.review_generated(session, res, member, user, exercise_id, approve=False)


@router.get("/{class_id}/invites", response_model=InviteList)
async def invites(class_id: uuid.UUID, user: VerifiedUser, session: SessionDep) -> InviteList:
    """Invitations sent, and whether they were accepted (staff only)."""
    member = await service.member_of(session, user, class_id, staff=True)
    return InviteList(items=await service.invites_of(session, member))


@router.post("/{class_id}/invites", response_model=InviteResult)
async def invite(
    class_id: uuid.UUID,
    data: InviteInput,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    mail: MailQueueDep,
) -> InviteResult:
    """Invite a pasted list of addresses; each gets a mail with a link to join, sent after
    the response (`mail_status` on the invitations says whether it went out)."""
    member = await service.member_of(session, user, class_id, staff=True)
    addresses = service.emails_from_text(data.emails)
    return await service.invite(session, res, member, user, addresses, mail)


@router.post("/{class_id}/invites/csv", response_model=InviteResult)
async def invite_csv(
    class_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    mail: MailQueueDep,
    file: Annotated[UploadFile, File(description="A CSV file with an email column.")],
) -> InviteResult:
    """Invite every address in an uploaded CSV file (mailed after the response)."""
    member = await service.member_of(session, user, class_id, staff=True)
    addresses = service.emails_from_upload(await file.read(service.MAX_CSV_BYTES + 1))
    return await service.invite(session, res, member, user, addresses, mail)


@router.post(
    "/{class_id}/assignments",
    response_model=ClassAssignmentOut,
    status_code=status.HTTP_201_CREATED,
)
async def create_assignment(
    class_id: uuid.UUID,
    data: ClassAssignmentCreate,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
) -> ClassAssignmentOut:
    """Set a class assignment: chosen exercises, or N of a skill picked per learner. Times
    without an offset are in the class's time zone."""
    member = await service.member_of(session, user, class_id, staff=True)
    created = await service.create_assignment(session, res, member, user, data)
    rows = await service.staff_assignments(session, res, member, user)
    return next(a for a in rows if a.id == created.id)


@router.get("/{class_id}/assignments", response_model=ClassAssignmentList)
async def class_assignments(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassAssignmentList:
    """Staff: every assignment of the class. Learners: their own, with their progress."""
    member = await service.member_of(session, user, class_id)
    if member.is_staff:
        items = await service.staff_assignments(session, res, member, user)
    else:
        items = await service.learner_assignments(session, res, user, class_id=class_id)
    return ClassAssignmentList(items=items)


@router.delete("/{class_id}/assignments/{class_assignment_id}", response_model=Message)
async def delete_assignment(
    class_id: uuid.UUID, class_assignment_id: uuid.UUID, user: VerifiedUser, session: SessionDep
) -> Message:
    """Withdraw a class assignment (staff); learners' submissions stay."""
    member = await service.member_of(session, user, class_id, staff=True)
    await service.delete_assignment(session, member, class_assignment_id)
    return Message(message="The class assignment has been withdrawn.")


def csv_response(content: str, filename: str) -> Response:
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(filename)},
    )


# -- the dashboard (staff only) -----------------------------------------------------------

Format = Annotated[Literal["json", "csv"], Query(description="csv: a spreadsheet download.")]


@router.get(
    "/{class_id}/dashboard/roster",
    response_model=Roster,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def roster(
    class_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    sort: Annotated[str, Query(max_length=20)] = "name",
    order: Literal["asc", "desc"] = "asc",
    format: Format = "json",
) -> Roster | Response:
    """Per learner: exercises completed, attempts, hints, tutor messages, assignments done,
    last active and streak. Sortable by any column."""
    member = await service.member_of(session, user, class_id, staff=True)
    table = await dashboard.roster(session, member, now=res.clock.now(), sort=sort, order=order)
    if format == "csv":
        return csv_response(
            dashboard.roster_csv(table), dashboard.csv_file_name(member.room.name, "roster")
        )
    return table


@router.get(
    "/{class_id}/dashboard/gradebook",
    response_model=Gradebook,
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def gradebook(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, format: Format = "json"
) -> Gradebook | Response:
    """Each assignment's status per learner: passed, late, attempted or not started."""
    member = await service.member_of(session, user, class_id, staff=True)
    book = await dashboard.gradebook(session, member)
    if format == "csv":
        return csv_response(
            dashboard.gradebook_csv(book), dashboard.csv_file_name(member.room.name, "gradebook")
        )
    return book


@router.get("/{class_id}/dashboard/needs-help", response_model=NeedsHelp)
async def needs_help(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> NeedsHelp:
    """Learners who are stuck right now, each with why they are listed."""
    member = await service.member_of(session, user, class_id, staff=True)
    return NeedsHelp(items=await dashboard.needs_help(session, member, now=res.clock.now()))


@router.get("/{class_id}/dashboard/exercises", response_model=ExerciseStatsList)
async def exercise_stats(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ExerciseStatsList:
    """Per exercise: pass rate, median attempts and time to pass, the commonest failing test,
    hints used (figures once an assignment setting the exercise has opened)."""
    member = await service.member_of(session, user, class_id, staff=True)
    stats = await dashboard.exercise_stats(session, member, now=res.clock.now())
    return ExerciseStatsList(items=stats)


@router.get("/{class_id}/dashboard/usage", response_model=ClassUsage)
async def usage(
    class_id: uuid.UUID, user: VerifiedUser, session: SessionDep, res: ResourcesDep
) -> ClassUsage:
    """Today's tutor spend on the class's exercises, against the class's budgets."""
    member = await service.member_of(session, user, class_id, staff=True)
    return await dashboard.usage(session, member, now=res.clock.now())


@router.get("/{class_id}/learners/{user_id}/submissions", response_model=LearnerSubmissions)
async def learner_submissions(
    class_id: uuid.UUID,
    user_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> LearnerSubmissions:
    """One learner's submissions to the exercises the class has set them (code and results),
    newest first."""
    member = await service.member_of(session, user, class_id, staff=True)
    before = decode_newest_first(cursor) if cursor else None
    return await dashboard.learner_submissions(
        session, member, user_id, before=before, limit=limit, now=res.clock.now()
    )


@router.get("/{class_id}/learners/{user_id}/conversations", response_model=ConversationList)
async def learner_conversations(
    class_id: uuid.UUID,
    user_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
) -> ConversationList:
    """One learner's tutor conversations about the exercises the class has set them (no
    others)."""
    member = await service.member_of(session, user, class_id, staff=True)
    return await dashboard.learner_conversations(session, member, user_id, now=res.clock.now())


@router.get(
    "/{class_id}/learners/{user_id}/conversations/{conversation_id}",
    response_model=ConversationDetail,
)
async def learner_conversation(
    class_id: uuid.UUID,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    user: VerifiedUser,
    session: SessionDep,
    res: ResourcesDep,
) -> ConversationDetail:
    """One of those conversations, every message."""
    member = await service.member_of(session, user, class_id, staff=True)
    return await dashboard.learner_conversation(
        session, member, user_id, conversation_id, now=res.clock.now()
    )
