"""The learner profile: made with the account, read without writing, and an account from
before profiles came with it still works."""

from __future__ import annotations

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import LearnerProfile, User
from koan.resources import Resources
from koan.users import service as users
from tests.fixtures.factories import ONBOARDING_ANSWERS, bearer, create_user, unique_email


async def profile_rows(session: AsyncSession, user: User) -> int:
    query = (
        select(func.count()).select_from(LearnerProfile).where(LearnerProfile.user_id == user.id)
    )
    return int(await session.scalar(query) or 0)


async def user_without_profile(session: AsyncSession, resources: Resources) -> User:
    user = await create_user(session, resources)
    await session.execute(delete(LearnerProfile).where(LearnerProfile.user_id == user.id))
    session.expunge_all()
    found = await session.get_one(User, user.id)
    return found


async def test_a_new_account_comes_with_an_empty_profile(session: AsyncSession) -> None:
    user = await users.create_user(session, email=unique_email(), name="Fresh", password_hash="x")
    profile = await session.get_one(LearnerProfile, user.id)
    assert (profile.onboarding_completed, profile.answers, profile.goals) == (False, {}, "")


async def test_registering_makes_the_profile(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    email = unique_email()
    r = await client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "name": "Reg",
            "password": "a long passphrase 42",
        },
    )
    assert r.status_code in (200, 201, 202), r.text
    user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    assert await profile_rows(session, user) == 1


async def test_an_account_without_a_profile_reads_as_not_onboarded_and_writes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await user_without_profile(session, resources)
    headers = await bearer(session, resources, user)
    me = await client.get("/api/v1/users/me", headers=headers)
    assert me.json()["onboarding_completed"] is False
    status = await client.get("/api/v1/onboarding/status", headers=headers)
    assert status.json()["completed"] is False
    profile = await client.get("/api/v1/users/me/profile", headers=headers)
    assert profile.json()["goals"] == ""
    assert await profile_rows(session, user) == 0


async def test_an_account_without_a_profile_can_still_onboard(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await user_without_profile(session, resources)
    headers = await bearer(session, resources, user)
    saved = await client.put("/api/v1/onboarding/answers", headers=headers, json=ONBOARDING_ANSWERS)
    assert saved.status_code == 200, saved.text
    done = await client.post("/api/v1/onboarding/complete", headers=headers)
    assert done.json()["completed"] is True
    assert await profile_rows(session, user) == 1


async def test_a_required_answer_cannot_be_cleared_once_onboarded(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    before = (await client.get("/api/v1/users/me/profile", headers=headers)).json()["goals"]
    for goals in ("", "   ", None):
        refused = await client.patch(
            "/api/v1/users/me/profile", headers=headers, json={"goals": goals}
        )
        assert refused.status_code == 422, goals
        assert "goals" in refused.text
        assert "cannot be cleared" in refused.text
    after = await client.get("/api/v1/users/me/profile", headers=headers)
    assert after.json()["goals"] == before != ""
    status = await client.get("/api/v1/onboarding/status", headers=headers)
    assert status.json()["missing_required"] == []
