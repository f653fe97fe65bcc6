"""The instructor's dashboard: roster, gradebook, needs help, per exercise, drill-down."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Exercise
from koan.resources import Resources
from tests.classes.helpers import Course, create_course
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user

# Fails one test only, so the commonest failure is that one.
WRONG = "def add(a, b):\n    return 0 if (a, b) == (1, 2) else a + b\n"


async def _assign(
    client: httpx.AsyncClient, course: Course, exercise: Exercise, **times: str
) -> str:
    now = datetime.now(UTC)
    body = {
        "title": "Week 1",
        "exercise_ids": [str(exercise.id)],
        "opens_at": times.get("opens_at", (now - timedelta(days=3)).isoformat()),
        "due_at": times.get("due_at", (now + timedelta(days=1)).isoformat()),
    }
    r = await client.post(
        f"/api/v1/classes/{course.id}/assignments", json=body, headers=course.headers["instructor"]
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _submit(
    client: httpx.AsyncClient, course: Course, n: int, exercise: Exercise, code: str
) -> None:
    r = await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions",
        json={"code": code},
        headers=course.headers[f"learner{n}"],
    )
    assert r.status_code == 201, r.text


async def _class_in_action(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> tuple[Course, Exercise, str]:
    """Learner 0 fails three times, takes every hint and asks the tutor; learner 1 passes;
    learner 2 has done nothing since the assignment opened three days ago."""
    course = await create_course(client, session, resources, learners=3, ta=True)
    exercise = await create_exercise(session)
    assignment = await _assign(client, course, exercise)
    for _ in range(3):
        await _submit(client, course, 0, exercise, WRONG)
    h0 = course.headers["learner0"]
    for _ in range(3):
        hint = await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=h0)
        assert hint.status_code == 200, hint.text
    about = await client.post(
        "/api/v1/conversations", json={"exercise_id": str(exercise.id)}, headers=h0
    )
    assert about.status_code == 201, about.text
    asked = await client.post(
        f"/api/v1/conversations/{about.json()['id']}/messages",
        json={"content": "why does my test fail?"},
        headers=h0,
    )
    assert asked.status_code == 201, asked.text
    private = await client.post("/api/v1/conversations", json={}, headers=h0)
    await client.post(
        f"/api/v1/conversations/{private.json()['id']}/messages",
        json={"content": "my private worry"},
        headers=h0,
    )
    await _submit(client, course, 1, exercise, ADD_SOLUTION)
    return course, exercise, assignment


async def test_the_roster_counts_each_learners_work_and_sorts_by_any_column(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, _, _ = await _class_in_action(client, session, resources)
    url = f"/api/v1/classes/{course.id}/dashboard/roster"
    r = await client.get(url, params={"sort": "attempts", "order": "desc"},
                         headers=course.headers["instructor"])  # fmt: skip
    assert r.status_code == 200, r.text
    rows = r.json()["items"]
    assert [row["name"] for row in rows] == ["Learner 0", "Learner 1", "Learner 2"]
    first, second, third = rows
    assert (first["attempts"], first["completed"], first["hints_used"]) == (3, 0, 3)
    assert first["tutor_messages"] == 1  # the private conversation is not counted
    assert (second["attempts"], second["completed"], second["assignments_done"]) == (1, 1, 1)
    assert second["assignments_total"] == 1
    assert second["streak"] == 1
    assert third["last_active"] is None
    by_name = await client.get(url, params={"sort": "name", "order": "desc"},
                               headers=course.headers["ta"])  # fmt: skip
    assert [row["name"] for row in by_name.json()["items"]] == [
        "Learner 2",
        "Learner 1",
        "Learner 0",
    ]
    bad = await client.get(url, params={"sort": "password"}, headers=course.headers["ta"])
    assert bad.status_code == 400


async def test_the_roster_and_gradebook_export_as_csv(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, _, _ = await _class_in_action(client, session, resources)
    h = course.headers["instructor"]
    roster = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/roster", params={"format": "csv"}, headers=h
    )
    assert roster.status_code == 200
    assert roster.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(roster.text)))
    assert rows[0][:4] == ["name", "email", "completed", "attempts"]
    assert len(rows) == 4
    book = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/gradebook", params={"format": "csv"}, headers=h
    )
    table = {row[0]: row[2] for row in csv.reader(io.StringIO(book.text))}
    assert table == {"name": "Week 1", "Learner 0": "attempted", "Learner 1": "passed",
                     "Learner 2": "not_started"}  # fmt: skip


async def test_the_gradebook_shows_passed_late_attempted_and_not_started(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=3)
    now = datetime.now(UTC)
    exercise = await create_exercise(session)
    past = await _assign(client, course, exercise, opens_at=(now - timedelta(days=5)).isoformat(),
                         due_at=(now - timedelta(days=1)).isoformat())  # fmt: skip
    await _submit(client, course, 0, exercise, ADD_SOLUTION)  # after the due time
    await _submit(client, course, 1, exercise, WRONG)
    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/gradebook", headers=course.headers["instructor"]
    )
    statuses = {row["name"]: row["statuses"][past] for row in r.json()["rows"]}
    assert statuses == {"Learner 0": "late", "Learner 1": "attempted", "Learner 2": "not_started"}


async def test_a_learner_who_leaves_drops_out_of_the_gradebook(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, _, _ = await _class_in_action(client, session, resources)
    left = await client.post(
        f"/api/v1/classes/{course.id}/leave", headers=course.headers["learner1"]
    )
    assert left.status_code == 200
    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/gradebook", headers=course.headers["instructor"]
    )
    assert [row["name"] for row in r.json()["rows"]] == ["Learner 0", "Learner 2"]


async def test_needs_help_lists_who_is_stuck_and_why(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise, _ = await _class_in_action(client, session, resources)
    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/needs-help", headers=course.headers["instructor"]
    )
    assert r.status_code == 200, r.text
    entries = [(e["name"], e["reason"]) for e in r.json()["items"]]
    assert entries == [
        ("Learner 0", "failing"),
        ("Learner 0", "ladder_used_up"),
        ("Learner 2", "inactive"),
    ]
    failing, ladder, inactive = r.json()["items"]
    assert failing["why"].startswith("3 failed attempts at Add two numbers in the last hour")
    assert failing["exercise_id"] == str(exercise.id)
    assert "all 3 hints" in ladder["why"]
    assert inactive["why"].startswith('no activity for 3 days while "Week 1" is open')


async def test_per_exercise_figures(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise, _ = await _class_in_action(client, session, resources)
    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/exercises", headers=course.headers["instructor"]
    )
    assert r.status_code == 200, r.text
    (stats,) = r.json()["items"]
    assert stats["exercise_id"] == str(exercise.id)
    assert (stats["learners_attempted"], stats["learners_passed"]) == (2, 1)
    assert stats["pass_rate"] == 0.5
    assert stats["median_attempts_to_pass"] == 1.0
    assert stats["median_minutes_to_pass"] == 0.0
    assert stats["common_failure"] == "test_small"
    assert "1 + 2 should be 3" in stats["common_failure_message"]
    assert stats["common_failure_count"] == 3
    assert stats["hints_used"] == 3


async def test_drill_down_shows_class_work_and_conversations_but_never_private_ones(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, exercise, _ = await _class_in_action(client, session, resources)
    learner = course.learners[0]
    h = course.headers["instructor"]
    base = f"/api/v1/classes/{course.id}/learners/{learner.id}"
    subs = await client.get(f"{base}/submissions", params={"limit": 2}, headers=h)
    assert subs.status_code == 200, subs.text
    assert len(subs.json()["items"]) == 2
    assert subs.json()["items"][0]["code"] == WRONG
    assert subs.json()["items"][0]["late"] is False
    more = await client.get(
        f"{base}/submissions", params={"limit": 2, "cursor": subs.json()["next_cursor"]}, headers=h
    )
    assert len(more.json()["items"]) == 1
    conversations = await client.get(f"{base}/conversations", headers=h)
    (about,) = conversations.json()["items"]
    assert about["exercise_id"] == str(exercise.id)
    detail = await client.get(f"{base}/conversations/{about['id']}", headers=h)
    assert detail.json()["messages"][0]["content"] == "why does my test fail?"
    assert "my private worry" not in conversations.text
    mine = await client.get("/api/v1/conversations", headers=course.headers["learner0"])
    private = next(c for c in mine.json()["items"] if c["id"] != about["id"])
    hidden = await client.get(f"{base}/conversations/{private['id']}", headers=h)
    assert hidden.status_code == 404


async def test_learners_see_no_dashboard_and_nothing_of_a_classmate(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course, _, _ = await _class_in_action(client, session, resources)
    classmate = course.learners[0]
    h = course.headers["learner1"]
    paths = ["dashboard/roster", "dashboard/gradebook", "dashboard/needs-help",
             "dashboard/exercises", "dashboard/usage", f"learners/{classmate.id}/submissions",
             f"learners/{classmate.id}/conversations"]  # fmt: skip
    for path in paths:
        r = await client.get(f"/api/v1/classes/{course.id}/{path}", headers=h)
        assert r.status_code == 403, (path, r.text)
    # Staff of another class see nothing of this one, nor of its learners.
    other = await create_course(client, session, resources, learners=0)
    r = await client.get(
        f"/api/v1/classes/{other.id}/learners/{classmate.id}/submissions",
        headers=other.headers["instructor"],
    )
    assert r.status_code == 404
    outsider = await bearer(session, resources, await create_user(session, resources))
    r = await client.get(f"/api/v1/classes/{course.id}/dashboard/roster", headers=outsider)
    assert r.status_code == 404
