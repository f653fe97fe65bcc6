"""Two tabs refreshing at once keep the session; a real replay still ends it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from koan.auth.service import refresh_grace_key
from koan.mail.sender import Mailer
from koan.resources import Resources
from koan.security import Hasher
from tests.fixtures.factories import PASSWORD, create_user

REFRESH_PATH = "/api/v1/auth"


async def browser_login(client: httpx.AsyncClient, email: str) -> tuple[str, str]:
    """Log in with cookies; the refresh cookie and the CSRF token a tab holds."""
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200
    return client.cookies.get("koan_refresh", path=REFRESH_PATH) or "", client.cookies["koan_csrf"]


async def tab_refresh(client: httpx.AsyncClient, refresh: str, csrf: str) -> httpx.Response:
    """A refresh sent with the cookies one tab read before either tab refreshed."""
    client.cookies.set("koan_refresh", refresh, path=REFRESH_PATH)
    client.cookies.set("koan_csrf", csrf)
    return await client.post("/api/v1/auth/refresh", headers={"X-CSRF-Token": csrf})


async def test_a_second_refresh_with_the_same_cookie_gets_the_same_new_pair(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    refresh, csrf = await browser_login(client, user.email)
    first = await tab_refresh(client, refresh, csrf)
    rotated = first.cookies["koan_refresh"]
    resources.clock.advance(timedelta(seconds=resources.settings.refresh_grace_s / 2))
    second = await tab_refresh(client, refresh, csrf)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.cookies["koan_refresh"] == rotated
    bearer = {"Authorization": f"Bearer {second.json()['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=bearer)).status_code == 200
    # The rotated token keeps rotating: the session was not ended.
    newest = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
    assert newest.status_code == 200


async def test_a_replay_after_the_grace_ends_the_session(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    refresh, csrf = await browser_login(client, user.email)
    first = await tab_refresh(client, refresh, csrf)
    resources.clock.advance(timedelta(seconds=resources.settings.refresh_grace_s + 1))
    replay = await tab_refresh(client, refresh, csrf)
    assert replay.status_code == 401
    assert replay.json()["error"] == "TokenReused"
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=bearer)).status_code == 401


async def test_the_grace_holds_when_another_worker_answers_the_second_tab(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    make_app: Callable[[Resources], FastAPI],
) -> None:
    user = await create_user(session, resources)
    refresh, csrf = await browser_login(client, user.email)
    first = await tab_refresh(client, refresh, csrf)
    # Another worker: an app of its own that shares only the cache and the database.
    other = replace(resources, hasher=Hasher(resources.settings), mailer=Mailer(resources.settings))
    transport = httpx.ASGITransport(app=make_app(other))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as tab:
        second = await tab_refresh(tab, refresh, csrf)
    assert second.status_code == 200
    assert second.json() == first.json()


async def test_the_grace_pair_is_not_readable_from_the_cache(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    refresh, csrf = await browser_login(client, user.email)
    rotated = (await tab_refresh(client, refresh, csrf)).cookies["koan_refresh"]
    sealed = await resources.cache.get(refresh_grace_key(refresh))
    assert sealed is not None
    assert rotated not in sealed
    assert rotated.encode().hex() not in sealed


async def test_a_refresh_that_loses_the_race_to_spend_its_token_gets_the_winners_pair(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    # Two tabs refresh at once and both read the token unspent. The conditional UPDATE lets one
    # spend it; the other gets the pair the first was rotated into, not a pair of its own.
    from sqlalchemy import update
    from sqlalchemy.orm.attributes import set_committed_value

    from koan.auth import repository, service
    from koan.errors import Conflict
    from koan.models import RefreshToken
    from koan.security import hash_token

    user = await create_user(session, resources)
    login = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    token = login.json()["refresh_token"]
    record = await repository.refresh_token_by_hash(session, hash_token(token))
    assert record is not None
    assert record.spent_at is None

    async def spent_by_the_other_tab() -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == record.id)
            .values(spent_at=resources.clock.now())
            .execution_options(synchronize_session=False)
        )

    await spent_by_the_other_tab()
    with pytest.raises(Conflict) as renewing:  # its pair not yet kept: try again
        await service.refresh(session, resources, token)
    winners = service.IssuedTokens("access", "refresh", 900, str(record.session_id))
    await service._remember_rotation(resources, token, winners)
    set_committed_value(record, "spent_at", None)  # as this request read it, unspent
    await spent_by_the_other_tab()
    pair = await service.refresh(session, resources, token)

    assert renewing.value.code == "RefreshInProgress"
    assert (pair.access_token, pair.refresh_token) == ("access", "refresh")
