"""Progress routes through HTTP: totals and streaks, history, achievements, export, access."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive import GENERAL
from koan.chat import export as chat_export
from koan.chat import repository as chat_repository
from koan.drafts import export as drafts_export
from koan.exercises import lifecycle
from koan.models.progress import LearnerSkillRating
from koan.progress import export
from koan.progress.export import CONVERSATION_CSV_COLUMNS, CSV_COLUMNS
from koan.resources import Resources
from tests.chat.helpers import ask, new_conversation
from tests.fixtures.factories import (
    ADD_SOLUTION,
    ONBOARDING_ANSWERS,
    bearer,
    create_exercise,
    create_user,
)
from tests.progress.conftest import WRONG, Learner
from tests.progress.test_hook import MONDAY, paris


async def headers(learner: Learner) -> dict[str, str]:
    # Access tokens last 15 minutes of the (travelling) clock: take a fresh one per request.
    return await bearer(learner.session, learner.res, learner.user)


async def get(
    client: httpx.AsyncClient, learner: Learner, path: str, **params: str
) -> httpx.Response:
    return await client.get(
        f"/api/v1/progress{path}", headers=await headers(learner), params=params
    )


async def test_a_new_learner_starts_from_zero(client: httpx.AsyncClient, learner: Learner) -> None:
    r = await get(client, learner, "")
    assert r.status_code == 200, r.text
    body = r.json()
    for name in ("exercises_completed", "attempts", "first_try_passes", "hints_used"):
        assert body[name] == 0, name
    assert (body["current_streak"], body["longest_streak"], body["active_today"]) == (0, 0, False)
    assert body["level"] == 1
    assert body["level_events"] == []
    assert body["skills"] == []
    assert body["timezone"] == "Europe/Paris"
    assert body["today"] == "2027-01-04"
    activity = body["activity"]
    assert len(activity) == 90
    assert activity[-1] == {"date": "2027-01-04", "completed": 0, "attempts": 0}
    assert activity[0]["date"] == (date(2027, 1, 4) - timedelta(days=89)).isoformat()


async def test_totals_streaks_and_activity(client: httpx.AsyncClient, learner: Learner) -> None:
    learner.travel(paris(MONDAY, 9))
    await learner.solve(hints=2)
    exercise = await create_exercise(learner.session)
    await learner.submit(exercise, WRONG)
    await learner.submit(exercise)
    learner.travel(paris(MONDAY + timedelta(days=1), 23, 59))
    await learner.solve()

    body = (await get(client, learner, "")).json()
    assert (body["exercises_completed"], body["attempts"], body["first_try_passes"]) == (3, 4, 2)
    assert body["hints_used"] == 2
    assert (body["current_streak"], body["longest_streak"], body["active_today"]) == (2, 2, True)
    assert body["activity"][-2:] == [
        {"date": "2027-01-11", "completed": 2, "attempts": 3},
        {"date": "2027-01-12", "completed": 1, "attempts": 1},
    ]

    # Wednesday, nothing done yet: the streak still stands.
    learner.travel(paris(MONDAY + timedelta(days=2), 20))
    body = (await get(client, learner, "")).json()
    assert (body["current_streak"], body["active_today"], body["today"]) == (2, False, "2027-01-13")
    # Friday: Wednesday and Thursday were missed.
    learner.travel(paris(MONDAY + timedelta(days=4), 8))
    body = (await get(client, learner, "")).json()
    assert (body["current_streak"], body["longest_streak"]) == (0, 2)


async def test_skills_show_mastery_and_the_rating_behind_it(
    client: httpx.AsyncClient, learner: Learner, session: AsyncSession
) -> None:
    for skill, rating in ((GENERAL, 1.0), ("loops", 3.0), ("strings", -1.0)):
        session.add(
            LearnerSkillRating(
                user_id=learner.user.id, skill=skill, rating=rating, uncertainty=0.3, attempts=8
            )
        )
    await session.flush()
    body = (await get(client, learner, "")).json()
    skills = {s["skill"]: s for s in body["skills"]}
    assert set(skills) == {"loops", "strings"}  # the general ability is the level, not a skill
    assert skills["loops"]["mastered"]
    assert not skills["strings"]["mastered"]
    assert 0 <= skills["strings"]["mastery"] < skills["loops"]["mastery"] <= 1
    assert skills["loops"]["rating"] == 3.0
    assert skills["loops"]["uncertainty"] == 0.3
    assert body["level"] == 3


async def test_history_series_and_validation(client: httpx.AsyncClient, learner: Learner) -> None:
    learner.travel(paris(MONDAY, 10))
    await learner.solve()
    r = await get(client, learner, "/history")
    body = r.json()
    assert r.status_code == 200
    assert (body["from"], body["to"]) == ("2026-12-13", "2027-01-11")
    assert len(body["days"]) == 30
    assert (body["completed"], body["attempts"]) == (1, 1)

    r = await get(client, learner, "/history", **{"from": "2027-01-10", "to": "2027-01-12"})
    assert [d["completed"] for d in r.json()["days"]] == [0, 1, 0]
    year = await get(client, learner, "/history", **{"from": "2026-01-12", "to": "2027-01-12"})
    assert year.status_code == 200
    assert len(year.json()["days"]) == 366

    for params in (
        {"from": "2027-01-12", "to": "2027-01-10"},
        {"from": "2026-01-11", "to": "2027-01-12"},  # 367 days
        {"from": "2027-02-30"},
        {"to": "yesterday"},
    ):
        r = await get(client, learner, "/history", **params)
        assert (r.status_code, r.json()["error"]) == (422, "ValidationError"), params
        assert r.json()["detail"], params


async def test_achievements_earned_and_locked(client: httpx.AsyncClient, learner: Learner) -> None:
    learner.travel(paris(MONDAY, 10))
    await learner.solve()
    body = (await get(client, learner, "/achievements")).json()
    assert [a["code"] for a in body["earned"]] == ["first-exercise", "first-try"]
    earned_at = body["earned"][0]["earned_at"]
    assert earned_at.startswith("2027-01-11T09:00")
    assert earned_at.endswith("Z")
    assert body["earned"][0]["title"]
    assert body["earned"][0]["description"]
    locked = {a["code"]: a for a in body["locked"]}
    assert (locked["exercises-10"]["current"], locked["exercises-10"]["target"]) == (1, 10)
    assert (locked["streak-7"]["current"], locked["streak-7"]["target"]) == (1, 7)
    assert (locked["polyglot"]["current"], locked["polyglot"]["target"]) == (1, 2)
    assert len(body["earned"]) + len(body["locked"]) >= 18
    # Each says what its numbers count: Summit's "1 of 5" is a difficulty, not 1 exercise of 5.
    summit = locked["summit"]
    assert (summit["current"], summit["target"]) == (1, 5)
    assert summit["counts"] == "hardest difficulty completed"
    assert all(a["counts"] for a in body["locked"])


async def test_export_json_has_the_learners_own_data(
    client: httpx.AsyncClient, learner: Learner, session: AsyncSession, resources: Resources
) -> None:
    other = await create_user(session, resources, onboarded=True)
    await Learner(session, resources, other).solve()
    exercise = await create_exercise(learner.session)
    await learner.submit(exercise, WRONG)
    await learner.submit(exercise)

    r = await get(client, learner, "/export", format="json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"] == 'attachment; filename="koan-export-2027-01-04.json"'
    data = r.json()
    assert data["user"]["email"] == learner.user.email
    (assignment,) = data["assignments"]
    assert assignment["exercise"]["slug"] == exercise.slug
    assert assignment["status"] == "completed"
    assert [s["status"] for s in assignment["submissions"]] == ["failed", "passed"]
    assert assignment["submissions"][1]["code"] == ADD_SOLUTION
    assert assignment["completed_at"].endswith("Z")
    assert other.email not in r.text


async def test_export_json_has_the_interview_answers_and_the_achievements_earned(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    await learner.solve()
    r = await get(client, learner, "/export", format="json")
    data = r.json()
    profile = data["profile"]
    assert profile["onboarding_completed"] is True
    # What the learner told Koan about themselves, as their profile holds it now.
    assert profile["answers"] == {**ONBOARDING_ANSWERS, "timezone": learner.user.timezone}
    earned = data["achievements"]
    assert [a["code"] for a in earned] == learner.unlocked == ["first-exercise", "first-try"]
    assert all(a["earned_at"].endswith("Z") and a["title"] for a in earned)


async def test_export_csv(
    client: httpx.AsyncClient, learner: Learner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "BATCH", 2)  # three assignments span two pages
    exercise = await create_exercise(learner.session)
    await learner.submit(exercise, "=1+1\n")  # a formula to a spreadsheet
    await learner.submit(exercise)
    await learner.solve()
    never_submitted = await create_exercise(learner.session)
    await lifecycle.start(learner.session, learner.res, learner.user, never_submitted)

    r = await get(client, learner, "/export", format="csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    records = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(records) == 4  # two submissions, one, and an assignment without any
    assert records[0]["code"] == "'=1+1\n"  # neutralised for spreadsheets
    assert records[1]["code"] == ADD_SOLUTION
    assert records[1]["submission_status"] == "passed"
    assert records[3]["submission_id"] == ""
    assert records[3]["assignment_status"] == "assigned"


async def test_export_includes_the_tutor_conversations(
    client: httpx.AsyncClient, learner: Learner, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(learner.session)
    mine = await headers(learner)
    about = await new_conversation(client, mine, exercise)
    asked = await ask(client, mine, about, "Why does my loop stop early?")
    assert asked.status_code == 201, asked.text
    general = await new_conversation(client, mine)
    await ask(client, mine, general, "=HYPERLINK('x') is what I typed")
    other = await create_user(session, resources, onboarded=True)
    theirs = await bearer(session, resources, other)
    await ask(client, theirs, await new_conversation(client, theirs), "Someone else's question")

    data = (await get(client, learner, "/export", format="json")).json()
    conversations = {c["id"]: c for c in data["conversations"]}
    assert set(conversations) == {about, general}
    first = conversations[about]
    assert first["exercise_id"] == str(exercise.id)
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][0]["content"] == "Why does my loop stop early?"
    assert first["messages"][1]["content"]  # the tutor's reply, as the learner saw it
    assert conversations[general]["exercise_id"] is None
    assert "Someone else's question" not in str(data)

    r = await get(client, learner, "/export", format="conversations-csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "koan-conversations-2027-01-04.csv" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert tuple(rows[0]) == CONVERSATION_CSV_COLUMNS
    records = [dict(zip(CONVERSATION_CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(records) == 4  # two conversations of a question and an answer each
    assert [r["role"] for r in records if r["conversation_id"] == about] == ["user", "assistant"]
    typed = next(r for r in records if r["conversation_id"] == general and r["seq"] == "1")
    assert typed["content"] == "'=HYPERLINK('x') is what I typed"  # neutralised for spreadsheets
    assert "Someone else's question" not in r.text


async def test_export_includes_the_code_the_tutor_showed(
    client: httpx.AsyncClient,
    learner: Learner,
    session: AsyncSession,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat_export, "SHOWN_BATCH", 2)  # three pieces span two pages
    exercise = await create_exercise(learner.session)
    mine = await headers(learner)
    about = await new_conversation(client, mine, exercise)
    shown_at = learner.res.clock.now()
    await chat_repository.add_shown(
        session,
        learner.user.id,
        [exercise.id],
        "for n in numbers:",
        conversation_id=uuid.UUID(about),
        now=shown_at,
    )
    await chat_repository.add_shown(
        session, learner.user.id, [exercise.id], "total += n", conversation_id=None, now=shown_at
    )
    await chat_repository.add_shown(
        session, learner.user.id, [exercise.id], "return total", conversation_id=None, now=shown_at
    )
    other = await create_user(session, resources, onboarded=True)
    await chat_repository.add_shown(
        session, other.id, [exercise.id], "someone else's code", conversation_id=None, now=shown_at
    )

    data = (await get(client, learner, "/export", format="json")).json()

    shown = data["shown_code"]
    assert [s["code"] for s in shown] == ["for n in numbers:", "total += n", "return total"]
    assert shown[0]["exercise_id"] == str(exercise.id)
    assert shown[0]["conversation_id"] == about
    assert shown[1]["conversation_id"] is None  # a hint's, or a deleted conversation's
    assert shown[0]["shown_at"] == shown_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert "someone else's code" not in str(data)


async def test_export_includes_the_drafts(
    client: httpx.AsyncClient,
    learner: Learner,
    session: AsyncSession,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(drafts_export, "BATCH", 2)  # three drafts span two pages
    exercises = [await create_exercise(learner.session) for _ in range(3)]
    mine = await headers(learner)
    for n, exercise in enumerate(exercises):
        saved = await client.put(
            f"/api/v1/drafts/{exercise.id}", headers=mine, json={"code": f"# draft {n}\n"}
        )
        assert saved.status_code == 200, saved.text
    other = await create_user(session, resources, onboarded=True)
    theirs = await bearer(session, resources, other)
    await client.put(
        f"/api/v1/drafts/{exercises[0].id}", headers=theirs, json={"code": "someone else's"}
    )

    data = (await get(client, learner, "/export", format="json")).json()

    drafts = {d["exercise_id"]: d for d in data["drafts"]}
    assert set(drafts) == {str(e.id) for e in exercises}
    assert [drafts[str(e.id)]["code"] for e in exercises] == [f"# draft {n}\n" for n in range(3)]
    assert drafts[str(exercises[0].id)]["updated_at"].endswith("Z")
    assert "someone else's" not in str(data)


async def test_export_rejects_unknown_formats(client: httpx.AsyncClient, learner: Learner) -> None:
    r = await get(client, learner, "/export", format="xml")
    assert r.status_code == 422
    assert r.json()["error"] == "ValidationError"


async def test_progress_needs_a_verified_email(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, verified=False)
    h = await bearer(session, resources, user)
    for path in ("", "/history", "/achievements", "/export"):
        r = await client.get(f"/api/v1/progress{path}", headers=h)
        assert (r.status_code, r.json()["error"]) == (403, "EmailNotVerified"), path
        r = await client.get(f"/api/v1/progress{path}")
        assert (r.status_code, r.json()["error"]) == (401, "NotAuthenticated"), path


async def test_a_submission_through_http_counts_and_reports_achievements(
    client: httpx.AsyncClient, learner: Learner
) -> None:
    exercise = await create_exercise(learner.session)
    r = await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions",
        headers=await headers(learner),
        json={"code": ADD_SOLUTION},
    )
    assert r.status_code == 201, r.text
    assert r.json()["achievements_unlocked"] == ["first-exercise", "first-try"]
    body = (await get(client, learner, "")).json()
    assert (body["exercises_completed"], body["attempts"], body["current_streak"]) == (1, 1, 1)
    await learner.check_consistent()
