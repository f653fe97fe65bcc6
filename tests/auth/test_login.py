"""Login, throttling, sessions, refresh rotation, logout."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

import httpx
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth.service import login_slowdown_s
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, create_user, unique_email


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_login_returns_tokens_and_sets_cookies(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    r = await login(client, user.email.upper())
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    cookies = r.headers.get_list("set-cookie")
    access = next(c for c in cookies if c.startswith("koan_access="))
    refresh = next(c for c in cookies if c.startswith("koan_refresh="))
    csrf = next(c for c in cookies if c.startswith("koan_csrf="))
    assert "HttpOnly" in access
    assert "SameSite=lax" in access
    assert "HttpOnly" in refresh
    assert "Path=/api/v1/auth" in refresh
    assert "HttpOnly" not in csrf


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    wrong = await login(client, user.email, "not the right password")
    unknown = await login(client, unique_email(), "not the right password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "InvalidCredentials"


async def test_repeated_failures_for_one_account_are_refused_with_retry_after(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.login_limit_per_account_client = "3/minute"
    user = await create_user(session, resources)
    for _ in range(3):
        assert (await login(client, user.email, "wrong password!!")).status_code == 401
    r = await login(client, user.email)  # even the right password waits now
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    other = await create_user(session, resources)
    assert (await login(client, other.email)).status_code == 200


async def test_repeated_failures_from_one_address_are_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    resources.settings.login_limit_per_address = "4/minute"
    for _ in range(4):
        assert (await login(client, unique_email(), "wrong password!!")).status_code == 401
    r = await login(client, unique_email(), "wrong password!!")
    assert r.status_code == 429
    assert r.json()["error"] == "RateLimited"


async def test_success_clears_the_account_failure_count(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    resources.settings.login_limit_per_account_client = "3/minute"
    user = await create_user(session, resources)
    for _ in range(2):
        await login(client, user.email, "wrong password!!")
    assert (await login(client, user.email)).status_code == 200
    for _ in range(2):
        assert (await login(client, user.email, "wrong password!!")).status_code == 401
    assert (await login(client, user.email)).status_code == 200


def test_failures_slow_logins_down_progressively_up_to_a_cap() -> None:
    delays = [login_slowdown_s(n, step_s=0.25, cap_s=2.0) for n in range(0, 20)]
    assert delays[:3] == [0, 0, 0]
    assert delays == sorted(delays)
    assert delays[4] > delays[3] > 0
    assert max(delays) == 2.0


async def test_refresh_rotates_and_replay_revokes_the_family(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    first = (await login(client, user.email)).json()
    second = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    ok = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert ok.status_code == 200

    resources.clock.advance(timedelta(seconds=resources.settings.refresh_grace_s + 1))
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    assert replay.json()["error"] == "TokenReused"
    # The whole family is gone: the newest refresh token and its access token too.
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401
    r = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
    )
    assert r.status_code == 401


async def test_refresh_with_garbage_or_expired_token(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": "garbage"})
    assert r.status_code == 401
    assert r.json()["error"] == "InvalidToken"
    r = await client.post("/api/v1/auth/refresh", json={})
    assert r.status_code == 401
    user = await create_user(session, resources)
    tokens = (await login(client, user.email)).json()
    resources.clock.advance(timedelta(days=31))
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


async def test_access_token_expires_after_its_lifetime(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    tokens = (await login(client, user.email)).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    resources.clock.advance(timedelta(minutes=14))
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    resources.clock.advance(timedelta(minutes=2))
    r = await client.get("/api/v1/users/me", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200


async def test_bad_authorization_headers(client: httpx.AsyncClient, resources: Resources) -> None:
    r = await client.get("/api/v1/users/me")
    assert r.status_code == 401
    assert r.json()["error"] == "NotAuthenticated"
    r = await client.get("/api/v1/users/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401
    assert r.json()["error"] == "InvalidToken"
    forged = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwic2lkIjoiMSIsInR5cCI6ImFjY2Vzcy"
        "IsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJlLWZyb20tYW5vdGhlci1rZXk"
    )
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_logout_revokes_the_session_not_just_the_cookie(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    a = (await login(client, user.email)).json()
    b = (await login(client, user.email)).json()
    ha = {"Authorization": f"Bearer {a['access_token']}"}
    hb = {"Authorization": f"Bearer {b['access_token']}"}
    assert (await client.post("/api/v1/auth/logout", headers=ha)).status_code == 200
    assert (await client.get("/api/v1/users/me", headers=ha)).status_code == 401
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": a["refresh_token"]})
    assert r.status_code == 401
    assert (await client.get("/api/v1/users/me", headers=hb)).status_code == 200


async def test_logout_all_ends_every_session(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    tokens = [(await login(client, user.email)).json() for _ in range(3)]
    first = {"Authorization": f"Bearer {tokens[0]['access_token']}"}
    assert (await client.post("/api/v1/auth/logout-all", headers=first)).status_code == 200
    for t in tokens:
        h = {"Authorization": f"Bearer {t['access_token']}"}
        assert (await client.get("/api/v1/users/me", headers=h)).status_code == 401


ACCENTED = "Crème brûlée à la façon 42"


async def test_a_password_typed_in_another_unicode_form_still_logs_in(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """The same characters arrive composed (é) from one keyboard and decomposed (e + ´) from
    another; either way it is the password that was chosen."""
    composed = unicodedata.normalize("NFC", ACCENTED)
    decomposed = unicodedata.normalize("NFD", ACCENTED)
    assert composed != decomposed
    user = await create_user(session, resources, password=composed)
    assert (await login(client, user.email, decomposed)).status_code == 200
    other = await create_user(session, resources, password=decomposed)
    assert (await login(client, other.email, composed)).status_code == 200
    assert (await login(client, other.email, ACCENTED.upper())).status_code == 401


async def test_a_hash_of_a_password_as_typed_still_verifies_and_is_renewed(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    """A hash made before passwords were normalized: the password as typed still logs in, and
    the hash is replaced by one of the normalized password, which any form of it then matches."""
    decomposed = unicodedata.normalize("NFD", ACCENTED)
    user = await create_user(session, resources)
    s = resources.settings
    hasher = PasswordHasher(s.password_time_cost, s.password_memory_kib, s.password_parallelism)
    user.password_hash = hasher.hash(decomposed)
    await session.flush()
    before = user.password_hash
    assert (await login(client, user.email, decomposed)).status_code == 200
    await session.refresh(user)
    assert user.password_hash != before
    composed = unicodedata.normalize("NFC", ACCENTED)
    assert (await login(client, user.email, composed)).status_code == 200
