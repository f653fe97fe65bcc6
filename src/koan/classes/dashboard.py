"""The instructor's dashboard: roster, gradebook, who needs help, per-exercise figures, tutor
spend, and one learner's work.

Every figure is aggregated in the database, per learner, per (learner, class assignment) or
per exercise, by the repositories of the domains that keep the work (exercises: submissions
and hints; chat: conversations; progress: streaks; tutor_gateway: spend). This module asks
the class's repository what the class sets (its learners, its exercises, who must do what by
when) and puts the answers together: a page is a handful of queries whatever the class's size.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from koan.chat import repository as chat
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
from koan.classes.service import Membership, local_label
from koan.common.spreadsheet import safe_cell
from koan.errors import BadRequest, NotFound
from koan.exercises import repository as exercises
from koan.models import User
from koan.pagination import NewestFirstKey, next_cursor
from koan.progress import service as progress
from koan.tutor_gateway import repository as gateway
from koan.tutor_gateway.budgets import day_bounds, local_day

# "Needs help": this many failed attempts at one exercise within the window, and no pass.
FAILING_ATTEMPTS = 2
FAILING_WINDOW = timedelta(hours=1)
# No submission for this long while an assignment is open and unfinished.
INACTIVE_AFTER = timedelta(days=2)
ROSTER_SORTS = (
    "name", "completed", "attempts", "hints_used", "tutor_messages", "assignments_done",
    "last_active", "streak",
)  # fmt: skip
DONE: tuple[ItemStatus, ...] = ("passed", "late")


def assignment_status(work: exercises.GroupWork | None) -> ItemStatus:
    """A class assignment's status for one learner: passed only when every exercise is, late
    when one of them passed after the due time."""
    if work is None:
        return "not_started"
    if work.exercises and work.passed == work.exercises:
        return "passed" if work.on_time == work.exercises else "late"
    return "attempted" if work.attempted else "not_started"


def csv_file_name(name: str, what: str) -> str:
    """A download's name: the class's name in lower case, letters and digits of any script
    kept and the rest hyphens ("Informática 1º" -> "informática-1º-roster.csv"), the same
    from the API and the pages."""
    slug = re.sub(r"[\W_]+", "-", name.lower()).strip("-")[:60].strip("-") or "class"
    return f"{slug}-{what}.csv"


# -- roster -------------------------------------------------------------------------------


async def roster(
    session: AsyncSession, member: Membership, *, now: datetime, sort: str, order: str
) -> Roster:
    if sort not in ROSTER_SORTS:
        raise BadRequest(f"sort must be one of: {', '.join(ROSTER_SORTS)}.", code="BadSort")
    class_id = member.room.id
    learners = await repository.learners(session, member.room.id)
    ids = [u.id for u in learners]
    exercise_ids = await repository.exercise_ids(session, class_id)
    started = sum(a.opens_at <= now for a in await repository.class_assignments(session, class_id))
    done = await exercises.groups_done_by_learner(
        session, ids, exercise_ids, repository.work_set(class_id, opened_by=now)
    )
    # Each learner's figures count the exercises set them in assignments already open, what
    # their submissions page shows: not one picked for a classmate, nor one set later.
    set_them = repository.work_set(class_id, opened_by=now)
    work = await exercises.work_by_learner(session, ids, exercise_ids, pairs=set_them)
    hints = await exercises.hints_by_learner(session, ids, exercise_ids, pairs=set_them)
    questions = await chat.questions_by_learner(session, ids, exercise_ids, pairs=set_them)
    streaks = await progress.current_streaks(session, {u.id: u.timezone for u in learners}, now)
    rows = []
    for learner in learners:
        mine = work.get(learner.id)
        rows.append(
            RosterRow(
                user_id=learner.id, name=learner.name, email=learner.email,
                completed=mine.completed if mine else 0, attempts=mine.attempts if mine else 0,
                hints_used=hints.get(learner.id, 0), tutor_messages=questions.get(learner.id, 0),
                assignments_done=done.get(learner.id, 0), assignments_total=started,
                last_active=mine.last_at if mine else None, streak=streaks.get(learner.id, 0),
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
            [safe_cell(r.name), safe_cell(r.email), r.completed, r.attempts, r.hints_used,
             r.tutor_messages, r.assignments_done, r.assignments_total,
             r.last_active.isoformat() if r.last_active else "", r.streak]
        )  # fmt: skip
    return out.getvalue()


# -- gradebook ----------------------------------------------------------------------------


async def gradebook(session: AsyncSession, member: Membership) -> Gradebook:
    class_id = member.room.id
    learners = await repository.learners(session, member.room.id)
    assignments = await repository.class_assignments(session, class_id)
    groups = await exercises.work_by_group(
        session,
        [u.id for u in learners],
        await repository.exercise_ids(session, class_id),
        repository.work_set(class_id),
    )
    return Gradebook(
        assignments=[GradebookColumn(id=a.id, title=a.title, due_at=a.due_at) for a in assignments],
        rows=[
            GradebookRow(
                user_id=learner.id,
                name=learner.name,
                email=learner.email,
                statuses={
                    str(a.id): assignment_status(groups.get((a.id, learner.id)))
                    for a in assignments
                },
            )  # fmt: skip
            for learner in learners
        ],
    )


def gradebook_csv(book: Gradebook) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "email", *[safe_cell(c.title) for c in book.assignments]])
    for row in book.rows:
        writer.writerow(
            [
                safe_cell(row.name),
                safe_cell(row.email),
                *[row.statuses[str(c.id)] for c in book.assignments],
            ]
        )
    return out.getvalue()


# -- needs help ---------------------------------------------------------------------------


async def needs_help(
    session: AsyncSession, member: Membership, *, now: datetime
) -> list[NeedsHelpEntry]:
    """Learners stuck right now, each with the reason they are listed."""
    class_id = member.room.id
    learners = await repository.learners(session, member.room.id)
    ids = [u.id for u in learners]
    names = {u.id: u.name for u in learners}
    exercise_ids = await repository.exercise_ids(session, class_id)
    # Stuck on an exercise set them in an assignment already open: their work on others is
    # their own.
    set_them = repository.work_set(class_id, opened_by=now)
    failing = await exercises.failing_without_pass(
        session, ids, exercise_ids, since=now - FAILING_WINDOW, at_least=FAILING_ATTEMPTS,
        pairs=set_them,
    )  # fmt: skip
    ladders = await exercises.ladders_used_up(session, ids, exercise_ids, pairs=set_them)
    titles = await exercises.titles(
        session, list({s.exercise_id for s in failing} | {s.exercise_id for s in ladders})
    )
    entries: list[NeedsHelpEntry] = []
    for stuck in failing:
        title = _title(titles, stuck.exercise_id, "this exercise")
        entries.append(
            NeedsHelpEntry(
                user_id=stuck.user_id, name=names[stuck.user_id], reason="failing",
                why=f"{stuck.count} failed attempts at {title} in the last hour, and no pass yet",
                exercise_id=stuck.exercise_id, exercise_title=title, since=stuck.since,
            )
        )  # fmt: skip
    for stuck in ladders:
        title = _title(titles, stuck.exercise_id, "this exercise")
        entries.append(
            NeedsHelpEntry(
                user_id=stuck.user_id, name=names[stuck.user_id], reason="ladder_used_up",
                why=f"used all {stuck.count} hints of {title} and has not passed it",
                exercise_id=stuck.exercise_id, exercise_title=title, since=stuck.since,
            )
        )  # fmt: skip
    entries += await _inactive(session, member, learners, exercise_ids, now)
    order = {"failing": 0, "ladder_used_up": 1, "inactive": 2}
    entries.sort(key=lambda e: (order[e.reason], e.name.lower()))
    return entries


async def _inactive(
    session: AsyncSession,
    member: Membership,
    learners: list[repository.Learner],
    exercise_ids: list[uuid.UUID],
    now: datetime,
) -> list[NeedsHelpEntry]:
    """Learners with no submission for INACTIVE_AFTER while an assignment they have not
    finished is open."""
    class_id = member.room.id
    open_now = [
        a for a in await repository.class_assignments(session, class_id)
        if a.opens_at <= now < a.due_at
    ]  # fmt: skip
    if not open_now or not learners:
        return []
    work = await exercises.work_by_learner(session, [u.id for u in learners], exercise_ids)
    last_at = {u.id: work[u.id].last_at if u.id in work else None for u in learners}
    # Only a learner quiet for INACTIVE_AFTER can be listed: the others need no more reading.
    quiet = [
        u for u in learners
        if (last := last_at[u.id]) is None or now - last >= INACTIVE_AFTER
    ]  # fmt: skip
    if not quiet:
        return []
    groups = await exercises.work_by_group(
        session,
        [u.id for u in quiet],
        exercise_ids,
        repository.work_set(class_id, open_at=now, learners=[u.id for u in quiet]),
    )
    entries = []
    for learner in quiet:
        unfinished = [
            a for a in open_now if assignment_status(groups.get((a.id, learner.id))) not in DONE
        ]
        if not unfinished:
            continue
        last = last_at[learner.id]
        # Quiet since their last submission, or since the work was theirs to do: the
        # assignment opened, or they joined the class after it did.
        opened = max(min(a.opens_at for a in unfinished), learner.joined_at)
        quiet_since = last if last is not None and last > opened else opened
        if now - quiet_since >= INACTIVE_AFTER:
            first = unfinished[0]
            due = local_label(first.due_at, member.room.timezone)
            entries.append(
                NeedsHelpEntry(
                    user_id=learner.id, name=learner.name, reason="inactive",
                    why=(f"no activity for {(now - quiet_since).days} days while "
                         f"\"{first.title}\" is open (due {due})"),
                    exercise_id=None, exercise_title=None, since=last,
                )
            )  # fmt: skip
    return entries


def _title(
    titles: dict[uuid.UUID, exercises.ExerciseTitle], exercise_id: uuid.UUID, default: str = ""
) -> str:
    found = titles.get(exercise_id)
    return found.title if found else default


# -- per exercise -------------------------------------------------------------------------


async def exercise_stats(
    session: AsyncSession, member: Membership, *, now: datetime
) -> list[ExerciseStats]:
    """Each exercise the class sets, with its figures once an assignment setting it has
    opened (before, what learners did on it was their own practice, not the class's)."""
    class_id = member.room.id
    learners = await repository.learner_ids(session, class_id)
    set_by_class = await repository.exercises_opened(session, class_id)
    ids = [exercise_id for exercise_id, _ in set_by_class]
    opened = [exercise_id for exercise_id, opens_at in set_by_class if opens_at <= now]
    work = await exercises.work_by_exercise(session, learners, opened)
    failures = await exercises.common_failures(session, learners, opened)
    hints = await exercises.hints_by_exercise(session, learners, opened)
    titles = await exercises.titles(session, ids)
    out = []
    for exercise_id in ids:
        done = work.get(exercise_id)
        failure = failures.get(exercise_id)
        title = titles.get(exercise_id)
        minutes = done.median_minutes_to_pass if done else None
        out.append(
            ExerciseStats(
                exercise_id=exercise_id,
                slug=title.slug if title else "", title=title.title if title else "",
                learners_attempted=done.attempted if done else 0,
                learners_passed=done.passed if done else 0,
                pass_rate=round(done.passed / done.attempted, 3) if done else None,
                median_attempts_to_pass=done.median_attempts_to_pass if done else None,
                median_minutes_to_pass=round(minutes, 1) if minutes is not None else None,
                common_failure=failure.test or None if failure else None,
                common_failure_message=failure.message or None if failure else None,
                common_failure_count=failure.count if failure else 0,
                hints_used=hints.get(exercise_id, 0),
            )
        )  # fmt: skip
    return out


# -- tutor spend --------------------------------------------------------------------------


async def usage(session: AsyncSession, member: Membership, *, now: datetime) -> ClassUsage:
    """Today's tutor spend on the class's exercises (what its budgets count), per learner;
    today is the class's day, in its time zone, as for its budgets."""
    room = member.room
    today = local_day(now, room.timezone)
    learners = await repository.learners(session, member.room.id)
    spend = await gateway.spent_on_exercises(
        session,
        day_bounds(today, room.timezone),
        [u.id for u in learners],
        await repository.exercise_ids(session, room.id),
    )
    return ClassUsage(
        day=today.isoformat(),
        spent_usd=sum(spend.values(), Decimal(0)),
        class_daily_cap_usd=room.class_daily_cap_usd,
        learner_daily_budget_usd=room.learner_daily_budget_usd,
        by_learner={u.email: spend[u.id] for u in learners if u.id in spend},
    )


# -- one learner --------------------------------------------------------------------------


async def _learner(session: AsyncSession, member: Membership, user_id: uuid.UUID) -> User:
    """A learner of this class (staff and other classes' learners are not drilled into)."""
    found = await repository.member(session, member.room.id, user_id)
    if found is None or found[0].role != "learner":
        raise NotFound("This class has no learner with this id.")
    return found[1]


async def learner_submissions(
    session: AsyncSession,
    member: Membership,
    user_id: uuid.UUID,
    *,
    before: NewestFirstKey | None,
    limit: int,
    now: datetime,
) -> LearnerSubmissions:
    await _learner(session, member, user_id)
    exercise_ids = await repository.learner_exercise_ids(
        session, member.room.id, user_id, opened_by=now
    )
    rows = await exercises.submissions_to(
        session, user_id, exercise_ids, before=before, limit=limit + 1
    )
    due = await repository.due_times(session, member.room.id, user_id)
    titles = await exercises.titles(session, list({s.exercise_id for s in rows}))
    items = [
        LearnerSubmission(
            id=s.id,
            exercise_id=s.exercise_id,
            exercise_title=_title(titles, s.exercise_id),
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
    return LearnerSubmissions(
        items=items, next_cursor=next_cursor(rows, limit, lambda s: (s.created_at, s.id))
    )


async def learner_conversations(
    session: AsyncSession, member: Membership, user_id: uuid.UUID, *, now: datetime
) -> ConversationList:
    await _learner(session, member, user_id)
    exercise_ids = await repository.learner_exercise_ids(
        session, member.room.id, user_id, opened_by=now
    )
    rows = await chat.conversations_about(session, user_id, exercise_ids)
    titles = await exercises.titles(session, list({c.exercise_id for c in rows if c.exercise_id}))
    return ConversationList(
        items=[
            ConversationSummary(
                id=c.id,
                exercise_id=c.exercise_id,
                exercise_title=_title(titles, c.exercise_id),
                title=c.title,
                message_count=c.message_count,
                updated_at=c.updated_at,
            )  # fmt: skip
            for c in rows
            if c.exercise_id is not None
        ]
    )


async def learner_conversation(
    session: AsyncSession,
    member: Membership,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    now: datetime,
) -> ConversationDetail:
    """One conversation about a class exercise set for this learner; any other conversation
    is a 404 here."""
    await _learner(session, member, user_id)
    exercise_ids = await repository.learner_exercise_ids(
        session, member.room.id, user_id, opened_by=now
    )
    found = await chat.conversations_about(
        session, user_id, exercise_ids, conversation_id=conversation_id
    )
    if not found or found[0].exercise_id is None:
        raise NotFound("There is no conversation with this id about the class's exercises.")
    conversation = found[0]
    messages = await chat.messages_before(
        session, conversation.id, before_seq=None, limit=max(conversation.message_count, 1)
    )
    return ConversationDetail(
        id=conversation.id, exercise_id=conversation.exercise_id, title=conversation.title,
        messages=[
            MessageOut(seq=m.seq, role=m.role, content=m.content, created_at=m.created_at)
            for m in reversed(messages)
        ],
    )  # fmt: skip
