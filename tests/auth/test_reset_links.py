"""A reset link stops working once the password changes or every session is logged out."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from koan.models import User
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, bearer, create_user
from tests.fixtures.smtp import SMTPServer

NEW = "a brand new passphrase 42"


async def reset_link(client: httpx.AsyncClient, smtp: SMTPServer, user: User) -> str:
    r = await client.post("/api/v1/auth/password-reset", json={"email": user.email})
    assert r.status_code == 202
    return smtp.last_to(user.email).link_token("/reset-password")


async def use(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW}
    )


async def test_changing_the_password_retires_outstanding_reset_links(
    client: httpx.AsyncClient, smtp_server: SMTPServer, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    token = await reset_link(client, smtp_server, user)
    headers = await bearer(session, resources, user)
    changed = await client.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "the owner's own new phrase"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    r = await use(client, token)
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidToken"


async def test_logging_out_everywhere_retires_outstanding_reset_links(
    client: httpx.AsyncClient, smtp_server: SMTPServer, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    token = await reset_link(client, smtp_server, user)
    headers = await bearer(session, resources, user)
    assert (await client.post("/api/v1/auth/logout-all", headers=headers)).status_code == 200
    r = await use(client, token)
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidToken"


async def test_a_reset_link_still_works_when_nothing_changed(
    client: httpx.AsyncClient, smtp_server: SMTPServer, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    token = await reset_link(client, smtp_server, user)
    assert (await use(client, token)).status_code == 200


async def test_a_reset_link_is_refused_once_its_account_is_disabled(
    client: httpx.AsyncClient, smtp_server: SMTPServer, session: AsyncSession, resources: Resources
) -> None:
    user = await create_user(session, resources)
    token = await reset_link(client, smtp_server, user)
    # Refused because the account is disabled, whether or not its links were retired then.
    user.disabled_at = resources.clock.now()
    await session.flush()
    r = await use(client, token)
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidToken"
    assert r.json()["detail"] == "This link is invalid or has already been used."
    await session.refresh(user)
    assert await resources.hasher.verify(user.password_hash, PASSWORD)
