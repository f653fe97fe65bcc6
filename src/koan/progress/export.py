"""The learner's own data as JSON (interview answers, achievements earned, assignments,
submissions with their code, the hints the tutor's model tailored for them, drafts, tutor
conversations and the code the tutor showed them) or as CSV (one file of the practice, one of
the conversations)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from koan.clock import utc_iso
from koan.common.spreadsheet import safe_cell
from koan.models import Assignment, Submission, User
from koan.onboarding import service as onboarding
from koan.pagination import keyset_pages
from koan.progress import repository, streaks
from koan.resources import Resources

ExportFormat = Literal["json", "csv", "conversations-csv"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "conversations-csv": "text/csv; charset=utf-8",
}
BATCH = 200
# The learner's tutor conversations, and the code the tutor showed them, each in batches of
# JSON-ready records (see koan.chat.export): chat sits above progress, so the app wires them in
# (app.py).
ConversationExport = Callable[[AsyncSession, uuid.UUID], AsyncIterator[list[dict[str, Any]]]]
ShownCodeExport = ConversationExport
# The learner's drafts (see koan.drafts.export), wired in the same way.
DraftExport = ConversationExport

CONVERSATION_CSV_COLUMNS = (
    "conversation_id",
    "conversation_title",
    "exercise_id",
    "seq",
    "role",
    "incomplete",
    "created_at",
    "content",
)


CSV_COLUMNS = (
    "assignment_id",
    "exercise_slug",
    "exercise_title",
    "language",
    "assignment_kind",
    "assignment_status",
    "hints_used",
    "assigned_at",
    "completed_at",
    "skipped_at",
    "submission_id",
    "submission_status",
    "tests_passed",
    "tests_total",
    "duration_ms",
    "submitted_at",
    "graded_at",
    "code",
)
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).


def _iso(value: datetime | None) -> str | None:
    return None if value is None else utc_iso(value)


def _assignment_record(assignment: Assignment) -> dict[str, Any]:
    exercise = assignment.exercise
    return {
        "id": str(assignment.id),
        "exercise": {
            "id": str(exercise.id),
            "slug": exercise.slug,
            "title": exercise.title,
            "language": exercise.language,
            "difficulty": exercise.difficulty,
        },
        "kind": assignment.kind,
        "status": assignment.status,
        "hints_used": assignment.hints_used,
        "attempts": assignment.attempts,
        "assigned_at": _iso(assignment.assigned_at),
        "started_at": _iso(assignment.started_at),
        "completed_at": _iso(assignment.completed_at),
        "skipped_at": _iso(assignment.skipped_at),
        "closed_at": _iso(assignment.closed_at),
    }


def _submission_record(submission: Submission) -> dict[str, Any]:
    return {
        "id": str(submission.id),
        "status": submission.status,
        "passed": submission.passed,
        "total": submission.total,
        "duration_ms": submission.duration_ms,
        "created_at": _iso(submission.created_at),
        "graded_at": _iso(submission.graded_at),
        "code": submission.code,
    }


def _csv_rows(assignment: Assignment, submissions: Sequence[Submission]) -> list[list[str]]:
    exercise = assignment.exercise
    head: list[object] = [
        assignment.id,
        exercise.slug,
        exercise.title,
        exercise.language,
        assignment.kind,
        assignment.status,
        assignment.hints_used,
        _iso(assignment.assigned_at),
        _iso(assignment.completed_at),
        _iso(assignment.skipped_at),
    ]
    tails: list[list[object]] = [
        [
            s.id,
            s.status,
            s.passed,
            s.total,
            s.duration_ms,
            _iso(s.created_at),
            _iso(s.graded_at),
            s.code,
        ]
        for s in submissions
    ] or [[None] * 8]  # an assignment without submissions still gets its row
    return [[safe_cell(v) for v in head + tail] for tail in tails]


async def _batches(
    session: AsyncSession, user: User
) -> AsyncIterator[list[tuple[Assignment, list[Submission]]]]:
    pages = keyset_pages(
        lambda after: repository.assignments_after(session, user.id, after=after, limit=BATCH),
        lambda assignment: (assignment.assigned_at, assignment.id),
    )
    async for page in pages:
        by_assignment: dict[uuid.UUID, list[Submission]] = {a.id: [] for a in page}
        for submission in await repository.submissions_of(session, list(by_assignment)):
            by_assignment[submission.assignment_id].append(submission)
        yield [(a, by_assignment[a.id]) for a in page]


def filename(res: Resources, user: User, fmt: ExportFormat) -> str:
    today = streaks.local_day(res.clock.now(), user.timezone).isoformat()
    if fmt == "conversations-csv":
        return f"koan-conversations-{today}.csv"
    return f"koan-export-{today}.{fmt}"


async def _no_records(
    session: AsyncSession, user_id: uuid.UUID
) -> AsyncIterator[list[dict[str, Any]]]:
    return
    yield []  # an async generator that yields nothing


async def _conversations_csv(
    session: AsyncSession, user: User, conversations: ConversationExport
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CONVERSATION_CSV_COLUMNS)
    yield buffer.getvalue()
    async for batch in conversations(session, user.id):
        buffer.seek(0)
        buffer.truncate()
        for record in batch:
            head = [record["id"], record["title"], record["exercise_id"]]
            for m in record["messages"]:
                row = head + [m["seq"], m["role"], m["incomplete"], m["created_at"], m["content"]]
                writer.writerow([safe_cell(v) for v in row])
        yield buffer.getvalue()


async def stream(
    session: AsyncSession,
    res: Resources,
    user: User,
    fmt: ExportFormat,
    conversations: ConversationExport | None = None,
    shown_code: ShownCodeExport | None = None,
    drafts: DraftExport | None = None,
) -> AsyncIterator[str]:
    """The learner's assignments, submissions, drafts, tutor conversations and the code the
    tutor showed them, streamed in batches so memory stays flat."""
    conversations = conversations or _no_records
    shown_code = shown_code or _no_records
    drafts = drafts or _no_records
    if fmt == "conversations-csv":
        async for chunk in _conversations_csv(session, user, conversations):
            yield chunk
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
        async for batch in _batches(session, user):
            buffer.seek(0)
            buffer.truncate()
            for assignment, submissions in batch:
                writer.writerows(_csv_rows(assignment, submissions))
            yield buffer.getvalue()
        return
    header = {
        "exported_at": _iso(res.clock.now()),
        "user": {
            "id": str(user.id),
            "email": user.email,
            "name": user.name,
            "timezone": user.timezone,
        },
        "profile": await _profile_record(session, user),
        "achievements": await _achievement_records(session, user),
    }
    yield json.dumps(header)[:-1]
    sections: list[tuple[str, AsyncIterator[list[dict[str, Any]]]]] = [
        ("assignments", _assignment_records(session, user)),
        ("drafts", drafts(session, user.id)),
        ("conversations", conversations(session, user.id)),
        ("shown_code", shown_code(session, user.id)),
    ]
    for name, batches in sections:
        yield f', "{name}": ['
        first = True
        async for records in batches:
            for record in records:
                yield ("" if first else ",") + json.dumps(record)
                first = False
        yield "]"
    yield "}"


async def _profile_record(session: AsyncSession, user: User) -> dict[str, Any]:
    """What the learner told Koan about themselves: the interview's answers, as the profile
    holds them now once the interview is complete."""
    status = onboarding.status_of(await onboarding.profile_of(session, user), user)
    return {"onboarding_completed": status.completed, "answers": status.answers}


async def _achievement_records(session: AsyncSession, user: User) -> list[dict[str, Any]]:
    """The achievements the learner earned, oldest first."""
    titles = {row.code: row.title for row in await repository.catalogue(session)}
    return [
        {
            "code": row.achievement_code,
            "title": titles.get(row.achievement_code, ""),
            "earned_at": _iso(row.earned_at),
        }
        for row in await repository.earned(session, user.id)
    ]


async def _assignment_records(
    session: AsyncSession, user: User
) -> AsyncIterator[list[dict[str, Any]]]:
    """The learner's assignments with their submissions, in batches of JSON-ready records."""
    async for batch in _batches(session, user):
        kept: dict[uuid.UUID, list[dict[str, Any]]] = {}
        ids = [assignment.id for assignment, _ in batch if assignment.hints_used]
        for hint in await repository.kept_hints_of(session, ids):
            kept.setdefault(hint.assignment_id, []).append(
                {"rung": hint.rung + 1, "text": hint.text, "created_at": _iso(hint.created_at)}
            )
        records = []
        for assignment, submissions in batch:
            record = _assignment_record(assignment)
            record["submissions"] = [_submission_record(s) for s in submissions]
            # The hints the tutor's model wrote for the learner's code, as they were shown.
            record["tailored_hints"] = kept.get(assignment.id, [])
            records.append(record)
        yield records
