"""The instructor's dashboard: roster, gradebook, needs help, per exercise, drill-down."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import ClassAssignment, ClassMembership, Conversation, Exercise
from koan.resources import Resources
from tests.classes.helpers import Course, create_course
from tests.conftest import Backend
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user
from tests.test_statement_counts import counted

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
    await _joined_days_ago(session, course, 4)
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


async def _joined_days_ago(session: AsyncSession, course: Course, days: int) -> None:
    """The course's learners joined `days` ago (before an assignment that opened since)."""
    await session.execute(
        update(ClassMembership)
        .where(ClassMembership.class_id == course.id, ClassMembership.role == "learner")
        .values(joined_at=datetime.now(UTC) - timedelta(days=days))
    )
    await session.commit()


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
    # Saved under the class's name, as the pages' downloads are.
    assert 'filename="cs-101-roster.csv"' in roster.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(roster.text)))
    assert rows[0][:4] == ["name", "email", "completed", "attempts"]
    assert len(rows) == 4
    book = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/gradebook", params={"format": "csv"}, headers=h
    )
    assert 'filename="cs-101-gradebook.csv"' in book.headers["content-disposition"]
    table = {row[0]: row[2] for row in csv.reader(io.StringIO(book.text))}
    assert table == {"name": "Week 1", "Learner 0": "attempted", "Learner 1": "passed",
                     "Learner 2": "not_started"}  # fmt: skip


async def test_staff_see_none_of_a_learners_work_on_exercises_not_yet_set_for_them(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # An assignment that opens in years, or one exercise picked for another learner, does not
    # make a learner's earlier private work on it the class's.
    course = await create_course(client, session, resources, learners=1)
    learner, teacher = course.learners[0], course.headers["instructor"]
    exercise = await create_exercise(session)
    private = Conversation(user_id=learner.id, exercise_id=exercise.id, title="private")
    session.add(private)
    await session.flush()
    await session.commit()
    hidden = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Later", "exercise_ids": [str(exercise.id)],
              "opens_at": "2199-01-01T00:00", "due_at": "2199-01-02T00:00"},
        headers=teacher,
    )  # fmt: skip
    assert hidden.status_code == 201, hidden.text
    base = f"/api/v1/classes/{course.id}/learners/{learner.id}"

    talks = await client.get(f"{base}/conversations", headers=teacher)
    talk = await client.get(f"{base}/conversations/{private.id}", headers=teacher)

    assert talks.json()["items"] == []
    assert talk.status_code == 404
    # Once an assignment setting the exercise opens, the conversation is the class's.
    now = datetime.now(UTC)
    shown = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Now", "exercise_ids": [str(exercise.id)],
              "opens_at": (now - timedelta(hours=1)).isoformat(),
              "due_at": (now + timedelta(days=1)).isoformat()},
        headers=teacher,
    )  # fmt: skip
    assert shown.status_code == 201, shown.text
    opened = await client.get(f"{base}/conversations", headers=teacher)
    assert [c["id"] for c in opened.json()["items"]] == [str(private.id)]


async def test_an_address_a_spreadsheet_would_run_is_exported_as_text(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # email_validator accepts = | ' ! / before the @: a learner can sign up as a formula.
    course = await create_course(client, session, resources, learners=0)
    tag = uuid.uuid4().hex[:6]
    evil = await create_user(session, resources, email=f"=cmd|'/ccalc'!a{tag}@example.com")
    joined = await client.post(
        "/api/v1/classes/join",
        json={"code": course.code},
        headers=await bearer(session, resources, evil),
    )
    assert joined.status_code == 200, joined.text

    for table in ("roster", "gradebook"):
        r = await client.get(
            f"/api/v1/classes/{course.id}/dashboard/{table}",
            params={"format": "csv"},
            headers=course.headers["instructor"],
        )
        row = list(csv.reader(io.StringIO(r.text)))[1]
        assert row[1] == f"'=cmd|'/ccalc'!a{tag}@example.com", table


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


async def test_a_learner_let_back_in_after_the_due_time_keeps_their_adaptive_picks(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Removed by mistake and let back in: the exercises picked for them, and the work they
    did on them, are still theirs in the gradebook, even once no new picks are made."""
    course = await create_course(client, session, resources, learners=1)
    skill = f"skill-{course.code.lower()}"
    for _ in range(4):
        await create_exercise(session, skills=[skill], difficulty=2)
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Practice", "skill": skill, "level": 2, "count": 2,
              "opens_at": (now - timedelta(days=2)).isoformat(),
              "due_at": (now + timedelta(days=1)).isoformat()},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    mine = await client.get("/api/v1/classes/assignments", headers=course.headers["learner0"])
    picks = [i["exercise_id"] for i in mine.json()["items"][0]["items"]]
    assert len(picks) == 2
    by_id = {str(e.id): e for e in await _bank(session, skill)}
    for pick in picks:
        await _submit(client, course, 0, by_id[pick], ADD_SOLUTION)
    # The assignment falls due.
    await session.execute(
        update(ClassAssignment)
        .where(ClassAssignment.id == uuid.UUID(made.json()["id"]))
        .values(due_at=now - timedelta(minutes=1))
    )
    await session.commit()
    learner = course.learners[0]
    removed = await client.delete(
        f"/api/v1/classes/{course.id}/members/{learner.id}", headers=course.headers["instructor"]
    )
    assert removed.status_code == 200
    back = await client.post(
        "/api/v1/classes/join", json={"code": course.code}, headers=course.headers["learner0"]
    )
    assert back.status_code == 200
    book = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/gradebook", headers=course.headers["instructor"]
    )
    assert book.json()["rows"][0]["statuses"] == {made.json()["id"]: "late"}
    again = await client.get("/api/v1/classes/assignments", headers=course.headers["learner0"])
    item = again.json()["items"][0]
    assert [i["exercise_id"] for i in item["items"]] == picks
    assert item["status"] == "late"


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


async def test_needs_help_counts_a_late_joiners_quiet_days_from_when_they_joined(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # The assignment opened five days ago; one learner was in the class then, the other
    # joined an hour ago. Due times are said as the class's clocks show them.
    course = await create_course(
        client, session, resources, learners=2, timezone="America/Los_Angeles"
    )
    await session.execute(
        update(ClassMembership)
        .where(ClassMembership.user_id == course.learners[0].id)
        .values(joined_at=datetime.now(UTC) - timedelta(days=6))
    )
    await session.execute(
        update(ClassMembership)
        .where(ClassMembership.user_id == course.learners[1].id)
        .values(joined_at=datetime.now(UTC) - timedelta(hours=1))
    )
    await session.commit()
    exercise = await create_exercise(session)
    now = datetime.now(UTC)
    await _assign(
        client, course, exercise, opens_at=(now - timedelta(days=5)).isoformat(),
        due_at="2099-12-10T23:59",
    )  # fmt: skip

    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/needs-help", headers=course.headers["instructor"]
    )

    assert r.status_code == 200, r.text
    assert [(e["name"], e["reason"]) for e in r.json()["items"]] == [("Learner 0", "inactive")]
    assert r.json()["items"][0]["why"] == (
        'no activity for 5 days while "Week 1" is open (due 2099-12-10 23:59 (America/Los_Angeles))'
    )


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


async def test_per_exercise_medians_of_attempts_and_minutes_to_the_first_pass(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=5)
    exercise = await create_exercise(session)
    await _assign(client, course, exercise)
    clock = resources.clock
    await _submit(client, course, 0, exercise, WRONG)
    await _submit(client, course, 1, exercise, ADD_SOLUTION)  # 1 attempt, 0 minutes
    await _submit(client, course, 2, exercise, WRONG)
    await _submit(client, course, 3, exercise, WRONG)  # never passes
    clock.advance(timedelta(minutes=2))
    await _submit(client, course, 2, exercise, ADD_SOLUTION)  # 2 attempts, 2 minutes
    await _submit(client, course, 2, exercise, WRONG)  # after the pass: not counted
    clock.advance(timedelta(minutes=2))
    await _submit(client, course, 0, exercise, WRONG)
    clock.advance(timedelta(minutes=4))
    await _submit(client, course, 0, exercise, ADD_SOLUTION)  # 3 attempts, 8 minutes
    await _submit(client, course, 4, exercise, ADD_SOLUTION)  # 1 attempt, 0 minutes
    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/exercises", headers=course.headers["instructor"]
    )
    assert r.status_code == 200, r.text
    (stats,) = r.json()["items"]
    assert (stats["learners_attempted"], stats["learners_passed"]) == (5, 4)
    assert stats["pass_rate"] == 0.8
    # Attempts 1, 1, 2, 3 and minutes 0, 0, 2, 8: the two middle values' mean.
    assert stats["median_attempts_to_pass"] == 1.5
    assert stats["median_minutes_to_pass"] == 1.0
    assert stats["common_failure"] == "test_small"
    assert stats["common_failure_count"] == 5


async def test_the_commonest_failure_counts_every_failing_test_of_every_failed_submission(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=3)
    exercise = await create_exercise(session)
    await _assign(client, course, exercise)
    absolute = "def add(a, b):\n    return abs(a) + abs(b)\n"  # fails test_negative
    minus = "def add(a, b):\n    return a - b\n"  # fails test_small, test_negative, test_large
    await _submit(client, course, 0, exercise, WRONG)  # fails test_small
    await _submit(client, course, 1, exercise, absolute)
    await _submit(client, course, 1, exercise, absolute)
    await _submit(client, course, 2, exercise, absolute)
    await _submit(client, course, 2, exercise, minus)
    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/exercises", headers=course.headers["instructor"]
    )
    (stats,) = r.json()["items"]
    # test_negative 4 times (3 + 1), test_small twice, test_large once.
    assert (stats["common_failure"], stats["common_failure_count"]) == ("test_negative", 4)
    assert "-3" in stats["common_failure_message"]


async def test_an_adaptive_assignment_is_graded_on_each_learners_own_picks(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=3)
    skill = f"skill-{course.code.lower()}"
    for _ in range(3):
        await create_exercise(session, skills=[skill], difficulty=2)
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Practice", "skill": skill, "level": 2, "count": 1,
              "opens_at": (now - timedelta(hours=1)).isoformat(),
              "due_at": (now + timedelta(days=1)).isoformat()},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    picks = {}
    for n in (0, 1):  # learner 2 never opens their assignments: nothing picked for them
        seen = await client.get(
            "/api/v1/classes/assignments", headers=course.headers[f"learner{n}"]
        )
        picks[n] = seen.json()["items"][0]["items"][0]["exercise_id"]
    by_id = {str(e.id): e for e in await _bank(session, skill)}
    await _submit(client, course, 0, by_id[picks[0]], ADD_SOLUTION)
    await _submit(client, course, 1, by_id[picks[1]], WRONG)
    if picks[0] != picks[1]:
        # Passing an exercise that was picked for someone else does not count for learner 1.
        await _submit(client, course, 1, by_id[picks[0]], ADD_SOLUTION)
    book = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/gradebook", headers=course.headers["instructor"]
    )
    statuses = {row["name"]: row["statuses"][made.json()["id"]] for row in book.json()["rows"]}
    assert statuses == {"Learner 0": "passed", "Learner 1": "attempted",
                        "Learner 2": "not_started"}  # fmt: skip
    roster = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/roster", headers=course.headers["instructor"]
    )
    done = {row["name"]: row["assignments_done"] for row in roster.json()["items"]}
    assert done == {"Learner 0": 1, "Learner 1": 0, "Learner 2": 0}


async def _bank(session: AsyncSession, skill: str) -> list[Exercise]:
    rows = await session.execute(select(Exercise))
    return [e for e in rows.scalars() if skill in e.skills]


# page -> the statements one request sends (the caller's session and membership included);
# ceilings that may only fall.
PAGE_STATEMENTS = {
    "dashboard/roster": 10,
    "dashboard/gradebook": 6,
    "dashboard/needs-help": 10,
    "dashboard/exercises": 8,
    "dashboard/usage": 5,
}


async def test_each_dashboard_page_sends_as_many_queries_for_a_big_class_as_for_a_small_one(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, backend: Backend
) -> None:
    course, exercise, _ = await _class_in_action(client, session, resources)

    async def statements() -> dict[str, int]:
        sent = {}
        for page in PAGE_STATEMENTS:
            with counted(backend) as statements:
                r = await client.get(
                    f"/api/v1/classes/{course.id}/{page}", headers=course.headers["instructor"]
                )
            assert r.status_code == 200, r.text
            sent[page] = len(statements)
        return sent

    small = await statements()
    for n in range(3, 8):  # five more learners, each with work of their own
        learner = await create_user(session, resources, name=f"Learner {n}", onboarded=True)
        h = await bearer(session, resources, learner)
        joined = await client.post("/api/v1/classes/join", json={"code": course.code}, headers=h)
        assert joined.status_code == 200, joined.text
        course.headers[f"learner{n}"] = h
        await _submit(client, course, n, exercise, WRONG if n % 2 else ADD_SOLUTION)
    assert await statements() == small
    assert {page: min(n, PAGE_STATEMENTS[page]) for page, n in small.items()} == small


async def test_the_roster_and_needs_help_count_only_work_the_class_has_set_each_learner(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # Learner 0 practised two exercises on their own: one the class sets only in an assignment
    # that opens in years, one picked for learner 1 alone. Neither is the class's work of
    # learner 0's: the roster counts as much as their submissions page shows.
    course = await create_course(client, session, resources, learners=2)
    skill = f"skill-{course.code.lower()}"
    later = await create_exercise(session)
    theirs = await create_exercise(session, skills=[skill], difficulty=2)
    h0, teacher = course.headers["learner0"], course.headers["instructor"]
    for exercise in (later, theirs):
        for _ in range(2):
            await _submit(client, course, 0, exercise, WRONG)
        for _ in range(3):
            hint = await client.post(f"/api/v1/exercises/{exercise.id}/hints", headers=h0)
            assert hint.status_code == 200, hint.text
        talk = await client.post(
            "/api/v1/conversations", json={"exercise_id": str(exercise.id)}, headers=h0
        )
        asked = await client.post(
            f"/api/v1/conversations/{talk.json()['id']}/messages",
            json={"content": "is this right?"}, headers=h0,
        )  # fmt: skip
        assert asked.status_code == 201, asked.text
    now = datetime.now(UTC)
    made = [
        await client.post(f"/api/v1/classes/{course.id}/assignments", json=body, headers=teacher)
        for body in (
            {"title": "Later", "exercise_ids": [str(later.id)],
             "opens_at": "2199-01-01T00:00", "due_at": "2199-01-02T00:00"},
            {"title": "Practice", "skill": skill, "level": 2, "count": 1,
             "opens_at": (now - timedelta(hours=1)).isoformat(),
             "due_at": (now + timedelta(days=1)).isoformat()},
        )
    ]  # fmt: skip
    assert [r.status_code for r in made] == [201, 201], [r.text for r in made]
    seen = await client.get("/api/v1/classes/assignments", headers=course.headers["learner1"])
    assert seen.json()["items"][0]["items"][0]["exercise_id"] == str(theirs.id)

    roster = await client.get(f"/api/v1/classes/{course.id}/dashboard/roster", headers=teacher)
    helped = await client.get(f"/api/v1/classes/{course.id}/dashboard/needs-help", headers=teacher)
    shown = await client.get(
        f"/api/v1/classes/{course.id}/learners/{course.learners[0].id}/submissions",
        headers=teacher,
    )

    assert [(e["name"], e["reason"]) for e in helped.json()["items"]] == []
    first = roster.json()["items"][0]
    assert first["name"] == "Learner 0"
    assert shown.json()["items"] == []
    counted_work = (first["attempts"], first["completed"], first["hints_used"])
    assert (*counted_work, first["tutor_messages"]) == (0, 0, 0, 0)
    assert first["last_active"] is not None  # they were active, on work of their own


async def test_per_exercise_figures_start_when_an_assignment_setting_the_exercise_opens(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # A learner practised an exercise before the class set it, in an assignment that opens
    # in years: the exercise is listed, with no figures yet.
    course = await create_course(client, session, resources, learners=1)
    exercise = await create_exercise(session)
    await _submit(client, course, 0, exercise, WRONG)
    await _submit(client, course, 0, exercise, ADD_SOLUTION)
    hint = await client.post(
        f"/api/v1/exercises/{exercise.id}/hints", headers=course.headers["learner0"]
    )
    assert hint.status_code == 200, hint.text
    await _assign(client, course, exercise, opens_at="2199-01-01T00:00", due_at="2199-01-02T00:00")

    r = await client.get(
        f"/api/v1/classes/{course.id}/dashboard/exercises", headers=course.headers["instructor"]
    )

    assert r.status_code == 200, r.text
    (row,) = r.json()["items"]
    assert row["exercise_id"] == str(exercise.id)
    figures = ("learners_attempted", "learners_passed", "pass_rate", "common_failure",
               "common_failure_count", "hints_used")  # fmt: skip
    assert {k: row[k] for k in figures} == {
        "learners_attempted": 0, "learners_passed": 0, "pass_rate": None,
        "common_failure": None, "common_failure_count": 0, "hints_used": 0,
    }  # fmt: skip
