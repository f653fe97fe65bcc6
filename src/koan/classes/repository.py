"""Queries for classes, their members, invitations and class assignments, and the dashboards.

The dashboard queries read other domains' tables (submissions, assignments, conversations,
learner progress) directly, in one aggregate per page: going through those domains' per-learner
functions would cost one round trip per learner and exercise (hundreds per page). Each query
is bounded by the class's learners and exercises, through the indexes named beside it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Select, and_, bindparam, case, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import (
    Assignment,
    ClassAssignment,
    ClassAssignmentItem,
    ClassInvite,
    ClassMembership,
    ClassRoom,
    Conversation,
    ConversationMessage,
    Exercise,
    LearnerProgress,
    LLMCall,
    Submission,
    User,
)

FAILED = ("failed", "error", "timeout", "crashed")

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


async def classes_of(session: AsyncSession, user_id: uuid.UUID) -> Sequence[tuple[ClassRoom, str]]:
    """The classes `user_id` belongs to, with their role (ix_class_memberships_user)."""
    query = (
        select(ClassRoom, ClassMembership.role)
        .join(ClassMembership, ClassMembership.class_id == ClassRoom.id)
        .where(ClassMembership.user_id == user_id)
        .order_by(ClassRoom.created_at)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def member_count(session: AsyncSession, class_id: uuid.UUID) -> int:
    query = select(func.count()).where(ClassMembership.class_id == class_id)
    return int((await session.execute(query)).scalar_one())


async def members(
    session: AsyncSession, class_id: uuid.UUID, *, role: str | None = None
) -> Sequence[tuple[ClassMembership, User]]:
    """Members with their accounts, by name: the memberships through
    ix_class_memberships_class_role, then their accounts by primary key (one query each, so
    the accounts are always probed by key, never read in full)."""
    query = select(ClassMembership).where(ClassMembership.class_id == class_id)
    if role is not None:
        query = query.where(ClassMembership.role == role)
    found = (await session.execute(query)).scalars().all()
    if not found:
        return []
    accounts = await users_by_ids(session, [m.user_id for m in found])
    pairs = [(m, accounts[m.user_id]) for m in found if m.user_id in accounts]
    pairs.sort(key=lambda pair: (pair[1].name, pair[1].email))
    return pairs


async def users_by_ids(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not ids:
        return {}
    rows = (await session.execute(select(User).where(User.id.in_(list(ids))))).scalars()
    return {user.id: user for user in rows}


def learner_ids(class_id: uuid.UUID) -> Select[uuid.UUID]:
    return select(ClassMembership.user_id).where(
        ClassMembership.class_id == class_id, ClassMembership.role == "learner"
    )


def exercise_ids(class_id: uuid.UUID) -> Select[uuid.UUID]:
    return (
        select(ClassAssignmentItem.exercise_id)
        .where(ClassAssignmentItem.class_id == class_id)
        .distinct()
    )


async def remove_member(session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await session.execute(
        delete(ClassMembership).where(
            ClassMembership.class_id == class_id, ClassMembership.user_id == user_id
        )
    )
    # The learner's own picks go with them; their submissions and conversations stay.
    await session.execute(
        delete(ClassAssignmentItem).where(
            ClassAssignmentItem.class_id == class_id, ClassAssignmentItem.user_id == user_id
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


async def exercises_by_ids(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Exercise]:
    if not ids:
        return {}
    rows = (await session.execute(select(Exercise).where(Exercise.id.in_(list(ids))))).scalars()
    return {exercise.id: exercise for exercise in rows}


async def exercise_titles(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, str, int]]:
    """(slug, title, number of hints) per exercise, without the large text columns."""
    if not ids:
        return {}
    query = select(Exercise.id, Exercise.slug, Exercise.title, Exercise.hints).where(
        Exercise.id.in_(list(ids))
    )
    return {row[0]: (row[1], row[2], len(row[3] or [])) for row in await session.execute(query)}


async def open_class_exercise_ids(
    session: AsyncSession, user_id: uuid.UUID, now: datetime
) -> set[uuid.UUID]:
    """Exercises of the open class assignments `user_id` is a learner in."""
    query = (
        select(ClassAssignmentItem.exercise_id)
        .join(ClassAssignment, ClassAssignment.id == ClassAssignmentItem.class_assignment_id)
        .join(
            ClassMembership,
            and_(
                ClassMembership.class_id == ClassAssignmentItem.class_id,
                ClassMembership.user_id == user_id,
                ClassMembership.role == "learner",
            ),
        )
        .where(
            ClassAssignment.opens_at <= now,
            ClassAssignment.due_at > now,
            or_(ClassAssignmentItem.user_id.is_(None), ClassAssignmentItem.user_id == user_id),
        )
    )
    return set((await session.execute(query)).scalars().all())


async def classes_setting_exercise(
    session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID
) -> Sequence[ClassRoom]:
    """The classes in which `user_id` is a learner and `exercise_id` is set (for them): the
    tutor's per-class policy. Read through ix_class_assignment_items_exercise and the
    memberships' primary key."""
    query = (
        select(ClassRoom)
        .join(ClassMembership, ClassMembership.class_id == ClassRoom.id)
        .where(
            ClassMembership.user_id == user_id,
            ClassMembership.role == "learner",
            ClassRoom.id.in_(
                select(ClassAssignmentItem.class_id).where(
                    ClassAssignmentItem.exercise_id == exercise_id,
                    or_(
                        ClassAssignmentItem.user_id.is_(None),
                        ClassAssignmentItem.user_id == user_id,
                    ),
                )
            ),
        )
        .order_by(ClassRoom.created_at)
    )
    return (await session.execute(query)).scalars().all()


# -- dashboards ---------------------------------------------------------------------------


@dataclass
class Scope:
    """What a dashboard query covers: these learners' work on these exercises.

    Read first (two index range scans) and then passed as literal id lists: with the lists,
    the planner sees how few rows it needs and probes the (user, exercise) indexes, where a
    subquery let it guess and read whole tables."""

    learners: list[uuid.UUID]
    exercises: list[uuid.UUID]


async def scope_of(
    session: AsyncSession, class_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> Scope:
    if user_id is None:
        learners = list((await session.execute(learner_ids(class_id))).scalars().all())
    else:
        learners = [user_id]
    exercises = list((await session.execute(exercise_ids(class_id))).scalars().all())
    return Scope(learners, exercises)


@dataclass
class WorkStat:
    """A learner's submissions to one exercise."""

    attempts: int
    failures: int
    first_at: datetime
    last_at: datetime
    first_pass_at: datetime | None


async def work_stats(
    session: AsyncSession, scope: Scope
) -> dict[tuple[uuid.UUID, uuid.UUID], WorkStat]:
    """(learner, exercise) -> their submissions' figures, for the class's learners (or one of
    them) and exercises (ix_submissions_user_exercise_created, one range per pair)."""
    query = (
        select(
            Submission.user_id,
            Submission.exercise_id,
            func.count(),
            func.sum(case((Submission.status.in_(FAILED), 1), else_=0)),
            func.min(Submission.created_at),
            func.max(Submission.created_at),
            func.min(case((Submission.status == "passed", Submission.created_at), else_=None)),
        )
        .where(
            Submission.user_id.in_(scope.learners),
            Submission.exercise_id.in_(scope.exercises),
        )
        .group_by(Submission.user_id, Submission.exercise_id)
    )
    return {
        (row[0], row[1]): WorkStat(int(row[2]), int(row[3] or 0), row[4], row[5], row[6])
        for row in await session.execute(query)
    }


async def attempts_until(
    session: AsyncSession, scope: Scope
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """(learner, exercise) -> submissions up to and including the first pass."""
    first_pass = (
        select(
            Submission.user_id.label("user_id"),
            Submission.exercise_id.label("exercise_id"),
            func.min(Submission.created_at).label("at"),
        )
        .where(
            Submission.user_id.in_(scope.learners),
            Submission.exercise_id.in_(scope.exercises),
            Submission.status == "passed",
        )
        .group_by(Submission.user_id, Submission.exercise_id)
        .subquery()
    )
    query = (
        select(Submission.user_id, Submission.exercise_id, func.count())
        .join(
            first_pass,
            and_(
                first_pass.c.user_id == Submission.user_id,
                first_pass.c.exercise_id == Submission.exercise_id,
                Submission.created_at <= first_pass.c.at,
            ),
        )
        .group_by(Submission.user_id, Submission.exercise_id)
    )
    return {(row[0], row[1]): int(row[2]) for row in await session.execute(query)}


async def last_submission_at(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, datetime]:
    """Each learner's latest submission to any exercise (ix_submissions_user_exercise_created)."""
    query = (
        select(Submission.user_id, func.max(Submission.created_at))
        .where(Submission.user_id.in_(scope.learners))
        .group_by(Submission.user_id)
    )
    return {row[0]: row[1] for row in await session.execute(query)}


async def hints_used(session: AsyncSession, scope: Scope) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """(learner, exercise) -> hints taken (ix_assignments_user_exercise)."""
    query = (
        select(Assignment.user_id, Assignment.exercise_id, func.sum(Assignment.hints_used))
        .where(
            Assignment.user_id.in_(scope.learners),
            Assignment.exercise_id.in_(scope.exercises),
        )
        .group_by(Assignment.user_id, Assignment.exercise_id)
    )
    return {(row[0], row[1]): int(row[2] or 0) for row in await session.execute(query)}


async def tutor_messages(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, int]:
    """Learner -> questions asked to the tutor about the class's exercises (conversations by
    ix_conversations_user_updated, their messages by their conversation key)."""
    query = (
        select(Conversation.user_id, func.count())
        .join(ConversationMessage, ConversationMessage.conversation_id == Conversation.id)
        .where(
            Conversation.user_id.in_(scope.learners),
            Conversation.exercise_id.in_(scope.exercises),
            ConversationMessage.role == "user",
        )
        .group_by(Conversation.user_id)
    )
    return {row[0]: int(row[1]) for row in await session.execute(query)}


async def streaks(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, tuple[int, date | None]]:
    """Learner -> (current streak, last active day) from their progress row (primary key)."""
    query = select(
        LearnerProgress.user_id, LearnerProgress.current_streak, LearnerProgress.last_active_day
    ).where(LearnerProgress.user_id.in_(scope.learners))
    return {row[0]: (int(row[1]), row[2]) for row in await session.execute(query)}


async def failing_tests(
    session: AsyncSession, scope: Scope
) -> dict[uuid.UUID, tuple[str, str, int]]:
    """Exercise -> (test, message, count): the test that failed most often in the class's
    learners' submissions, read out of each failed submission's test results."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        elements = "json_array_elements(s.tests) AS t(value)"
        name, status, message = "t.value->>'name'", "t.value->>'status'", "t.value->>'message'"
    else:
        elements = "json_each(s.tests) AS t"
        name = "json_extract(t.value, '$.name')"
        status = "json_extract(t.value, '$.status')"
        message = "json_extract(t.value, '$.message')"
    if not scope.learners or not scope.exercises:
        return {}
    sql = text(
        f"""
        SELECT exercise_id, name, message, n FROM (
            SELECT s.exercise_id AS exercise_id, {name} AS name, MAX({message}) AS message,
                   COUNT(*) AS n,
                   ROW_NUMBER() OVER (PARTITION BY s.exercise_id ORDER BY COUNT(*) DESC,
                                      {name}) AS rank
            FROM submissions AS s, {elements}
            WHERE s.user_id IN :learners AND s.exercise_id IN :exercises
              AND s.status = 'failed' AND {status} <> 'passed'
            GROUP BY s.exercise_id, {name}
        ) AS ranked WHERE rank = 1
        """
    ).bindparams(
        bindparam("learners", expanding=True, type_=Submission.user_id.type),
        bindparam("exercises", expanding=True, type_=Submission.exercise_id.type),
    )
    rows = await session.execute(sql, {"learners": scope.learners, "exercises": scope.exercises})
    return {_as_uuid(row[0]): (str(row[1] or ""), str(row[2] or ""), int(row[3])) for row in rows}


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


async def learner_submissions(
    session: AsyncSession,
    class_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    before: datetime | None,
    limit: int,
) -> Sequence[Submission]:
    """One learner's submissions to the class's exercises, newest first."""
    query = select(Submission).where(
        Submission.user_id == user_id, Submission.exercise_id.in_(exercise_ids(class_id))
    )
    if before is not None:
        query = query.where(Submission.created_at < before)
    query = query.order_by(Submission.created_at.desc()).limit(limit)
    return (await session.execute(query)).scalars().all()


async def learner_conversations(
    session: AsyncSession, class_id: uuid.UUID, user_id: uuid.UUID
) -> Sequence[Conversation]:
    """One learner's conversations about the class's exercises (never the others)."""
    query = (
        select(Conversation)
        .where(
            Conversation.user_id == user_id,
            Conversation.exercise_id.in_(exercise_ids(class_id)),
        )
        .order_by(Conversation.updated_at.desc())
    )
    return (await session.execute(query)).scalars().all()


async def conversation_messages(
    session: AsyncSession, conversation_id: uuid.UUID
) -> Sequence[ConversationMessage]:
    query = (
        select(ConversationMessage)
        .where(ConversationMessage.conversation_id == conversation_id)
        .order_by(ConversationMessage.seq)
    )
    return (await session.execute(query)).scalars().all()


async def spend_today(session: AsyncSession, scope: Scope, day: date) -> dict[uuid.UUID, Decimal]:
    """Learner -> tutor spend on `day` in conversations about the class's exercises
    (ix_llm_calls_user_day)."""
    query = (
        select(LLMCall.user_id, func.coalesce(func.sum(LLMCall.cost_usd), 0))
        .where(
            LLMCall.user_id.in_(scope.learners),
            LLMCall.day == day,
            LLMCall.exercise_id.in_(scope.exercises),
        )
        .group_by(LLMCall.user_id)
    )
    return {row[0]: Decimal(row[1]) for row in await session.execute(query) if row[0]}


async def recent_failures(
    session: AsyncSession, scope: Scope, *, since: datetime
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, datetime]]:
    """(learner, exercise) -> (failed submissions since `since`, the first of them)."""
    query = (
        select(
            Submission.user_id,
            Submission.exercise_id,
            func.count(),
            func.min(Submission.created_at),
        )
        .where(
            Submission.user_id.in_(scope.learners),
            Submission.exercise_id.in_(scope.exercises),
            Submission.created_at >= since,
            Submission.status.in_(FAILED),
        )
        .group_by(Submission.user_id, Submission.exercise_id)
    )
    return {(row[0], row[1]): (int(row[2]), row[3]) for row in await session.execute(query)}
