"""Lists paged by time keep every item when several share a time: the cursor carries the id too.

Rows written at one instant are common (a class's assignments opened together, a test's frozen
clock, a coarse clock), and a page ending inside such a run must not skip the rest of it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import Assignment, Submission
from koan.resources import Resources
from tests.classes.helpers import create_course
from tests.fixtures.factories import ADD_STARTER, bearer, create_exercise, create_user

SAME_MOMENT = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)


async def _every_page(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], limit: int = 2
) -> list[str]:
    """The ids of every item of the list, following `next_cursor` to the end."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = await client.get(url, params=params, headers=headers)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the list never ended")


async def _submissions_at_one_moment(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    session: AsyncSession,
    exercise_id: uuid.UUID,
) -> set[str]:
    for _ in range(5):
        sent = await client.post(
            f"/api/v1/exercises/{exercise_id}/submissions",
            json={"code": ADD_STARTER},
            headers=headers,
        )
        assert sent.status_code in (200, 201), sent.text
    ids = set(
        (
            await session.execute(
                update(Submission)
                .where(Submission.exercise_id == exercise_id)
                .values(created_at=SAME_MOMENT)
                .returning(Submission.id)
            )
        )
        .scalars()
        .all()
    )
    await session.commit()
    assert len(ids) == 5
    return {str(i) for i in ids}


async def test_a_learners_submissions_made_at_one_moment_are_all_listed(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session)
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    await session.commit()
    made = await _submissions_at_one_moment(client, headers, session, exercise.id)

    listed = await _every_page(client, f"/api/v1/exercises/{exercise.id}/submissions", headers)

    assert sorted(listed) == sorted(made)


async def test_a_learners_assignments_given_at_one_moment_are_all_listed(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    given = []
    for n in range(5):
        exercise = await create_exercise(session, slug=f"py-tied-{n}", title=f"Tied {n}")
        assignment = Assignment(
            user_id=user.id,
            exercise_id=exercise.id,
            kind="daily",
            status="completed",
            assigned_at=SAME_MOMENT,
            completed_at=SAME_MOMENT,
        )
        session.add(assignment)
        given.append(assignment)
    await session.commit()

    listed = await _every_page(client, "/api/v1/assignments", headers)

    assert sorted(listed) == sorted(str(a.id) for a in given)


async def test_a_class_sees_every_submission_a_learner_made_at_one_moment(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    exercise = await create_exercise(session)
    await session.commit()
    opened = await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={
            "title": "Week 1",
            "exercise_ids": [str(exercise.id)],
            "opens_at": "2026-10-01T09:00:00+00:00",
            "due_at": "2099-12-10T23:59:00+00:00",
        },
        headers=course.headers["instructor"],
    )
    assert opened.status_code == 201, opened.text
    learner = course.learners[0]
    made = await _submissions_at_one_moment(
        client, course.headers["learner0"], session, exercise.id
    )
    base = f"/api/v1/classes/{course.id}/learners/{learner.id}/submissions"

    listed = await _every_page(client, base, course.headers["instructor"])

    assert sorted(listed) == sorted(made)
