"""Delivering mail: retried when the SMTP server fails, logged when it never answers."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from koan.config import Settings
from koan.mail.sender import Mail, Mailer
from tests.fixtures.factories import unique_email
from tests.fixtures.smtp import SMTPServer


@asynccontextmanager
async def no_session() -> AsyncIterator[AsyncSession]:
    raise AssertionError("SMTP delivery needs no database")
    yield  # pragma: no cover


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_mail_is_delivered_to_the_smtp_server(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    to = unique_email()
    assert await Mailer(settings).deliver(Mail(to, "Hello", "Body text"), no_session)
    assert smtp_server.last_to(to).body.strip() == "Body text"


async def test_an_unreachable_server_is_tried_again_then_logged(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"smtp_port": closed_port(), "mail_attempts": 3, "mail_retry_backoff_s": 0}
    )
    with capture_logs() as logs:
        delivered = await Mailer(broken).deliver(Mail(unique_email(), "Hi", "x"), no_session)
    assert delivered is False
    assert [e["event"] for e in logs] == ["mail.retry", "mail.retry", "mail.failed"]
    assert logs[-1]["log_level"] == "error"


async def test_mail_sent_now_joins_the_callers_outbox_transaction(
    settings: Settings, session: AsyncSession
) -> None:
    from sqlalchemy import select

    from koan.models import OutboxMail

    to = unique_email()
    outbox = settings.model_copy(update={"smtp_host": ""})
    await Mailer(outbox).send(session, to=to, subject="Invite", body="Join")
    query = select(OutboxMail.subject).where(OutboxMail.to_address == to)
    assert (await session.execute(query)).scalars().all() == ["Invite"]


async def test_a_subject_longer_than_the_outbox_keeps_is_cut_not_refused(
    settings: Settings, session: AsyncSession
) -> None:
    # An invitation's subject names the class and the teacher, each up to their own limit.
    from sqlalchemy import select

    from koan.models import OutboxMail

    to = unique_email()
    outbox = settings.model_copy(update={"smtp_host": ""})
    await Mailer(outbox).send(session, to=to, subject="S" * 400, body="Join")
    query = select(OutboxMail.subject).where(OutboxMail.to_address == to)
    assert (await session.execute(query)).scalars().all() == ["S" * 200]


async def test_a_mailer_that_fails_outright_is_logged_and_the_queue_goes_on(
    settings: Settings,
) -> None:
    from koan.mail.sender import MailQueue

    class Broken(Mailer):
        async def deliver(self, mail: Mail, open_session: object) -> bool:  # type: ignore[override]
            if mail.subject == "first":
                raise RuntimeError("the mailer broke")
            return True

    recorded: list[bool] = []

    async def outcome(_session: object, delivered: bool) -> None:
        recorded.append(delivered)

    @asynccontextmanager
    async def fake_session() -> AsyncIterator[AsyncSession]:
        yield None  # type: ignore[misc]

    queue = MailQueue(Broken(settings), fake_session)
    queue.send(Mail(unique_email(), "first", "x"), outcome=outcome)
    queue.send(Mail(unique_email(), "second", "y"), outcome=outcome)
    with capture_logs() as logs:
        await queue.deliver()

    assert recorded == [False, True]
    assert "mail.failed" in [e["event"] for e in logs]
