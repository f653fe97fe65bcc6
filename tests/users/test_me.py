"""The signed-in user's account: read, update, change password, delete."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth.deps import AdminUser
from koan.models import AuthSession, LearnerProfile, User
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, bearer, create_user


async def test_me_works_unverified_and_hides_secrets(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, verified=False)
    r = await client.get("/api/v1/users/me", headers=await bearer(session, resources, user))
    assert r.status_code == 200
    body = r.json()
    assert body["email"] == user.email
    assert body["email_verified"] is False
    assert body["role"] == "learner"
    assert body["onboarding_completed"] is False
    assert "password_hash" not in body
    assert "password" not in r.text
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")


async def test_update_name_timezone_preferences(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    headers = await bearer(session, resources, user)
    r = await client.patch(
        "/api/v1/users/me",
        headers=headers,
        json={
            "name": "  Grace  ",
            "timezone": "America/New_York",
            "preferences": {"theme": "dark", "editor_font_size": 16},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Grace"
    assert body["timezone"] == "America/New_York"
    assert body["preferences"] == {
        "theme": "dark",
        "editor_font_size": 16,
        "email_reminders": False,
    }
    # Fields left out stay as they are.
    r = await client.patch("/api/v1/users/me", headers=headers, json={"name": "Grace H"})
    assert r.json()["timezone"] == "America/New_York"


@pytest.mark.parametrize(
    "body",
    [
        {"timezone": "Mars/Olympus_Mons"},
        {"timezone": "../../etc/passwd"},
        # In the zone database, but the server's own zone and an unset clock: no place.
        {"timezone": "localtime"},
        {"timezone": "Factory"},
        {"timezone": None},
        {"name": ""},
        {"name": None},
        {"name": "x" * 101},
        {"preferences": {"theme": "neon"}},
        {"preferences": {"editor_font_size": 500}},
        {"preferences": {"unknown": 1}},
        {"email": "new@example.com"},
        {"role": "admin"},
    ],
)
async def test_bad_updates_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, body: dict[str, object]
) -> None:
    user = await create_user(session, resources)
    r = await client.patch(
        "/api/v1/users/me", headers=await bearer(session, resources, user), json=body
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "ValidationError"


async def test_change_password_needs_the_current_one_and_ends_other_sessions(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    mine = await bearer(session, resources, user)
    other = await bearer(session, resources, user)
    r = await client.post(
        "/api/v1/users/me/password",
        headers=mine,
        json={"current_password": "wrong password!", "new_password": "new passphrase 123"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidCredentials"
    r = await client.post(
        "/api/v1/users/me/password",
        headers=mine,
        json={"current_password": PASSWORD, "new_password": "password1234"},
    )
    assert r.status_code == 422
    assert r.json()["error"] == "WeakPassword"
    r = await client.post(
        "/api/v1/users/me/password",
        headers=mine,
        json={"current_password": PASSWORD, "new_password": "new passphrase 123"},
    )
    assert r.status_code == 200
    assert (await client.get("/api/v1/users/me", headers=mine)).status_code == 200
    assert (await client.get("/api/v1/users/me", headers=other)).status_code == 401
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": "new passphrase 123"}
    )
    assert login.status_code == 200


async def test_delete_account_removes_everything_it_owns(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources, onboarded=True)
    headers = await bearer(session, resources, user)
    r = await client.request(
        "DELETE", "/api/v1/users/me", headers=headers, json={"password": "wrong password!"}
    )
    assert r.status_code == 400
    r = await client.request("DELETE", "/api/v1/users/me", headers=headers, json={})
    assert r.status_code == 422
    r = await client.request(
        "DELETE", "/api/v1/users/me", headers=headers, json={"password": PASSWORD}
    )
    assert r.status_code == 200
    for model, column in ((User, User.id), (LearnerProfile, LearnerProfile.user_id)):
        count = await session.scalar(
            select(func.count()).select_from(model).where(column == user.id)
        )
        assert count == 0, model
    sessions = await session.scalar(
        select(func.count()).select_from(AuthSession).where(AuthSession.user_id == user.id)
    )
    assert sessions == 0
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 401


async def test_admin_dependency(
    make_app: Callable[[Resources], FastAPI], session: AsyncSession, resources: Resources
) -> None:
    # A throwaway route shows the dependency's contract for later admin routes.
    router = APIRouter()

    @router.get("/admin-only")
    async def admin_only(user: AdminUser) -> dict[str, str]:
        return {"hello": user.name}

    app = make_app(resources)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        learner = await create_user(session, resources)
        admin = await create_user(session, resources, role="admin", name="Root")
        r = await client.get("/admin-only", headers=await bearer(session, resources, learner))
        assert r.status_code == 403
        assert r.json()["error"] == "Forbidden"
        r = await client.get("/admin-only", headers=await bearer(session, resources, admin))
        assert r.status_code == 200
        assert r.json() == {"hello": "Root"}


async def test_the_only_enabled_administrator_cannot_delete_their_account(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """Koan keeps an administrator: as none can be disabled or demoted when it is the last,
    the last cannot delete their account either (then nobody could make one again but from
    the command line)."""
    enabled_admins = select(User).where(User.role == "admin", User.disabled_at.is_(None))
    for other in (await session.execute(enabled_admins)).scalars():
        other.role = "learner"  # this test's Koan has no administrator yet
    admin = await create_user(session, resources, name="Ada", role="admin")
    headers = await bearer(session, resources, admin)
    await session.commit()
    delete = {"password": PASSWORD}

    refused = await client.request("DELETE", "/api/v1/users/me", headers=headers, json=delete)

    assert refused.status_code == 409, refused.text
    assert "only administrator" in refused.json()["detail"]
    assert await session.get(User, admin.id) is not None
    # Another administrator first, and the account may go.
    await create_user(session, resources, name="Bob", role="admin")
    await session.commit()
    r = await client.request("DELETE", "/api/v1/users/me", headers=headers, json=delete)
    assert r.status_code == 200, r.text
