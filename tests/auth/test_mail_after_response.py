"""Mail goes out after the response, so a request's work does not tell who was mailed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koan.auth import service
from koan.auth.schemas import RegisterInput
from koan.db import transactional
from koan.mail.sender import MailQueue
from koan.models import EmailToken
from koan.resources import Resources
from koan.users.service import create_user as make_account
from tests.fixtures.factories import PASSWORD, create_user, unique_email
from tests.fixtures.smtp import SMTPServer


@pytest.fixture
def mail(resources: Resources, connection: AsyncConnection) -> MailQueue:
    """A request's mail queue, its after-response work on the test's connection."""

    @asynccontextmanager
    async def open_session() -> AsyncIterator[AsyncSession]:
        own = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        async with own, transactional(own):
            yield own

    return MailQueue(resources.mailer, open_session)


async def reset_tokens(session: AsyncSession) -> list[EmailToken]:
    query = select(EmailToken).where(EmailToken.purpose == "reset")
    return list((await session.execute(query)).scalars().all())


async def test_a_reset_request_does_the_same_work_whether_or_not_the_account_exists(
    session: AsyncSession, resources: Resources, smtp_server: SMTPServer, mail: MailQueue
) -> None:
    user = await create_user(session, resources)
    unknown = unique_email()
    await service.request_password_reset(session, resources, user.email, mail)
    await service.request_password_reset(session, resources, unknown, mail)
    # The request itself only queued the same kind of work for each address: no lookup's
    # result acted on, no token written, nothing sent.
    assert mail.mails == []
    assert [type(job) for job in mail.jobs] == [service.ResetLink, service.ResetLink]
    assert await reset_tokens(session) == []
    assert smtp_server.mails_to(user.email) == []

    await mail.deliver()
    assert len(smtp_server.mails_to(user.email)) == 1
    assert smtp_server.mails_to(unknown) == []
    assert len(await reset_tokens(session)) == 1


async def test_registration_queues_one_mail_for_a_new_or_a_taken_address_and_sends_none(
    session: AsyncSession, resources: Resources, smtp_server: SMTPServer, mail: MailQueue
) -> None:
    taken = await create_user(session, resources)
    fresh = unique_email()
    for email in (taken.email, fresh):
        data = RegisterInput(email=email, password=PASSWORD, name="Ada")
        await service.register(session, resources, data, make_account, mail)
    assert [m.to for m in mail.mails] == [taken.email, fresh]
    assert smtp_server.mails_to(taken.email) == smtp_server.mails_to(fresh) == []
    await mail.deliver()
    assert "already have one" in smtp_server.last_to(taken.email).body
    assert "/verify-email?token=" in smtp_server.last_to(fresh).body


async def test_resending_verification_queues_the_mail(
    session: AsyncSession, resources: Resources, smtp_server: SMTPServer, mail: MailQueue
) -> None:
    user = await create_user(session, resources, verified=False)
    await service.resend_verification(session, resources, user, mail)
    assert smtp_server.mails_to(user.email) == []
    await mail.deliver()
    assert "/verify-email?token=" in smtp_server.last_to(user.email).body


async def test_a_disabled_account_is_answered_as_any_address_but_sent_no_link(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
    mail: MailQueue,
) -> None:
    user = await create_user(session, resources)
    user.disabled_at = resources.clock.now()
    await session.flush()
    disabled = await client.post("/api/v1/auth/password-reset", json={"email": user.email})
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": unique_email()})
    assert disabled.status_code == unknown.status_code == 202
    assert disabled.json() == unknown.json()

    await service.request_password_reset(session, resources, user.email, mail)
    assert [type(job) for job in mail.jobs] == [service.ResetLink]
    await mail.deliver()
    assert smtp_server.mails_to(user.email) == []
    assert await reset_tokens(session) == []


async def test_the_reset_mail_arrives_after_the_api_answers(
    client: httpx.AsyncClient, session: AsyncSession, resources: Resources, smtp_server: SMTPServer
) -> None:
    user = await create_user(session, resources)
    known = await client.post("/api/v1/auth/password-reset", json={"email": user.email})
    unknown = await client.post("/api/v1/auth/password-reset", json={"email": unique_email()})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert smtp_server.last_to(user.email).link_token("/reset-password")
