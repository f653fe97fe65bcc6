"""The instructor's dashboard: roster, gradebook, who needs help, per-exercise figures, and one
learner's work. Each page is a handful of aggregate queries over the class's learners and
exercises (see classes.repository), put together here."""

from __future__ import annotations

import csv
import io
import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from koan.classes import repository
from koan.classes.schemas import (
    ClassUsage,
    ConversationDetail,
    ConversationList,
    ConversationSummary,
    ExerciseStats,
    Gradebook,
    GradebookColumn,
    GradebookRow,
    ItemStatus,
    LearnerSubmission,
    LearnerSubmissions,
    MessageOut,
    NeedsHelpEntry,
    Roster,
    RosterRow,
)
from koan.classes.service import Membership, item_status, overall_status
from koan.errors import BadRequest, NotFound
from koan.models import ClassAssignment, ClassAssignmentItem, User

# "Needs help": this many failed attempts at one exercise within the window, and no pass.
FAILING_ATTEMPTS = 2
FAILING_WINDOW = timedelta(hours=1)
# No submission for this long while an assignment is open and unfinished.
INACTIVE_AFTER = timedelta(days=2)
ROSTER_SORTS = (
    "name", "completed", "attempts", "hints_used", "tutor_messages", "assignments_done",
    "last_active", "streak",
)  # fmt: skip


@dataclass
class _Facts:
    learners: list[User]
    assignments: list[ClassAssignment]
    # assignment id -> exercises for everyone; (assignment id, learner) -> their own picks
    shared: dict[uuid.UUID, list[uuid.UUID]]
    picked: dict[tuple[uuid.UUID, uuid.UUID], list[uuid.UUID]]
    work: dict[tuple[uuid.UUID, uuid.UUID], repository.WorkStat]
    scope: repository.Scope

    def exercises_of(self, assignment: ClassAssignment, user_id: uuid.UUID) -> list[uuid.UUID]:
        if assignment.kind == "adaptive":
            return self.picked.get((assignment.id, user_id), [])
        return self.shared.get(assignment.id, [])

    def status(self, assignment: ClassAssignment, user_id: uuid.UUID) -> ItemStatus:
        exercises = self.exercises_of(assignment, user_id)
        return overall_status(
            [item_status(self.work.get((user_id, e)), assignment.due_at) for e in exercises]
        )


async def _facts(session: AsyncSession, member: Membership) -> _Facts:
    class_id = member.room.id
    learners = [u for _, u in await repository.members(session, class_id, role="learner")]
    assignments = list(await repository.class_assignments(session, class_id))
    shared: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    picked: dict[tuple[uuid.UUID, uuid.UUID], list[uuid.UUID]] = defaultdict(list)
    for item in await repository.items(session, class_id):
        _file(item, shared, picked)
    scope = repository.Scope(
        [u.id for u in learners],
        list(dict.fromkeys([*(e for es in shared.values() for e in es),
                            *(e for es in picked.values() for e in es)])),
    )  # fmt: skip
    work = await repository.work_stats(session, scope)
    return _Facts(learners, assignments, shared, picked, work, scope)


def _file(
    item: ClassAssignmentItem,
    shared: dict[uuid.UUID, list[uuid.UUID]],
    picked: dict[tuple[uuid.UUID, uuid.UUID], list[uuid.UUID]],
) -> None:
    if item.user_id is None:
        shared[item.class_assignment_id].append(item.exercise_id)
    else:
        picked[(item.class_assignment_id, item.user_id)].append(item.exercise_id)


# -- roster -------------------------------------------------------------------------------


async def roster(
    session: AsyncSession, member: Membership, *, now: datetime, sort: str, order: str
) -> Roster:
    if sort not in ROSTER_SORTS:
        raise BadRequest(f"sort must be one of: {', '.join(ROSTER_SORTS)}.", code="BadSort")
    facts = await _facts(session, member)
    hints = await repository.hints_used(session, facts.scope)
    messages = await repository.tutor_messages(session, facts.scope)
    streaks = await repository.streaks(session, facts.scope)
    last_seen = await repository.last_submission_at(session, facts.scope)
    per_learner_hints: dict[uuid.UUID, int] = defaultdict(int)
    for (user_id, _), count in hints.items():
        per_learner_hints[user_id] += count
    rows = []
    today = now.date()
    by_learner: dict[uuid.UUID, list[repository.WorkStat]] = defaultdict(list)
    for (user_id, _), stat in facts.work.items():
        by_learner[user_id].append(stat)
    for learner in facts.learners:
        mine = by_learner.get(learner.id, [])
        started = [a for a in facts.assignments if a.opens_at <= now]
        done = sum(facts.status(a, learner.id) in ("passed", "late") for a in started)
        streak, last_day = streaks.get(learner.id, (0, None))
        # A run that ended before yesterday is over, as the learner's own progress page says.
        current = streak if last_day is not None and (today - last_day).days <= 1 else 0
        rows.append(
            RosterRow(
                user_id=learner.id, name=learner.name, email=learner.email,
                completed=sum(1 for s in mine if s.first_pass_at is not None),
                attempts=sum(s.attempts for s in mine),
                hints_used=per_learner_hints[learner.id],
                tutor_messages=messages.get(learner.id, 0),
                assignments_done=done, assignments_total=len(started),
                last_active=last_seen.get(learner.id), streak=current,
            )
        )  # fmt: skip
    reverse = order == "desc"
    if sort == "name":
        rows.sort(key=lambda r: (r.name.lower(), r.email), reverse=reverse)
    elif sort == "last_active":
        floor = datetime.min.replace(tzinfo=now.tzinfo)
        rows.sort(key=lambda r: (r.last_active or floor, r.name.lower()), reverse=reverse)
    else:
        rows.sort(key=lambda r: (getattr(r, sort), r.name.lower()), reverse=reverse)
    return Roster(items=rows, sort=sort, order="desc" if reverse else "asc")


def roster_csv(table: Roster) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["name", "email", "completed", "attempts", "hints_used", "tutor_messages",
         "assignments_done", "assignments_total", "last_active", "streak"]
    )  # fmt: skip
    for r in table.items:
        writer.writerow(
            [_cell(r.name), r.email, r.completed, r.attempts, r.hints_used, r.tutor_messages,
             r.assignments_done, r.assignments_total,
             r.last_active.isoformat() if r.last_active else "", r.streak]
        )  # fmt: skip
    return out.getvalue()


def _cell(value: str) -> str:
    # A name starting with = + - @ would run as a formula in a spreadsheet.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


# -- gradebook ----------------------------------------------------------------------------


async def gradebook(session: AsyncSession, member: Membership) -> Gradebook:
    facts = await _facts(session, member)
    columns = [GradebookColumn(id=a.id, title=a.title, due_at=a.due_at) for a in facts.assignments]
    rows = [
        GradebookRow(
            user_id=learner.id,
            name=learner.name,
            email=learner.email,
            statuses={str(a.id): facts.status(a, learner.id) for a in facts.assignments},
        )  # fmt: skip
        for learner in facts.learners
    ]
    return Gradebook(assignments=columns, rows=rows)


def gradebook_csv(book: Gradebook) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "email", *[_cell(c.title) for c in book.assignments]])
    for row in book.rows:
        writer.writerow(
            [_cell(row.name), row.email, *[row.statuses[str(c.id)] for c in book.assignments]]
        )
    return out.getvalue()


# -- needs help ---------------------------------------------------------------------------


async def needs_help(
    session: AsyncSession, member: Membership, *, now: datetime
) -> list[NeedsHelpEntry]:
    """Learners stuck right now, each with the reason they are listed."""
    facts = await _facts(session, member)
    recent = await repository.recent_failures(session, facts.scope, since=now - FAILING_WINDOW)
    hints = await repository.hints_used(session, facts.scope)
    last_seen = await repository.last_submission_at(session, facts.scope)
    exercise_ids = {e for (_, e) in facts.work} | {e for (_, e) in hints}
    titles = await repository.exercise_titles(session, list(exercise_ids))
    names = {u.id: u.name for u in facts.learners}
    entries: list[NeedsHelpEntry] = []
    for (user_id, exercise_id), (failures, since) in recent.items():
        stat = facts.work.get((user_id, exercise_id))
        if failures < FAILING_ATTEMPTS or user_id not in names:
            continue
        if stat is not None and stat.first_pass_at is not None:
            continue
        title = titles.get(exercise_id, ("", "this exercise", 0))[1]
        entries.append(
            NeedsHelpEntry(
                user_id=user_id, name=names[user_id], reason="failing",
                why=f"{failures} failed attempts at {title} in the last hour, and no pass yet",
                exercise_id=exercise_id, exercise_title=title, since=since,
            )
        )  # fmt: skip
    for (user_id, exercise_id), used in hints.items():
        slug_title = titles.get(exercise_id)
        if slug_title is None or user_id not in names:
            continue
        total = slug_title[2]
        stat = facts.work.get((user_id, exercise_id))
        if total and used >= total and (stat is None or stat.first_pass_at is None):
            entries.append(
                NeedsHelpEntry(
                    user_id=user_id, name=names[user_id], reason="ladder_used_up",
                    why=f"used all {total} hints of {slug_title[1]} and has not passed it",
                    exercise_id=exercise_id, exercise_title=slug_title[1],
                    since=stat.last_at if stat else None,
                )
            )  # fmt: skip
    open_now = [a for a in facts.assignments if a.opens_at <= now < a.due_at]
    for learner in facts.learners:
        unfinished = [a for a in open_now if facts.status(a, learner.id) not in ("passed", "late")]
        if not unfinished:
            continue
        last = last_seen.get(learner.id)
        opened = min(a.opens_at for a in unfinished)
        quiet_since = last if last is not None and last > opened else opened
        if now - quiet_since >= INACTIVE_AFTER:
            days = (now - quiet_since).days
            entries.append(
                NeedsHelpEntry(
                    user_id=learner.id, name=learner.name, reason="inactive",
                    why=(f"no activity for {days} days while \"{unfinished[0].title}\" is open "
                         f"(due {unfinished[0].due_at:%Y-%m-%d %H:%M} UTC)"),
                    exercise_id=None, exercise_title=None, since=last,
                )
            )  # fmt: skip
    order = {"failing": 0, "ladder_used_up": 1, "inactive": 2}
    entries.sort(key=lambda e: (order[e.reason], e.name.lower()))
    return entries


# -- per exercise -------------------------------------------------------------------------


async def exercise_stats(session: AsyncSession, member: Membership) -> list[ExerciseStats]:
    facts = await _facts(session, member)
    hints = await repository.hints_used(session, facts.scope)
    attempts_to_pass = await repository.attempts_until(session, facts.scope)
    failing = await repository.failing_tests(session, facts.scope)
    ids: list[uuid.UUID] = list(
        dict.fromkeys(
            [e for a in facts.assignments for e in facts.shared.get(a.id, [])]
            + [e for picks in facts.picked.values() for e in picks]
        )
    )
    titles = await repository.exercise_titles(session, ids)
    learners = {u.id for u in facts.learners}
    by_exercise: dict[uuid.UUID, list[repository.WorkStat]] = defaultdict(list)
    for (user_id, exercise_id), stat in facts.work.items():
        if user_id in learners:
            by_exercise[exercise_id].append(stat)
    hints_by: dict[uuid.UUID, int] = defaultdict(int)
    for (user_id, exercise_id), used in hints.items():
        if user_id in learners:
            hints_by[exercise_id] += used
    tries_by: dict[uuid.UUID, list[int]] = defaultdict(list)
    for (user_id, exercise_id), tries in attempts_to_pass.items():
        if user_id in learners:
            tries_by[exercise_id].append(tries)
    out = []
    for exercise_id in ids:
        stats = by_exercise.get(exercise_id, [])
        passed = [s for s in stats if s.first_pass_at is not None]
        minutes = [
            (s.first_pass_at - s.first_at).total_seconds() / 60
            for s in passed
            if s.first_pass_at is not None
        ]
        slug, title, _ = titles.get(exercise_id, ("", "", 0))
        test, message, count = failing.get(exercise_id, ("", "", 0))
        out.append(
            ExerciseStats(
                exercise_id=exercise_id, slug=slug, title=title,
                learners_attempted=len(stats), learners_passed=len(passed),
                pass_rate=round(len(passed) / len(stats), 3) if stats else None,
                median_attempts_to_pass=(
                    float(statistics.median(tries_by[exercise_id])) if tries_by[exercise_id]
                    else None
                ),
                median_minutes_to_pass=round(statistics.median(minutes), 1) if minutes else None,
                common_failure=test or None, common_failure_message=message or None,
                common_failure_count=count, hints_used=hints_by[exercise_id],
            )
        )  # fmt: skip
    return out


# -- one learner --------------------------------------------------------------------------


async def _learner(session: AsyncSession, member: Membership, user_id: uuid.UUID) -> User:
    """A learner of this class (staff and other classes' learners are not drilled into)."""
    found = await repository.membership(session, member.room.id, user_id)
    user = await repository.user_by_id(session, user_id) if found is not None else None
    if found is None or found.role != "learner" or user is None:
        raise NotFound("This class has no learner with this id.")
    return user


async def learner_submissions(
    session: AsyncSession,
    member: Membership,
    user_id: uuid.UUID,
    *,
    before: datetime | None,
    limit: int,
) -> LearnerSubmissions:
    await _learner(session, member, user_id)
    rows = await repository.learner_submissions(
        session, member.room.id, user_id, before=before, limit=limit + 1
    )
    due = await _due_by_exercise(session, member, user_id)
    titles = await repository.exercise_titles(session, list({s.exercise_id for s in rows}))
    items = [
        LearnerSubmission(
            id=s.id,
            exercise_id=s.exercise_id,
            exercise_title=titles.get(s.exercise_id, ("", "", 0))[1],
            code=s.code,
            status=s.status,
            passed=s.passed,
            total=s.total,
            tests=list(s.tests or []),
            created_at=s.created_at,
            late=s.exercise_id in due and s.created_at > due[s.exercise_id],
        )  # fmt: skip
        for s in rows[:limit]
    ]
    next_cursor = rows[limit - 1].created_at.isoformat() if len(rows) > limit else None
    return LearnerSubmissions(items=items, next_cursor=next_cursor)


async def _due_by_exercise(
    session: AsyncSession, member: Membership, user_id: uuid.UUID
) -> dict[uuid.UUID, datetime]:
    """Exercise -> the latest due time of the class assignments that set it for the learner."""
    assignments = {a.id: a for a in await repository.class_assignments(session, member.room.id)}
    due: dict[uuid.UUID, datetime] = {}
    for item in await repository.items(session, member.room.id, user_id=user_id):
        a = assignments.get(item.class_assignment_id)
        if a is not None and (item.exercise_id not in due or a.due_at > due[item.exercise_id]):
            due[item.exercise_id] = a.due_at
    return due


async def learner_conversations(
    session: AsyncSession, member: Membership, user_id: uuid.UUID
) -> ConversationList:
    await _learner(session, member, user_id)
    rows = await repository.learner_conversations(session, member.room.id, user_id)
    titles = await repository.exercise_titles(
        session, [c.exercise_id for c in rows if c.exercise_id is not None]
    )
    return ConversationList(
        items=[
            ConversationSummary(
                id=c.id,
                exercise_id=c.exercise_id,
                exercise_title=titles.get(c.exercise_id, ("", "", 0))[1],
                title=c.title,
                message_count=c.message_count,
                updated_at=c.updated_at,
            )  # fmt: skip
            for c in rows
            if c.exercise_id is not None
        ]
    )


async def learner_conversation(
    session: AsyncSession, member: Membership, user_id: uuid.UUID, conversation_id: uuid.UUID
) -> ConversationDetail:
    """One conversation about a class exercise; any other conversation is a 404 here."""
    await _learner(session, member, user_id)
    rows = await repository.learner_conversations(session, member.room.id, user_id)
    found = next((c for c in rows if c.id == conversation_id), None)
    if found is None or found.exercise_id is None:
        raise NotFound("There is no conversation with this id about the class's exercises.")
    messages = await repository.conversation_messages(session, conversation_id)
    return ConversationDetail(
        id=found.id, exercise_id=found.exercise_id, title=found.title,
        messages=[
            MessageOut(seq=m.seq, role=m.role, content=m.content, created_at=m.created_at)
            for m in messages
        ],
    )  # fmt: skip


# -- tutor spend --------------------------------------------------------------------------


async def usage(session: AsyncSession, member: Membership, *, now: datetime) -> ClassUsage:
    room = member.room
    today = now.date()
    spend = await repository.spend_today(
        session, await repository.scope_of(session, room.id), today
    )
    names = {u.id: u.email for _, u in await repository.members(session, room.id, role="learner")}
    return ClassUsage(
        day=today.isoformat(),
        spent_usd=sum(spend.values(), Decimal(0)),
        class_daily_cap_usd=room.class_daily_cap_usd,
        learner_daily_budget_usd=room.learner_daily_budget_usd,
        by_learner={names.get(u, str(u)): v for u, v in spend.items()},
    )
