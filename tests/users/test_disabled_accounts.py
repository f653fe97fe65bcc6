"""A disabled account: its sessions end at once, it cannot log in, refresh or use a token it
still holds; administrators disable and enable accounts through the API too."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth import repository as auth_repository
from koan.errors import Conflict
from koan.models import AuthSession, User
from koan.resources import Resources
from koan.users import admin
from tests.fixtures.factories import PASSWORD, bearer, create_user


async def _login(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": user.email, "password": password})


async def _tokens(client: httpx.AsyncClient, user: User) -> tuple[dict[str, str], str]:
    r = await _login(client, user)
    assert r.status_code == 200, r.text
    body = r.json()
    client.cookies.clear()  # the API client's way: bearer and refresh token, no cookies
    return {"Authorization": f"Bearer {body['access_token']}"}, body["refresh_token"]


async def test_disabling_ends_every_session_and_refuses_tokens_and_logins(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await create_user(session, resources, role="admin")
    ada = await create_user(session, resources, onboarded=True)
    laptop, laptop_refresh = await _tokens(client, ada)
    phone, _ = await _tokens(client, ada)
    assert (await client.get("/api/v1/users/me", headers=laptop)).status_code == 200

    r = await client.post(
        f"/api/v1/admin/users/{ada.id}/disable", headers=await bearer(session, resources, ops)
    )
    assert r.status_code == 200, r.text
    assert (r.json()["disabled"], r.json()["email"]) == (True, ada.email)

    # Every session ended, at once, saying why.
    sessions = (
        await session.scalars(select(AuthSession).where(AuthSession.user_id == ada.id))
    ).all()
    assert len(sessions) == 2
    assert {(s.revoked_at is not None, s.revoked_reason) for s in sessions} == {
        (True, "account_disabled")
    }
    # The access tokens it still holds stop working on the next request, everywhere.
    for headers in (laptop, phone):
        me = await client.get("/api/v1/users/me", headers=headers)
        assert me.status_code == 401
        assert me.json()["error"] == "InvalidToken"
    exercises = await client.get("/api/v1/exercises", headers=phone)
    assert exercises.status_code == 401
    # Its refresh token is refused, saying the account is disabled.
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": laptop_refresh})
    assert refreshed.status_code == 403
    assert refreshed.json()["error"] == "AccountDisabled"
    # The right password: told plainly; a wrong one: the same answer as for any wrong password.
    refused = await _login(client, ada)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "AccountDisabled",
        "detail": "This account has been disabled. Ask the administrator of this Koan if you "
        "think this is a mistake.",
    }
    assert "koan_access" not in refused.headers.get("set-cookie", "")
    wrong = await _login(client, ada, "not the password at all")
    nobody = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "not the password"}
    )
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json()
    # No session was opened by the refused login.
    live = select(AuthSession.id).where(
        AuthSession.user_id == ada.id, AuthSession.revoked_at.is_(None)
    )
    assert await session.scalar(live) is None


async def test_an_enabled_account_logs_in_again_but_its_old_sessions_stay_ended(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await create_user(session, resources, role="admin")
    ada = await create_user(session, resources, onboarded=True)
    old, old_refresh = await _tokens(client, ada)
    ops_headers = await bearer(session, resources, ops)
    await client.post(f"/api/v1/admin/users/{ada.id}/disable", headers=ops_headers)
    r = await client.post(f"/api/v1/admin/users/{ada.id}/enable", headers=ops_headers)
    assert (r.status_code, r.json()["disabled"], r.json()["disabled_at"]) == (200, False, None)

    assert (await client.get("/api/v1/users/me", headers=old)).status_code == 401
    stale = await client.post("/api/v1/auth/refresh", json={"refresh_token": old_refresh})
    assert (stale.status_code, stale.json()["error"]) == (401, "InvalidToken")
    new, _ = await _tokens(client, ada)
    assert (await client.get("/api/v1/users/me", headers=new)).status_code == 200


async def test_a_session_that_escaped_revocation_is_still_refused(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """A login that raced the disabling (its session committed after the revocation): the
    lookup every request makes refuses a disabled account on its own, in the same query."""
    ada = await create_user(session, resources, onboarded=True)
    headers, refresh_token = await _tokens(client, ada)
    ada.disabled_at = resources.clock.now()  # disabled, its session left live
    await session.flush()

    me = await client.get("/api/v1/users/me", headers=headers)
    assert (me.status_code, me.json()["error"]) == (401, "InvalidToken")
    conversation = await client.post("/api/v1/conversations", json={}, headers=headers)
    assert conversation.status_code == 401
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert (refreshed.status_code, refreshed.json()["error"]) == (403, "AccountDisabled")
    live = await session.scalar(select(AuthSession).where(AuthSession.user_id == ada.id))
    assert live is not None
    assert await auth_repository.live_session_and_user(session, live.id, ada.id) is None


async def test_administrators_list_and_filter_accounts(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await create_user(session, resources, role="admin", name="Ops")
    tag = uuid.uuid4().hex[:8]
    made = [
        await create_user(session, resources, name=f"Pupil {tag} {i}", email=f"p{i}-{tag}@ex.org")
        for i in range(5)
    ]
    headers = await bearer(session, resources, ops)
    await client.post(f"/api/v1/admin/users/{made[1].id}/disable", headers=headers)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": tag.upper(), "limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v1/admin/users", headers=headers, params=params)
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 5
        seen += [item["email"] for item in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [u.email for u in reversed(made)]  # newest first, each once

    disabled = await client.get(
        "/api/v1/admin/users", headers=headers, params={"q": tag, "disabled": "true"}
    )
    assert [i["email"] for i in disabled.json()["items"]] == [made[1].email]
    admins = await client.get(
        "/api/v1/admin/users", headers=headers, params={"role": "admin", "q": ops.email}
    )
    assert [i["email"] for i in admins.json()["items"]] == [ops.email]
    assert admins.json()["items"][0]["last_seen_at"] is not None  # its bearer session
    bad = await client.get("/api/v1/admin/users", headers=headers, params={"cursor": "nope"})
    assert (bad.status_code, bad.json()["error"]) == (400, "BadCursor")
    role = await client.get("/api/v1/admin/users", headers=headers, params={"role": "wizard"})
    assert role.status_code == 422


async def test_an_administrator_cannot_lock_administration_out(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    ops = await create_user(session, resources, role="admin")
    headers = await bearer(session, resources, ops)
    own = await client.post(f"/api/v1/admin/users/{ops.id}/disable", headers=headers)
    assert (own.status_code, own.json()["error"]) == (409, "Conflict")
    assert "your own account" in own.json()["detail"]
    unknown = await client.post(f"/api/v1/admin/users/{uuid.uuid4()}/disable", headers=headers)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "NotFound")
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200


async def test_the_last_enabled_administrator_stays(
    session: AsyncSession, resources: Resources
) -> None:
    admins = (await session.scalars(select(User).where(User.role == "admin"))).all()
    for other in admins:  # whatever the database holds besides this test's accounts
        other.role = "learner"
    await session.flush()
    ops = await create_user(session, resources, role="admin")
    second = await create_user(session, resources, role="admin")
    assert await admin.disable(session, resources, second) is True
    with pytest.raises(Conflict, match="only administrator"):
        await admin.disable(session, resources, ops)
    with pytest.raises(Conflict, match="only administrator"):
        await admin.set_role(session, ops, "learner")
    assert (ops.role, ops.disabled) == ("admin", False)
    assert await admin.enable(session, second) is True
    assert await admin.set_role(session, ops, "learner") is True
