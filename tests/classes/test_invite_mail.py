"""Class invitations are mailed after the response, and each invitation records its mail's fate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from koan.classes import service
from koan.db import transactional
from koan.mail.sender import Mailer, MailQueue
from koan.models import ClassInvite
from koan.resources import Resources
from tests.classes.helpers import create_course
from tests.fixtures.smtp import SMTPServer, closed_port


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


def addresses(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"learner-{n}-{tag}@example.com" for n in range(count)]


async def mail_states(client: httpx.AsyncClient, class_id: uuid.UUID, h: dict[str, str]) -> dict:
    listed = await client.get(f"/api/v1/classes/{class_id}/invites", headers=h)
    assert listed.status_code == 200, listed.text
    return {i["email"]: i["mail_status"] for i in listed.json()["items"]}


async def test_invitations_are_queued_by_the_request_and_mailed_after_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
    mail: MailQueue,
) -> None:
    course = await create_course(client, session, resources, learners=0)
    member = await service.member_of(session, course.instructor, course.id, staff=True)
    invited = addresses(3)
    result = await service.invite(session, resources, member, course.instructor, invited, mail)
    assert result.invited == invited
    # Nothing was sent while the request ran: its time does not grow with the list.
    assert all(smtp_server.mails_to(a) == [] for a in invited)
    listed = await service.invites_of(session, member)
    assert {i.email: i.mail_status for i in listed} == dict.fromkeys(invited, "queued")

    await mail.deliver()
    assert all(smtp_server.last_to(a).link_token("/classes/invite") for a in invited)
    # The outcomes were recorded in units of work of their own, after the request's.
    query = (
        select(ClassInvite)
        .where(ClassInvite.class_id == course.id)
        .execution_options(populate_existing=True)
    )
    rows = (await session.execute(query)).scalars().all()
    assert {i.email: i.mail_status for i in rows} == dict.fromkeys(invited, "sent")
    assert all(i.mailed_at is not None for i in rows)


async def test_a_failing_mail_server_fails_no_invitation_request_and_is_recorded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    resources: Resources,
    smtp_server: SMTPServer,
) -> None:
    course = await create_course(client, session, resources, learners=0)
    h = course.headers["instructor"]
    broken = resources.settings.model_copy(
        update={"smtp_port": closed_port(), "mail_attempts": 1, "mail_retry_backoff_s": 0}
    )
    resources.mailer = Mailer(broken)
    invited = addresses(200)
    r = await client.post(
        f"/api/v1/classes/{course.id}/invites", json={"emails": "\n".join(invited)}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json()["invited"] == invited
    assert await mail_states(client, course.id, h) == dict.fromkeys(invited, "failed")
    sent = 0
    for mails in (smtp_server.mails_to(a) for a in invited):
        sent += len(mails)
    assert sent == 0

    # With the mail server back, inviting a failed address again sends it a new link; an
    # invitation whose mail went out is not sent twice.
    resources.mailer = Mailer(resources.settings)
    again = await client.post(
        f"/api/v1/classes/{course.id}/invites", json={"emails": invited[0]}, headers=h
    )
    assert again.json()["invited"] == [invited[0]]
    assert smtp_server.last_to(invited[0]).link_token("/classes/invite")
    states = await mail_states(client, course.id, h)
    assert states[invited[0]] == "sent"
    assert states[invited[1]] == "failed"
    twice = await client.post(
        f"/api/v1/classes/{course.id}/invites", json={"emails": invited[0]}, headers=h
    )
    assert twice.json()["already_invited"] == [invited[0]]
    assert len(smtp_server.mails_to(invited[0])) == 1
