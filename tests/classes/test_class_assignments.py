"""Class assignments: chosen or adaptive exercises, due times in the learner's zone, late work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from koan.resources import Resources
from tests.classes.helpers import create_course
from tests.fixtures.factories import ADD_SOLUTION, create_exercise


def _iso(moment: datetime) -> str:
    return moment.isoformat()


async def test_learners_see_class_assignments_with_the_due_time_in_their_own_zone(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(
        client, session, resources, learners=1, timezone="America/New_York"
    )
    exercise = await create_exercise(session)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={
            "title": "Week 1",
            "exercise_ids": [str(exercise.id)],
            "opens_at": "2026-01-05T09:00:00",
            "due_at": "2030-01-12T23:59:00",  # New York wall time
        },
        headers=course.headers["instructor"],
    )
    assert made.status_code == 201, made.text
    assert made.json()["due_at"].startswith("2030-01-13T04:59:00")
    r = await client.get("/api/v1/classes/assignments", headers=course.headers["learner0"])
    assert r.status_code == 200, r.text
    (item,) = r.json()["items"]
    # The learner (onboarded in Europe/Paris) reads it on their own clock.
    assert item["due_local"] == "2030-01-13 05:59 (Europe/Paris)"
    assert item["is_open"] is True
    assert item["status"] == "not_started"
    assert [i["exercise_id"] for i in item["items"]] == [str(exercise.id)]


async def test_an_assignment_that_has_not_opened_is_not_shown_to_learners(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    exercise = await create_exercise(session)
    later = datetime.now(UTC) + timedelta(days=3)
    await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Later", "exercise_ids": [str(exercise.id)],
              "opens_at": _iso(later), "due_at": _iso(later + timedelta(days=7))},
        headers=course.headers["instructor"],
    )  # fmt: skip
    r = await client.get("/api/v1/classes/assignments", headers=course.headers["learner0"])
    assert r.json()["items"] == []


async def test_a_submission_after_the_due_time_is_accepted_and_marked_late(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    exercise = await create_exercise(session)
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Past", "exercise_ids": [str(exercise.id)],
              "opens_at": _iso(now - timedelta(days=3)), "due_at": _iso(now - timedelta(days=1))},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    h = course.headers["learner0"]
    submitted = await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions", json={"code": ADD_SOLUTION}, headers=h
    )
    assert submitted.status_code == 201
    assert submitted.json()["status"] == "passed"
    (item,) = (await client.get(f"/api/v1/classes/{course.id}/assignments", headers=h)).json()[
        "items"
    ]
    assert item["is_open"] is False
    assert item["status"] == "late"
    assert item["items"][0]["status"] == "late"


async def test_an_adaptive_assignment_picks_n_exercises_of_the_skill_and_level_per_learner(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=2)
    skill = f"skill-{course.code.lower()}"
    pool = {
        str((await create_exercise(session, skills=[skill], difficulty=2)).id) for _ in range(4)
    }
    await create_exercise(session, skills=[skill], difficulty=3)  # another level: never picked
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Practice", "skill": skill, "level": 2, "count": 2,
              "opens_at": _iso(now - timedelta(hours=1)), "due_at": _iso(now + timedelta(days=2))},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    for n in range(2):
        h = course.headers[f"learner{n}"]
        first = (await client.get("/api/v1/classes/assignments", headers=h)).json()["items"][0]
        picked = [i["exercise_id"] for i in first["items"]]
        assert len(picked) == 2
        assert set(picked) <= pool
        # The picks are kept: the learner sees the same exercises again.
        again = (await client.get("/api/v1/classes/assignments", headers=h)).json()["items"][0]
        assert [i["exercise_id"] for i in again["items"]] == picked


async def test_an_adaptive_assignment_with_nothing_to_pick_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    now = datetime.now(UTC)
    r = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Nothing", "skill": "no-such-skill", "level": 5, "count": 2,
              "opens_at": _iso(now), "due_at": _iso(now + timedelta(days=1))},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"] == "NoExercises"


async def test_an_assignment_needs_one_kind_and_a_due_time_after_it_opens(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    exercise = await create_exercise(session)
    h = course.headers["instructor"]
    url = f"/api/v1/classes/{course.id}/assignments"
    both = await client.post(
        url,
        json={"title": "X", "exercise_ids": [str(exercise.id)], "skill": "loops", "level": 1,
              "count": 1, "opens_at": "2026-01-01T00:00:00", "due_at": "2026-01-02T00:00:00"},
        headers=h,
    )  # fmt: skip
    assert both.status_code == 422
    backwards = await client.post(
        url,
        json={"title": "X", "exercise_ids": [str(exercise.id)],
              "opens_at": "2026-01-02T00:00:00", "due_at": "2026-01-01T00:00:00"},
        headers=h,
    )  # fmt: skip
    assert backwards.status_code == 400
    learner_tries = await create_course(client, session, resources, learners=1)
    refused = await client.post(
        f"/api/v1/classes/{learner_tries.id}/assignments",
        json={"title": "X", "exercise_ids": [str(exercise.id)],
              "opens_at": "2026-01-01T00:00:00", "due_at": "2026-01-02T00:00:00"},
        headers=learner_tries.headers["learner0"],
    )  # fmt: skip
    assert refused.status_code == 403


async def test_the_daily_exercise_is_never_part_of_an_open_class_assignment(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    h = course.headers["learner0"]
    made_here = [await create_exercise(session) for _ in range(3)]
    bank = (await client.get("/api/v1/exercises", params={"language": "python", "limit": 100},
                             headers=h)).json()["items"]  # fmt: skip
    # The test's database holds only this test's exercises: the picker has these three.
    assert {e["id"] for e in bank} == {str(e.id) for e in made_here}
    set_for_class = [str(e.id) for e in made_here[:2]]
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Two", "exercise_ids": set_for_class,
              "opens_at": _iso(now - timedelta(hours=1)), "due_at": _iso(now + timedelta(days=1))},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    daily = await client.get("/api/v1/exercises/daily", headers=h)
    assert daily.status_code == 200, daily.text
    assert daily.json()["exercise"]["id"] == str(made_here[2].id)


async def test_picks_made_by_a_racing_request_are_the_ones_the_learner_gets(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two requests show the learner their assignments at once; both find no picks yet. The
    # second to write meets the unique index and takes the first's picks, not a second set.
    from sqlalchemy import func, select

    from koan.classes import repository
    from koan.models import ClassAssignmentItem

    course = await create_course(client, session, resources, learners=1)
    skill = f"skill-{course.code.lower()}"
    for _ in range(4):
        await create_exercise(session, skills=[skill], difficulty=2)
    now = datetime.now(UTC)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Practice", "skill": skill, "level": 2, "count": 2,
              "opens_at": _iso(now - timedelta(hours=1)), "due_at": _iso(now + timedelta(days=2))},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    h = course.headers["learner0"]
    first = (await client.get("/api/v1/classes/assignments", headers=h)).json()["items"][0]
    real_items = repository.items
    calls = 0

    async def not_seen_yet(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return [] if calls == 1 else await real_items(*args, **kwargs)

    monkeypatch.setattr(repository, "items", not_seen_yet)
    raced = await client.get("/api/v1/classes/assignments", headers=h)

    assert raced.status_code == 200, raced.text
    picked = [i["exercise_id"] for i in raced.json()["items"][0]["items"]]
    assert picked == [i["exercise_id"] for i in first["items"]]
    rows = await session.scalar(
        select(func.count())
        .select_from(ClassAssignmentItem)
        .where(ClassAssignmentItem.class_assignment_id == uuid.UUID(made.json()["id"]))
    )
    assert rows == 2


async def test_wall_times_across_a_daylight_saving_change_are_read_by_a_stated_rule(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0, timezone="Europe/Berlin")
    exercise = await create_exercise(session)
    h = course.headers["instructor"]
    url = f"/api/v1/classes/{course.id}/assignments"

    def body(opens_at: str, due_at: str) -> dict[str, Any]:
        return {"title": "DST", "exercise_ids": [str(exercise.id)], "opens_at": opens_at,
                "due_at": due_at}  # fmt: skip

    # 29 March 2026: Berlin's clocks go from 02:00 straight to 03:00; 02:30 never happens.
    skipped = await client.post(url, json=body("2026-03-29T02:30", "2026-04-05T09:00"), headers=h)
    assert skipped.status_code == 400, skipped.text
    assert skipped.json()["error"] == "NonexistentTime"
    assert skipped.json()["detail"] == (
        "opens_at: 2026-03-29 02:30 does not exist in Europe/Berlin (the clocks skip from "
        "02:00 to 03:00 that day). Choose a time outside the change, such as 03:00."
    )
    # An aware time is one instant whatever the zone's clocks do.
    aware = await client.post(
        url, json=body("2026-03-29T02:30:00+01:00", "2026-04-05T09:00"), headers=h
    )
    assert aware.status_code == 201, aware.text
    assert aware.json()["opens_at"].startswith("2026-03-29T01:30:00")

    # 25 October 2026: 02:30 happens twice (summer time, then winter time); the first counts.
    twice = await client.post(url, json=body("2026-10-18T09:00", "2026-10-25T02:30"), headers=h)
    assert twice.status_code == 201, twice.text
    assert twice.json()["due_at"].startswith("2026-10-25T00:30:00")  # 02:30 CEST, UTC+2
    # The first minute after the gap is read as it is written.
    after = await client.post(url, json=body("2026-03-29T03:00", "2026-04-05T09:00"), headers=h)
    assert after.status_code == 201, after.text
    assert after.json()["opens_at"].startswith("2026-03-29T01:00:00")

    # An exam window and the class's dates follow the same rules.
    window = await client.patch(
        f"/api/v1/classes/{course.id}",
        json={"tutor": {"off_from": "2026-03-29T02:15", "off_until": "2026-03-29T05:00"}},
        headers=h,
    )
    assert window.status_code == 400, window.text
    assert window.json()["error"] == "NonexistentTime"
    assert window.json()["detail"].startswith("off_from: 2026-03-29 02:15 does not exist")
    dates = await client.patch(
        f"/api/v1/classes/{course.id}", json={"ends_at": "2026-10-25T02:59"}, headers=h
    )
    assert dates.status_code == 200, dates.text
    assert dates.json()["ends_at"].startswith("2026-10-25T00:59:00")


async def test_an_exercise_chosen_twice_is_set_once_and_counted_once(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    first, second = await create_exercise(session), await create_exercise(session)
    made = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Week 1", "exercise_ids": [str(first.id), str(first.id), str(second.id)],
              "opens_at": "2026-01-01T00:00:00", "due_at": "2026-01-02T00:00:00"},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    body = made.json()
    assert [i["exercise_id"] for i in body["items"]] == [str(first.id), str(second.id)]
    assert body["count"] == 2


async def test_a_title_of_spaces_alone_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=0)
    exercise = await create_exercise(session)
    r = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "   ", "exercise_ids": [str(exercise.id)],
              "opens_at": "2026-01-01T00:00:00", "due_at": "2026-01-02T00:00:00"},
        headers=course.headers["instructor"],
    )  # fmt: skip
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["fields"]] == ["title"]
