"""The adaptive engine wired to the database: outcomes move ratings, the daily pick follows."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koan.adaptive import service as adaptive
from koan.adaptive.model import GENERAL, SkillRating, starting_ratings
from koan.db import transactional
from koan.models import Assignment, Exercise, User
from koan.models.progress import LearnerSkillRating
from koan.onboarding import service as profiles
from koan.resources import Resources
from tests.fixtures.factories import ADD_SOLUTION, bearer, create_exercise, create_user


async def ratings(session: AsyncSession, user_id: object) -> dict[str, LearnerSkillRating]:
    rows = await session.execute(
        select(LearnerSkillRating)
        .where(LearnerSkillRating.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    return {r.skill: r for r in rows.scalars()}


Evidence = tuple[dict[str, tuple[float, int]], tuple[float, int]]


async def evidence(session: AsyncSession, user_id: uuid.UUID, exercise_id: uuid.UUID) -> Evidence:
    """What the ratings hold: the learner's (rating, attempts) per skill, and the exercise's
    (rating, rating attempts), read afresh."""
    skills = {k: (r.rating, r.attempts) for k, r in (await ratings(session, user_id)).items()}
    item = await session.get(Exercise, exercise_id, populate_existing=True)
    assert item is not None
    return skills, (item.rating, item.rating_attempts)


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


async def test_an_exercise_solved_before_moves_no_rating_when_done_again(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, skills=["zz-adding"])
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    url = f"/api/v1/exercises/{exercise.id}"
    r = await client.post(f"{url}/submissions", headers=headers, json={"code": ADD_SOLUTION})
    assert r.json()["status"] == "passed"
    first, first_item = await evidence(session, user.id, exercise.id)
    # Solved again and again with the same code: no new evidence, about the learner or it.
    for _ in range(3):
        assert (await client.post(f"{url}/start", headers=headers)).status_code == 200
        r = await client.post(f"{url}/submissions", headers=headers, json={"code": ADD_SOLUTION})
        assert r.json()["status"] == "passed"
    # Nor is skipping it once it is solved a miss.
    assert (await client.post(f"{url}/start", headers=headers)).status_code == 200
    assert (await client.post(f"{url}/skip", headers=headers)).status_code == 200
    assert await evidence(session, user.id, exercise.id) == (first, first_item)


async def test_skipping_an_exercise_again_after_resuming_it_is_not_another_miss(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, skills=["zz-adding"])
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    url = f"/api/v1/exercises/{exercise.id}"
    assert (await client.post(f"{url}/start", headers=headers)).status_code == 200
    assert (await client.post(f"{url}/skip", headers=headers)).status_code == 200
    first, first_item = await evidence(session, user.id, exercise.id)
    assert first_item[1] == 1
    # Resumed and skipped again, as often as one likes: the one give-up, counted once, or
    # anyone could make an exercise look harder for everyone.
    for _ in range(3):
        resumed = await client.post(f"{url}/start", headers=headers)
        assert resumed.json()["status"] == "assigned"
        assert (await client.post(f"{url}/skip", headers=headers)).status_code == 200
    assert await evidence(session, user.id, exercise.id) == (first, first_item)


async def test_giving_up_an_exercise_given_up_before_is_not_another_miss(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, skills=["zz-adding"])
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    url = f"/api/v1/exercises/{exercise.id}"
    assert (await client.post(f"{url}/start", headers=headers)).status_code == 200
    assert (await client.post(f"{url}/skip", headers=headers)).status_code == 200
    first = {k: (r.rating, r.attempts) for k, r in (await ratings(session, user.id)).items()}
    # Given again later (a new assignment once the skipped one has expired, as a daily pick
    # can give it again at once), and skipped again: the same give-up.
    for _ in range(2):
        resources.clock.advance(timedelta(hours=49))
        headers = await bearer(session, resources, user)
        opened = await client.post(f"{url}/start", headers=headers)
        assert opened.json()["status"] == "assigned"
        assert (await client.post(f"{url}/skip", headers=headers)).status_code == 200
    after = {k: (r.rating, r.attempts) for k, r in (await ratings(session, user.id)).items()}
    assert after == first
    item = await session.get(Exercise, exercise.id, populate_existing=True)
    assert item is not None
    assert item.rating_attempts == 1


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


async def test_a_repeat_offered_after_the_learners_midnight_says_it_was_yesterday(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, skills=["zz-adding"])
    # UTC+14 all year: the learner's midnight is 10:00 UTC.
    zone = ZoneInfo("Pacific/Kiritimati")
    user = await create_user(session, resources, onboarded=True, timezone=zone.key)
    local = resources.clock.now().astimezone(zone)
    late_evening = datetime.combine(local.date() + timedelta(days=1), time(23, 0), zone)
    resources.clock.advance(late_evening - resources.clock.now())
    headers = await bearer(session, resources, user)
    daily = (await client.get("/api/v1/exercises/daily", headers=headers)).json()
    assert daily["exercise"]["id"] == str(exercise.id)
    passed = await client.post(
        f"/api/v1/exercises/{exercise.id}/submissions",
        headers=headers,
        json={"code": ADD_SOLUTION},
    )
    assert passed.json()["status"] == "passed"

    # Two hours later it is 01:00 the next day there, and the bank has nothing new.
    resources.clock.advance(timedelta(hours=2))
    headers = await bearer(session, resources, user)
    again = (await client.get("/api/v1/exercises/daily", headers=headers)).json()
    assert again["exercise"]["id"] == str(exercise.id)
    assert again["reason"] == "another go at a zz adding exercise you did yesterday"


async def _pass_in_own_unit(
    connection: AsyncConnection, user_id: uuid.UUID, exercise: Exercise, now: datetime
) -> None:
    """One learner's pass recorded in a unit of work of its own, from `exercise` as it read it."""
    async with _session(connection) as unit, transactional(unit):
        user = await unit.get(User, user_id)
        assert user is not None
        await adaptive.record_outcome(
            unit,
            user=user,
            profile=await profiles.profile_of(unit, user),
            exercise=await unit.merge(exercise, load=False),
            assignment=Assignment(attempts=1, hints_used=0),
            passed=True,
            skipped=False,
            now=now,
        )


def _session(connection: AsyncConnection) -> AsyncSession:
    return AsyncSession(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


async def test_learners_passing_one_exercise_at_once_each_move_its_rating(
    connection: AsyncConnection, session: AsyncSession, resources: Resources
) -> None:
    exercise = await create_exercise(session, skills=["zz-adding"])
    first = await create_user(session, resources, onboarded=True)
    second = await create_user(session, resources, onboarded=True)
    await session.commit()
    now = resources.clock.now()
    # Both read the exercise before either recorded its outcome, as two gradings at once do.
    async with _session(connection) as reader:
        stale = await reader.get(Exercise, exercise.id)
        assert stale is not None
        reader.expunge(stale)
    before = stale.rating
    await _pass_in_own_unit(connection, first.id, stale, now)
    after_one = await _item(connection, exercise.id)
    await _pass_in_own_unit(connection, second.id, stale, now)
    after_two = await _item(connection, exercise.id)

    assert after_one[1] == 1
    assert after_one[0] < before
    # The second step counts too, although it was worked out from the rating before the first.
    assert after_two[1] == 2
    assert after_two[0] < after_one[0]


async def _item(connection: AsyncConnection, exercise_id: uuid.UUID) -> tuple[float, int]:
    row = (
        await connection.execute(
            select(Exercise.rating, Exercise.rating_attempts).where(Exercise.id == exercise_id)
        )
    ).one()
    return float(row[0]), int(row[1])


async def test_a_newcomer_starts_from_the_settled_learners_who_gave_the_same_answer(
    session: AsyncSession, resources: Resources
) -> None:
    async def settled(experience: str | None, rating: float, attempts: int = 12) -> None:
        user = await create_user(session, resources)
        (await profiles.profile_of(session, user)).experience = experience
        session.add(
            LearnerSkillRating(
                user_id=user.id,
                skill=GENERAL,
                rating=rating,
                uncertainty=0.2,
                attempts=attempts,
                recent=[],
            )  # fmt: skip
        )
        await session.flush()

    for rating in (2.5, 2.7, 2.9):
        await settled("beginner", rating)
    await settled("beginner", -3.0, attempts=3)  # not settled yet: left out
    for rating in (-2.5, -2.7):
        await settled(None, rating)

    async def start(experience: str | None) -> float:
        newcomer = await create_user(session, resources)
        profile = await profiles.profile_of(session, newcomer)
        profile.experience = experience
        return (await adaptive.learner_ratings(session, newcomer, profile))[GENERAL].rating

    beginner = starting_ratings("beginner")[GENERAL].rating
    unanswered = starting_ratings(None)[GENERAL].rating
    assert await start("beginner") == pytest.approx(
        starting_ratings("beginner", [SkillRating(r, 0.2, 12) for r in (2.9, 2.7, 2.5)])[
            GENERAL
        ].rating
    )
    assert await start("beginner") > beginner
    assert await start(None) == pytest.approx(
        starting_ratings(None, [SkillRating(r, 0.2, 12) for r in (-2.7, -2.5)])[GENERAL].rating
    )
    assert await start(None) < unanswered
