"""Email verification and password reset tokens: single use, expiring, stored hashed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from koan.clock import lasting
from koan.models import EmailToken
from koan.resources import Resources
from tests.fixtures.factories import PASSWORD, bearer, create_user, unique_email
from tests.fixtures.smtp import SMTPServer


async def registered(
    client: httpx.AsyncClient, smtp: SMTPServer
) -> tuple[str, str, dict[str, str]]:
    email = unique_email()
    await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return email, smtp.last_to(email).link_token("/verify-email"), headers


async def test_verification_token_is_single_use_and_stored_hashed(
    client: httpx.AsyncClient, smtp_server: SMTPServer, session: AsyncSession
) -> None:
    _, token, _ = await registered(client, smtp_server)
    stored = (await session.execute(select(EmailToken.token_hash))).scalars().all()
    assert token not in stored
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": token})
    ).status_code == 200
    again = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400
    assert again.json()["error"] == "InvalidToken"


async def test_verification_token_expires_after_24_hours(
    client: httpx.AsyncClient, smtp_server: SMTPServer, resources: Resources
) -> None:
    _, token, _ = await registered(client, smtp_server)
    resources.clock.advance(timedelta(hours=24, seconds=1))
    r = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert r.status_code == 400
    assert r.json()["error"] == "TokenExpired"


async def test_resend_invalidates_the_old_token_and_is_rate_limited(
    client: httpx.AsyncClient, smtp_server: SMTPServer, resources: Resources
) -> None:
    email, old, headers = await registered(client, smtp_server)
    r = await client.post("/api/v1/auth/resend-verification", headers=headers)
    assert r.status_code == 200
    new = smtp_server.last_to(email).link_token("/verify-email")
    assert new != old
    assert (await client.post("/api/v1/auth/verify-email", json={"token": old})).status_code == 400
    assert (await client.post("/api/v1/auth/verify-email", json={"token": new})).status_code == 200
    r = await client.post("/api/v1/auth/resend-verification", headers=headers)
    assert r.status_code == 400
    assert r.json()["error"] == "AlreadyVerified"


async def test_resend_is_rate_limited(
    client: httpx.AsyncClient, smtp_server: SMTPServer, resources: Resources
) -> None:
    _, _, headers = await registered(client, smtp_server)
    for _ in range(3):
        assert (
            await client.post("/api/v1/auth/resend-verification", headers=headers)
        ).status_code == 200
    r = await client.post("/api/v1/auth/resend-verification", headers=headers)
    assert r.status_code == 429
    assert "Retry-After" in r.headers


async def test_bad_tokens(client: httpx.AsyncClient) -> None:
    for body in ({"token": "nope"}, {"token": ""}, {"token": "x" * 500}, {}, {"token": 5}):
        r = await client.post("/api/v1/auth/verify-email", json=body)
        assert r.status_code in (400, 422), body
        assert r.json()["error"] in ("InvalidToken", "ValidationError")


async def test_password_reset_answers_the_same_for_unknown_email(
    client: httpx.AsyncClient, smtp_server: SMTPServer
) -> None:
    unknown = unique_email()
    r = await client.post("/api/v1/auth/password-reset", json={"email": unknown})
    assert r.status_code == 202
    assert smtp_server.mails_to(unknown) == []


async def test_password_reset_is_single_use_expires_and_ends_every_session(
    client: httpx.AsyncClient,
    smtp_server: SMTPServer,
    session: AsyncSession,
    resources: Resources,
) -> None:
    user = await create_user(session, resources)
    headers = await bearer(session, resources, user)
    await client.post("/api/v1/auth/password-reset", json={"email": user.email})
    token = smtp_server.last_to(user.email).link_token("/reset-password")

    weak = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"}
    )
    assert weak.status_code == 422
    assert weak.json()["error"] == "WeakPassword"

    new_password = "brand new passphrase 7"
    body = {"token": token, "new_password": new_password}
    assert (await client.post("/api/v1/auth/password-reset/confirm", json=body)).status_code == 200
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 401
    again = await client.post("/api/v1/auth/password-reset/confirm", json=body)
    assert again.status_code == 400
    assert again.json()["error"] == "InvalidToken"

    await client.post("/api/v1/auth/password-reset", json={"email": user.email})
    token = smtp_server.last_to(user.email).link_token("/reset-password")
    resources.clock.advance(timedelta(hours=1, seconds=1))
    late = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": new_password}
    )
    assert late.status_code == 400
    assert late.json()["error"] == "TokenExpired"


async def test_outbox_stores_mail_when_no_smtp_host(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources
) -> None:
    from koan.models import OutboxMail

    resources.settings.smtp_host = ""
    email = unique_email()
    await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    mails = (
        (await session.execute(select(OutboxMail).where(OutboxMail.to_address == email)))
        .scalars()
        .all()
    )
    assert len(mails) == 1
    assert "http://testserver/verify-email?token=" in mails[0].body


async def test_a_link_spent_by_another_request_meanwhile_is_refused(
    session: AsyncSession, resources: Resources
) -> None:
    # Two requests with one reset link: both read it unused, and only one may spend it.
    from sqlalchemy import update

    from koan.auth import service
    from koan.errors import BadRequest

    user = await create_user(session, resources)
    token = await service._issue_email_token(session, resources, user, service.RESET, 600)
    record = await session.scalar(select(EmailToken).where(EmailToken.user_id == user.id))
    assert record is not None
    assert record.used_at is None
    # The other request spends it after this one has read it.
    await session.execute(
        update(EmailToken)
        .where(EmailToken.id == record.id)
        .values(used_at=resources.clock.now())
        .execution_options(synchronize_session=False)
    )

    with pytest.raises(BadRequest) as refused:
        await service._spend_email_token(session, resources, token, service.RESET)

    assert refused.value.code == "InvalidToken"


async def test_the_mails_and_the_page_give_the_links_lifetime_as_set(
    client: httpx.AsyncClient,
    smtp_server: SMTPServer,
    session: AsyncSession,
    resources: Resources,
) -> None:
    resources.settings = resources.settings.model_copy(
        update={"verify_token_ttl_s": 90 * 60, "reset_token_ttl_s": 45}
    )
    email, _, _ = await registered(client, smtp_server)
    assert "expires in 1 hour 30 minutes." in smtp_server.last_to(email).body
    page = await client.get("/check-email", params={"email": email})
    assert "expires in 1 hour 30 minutes." in page.text

    user = await create_user(session, resources)
    await session.commit()
    await client.post("/api/v1/auth/password-reset", json={"email": user.email})
    assert "expires in 45 seconds." in smtp_server.last_to(user.email).body


def test_a_lifetime_in_words_never_says_more_than_it_lasts() -> None:
    assert [lasting(s) for s in (86400, 3600, 5400, 3661, 120, 61, 59, 1, 0)] == [
        "24 hours", "1 hour", "1 hour 30 minutes", "1 hour 1 minute", "2 minutes",
        "1 minute", "59 seconds", "1 second", "0 seconds",
    ]  # fmt: skip
