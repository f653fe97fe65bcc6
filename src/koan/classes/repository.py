"""Queries for classes, their members, invitations and class assignments.

Learners' work (submissions, hints, conversations, progress, tutor spend) is read through the
repositories of the domains that keep it; what this module adds for the dashboards is what a
class sets: its learners, its exercises, and who must do which exercise by when (`work_set`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from koan.db import insert_unless_present
from koan.models import (
    ClassAssignment,
    ClassAssignmentItem,
    ClassExerciseReview,
    ClassInvite,
    ClassMembership,
    ClassRoom,
    User,
)

# -- classes and members ------------------------------------------------------------------


async def class_by_id(session: AsyncSession, class_id: uuid.UUID) -> ClassRoom | None:
    return await session.get(ClassRoom, class_id)


async def class_by_code(session: AsyncSession, code: str) -> ClassRoom | None:
    query = select(ClassRoom).where(ClassRoom.join_code == code)
    return (await session.execute(query)).scalar_one_or_none()


async def code_taken(session: AsyncSession, code: str) -> bool:
    return await class_by_code(session, code) is not None


async def all_classes(session: AsyncSession) -> Sequence[ClassRoom]:
    return (await session.execute(select(ClassRoom).order_by(ClassRoom.created_at))).scalars().all()


async def membership(
    session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID
) -> ClassMembership | None:
    return await session.get(ClassMembership, (class_id, user_id))


async def class_and_membership(
    session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[ClassRoom, ClassMembership | None] | None:
    """The class and `user_id`'s membership of it (None: not a member), in one query."""
    query = (
        select(ClassRoom, ClassMembership)
        .outerjoin(
            ClassMembership,
            and_(ClassMembership.class_id == ClassRoom.id, ClassMembership.user_id == user_id),
        )
        .where(ClassRoom.id == class_id)
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


_MEMBERSHIPS = cast("Table", ClassMembership.__table__)
# A membership unless the account has one in the class already (its primary key).
_JOIN = insert_unless_present(_MEMBERSHIPS, _MEMBERSHIPS.c.class_id, _MEMBERSHIPS.c.user_id)


async def join(
    session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID, *, role: str, at: datetime
) -> ClassMembership:
    """The account's membership of the class, added with `role` if it has none. Two requests
    joining at once (a double click, the code and an invitation) are both answered with the
    one membership: the database keeps the first, the second finds it (on PostgreSQL its
    insert waits for the first's transaction) instead of failing on the primary key."""
    values = {"class_id": class_id, "user_id": user_id, "role": role, "joined_at": at}
    await session.execute(_JOIN[session.get_bind().dialect.name], values)
    return await session.get_one(ClassMembership, (class_id, user_id))


async def hold_class(session: AsyncSession, class_id: uuid.UUID) -> ClassRoom | None:
    """Hold the class's row until the transaction ends, so that requests changing who is in
    the class and in which role take turns: each sees the memberships the one before left (two
    instructors leaving at once must not both count the other). FOR NO KEY UPDATE lets learners
    join meanwhile (a membership's foreign key only shares the row). SQLite ignores it: its
    write transactions run one at a time already. Returns the class as it is now (settings
    saved while this waited included), None when it was deleted meanwhile."""
    query = (
        select(ClassRoom)
        .where(ClassRoom.id == class_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def hold_classes_taught_by(session: AsyncSession, user_id: uuid.UUID) -> None:
    """`hold_class` for every class `user_id` is an instructor of, in one order (by id) so that
    two requests holding several never wait for each other."""
    query = (
        select(ClassRoom.id)
        .join(ClassMembership, ClassMembership.class_id == ClassRoom.id)
        .where(ClassMembership.user_id == user_id, ClassMembership.role == "instructor")
        .order_by(ClassRoom.id)
        .with_for_update(of=ClassRoom, key_share=True)
    )
    await session.execute(query)


@dataclass(frozen=True)
class Learner:
    """What the dashboards show of a learner's account."""

    id: uuid.UUID
    name: str
    email: str
    timezone: str
    joined_at: datetime


async def learners(session: AsyncSession, class_id: uuid.UUID) -> list[Learner]:
    """The class's learners by name (ix_class_memberships_class_role, then the accounts by
    primary key), without the columns the dashboards do not show."""
    query = (
        select(User.id, User.name, User.email, User.timezone, ClassMembership.joined_at)
        .join(ClassMembership, ClassMembership.user_id == User.id)
        .where(ClassMembership.class_id == class_id, ClassMembership.role == "learner")
        .order_by(User.name, User.email)
    )
    return [Learner(*row) for row in (await session.execute(query)).all()]


async def member(
    session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[ClassMembership, User] | None:
    """A member with their account, in one query."""
    query = (
        select(ClassMembership, User)
        .join(User, User.id == ClassMembership.user_id)
        .where(ClassMembership.class_id == class_id, ClassMembership.user_id == user_id)
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def classes_of(session: AsyncSession, user_id: uuid.UUID) -> Sequence[tuple[ClassRoom, str]]:
    """The classes `user_id` belongs to, with their role (ix_class_memberships_user)."""
    query = (
        select(ClassRoom, ClassMembership.role)
        .join(ClassMembership, ClassMembership.class_id == ClassRoom.id)
        .where(ClassMembership.user_id == user_id)
        .order_by(ClassRoom.created_at)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def sole_instructor_of(session: AsyncSession, user_id: uuid.UUID) -> Sequence[ClassRoom]:
    """The classes whose only instructor `user_id` is, by name."""
    others = ClassMembership.__table__.alias("other_instructor")
    another = (
        select(others.c.user_id)
        .where(
            others.c.class_id == ClassMembership.class_id,
            others.c.role == "instructor",
            others.c.user_id != user_id,
        )
        .exists()
    )
    query = (
        select(ClassRoom)
        .join(ClassMembership, ClassMembership.class_id == ClassRoom.id)
        .where(ClassMembership.user_id == user_id, ClassMembership.role == "instructor", ~another)
        .order_by(ClassRoom.name, ClassRoom.id)
    )
    return (await session.execute(query)).scalars().all()


async def member_count(session: AsyncSession, class_id: uuid.UUID) -> int:
    query = select(func.count()).where(ClassMembership.class_id == class_id)
    return int((await session.execute(query)).scalar_one())


async def members(
    session: AsyncSession, class_id: uuid.UUID, *, role: str | None = None
) -> Sequence[tuple[ClassMembership, User]]:
    """Members with their accounts, by name: the memberships through
    ix_class_memberships_class_role, their accounts by primary key."""
    query = (
        select(ClassMembership, User)
        .join(User, User.id == ClassMembership.user_id)
        .where(ClassMembership.class_id == class_id)
        .order_by(User.name, User.email)
    )
    if role is not None:
        query = query.where(ClassMembership.role == role)
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def remove_member(session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """The membership goes. The exercises picked for the learner stay, as their submissions and
    conversations do: nobody sees them while they are out of the class (every dashboard reads
    the class's current learners), and a learner let back in has the same picks, graded on
    the work they did, even after the assignment's due time, when no new picks are made."""
    await session.execute(
        delete(ClassMembership).where(
            ClassMembership.class_id == class_id, ClassMembership.user_id == user_id
        )
    )


async def delete_class(session: AsyncSession, class_id: uuid.UUID) -> None:
    await session.execute(delete(ClassRoom).where(ClassRoom.id == class_id))


async def users_by_emails(session: AsyncSession, emails: Sequence[str]) -> dict[str, User]:
    """Accounts by (normalised) address, in one query through uq_users_email."""
    if not emails:
        return {}
    rows = (await session.execute(select(User).where(User.email.in_(list(emails))))).scalars()
    return {user.email: user for user in rows}


async def user_by_id(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


# -- invitations --------------------------------------------------------------------------


async def invites(session: AsyncSession, class_id: uuid.UUID) -> Sequence[ClassInvite]:
    query = select(ClassInvite).where(ClassInvite.class_id == class_id).order_by(ClassInvite.email)
    return (await session.execute(query)).scalars().all()


async def invite_by_token(session: AsyncSession, token_hash: str) -> ClassInvite | None:
    query = select(ClassInvite).where(ClassInvite.token_hash == token_hash)
    return (await session.execute(query)).scalar_one_or_none()


async def record_invite_mail(
    session: AsyncSession, invite_id: uuid.UUID, token_hash: str, *, status: str, at: datetime
) -> None:
    """Whether the invitation's mail went out; only for the link that mail carried (an
    invitation sent again since has a newer one, whose own outcome counts)."""
    await session.execute(
        update(ClassInvite)
        .where(ClassInvite.id == invite_id, ClassInvite.token_hash == token_hash)
        .values(mail_status=status, mailed_at=at)
    )


# -- class assignments --------------------------------------------------------------------


async def class_assignments(
    session: AsyncSession, class_id: uuid.UUID
) -> Sequence[ClassAssignment]:
    query = (
        select(ClassAssignment)
        .where(ClassAssignment.class_id == class_id)
        .order_by(ClassAssignment.due_at, ClassAssignment.created_at)
    )
    return (await session.execute(query)).scalars().all()


async def class_assignment(
    session: AsyncSession, class_id: uuid.UUID, assignment_id: uuid.UUID
) -> ClassAssignment | None:
    found = await session.get(ClassAssignment, assignment_id)
    return found if found is not None and found.class_id == class_id else None


async def items(
    session: AsyncSession, class_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> Sequence[ClassAssignmentItem]:
    """A class's items (ix_class_assignment_items_class_id): everyone's, or one learner's."""
    query = select(ClassAssignmentItem).where(ClassAssignmentItem.class_id == class_id)
    if user_id is not None:
        query = query.where(
            or_(ClassAssignmentItem.user_id.is_(None), ClassAssignmentItem.user_id == user_id)
        )
    query = query.order_by(ClassAssignmentItem.class_assignment_id, ClassAssignmentItem.position)
    return (await session.execute(query)).scalars().all()


# The daily pick and every tailored hint or tutor reply about an exercise ask these: built once,
# with bound parameters (building a statement and its cache key costs about as much CPU as
# running it).
_OPEN_CLASS_EXERCISE_IDS = (
    select(ClassAssignmentItem.exercise_id)
    .join(ClassAssignment, ClassAssignment.id == ClassAssignmentItem.class_assignment_id)
    .join(
        ClassMembership,
        and_(
            ClassMembership.class_id == ClassAssignmentItem.class_id,
            ClassMembership.user_id == bindparam("user_id"),
            ClassMembership.role == "learner",
        ),
    )
    .where(
        ClassAssignment.opens_at <= bindparam("now"),
        ClassAssignment.due_at > bindparam("now"),
        or_(
            ClassAssignmentItem.user_id.is_(None),
            ClassAssignmentItem.user_id == bindparam("user_id"),
        ),
    )
)


async def open_class_exercise_ids(
    session: AsyncSession, user_id: uuid.UUID, now: datetime
) -> set[uuid.UUID]:
    """Exercises of the open class assignments `user_id` is a learner in."""
    found = await session.execute(_OPEN_CLASS_EXERCISE_IDS, {"user_id": user_id, "now": now})
    return set(found.scalars().all())


def _sets_exercise() -> ColumnElement[bool]:
    """The class sets `exercise_id`, for everyone or for `user_id`."""
    return ClassRoom.id.in_(
        select(ClassAssignmentItem.class_id).where(
            ClassAssignmentItem.exercise_id == bindparam("exercise_id"),
            or_(
                ClassAssignmentItem.user_id.is_(None),
                ClassAssignmentItem.user_id == bindparam("user_id"),
            ),
        )
    )


_EXAM_WINDOW_OPEN = and_(
    ClassRoom.tutor_off_from <= bindparam("now"), ClassRoom.tutor_off_until > bindparam("now")
)


def _learners_classes(*columns: Any) -> Select[Any]:
    return (
        select(*columns)
        .join(ClassMembership, ClassMembership.class_id == ClassRoom.id)
        .where(ClassMembership.user_id == bindparam("user_id"), ClassMembership.role == "learner")
        .order_by(ClassRoom.created_at)
    )


_CLASSES_RULING_EXERCISE = _learners_classes(ClassRoom, _sets_exercise().label("sets")).where(
    or_(_sets_exercise(), _EXAM_WINDOW_OPEN)
)
_CLASSES_IN_EXAM = _learners_classes(ClassRoom, literal(False).label("sets")).where(
    _EXAM_WINDOW_OPEN
)


async def classes_ruling_tutor(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID | None, now: datetime
) -> list[tuple[ClassRoom, bool]]:
    """The classes of which `user_id` is a learner that have a say over their tutor on
    `exercise_id` (None: a conversation about no exercise), each with whether it sets that
    exercise (for them): the classes that set it, and the classes in an exam window at `now`,
    which switches the tutor off whatever the learner asks about. Read through the
    memberships' user index and ix_class_assignment_items_exercise."""
    if exercise_id is None:
        found = await session.execute(_CLASSES_IN_EXAM, {"user_id": user_id, "now": now})
    else:
        params = {"user_id": user_id, "exercise_id": exercise_id, "now": now}
        found = await session.execute(_CLASSES_RULING_EXERCISE, params)
    return [(room, bool(sets)) for room, sets in found.all()]


# -- what a class sets: the dashboards' scope ----------------------------------------------


async def exercise_reviews(
    session: AsyncSession, class_id: uuid.UUID
) -> dict[uuid.UUID, ClassExerciseReview]:
    """Exercise -> the class instructor's decision on it."""
    query = select(ClassExerciseReview).where(ClassExerciseReview.class_id == class_id)
    return {r.exercise_id: r for r in (await session.execute(query)).scalars()}


async def learner_ids(session: AsyncSession, class_id: uuid.UUID) -> list[uuid.UUID]:
    """The class's learners (ix_class_memberships_class_role)."""
    query = select(ClassMembership.user_id).where(
        ClassMembership.class_id == class_id, ClassMembership.role == "learner"
    )
    return list((await session.execute(query)).scalars())


async def exercise_ids(session: AsyncSession, class_id: uuid.UUID) -> list[uuid.UUID]:
    """Every exercise the class sets, for everyone or picked for one of its members (not for
    somebody who has left), in the order the class meets them (earliest due first;
    ix_class_assignment_items_class_id)."""
    return [exercise_id for exercise_id, _ in await exercises_opened(session, class_id)]


async def exercises_opened(
    session: AsyncSession, class_id: uuid.UUID
) -> list[tuple[uuid.UUID, datetime]]:
    """`exercise_ids`, each with when the first assignment setting it opens."""
    members = select(ClassMembership.user_id).where(ClassMembership.class_id == class_id)
    query = (
        select(ClassAssignmentItem.exercise_id, func.min(ClassAssignment.opens_at))
        .join(ClassAssignment, ClassAssignment.id == ClassAssignmentItem.class_assignment_id)
        .where(
            ClassAssignmentItem.class_id == class_id,
            or_(ClassAssignmentItem.user_id.is_(None), ClassAssignmentItem.user_id.in_(members)),
        )
        .group_by(ClassAssignmentItem.exercise_id)
        .order_by(
            func.min(ClassAssignment.due_at),
            func.min(ClassAssignmentItem.position),
            ClassAssignmentItem.exercise_id,
        )
    )
    return [(row[0], row[1]) for row in await session.execute(query)]


async def learner_exercise_ids(
    session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID, *, opened_by: datetime
) -> list[uuid.UUID]:
    """The exercises the class has set for one learner so far: shared ones and the learner's
    own picks, of assignments already open. What the class's staff may see of the learner's
    work; an exercise set for no one yet (or only for another learner) stays the learner's."""
    query = (
        select(ClassAssignmentItem.exercise_id)
        .join(ClassAssignment, ClassAssignment.id == ClassAssignmentItem.class_assignment_id)
        .where(
            ClassAssignmentItem.class_id == class_id,
            or_(ClassAssignmentItem.user_id.is_(None), ClassAssignmentItem.user_id == user_id),
            ClassAssignment.opens_at <= opened_by,
        )
        .group_by(ClassAssignmentItem.exercise_id)
    )
    return list((await session.execute(query)).scalars())


async def due_times(
    session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID
) -> dict[uuid.UUID, datetime]:
    """Exercise -> the latest due time of the class assignments that set it for `user_id`."""
    query = (
        select(ClassAssignmentItem.exercise_id, func.max(ClassAssignment.due_at))
        .join(ClassAssignment, ClassAssignment.id == ClassAssignmentItem.class_assignment_id)
        .where(
            ClassAssignmentItem.class_id == class_id,
            or_(ClassAssignmentItem.user_id.is_(None), ClassAssignmentItem.user_id == user_id),
        )
        .group_by(ClassAssignmentItem.exercise_id)
    )
    return {row[0]: row[1] for row in await session.execute(query)}


def work_set(
    class_id: uuid.UUID,
    *,
    opened_by: datetime | None = None,
    open_at: datetime | None = None,
    learners: Sequence[uuid.UUID] | None = None,
) -> Subquery:
    """Who must do which exercise by when: one row (group_id: the class assignment, user_id,
    exercise_id, due_at) per exercise each current learner is set, the shared exercises for
    every learner and adaptive picks for the learner they were made for; only assignments
    opened by `opened_by`, or open at `open_at`, and only `learners`, when given. Used inside
    the exercises repository's aggregates."""

    def rows(shared: bool) -> Select[uuid.UUID, uuid.UUID, uuid.UUID, datetime]:
        learner = and_(
            ClassMembership.class_id == ClassAssignmentItem.class_id,
            ClassMembership.role == "learner",
        )
        if not shared:
            # A learner's own picks: joined on the learner, never through every learner.
            learner = and_(learner, ClassMembership.user_id == ClassAssignmentItem.user_id)
        query = (
            select(
                ClassAssignmentItem.class_assignment_id.label("group_id"),
                ClassMembership.user_id.label("user_id"),
                ClassAssignmentItem.exercise_id.label("exercise_id"),
                ClassAssignment.due_at.label("due_at"),
            )
            .join(ClassAssignment, ClassAssignment.id == ClassAssignmentItem.class_assignment_id)
            .join(ClassMembership, learner)
            .where(ClassAssignmentItem.class_id == class_id)
        )
        if shared:
            query = query.where(ClassAssignmentItem.user_id.is_(None))
        if opened_by is not None:
            query = query.where(ClassAssignment.opens_at <= opened_by)
        if learners is not None:
            query = query.where(ClassMembership.user_id.in_(list(learners)))
        if open_at is not None:
            query = query.where(
                ClassAssignment.opens_at <= open_at, ClassAssignment.due_at > open_at
            )
        return query

    return union_all(rows(True), rows(False)).subquery("work_set")
