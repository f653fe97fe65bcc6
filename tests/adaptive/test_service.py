"""The adaptive engine wired to the database: outcomes move ratings, the daily pick follows."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.adaptive.model import GENERAL
from koan.models import Exercise
from koan.models.progress import LearnerSkillRating
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user


async def ratings(session: AsyncSession, user_id: object) -> dict[str, LearnerSkillRating]:
    rows = await session.execute(
        select(LearnerSkillRating)
        .where(LearnerSkillRating.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    return {r.skill: r for r in rows.scalars()}


async def test_passing_first_try_raises_the_skill_and_lowers_the_item(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, skills=["zz-adding"])
    before_item = exercise.rating
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    assert await ratings(session, user.id) == {}
    r = await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions", headers=headers, json={"code": ADD_SOLUTION}
    )
    assert r.json()["status"] == "passed"
    after = await ratings(session, user.id)
    assert {GENERAL, "zz-adding"} <= set(after)
    assert after["zz-adding"].attempts == 1
    refreshed = await session.get(Exercise, exercise.id, populate_existing=True)
    assert refreshed is not None
    assert refreshed.rating < before_item
    assert refreshed.rating_attempts == 1

    skilled = after["zz-adding"].rating
    other = await create_user(session, resources, onboarded=True)
    other_headers = await bearer(session, resources, other)
    await client.post(f"/api/v1/exercises/{exercise.id}/start", headers=other_headers)
    r = await client.post(f"/api/v1/exercises/{exercise.id}/skip", headers=other_headers)
    assert r.status_code == 200
    assert (await ratings(session, other.id))["zz-adding"].rating < skilled


async def test_daily_pick_explains_itself_and_matches_the_level(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    language = "javascript"
    for level in (1, 3, 5):
        await create_exercise(
            session, language=language, difficulty=level, skills=["strings"], starter_code="//"
        )
    user = await create_user(session, resources, onboarded=True, language=language)
    headers = await bearer(session, resources, user)
    daily = (await client.get("/api/v1/exercises/daily", headers=headers)).json()
    assert daily["reason"]
    # A beginner is not thrown the hardest exercise on day one.
    assert daily["exercise"]["difficulty"] < 5
