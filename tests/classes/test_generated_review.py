"""A class's instructor reviews the exercises the model wrote for the class's learners: an
approved one is shared with the class (and may be set), a rejected one stays its requester's.
TAs, learners and other classes' staff cannot decide."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from koan.exercises import repository as exercises
from koan.models import Exercise, User
from koan.resources import Resources
from tests.classes.helpers import Course, create_course
from tests.fixtures.factories import bearer, create_exercise, create_user


async def written_for(session: AsyncSession, user: User) -> Exercise:
    """An exercise the model wrote for `user` (private to them until approved)."""
    exercise = await create_exercise(session)
    exercise.source, exercise.owner_id = "generated", user.id
    await session.flush()
    return exercise


async def seen(client: httpx.AsyncClient, h: dict[str, str], exercise: Exercise) -> int:
    return (await client.get(f"/api/v1/exercises/{exercise.id}", headers=h)).status_code


async def decide(
    client: httpx.AsyncClient, course: Course, who: str, exercise: Exercise, decision: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/classes/{course.id}/generated-exercises/{exercise.id}/{decision}",
        headers=course.headers[who],
    )


async def set_in_class(
    client: httpx.AsyncClient, course: Course, exercise: Exercise
) -> httpx.Response:
    now = datetime.now(UTC)
    return await client.post(
        f"/api/v1/classes/{course.id}/assignments",
        json={"title": "Theirs", "exercise_ids": [str(exercise.id)],
              "opens_at": (now - timedelta(hours=1)).isoformat(),
              "due_at": (now + timedelta(days=1)).isoformat()},
        headers=course.headers["instructor"],
    )  # fmt: skip


async def test_the_instructor_approves_a_learner_s_generated_exercise_for_the_class(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=2, ta=True)
    author, classmate = course.learners
    exercise = await written_for(session, author)
    outsider = await bearer(session, resources, await create_user(session, resources))
    assert await seen(client, course.headers["learner1"], exercise) == 404

    listed = await client.get(
        f"/api/v1/classes/{course.id}/generated-exercises", headers=course.headers["instructor"]
    )
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["id"], item["status"], item["written_for"]) == (
        str(exercise.id),
        "pending",
        author.email,
    )

    # Only the instructor decides: not the TA, not a learner (not even the one it was for).
    for who in ("ta", "learner0", "learner1"):
        refused = await decide(client, course, who, exercise, "approve")
        assert refused.status_code == 403, (who, refused.text)
        assert refused.json()["error"] == "Forbidden"
    assert await seen(client, course.headers["learner1"], exercise) == 404
    # Still private to its requester, so not the class's to set.
    assert (await set_in_class(client, course, exercise)).status_code == 404

    approved = await decide(client, course, "instructor", exercise, "approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    # Shared with the class, and only with it.
    assert await seen(client, course.headers["learner1"], exercise) == 200
    assert await seen(client, course.headers["instructor"], exercise) == 200
    assert await seen(client, outsider, exercise) == 404
    # The class may now set it.
    made = await set_in_class(client, course, exercise)
    assert made.status_code == 201, made.text

    rejected = await decide(client, course, "instructor", exercise, "reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert await seen(client, course.headers["learner1"], exercise) == 404
    assert await seen(client, course.headers["learner0"], exercise) == 200  # still the author's
    assert classmate.id != author.id


async def test_another_class_s_instructor_cannot_review_it(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=1)
    other = await create_course(client, session, resources, learners=1)
    exercise = await written_for(session, course.learners[0])
    # Written for a learner of `course`, not of `other`: to `other` it does not exist.
    r = await decide(client, other, "instructor", exercise, "approve")
    assert r.status_code == 404, r.text
    listed = await client.get(
        f"/api/v1/classes/{other.id}/generated-exercises", headers=other.headers["instructor"]
    )
    assert listed.json()["items"] == []
    assert await seen(client, other.headers["learner0"], exercise) == 404
    # Nor can the learner's own instructor reach anybody else's.
    stranger = await written_for(session, await create_user(session, resources))
    r = await decide(client, course, "instructor", stranger, "approve")
    assert r.status_code == 404, r.text


async def test_an_approved_exercise_is_in_the_class_learners_daily_bank_only(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    course = await create_course(client, session, resources, learners=2)
    author, classmate = course.learners
    exercise = await written_for(session, author)
    outsider = await create_user(session, resources)

    async def weighed(user: User) -> tuple[bool, bool]:
        """Whether the daily pick weighs it for `user`, and whether the candidates hold it."""
        bank = await exercises.daily_bank(session, language=exercise.language, viewer=user.id)
        held = await exercises.candidates(session, language=exercise.language, viewer=user.id)
        return exercise.id in {e.id for e in bank}, exercise.id in {e.id for e in held}

    assert await weighed(author) == (True, True)
    assert await weighed(classmate) == (False, False)
    approved = await decide(client, course, "instructor", exercise, "approve")
    assert approved.status_code == 200, approved.text
    assert await weighed(classmate) == (True, True)
    assert await weighed(outsider) == (False, False)
